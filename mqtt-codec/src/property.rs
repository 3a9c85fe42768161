//! MQTT 5 properties (MQTT 5, 2.2.2).
//!
//! Each packet that carries properties has its own typed set (`ConnectProperties`,
//! `PublishProperties`, ...): a field per property the packet allows (`None` when
//! absent), plus `user_properties` in the order received. Decoding a set enforces,
//! for every packet:
//!
//! - the property length stays inside the packet and matches its contents exactly;
//! - each identifier is allowed for the packet type (otherwise Malformed Packet,
//!   2.2.2.2);
//! - a property other than User Property (and Subscription Identifier in PUBLISH)
//!   appears at most once (Protocol Error);
//! - values are in range: booleans and Payload Format Indicator 0/1, Maximum QoS 0/1,
//!   Topic Alias, Receive Maximum, Maximum Packet Size and Subscription Identifier not 0
//!   (Protocol Error);
//! - strings are valid MQTT UTF-8, and a Response Topic is a valid topic name
//!   [MQTT-3.3.2-14].
//!
//! Encoding checks the same rules, so a set that decodes also encodes, and back.

use core::fmt;

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::string::MqttString;
use crate::wire::{self, Reader};
use crate::{varint, QoS};

/// A User Property (0x26): a name-value pair of UTF-8 strings. Names may repeat and
/// order is kept [MQTT-3.3.2-18].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: MqttString,
    /// The value.
    pub value: MqttString,
}

impl UserProperty {
    /// A pair from two strings. Fails if either contains U+0000.
    pub fn new(name: &str, value: &str) -> Result<Self, DecodeError> {
        Ok(Self {
            name: name.try_into()?,
            value: value.try_into()?,
        })
    }
}

/// Binary data that must not be logged: passwords and authentication data. `Debug`
/// prints only its length.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(pub Bytes);

