//! A strict, zero-copy codec for every MQTT 3.1.1 and MQTT 5.0 control packet.
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use mqtt_codec::{Decoder, MqttString, Packet, ProtocolVersion, Publish, QoS};
//!
//! let publish = Publish {
//!     qos: QoS::AtLeastOnce,
//!     packet_id: mqtt_codec::PacketId::new(7),
//!     topic: MqttString::from_static("sensors/k1/temp").unwrap(),
//!     payload: Bytes::from_static(b"21.5"),
//!     ..Publish::default()
//! };
//! let packet = Packet::Publish(publish);
//!
//! let mut wire = BytesMut::new();
//! packet.encode(ProtocolVersion::V5, &mut wire).unwrap();
//! assert_eq!(wire.len(), packet.encoded_len(ProtocolVersion::V5).unwrap());
//!
//! let mut decoder = Decoder::new(ProtocolVersion::V5).with_max_packet_size(1024);
//! let decoded = decoder.decode(&mut wire).unwrap().expect("a whole packet");
//! assert_eq!(decoded, packet);
//! ```
//!
//! # The model
//!
//! `mqtt-codec` turns bytes into [`Packet`]s and packets into bytes. It holds no
//! session state, does no I/O, reads no clock and spawns nothing: it is the layer a
//! client, a broker, a proxy or a packet inspector puts under its own I/O.
//!
//! - **One packet tree for both versions.** [`ProtocolVersion`] is a parameter of
//!   decoding and encoding. Fields that exist only in MQTT 5 (properties, most reason
//!   codes, subscription options) are empty/default for 3.1.1, and the encoder
//!   refuses a 3.1.1 packet that would lose them ([`EncodeError::NotInVersion`]).
//! - **Zero-copy.** Decoding takes [`bytes::Bytes`]/[`bytes::BytesMut`]; topics,
//!   payloads, strings and binary fields of the result are slices of that buffer,
//!   never copies. Strings are validated once, into [`MqttString`].
//! - **Strict.** Malformed input is an error, never a panic and never a guess. Each
//!   [`DecodeError`] names the normative statement it enforces and maps to the MQTT 5
//!   reason code the receiver must send ([`DecodeError::reason_code`]): Malformed
//!   Packet (0x81), Protocol Error (0x82), Packet too large (0x95) or Unsupported
//!   Protocol Version (0x84).
//! - **Incremental framing.** [`Decoder`] returns `Ok(None)` until a whole packet is
//!   buffered, parses each fixed header once, and refuses a packet over the maximum
//!   size from its header alone.
//! - **Exact encoding.** [`Packet::encoded_len`] is exact and validates; [`Packet::encode`]
//!   reserves once and writes once. A length that does not fit its field is an error,
//!   never a silent truncation.
//!
//! What it leaves to the layer above, because they depend on direction or session
//! state that a stateless codec does not have: Topic Alias ranges and resolution, a
//! Subscription Identifier in a client-to-server PUBLISH [MQTT-3.3.4-6], reason codes
//! only one side may send (DISCONNECT 0x04 from a server), Client Identifier policy,
//! Receive Maximum and packet-identifier bookkeeping.
//!
//! What it never does: allocate for a topic or payload while decoding, accept a packet
//! the specification calls malformed, write a packet it would itself reject, or use
//! `unsafe`.
//!

pub mod error;
pub mod packet;
pub mod property;
pub mod reason;
pub mod string;
pub mod topic;
pub mod varint;
mod wire;

#[cfg(feature = "arbitrary")]
mod arbitrary_impls;

#[cfg(feature = "arbitrary")]
pub use arbitrary_impls::ArbitraryPacket;

pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Decoder, Disconnect, FixedHeader, LastWill, Packet, PacketType, PubAck,
    Publish, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, Secret, SubscribeProperties, UnsubscribeProperties, UserProperty,
    WillProperties,
};
pub use reason::ReasonCode;
pub use string::MqttString;

/// A packet identifier: never 0 [MQTT-2.2.1-3].
pub type PacketId = core::num::NonZeroU16;

/// The largest packet MQTT can frame: a five-byte fixed header and a remaining length
/// of 268,435,455.
pub const MAX_PACKET_SIZE: u32 = 268_435_455 + 5;

/// The protocol version: the protocol level byte of CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    #[default]
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }

    /// The version with this protocol level byte.
    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            4 => Some(Self::V311),
            5 => Some(Self::V5),
            _ => None,
        }
    }
}

/// Quality of Service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum QoS {
    /// At most once (0).
    #[default]
    AtMostOnce = 0,
    /// At least once (1).
    AtLeastOnce = 1,
    /// Exactly once (2).
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS with this value; `None` for 3 and above.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}