impl Secret {
    /// The secret bytes.
    pub fn expose(&self) -> &Bytes {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl From<Bytes> for Secret {
    fn from(b: Bytes) -> Self {
        Self(b)
    }
}

/// Property identifier of User Property.
const USER_PROPERTY: u8 = 0x26;

/// How one kind of property value is read, measured and written.
pub(crate) trait Codec {
    type Value;
    fn decode(r: &mut Reader, id: u8) -> Result<Self::Value, DecodeError>;
    /// Length of the value alone; also validates it.
    fn len(v: &Self::Value, id: u8) -> Result<usize, EncodeError>;
    fn put(buf: &mut impl BufMut, v: &Self::Value);
}

/// The codecs, one per value type and range (MQTT 5, 2.2.2.2 table 2-4).
pub(crate) mod codec {
    use super::*;

    fn out_of_range(id: u8) -> EncodeError {
        EncodeError::Invalid(DecodeError::InvalidPropertyValue(id))
    }

    /// Byte, 0 or 1, as a boolean.
    pub(crate) struct Flag;
    impl Codec for Flag {
        type Value = bool;
        fn decode(r: &mut Reader, id: u8) -> Result<bool, DecodeError> {
            match r.u8()? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(DecodeError::InvalidPropertyValue(id)),
            }
        }
        fn len(_: &bool, _: u8) -> Result<usize, EncodeError> {
            Ok(1)
        }
        fn put(buf: &mut impl BufMut, v: &bool) {
            buf.put_u8(u8::from(*v));
        }
    }

    /// Byte, 0 or 1 (Payload Format Indicator).
    pub(crate) struct Byte01;
    impl Codec for Byte01 {
        type Value = u8;
        fn decode(r: &mut Reader, id: u8) -> Result<u8, DecodeError> {
            match r.u8()? {
                v @ (0 | 1) => Ok(v),
                _ => Err(DecodeError::InvalidPropertyValue(id)),
            }
        }
        fn len(v: &u8, id: u8) -> Result<usize, EncodeError> {
            if *v <= 1 {
                Ok(1)
            } else {
                Err(out_of_range(id))
            }
        }
        fn put(buf: &mut impl BufMut, v: &u8) {
            buf.put_u8(*v);
        }
    }

    /// Maximum QoS: a byte, 0 or 1 (MQTT 5, 3.2.2.3.4).
    pub(crate) struct MaxQos;
    impl Codec for MaxQos {
        type Value = QoS;
        fn decode(r: &mut Reader, id: u8) -> Result<QoS, DecodeError> {
            match r.u8()? {
                0 => Ok(QoS::AtMostOnce),
                1 => Ok(QoS::AtLeastOnce),
                _ => Err(DecodeError::InvalidPropertyValue(id)),
            }
        }
        fn len(v: &QoS, id: u8) -> Result<usize, EncodeError> {
            if *v == QoS::ExactlyOnce {
                Err(out_of_range(id))
            } else {
                Ok(1)
            }
        }
        fn put(buf: &mut impl BufMut, v: &QoS) {
            buf.put_u8(*v as u8);
        }
    }

    /// Two Byte Integer.
    pub(crate) struct Two;
    impl Codec for Two {
        type Value = u16;
        fn decode(r: &mut Reader, _: u8) -> Result<u16, DecodeError> {
            r.u16()
        }
        fn len(_: &u16, _: u8) -> Result<usize, EncodeError> {
            Ok(2)
        }
        fn put(buf: &mut impl BufMut, v: &u16) {
            buf.put_u16(*v);
        }
    }

    /// Two Byte Integer, not 0 (Receive Maximum, Topic Alias).
    pub(crate) struct TwoNonZero;
    impl Codec for TwoNonZero {
        type Value = u16;
        fn decode(r: &mut Reader, id: u8) -> Result<u16, DecodeError> {
            match r.u16()? {
                0 => Err(DecodeError::InvalidPropertyValue(id)),
                v => Ok(v),
            }
        }
        fn len(v: &u16, id: u8) -> Result<usize, EncodeError> {
            if *v == 0 {
                Err(out_of_range(id))
            } else {
                Ok(2)
            }
        }
        fn put(buf: &mut impl BufMut, v: &u16) {
            buf.put_u16(*v);
        }
    }

    /// Four Byte Integer.
    pub(crate) struct Four;
    impl Codec for Four {
        type Value = u32;
        fn decode(r: &mut Reader, _: u8) -> Result<u32, DecodeError> {
            r.u32()
        }
        fn len(_: &u32, _: u8) -> Result<usize, EncodeError> {
            Ok(4)
        }
        fn put(buf: &mut impl BufMut, v: &u32) {
            buf.put_u32(*v);
        }
    }

    /// Four Byte Integer, not 0 (Maximum Packet Size).
    pub(crate) struct FourNonZero;
    impl Codec for FourNonZero {
        type Value = u32;
        fn decode(r: &mut Reader, id: u8) -> Result<u32, DecodeError> {
            match r.u32()? {
                0 => Err(DecodeError::InvalidPropertyValue(id)),
                v => Ok(v),
            }
        }
        fn len(v: &u32, id: u8) -> Result<usize, EncodeError> {
            if *v == 0 {
                Err(out_of_range(id))
            } else {
                Ok(4)
            }
        }
        fn put(buf: &mut impl BufMut, v: &u32) {
            buf.put_u32(*v);
        }
    }

    /// Variable Byte Integer, 1..=268,435,455 (Subscription Identifier).
    pub(crate) struct VarNonZero;
    impl Codec for VarNonZero {
        type Value = u32;
        fn decode(r: &mut Reader, id: u8) -> Result<u32, DecodeError> {
            match r.varint()? {
                0 => Err(DecodeError::InvalidPropertyValue(id)),
                v => Ok(v),
            }
        }
        fn len(v: &u32, id: u8) -> Result<usize, EncodeError> {
            if *v == 0 || *v > varint::MAX {
                Err(out_of_range(id))
            } else {
                Ok(varint::len(*v))
            }
        }
        fn put(buf: &mut impl BufMut, v: &u32) {
            varint::write(buf, *v);
        }
    }

    /// UTF-8 Encoded String.
    pub(crate) struct Str;
    impl Codec for Str {
        type Value = MqttString;
        fn decode(r: &mut Reader, _: u8) -> Result<MqttString, DecodeError> {
            r.string()
        }
        fn len(v: &MqttString, _: u8) -> Result<usize, EncodeError> {
            wire::binary_len(v.len())
        }
        fn put(buf: &mut impl BufMut, v: &MqttString) {
            wire::put_binary(buf, v.as_bytes());
        }
    }

    /// UTF-8 Encoded String that must be a valid topic name (Response Topic).
    pub(crate) struct Topic;
    impl Codec for Topic {
        type Value = MqttString;
        fn decode(r: &mut Reader, _: u8) -> Result<MqttString, DecodeError> {
            let s = r.string()?;
            crate::topic::check_topic_name(&s)?;
            Ok(s)
        }
        fn len(v: &MqttString, _: u8) -> Result<usize, EncodeError> {
            crate::topic::check_topic_name(v)?;
            wire::binary_len(v.len())
        }
        fn put(buf: &mut impl BufMut, v: &MqttString) {
            wire::put_binary(buf, v.as_bytes());
        }
    }

    /// Binary Data.
    pub(crate) struct Binary;
    impl Codec for Binary {
        type Value = Bytes;
        fn decode(r: &mut Reader, _: u8) -> Result<Bytes, DecodeError> {
            r.binary()
        }
        fn len(v: &Bytes, _: u8) -> Result<usize, EncodeError> {
            wire::binary_len(v.len())
        }
        fn put(buf: &mut impl BufMut, v: &Bytes) {
            wire::put_binary(buf, v);
        }
    }

    /// Binary Data kept out of `Debug` (Authentication Data).
    pub(crate) struct SecretBinary;
    impl Codec for SecretBinary {
        type Value = Secret;
        fn decode(r: &mut Reader, _: u8) -> Result<Secret, DecodeError> {
            Ok(Secret(r.binary()?))
        }
        fn len(v: &Secret, _: u8) -> Result<usize, EncodeError> {
            wire::binary_len(v.0.len())
        }
        fn put(buf: &mut impl BufMut, v: &Secret) {
            wire::put_binary(buf, &v.0);
        }
    }
}

fn user_properties_len(props: &[UserProperty]) -> Result<usize, EncodeError> {
    let mut len = 0usize;
    for p in props {
        len += 1 + wire::binary_len(p.name.len())? + wire::binary_len(p.value.len())?;
    }
    Ok(len)
}

fn put_user_properties(buf: &mut impl BufMut, props: &[UserProperty]) {
    for p in props {
        buf.put_u8(USER_PROPERTY);
        wire::put_binary(buf, p.name.as_bytes());
        wire::put_binary(buf, p.value.as_bytes());
    }
}

/// Reads the property length and returns a reader over exactly that many bytes.
#[inline]
fn property_block(r: &mut Reader) -> Result<Reader, DecodeError> {
    let len = r.varint()?;
    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
    Ok(Reader::new(r.take(len)?))
}

#[inline]
fn property_id(block: &mut Reader) -> Result<u8, DecodeError> {
    // The identifier is a Variable Byte Integer; every identifier defined is below 128.
    let id = block.varint()?;
    Ok(u8::try_from(id).unwrap_or(u8::MAX))
}

macro_rules! property_set {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty as $codec:ident = $id:literal, )*
        }
        $( repeated { $(#[$rmeta:meta])* $rfield:ident : $rty:ty as $rcodec:ident = $rid:literal, } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: Option<$ty>,
            )*
            $(
                $(#[$rmeta])*
                pub $rfield: Vec<$rty>,
            )?
            /// User Properties (0x26), in the order they appear; names may repeat.
            pub user_properties: Vec<UserProperty>,
        }

        impl $name {
            /// The set with no property, as a constant.
            pub const EMPTY: Self = Self {
                $( $field: None, )*
                $( $rfield: Vec::new(), )?
                user_properties: Vec::new(),
            };

            /// Decodes the property length and the properties, boxed; `None` for an
            /// empty property list (no allocation).
            #[inline]
            #[allow(dead_code)] // Used by the packets that box their properties.
            pub(crate) fn decode_boxed(
                r: &mut Reader,
                packet_type: PacketType,
            ) -> Result<Option<Box<Self>>, DecodeError> {
                if r.as_slice().first() == Some(&0) {
                    r.u8()?;
                    return Ok(None);
                }
                let props = Self::decode(r, packet_type)?;
                Ok(if props.is_empty() { None } else { Some(Box::new(props)) })
            }

            /// True when no property is set.
            pub fn is_empty(&self) -> bool {
                $( self.$field.is_none() && )*
                $( self.$rfield.is_empty() && )?
                self.user_properties.is_empty()
            }

            /// Decodes the property length and the properties of a `packet_type`.
            pub(crate) fn decode(
                r: &mut Reader,
                packet_type: PacketType,
            ) -> Result<Self, DecodeError> {
                let mut block = property_block(r)?;
                let mut props = Self::default();
                while !block.is_empty() {
                    let id = property_id(&mut block)?;
                    match id {
                        $(
                            $id => {
                                let v = <codec::$codec as Codec>::decode(&mut block, $id)?;
                                if props.$field.replace(v).is_some() {
                                    return Err(DecodeError::DuplicateProperty($id));
                                }
                            }
                        )*
                        $(
                            $rid => {
                                let v = <codec::$rcodec as Codec>::decode(&mut block, $rid)?;
                                props.$rfield.push(v);
                            }
                        )?
                        USER_PROPERTY => {
                            let name = block.string()?;
                            let value = block.string()?;
                            props.user_properties.push(UserProperty { name, value });
                        }
                        id => return Err(DecodeError::PropertyNotAllowed { packet_type, id }),
                    }
                }
                Ok(props)
            }

            /// Length of the properties without the property-length prefix; validates
            /// every value.
            pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
                let mut len = 0usize;
                $(
                    if let Some(v) = &self.$field {
                        len += 1 + <codec::$codec as Codec>::len(v, $id)?;
                    }
                )*
                $(
                    for v in &self.$rfield {
                        len += 1 + <codec::$rcodec as Codec>::len(v, $rid)?;
                    }
                )?
                if !self.user_properties.is_empty() {
                    len += user_properties_len(&self.user_properties)?;
                }
                Ok(len)
            }

            /// Length with the property-length prefix.
            pub(crate) fn encoded_len(&self) -> Result<usize, EncodeError> {
                let body = self.body_len()?;
                Ok(varint::checked_len(body)? + body)
            }

            /// Writes the property length and the properties. `encoded_len` must have
            /// succeeded first.
            pub(crate) fn encode(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
                let body = self.body_len()?;
                varint::write(buf, u32::try_from(body).map_err(|_| EncodeError::PacketTooLarge)?);
                $(
                    if let Some(v) = &self.$field {
                        buf.put_u8($id);
                        <codec::$codec as Codec>::put(buf, v);
                    }
                )*
                $(
                    for v in &self.$rfield {
                        buf.put_u8($rid);
                        <codec::$rcodec as Codec>::put(buf, v);
                    }
                )?
                put_user_properties(buf, &self.user_properties);
                Ok(())
            }
        }
    };
}

property_set! {
    /// Properties of CONNECT (MQTT 5, 3.1.2.11).
    pub struct ConnectProperties {
        /// Session Expiry Interval (0x11), seconds; 0xFFFFFFFF means never.
        session_expiry_interval: u32 as Four = 0x11,
        /// Receive Maximum (0x21): QoS 1/2 PUBLISHes the client processes at once.
        receive_maximum: u16 as TwoNonZero = 0x21,
        /// Maximum Packet Size (0x27) the client accepts.
        maximum_packet_size: u32 as FourNonZero = 0x27,
        /// Topic Alias Maximum (0x22) the client accepts.
        topic_alias_maximum: u16 as Two = 0x22,
        /// Request Response Information (0x19).
        request_response_information: bool as Flag = 0x19,
        /// Request Problem Information (0x17).
        request_problem_information: bool as Flag = 0x17,
        /// Authentication Method (0x15).
        authentication_method: MqttString as Str = 0x15,
        /// Authentication Data (0x16); redacted in `Debug`.
        authentication_data: Secret as SecretBinary = 0x16,
    }
}

property_set! {
    /// Will Properties of CONNECT (MQTT 5, 3.1.3.2).
    pub struct WillProperties {
        /// Will Delay Interval (0x18), seconds.
        will_delay_interval: u32 as Four = 0x18,
        /// Payload Format Indicator (0x01): 0 unspecified bytes, 1 UTF-8.
        payload_format_indicator: u8 as Byte01 = 0x01,
        /// Message Expiry Interval (0x02), seconds.
        message_expiry_interval: u32 as Four = 0x02,
        /// Content Type (0x03).
        content_type: MqttString as Str = 0x03,
        /// Response Topic (0x08): a topic name, no wildcards.
        response_topic: MqttString as Topic = 0x08,
        /// Correlation Data (0x09).
        correlation_data: Bytes as Binary = 0x09,
    }
}

property_set! {
    /// Properties of CONNACK (MQTT 5, 3.2.2.3).
    pub struct ConnAckProperties {
        /// Session Expiry Interval (0x11) the server uses.
        session_expiry_interval: u32 as Four = 0x11,
        /// Receive Maximum (0x21) of the server.
        receive_maximum: u16 as TwoNonZero = 0x21,
        /// Maximum QoS (0x24) the server supports (0 or 1; absent means 2).
        maximum_qos: QoS as MaxQos = 0x24,
        /// Retain Available (0x25).
        retain_available: bool as Flag = 0x25,
        /// Maximum Packet Size (0x27) the server accepts.
        maximum_packet_size: u32 as FourNonZero = 0x27,
        /// Assigned Client Identifier (0x12).
        assigned_client_identifier: MqttString as Str = 0x12,
        /// Topic Alias Maximum (0x22) the server accepts.
        topic_alias_maximum: u16 as Two = 0x22,
        /// Reason String (0x1F).
        reason_string: MqttString as Str = 0x1F,
        /// Wildcard Subscription Available (0x28).
        wildcard_subscription_available: bool as Flag = 0x28,
        /// Subscription Identifiers Available (0x29).
        subscription_identifiers_available: bool as Flag = 0x29,
        /// Shared Subscription Available (0x2A).
        shared_subscription_available: bool as Flag = 0x2A,
        /// Server Keep Alive (0x13), seconds: overrides the client's.
        server_keep_alive: u16 as Two = 0x13,
        /// Response Information (0x1A).
        response_information: MqttString as Str = 0x1A,
        /// Server Reference (0x1C).
        server_reference: MqttString as Str = 0x1C,
        /// Authentication Method (0x15).
        authentication_method: MqttString as Str = 0x15,
        /// Authentication Data (0x16); redacted in `Debug`.
        authentication_data: Secret as SecretBinary = 0x16,
    }
}

property_set! {
    /// Properties of PUBLISH (MQTT 5, 3.3.2.3).
    pub struct PublishProperties {
        /// Payload Format Indicator (0x01): 0 unspecified bytes, 1 UTF-8.
        payload_format_indicator: u8 as Byte01 = 0x01,
        /// Message Expiry Interval (0x02), seconds.
        message_expiry_interval: u32 as Four = 0x02,
        /// Topic Alias (0x23), not 0.
        topic_alias: u16 as TwoNonZero = 0x23,
        /// Response Topic (0x08): a topic name, no wildcards.
        response_topic: MqttString as Topic = 0x08,
        /// Correlation Data (0x09).
        correlation_data: Bytes as Binary = 0x09,
        /// Content Type (0x03).
        content_type: MqttString as Str = 0x03,
    }
    repeated {
        /// Subscription Identifiers (0x0B) of the matching subscriptions; may repeat.
        subscription_identifiers: u32 as VarNonZero = 0x0B,
    }
}

property_set! {
    /// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK
    /// (MQTT 5, 3.4.2.2 and following).
    pub struct AckProperties {
        /// Reason String (0x1F).
        reason_string: MqttString as Str = 0x1F,
    }
}

property_set! {
    /// Properties of SUBSCRIBE (MQTT 5, 3.8.2.1).
    pub struct SubscribeProperties {
        /// Subscription Identifier (0x0B), 1..=268,435,455.
        subscription_identifier: u32 as VarNonZero = 0x0B,
    }
}

property_set! {
    /// Properties of UNSUBSCRIBE (MQTT 5, 3.10.2.1): User Properties only.
    pub struct UnsubscribeProperties {}
}

property_set! {
    /// Properties of DISCONNECT (MQTT 5, 3.14.2.2).
    pub struct DisconnectProperties {
        /// Session Expiry Interval (0x11).
        session_expiry_interval: u32 as Four = 0x11,
        /// Reason String (0x1F).
        reason_string: MqttString as Str = 0x1F,
        /// Server Reference (0x1C).
        server_reference: MqttString as Str = 0x1C,
    }
}

property_set! {
    /// Properties of AUTH (MQTT 5, 3.15.2.2).
    pub struct AuthProperties {
        /// Authentication Method (0x15).
        authentication_method: MqttString as Str = 0x15,
        /// Authentication Data (0x16); redacted in `Debug`.
        authentication_data: Secret as SecretBinary = 0x16,
        /// Reason String (0x1F).
        reason_string: MqttString as Str = 0x1F,
    }
}
