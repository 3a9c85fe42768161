//! `arbitrary::Arbitrary` for packets: generates valid packets only (used by fuzz/).
//!
//! Every packet generated here encodes without error in the version it was generated
//! for, and decodes back to itself: the fuzz targets assert exactly that. Sizes are
//! kept small (strings of at most 64 bytes, binary fields of at most 128, payloads of
//! at most 1 KiB) so that fuzzing spends its time on structure, not on memcpy.

use arbitrary::{Arbitrary, Result, Unstructured};
use bytes::Bytes;

use crate::packet::PacketType;
use crate::property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, Secret, SubscribeProperties, UnsubscribeProperties, UserProperty,
    WillProperties,
};
use crate::topic::SHARED_PREFIX;
use crate::{
    varint, Auth, ConnAck, Connect, Disconnect, LastWill, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

/// Longest string generated, in bytes.
const MAX_STRING: usize = 64;
/// Longest binary field generated.
const MAX_BINARY: usize = 128;
/// Longest PUBLISH or Will payload generated.
const MAX_PAYLOAD: usize = 1024;

/// A packet that is valid in `version`: `packet.encode(version, ..)` succeeds and the
/// bytes decode (with [`Packet::decode`] for `version`) to a packet equal to `packet`.
///
/// MQTT 3.1.1 packets carry no properties, only the reason codes 3.1.1 can express,
/// and default subscription options; AUTH is generated only for MQTT 5. A CONNECT's
/// `protocol_version` is `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArbitraryPacket {
    /// The protocol version the packet is valid in.
    pub version: ProtocolVersion,
    /// The packet.
    pub packet: Packet,
}

impl<'a> Arbitrary<'a> for ArbitraryPacket {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let version = ProtocolVersion::arbitrary(u)?;
        let packet = Self::packet_for(u, version)?;
        Ok(Self { version, packet })
    }
}

impl ArbitraryPacket {
    /// Generates a packet of any type that is valid in `version` (for a stream of
    /// packets that must all share one version).
    pub fn packet_for(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Packet> {
        let v5 = version == ProtocolVersion::V5;
        let last = if v5 { 14 } else { 13 };
        Ok(match u.int_in_range(0..=last)? {
            0 => Packet::from(connect(u, version)?),
            1 => Packet::from(connack(u, version)?),
            2 => Packet::from(publish(u, version)?),
            3 => Packet::PubAck(puback(u, PacketType::PubAck, version)?),
            4 => Packet::PubRec(puback(u, PacketType::PubRec, version)?),
            5 => Packet::PubRel(puback(u, PacketType::PubRel, version)?),
            6 => Packet::PubComp(puback(u, PacketType::PubComp, version)?),
            7 => Packet::from(subscribe(u, version)?),
            8 => Packet::from(suback(u, version)?),
            9 => Packet::from(unsubscribe(u, version)?),
            10 => Packet::from(unsuback(u, version)?),
            11 => Packet::PingReq,
            12 => Packet::PingResp,
            13 => Packet::from(disconnect(u, version)?),
            _ => Packet::from(auth(u)?),
        })
    }
}

impl<'a> Arbitrary<'a> for ProtocolVersion {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.arbitrary::<bool>()? {
            Self::V311
        } else {
            Self::V5
        })
    }
}

impl<'a> Arbitrary<'a> for QoS {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(match u.int_in_range(0..=2u8)? {
            0 => Self::AtMostOnce,
            1 => Self::AtLeastOnce,
            _ => Self::ExactlyOnce,
        })
    }
}

/// A valid MQTT 5 packet of any type (use [`ArbitraryPacket`] to choose the version).
impl<'a> Arbitrary<'a> for Packet {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        ArbitraryPacket::packet_for(u, ProtocolVersion::V5)
    }
}

// ---------------------------------------------------------------------------------
// Field generators.

/// Characters that random input rarely spells: multi-byte UTF-8, the largest scalar
/// values, a BOM and the characters topics treat specially.
const SPECIAL_CHARS: &[char] = &[
    '/',
    '$',
    ' ',
    '\u{7F}',
    '\u{80}',
    'é',
    '\u{FEFF}',
    '\u{FFFF}',
    '\u{10FFFF}',
    '\u{2A6D4}',
];

/// A string of at most `max` bytes, without U+0000 or any of `forbid`.
fn text(u: &mut Unstructured<'_>, max: usize, forbid: &[char]) -> Result<String> {
    let raw: &str = u.arbitrary()?;
    let mut out = String::new();
    let push = |out: &mut String, c: char| {
        if c != '\0' && !forbid.contains(&c) && out.len() + c.len_utf8() <= max {
            out.push(c);
        }
    };
    for c in raw.chars() {
        push(&mut out, c);
    }
    if u.arbitrary::<u8>()? < 32 {
        let c = *u.choose(SPECIAL_CHARS)?;
        push(&mut out, c);
    }
    Ok(out)
}

fn mqtt_string(u: &mut Unstructured<'_>) -> Result<MqttString> {
    MqttString::try_from(text(u, MAX_STRING, &[])?).map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn to_mqtt(s: String) -> Result<MqttString> {
    MqttString::try_from(s).map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn binary(u: &mut Unstructured<'_>, max: usize) -> Result<Bytes> {
    let raw: &[u8] = u.arbitrary()?;
    Ok(Bytes::copy_from_slice(raw.get(..max).unwrap_or(raw)))
}

/// `Some(f(u))` or `None`, `None` when the input is exhausted.
fn opt<'a, T>(
    u: &mut Unstructured<'a>,
    f: impl FnOnce(&mut Unstructured<'a>) -> Result<T>,
) -> Result<Option<T>> {
    if u.arbitrary::<bool>()? {
        f(u).map(Some)
    } else {
        Ok(None)
    }
}

fn packet_id(u: &mut Unstructured<'_>) -> Result<PacketId> {
    PacketId::new(u.int_in_range(1..=u16::MAX)?).ok_or(arbitrary::Error::IncorrectFormat)
}

/// A topic name: not empty, no wildcards [MQTT-4.7.3-1] [MQTT-3.3.2-2].
fn topic_name(u: &mut Unstructured<'_>) -> Result<MqttString> {
    let mut s = text(u, MAX_STRING, &['+', '#'])?;
    if s.is_empty() {
        s.push('t');
    }
    to_mqtt(s)
}

/// A topic filter without a share name: levels of text, `+` and empty levels, maybe
/// a final `#` [MQTT-4.7.1-1] [MQTT-4.7.1-2].
fn plain_filter(u: &mut Unstructured<'_>) -> Result<String> {
    let levels = u.int_in_range(1..=4u8)?;
    let mut parts = Vec::new();
    for _ in 0..levels {
        parts.push(match u.int_in_range(0..=4u8)? {
            0 => "+".to_owned(),
            1 => String::new(),
            _ => text(u, 16, &['/', '+', '#'])?,
        });
    }
    if u.arbitrary::<bool>()? {
        parts.push("#".to_owned());
    }
    let filter = parts.join("/");
    Ok(if filter.is_empty() {
        "#".to_owned()
    } else if filter.starts_with(SHARED_PREFIX) {
        // Keep plain filters plain: `$share/+/a` would be an invalid shared filter.
        format!("x{filter}")
    } else {
        filter
    })
}

/// A topic filter and whether it is a shared subscription `$share/{group}/{filter}`
/// (MQTT 5, 4.8.2). In MQTT 3.1.1 the same string is an ordinary filter.
fn topic_filter(u: &mut Unstructured<'_>) -> Result<(MqttString, bool)> {
    if u.int_in_range(0..=3u8)? == 0 {
        let mut group = text(u, 16, &['/', '+', '#'])?;
        if group.is_empty() {
            group.push('g');
        }
        let inner = plain_filter(u)?;
        Ok((to_mqtt(format!("{SHARED_PREFIX}{group}/{inner}"))?, true))
    } else {
        Ok((to_mqtt(plain_filter(u)?)?, false))
    }
}

/// A reason code valid for `packet_type` in `version`.
fn reason_code(
    u: &mut Unstructured<'_>,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<ReasonCode> {
    let valid: Vec<ReasonCode> = (0..=u8::MAX)
        .map(ReasonCode)
        .filter(|c| c.is_valid_in(packet_type, version))
        .collect();
    Ok(*u.choose(&valid)?)
}

fn reason_codes(
    u: &mut Unstructured<'_>,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<Vec<ReasonCode>> {
    let n = u.int_in_range(1..=5u8)?;
    (0..n)
        .map(|_| reason_code(u, packet_type, version))
        .collect()
}

fn user_properties(u: &mut Unstructured<'_>) -> Result<Vec<UserProperty>> {
    let n = u.int_in_range(0..=3u8)?;
    (0..n)
        .map(|_| {
            Ok(UserProperty {
                name: mqtt_string(u)?,
                value: mqtt_string(u)?,
            })
        })
        .collect()
}

fn non_zero_u16(u: &mut Unstructured<'_>) -> Result<u16> {
    u.int_in_range(1..=u16::MAX)
}

fn non_zero_u32(u: &mut Unstructured<'_>) -> Result<u32> {
    u.int_in_range(1..=u32::MAX)
}

fn subscription_identifier(u: &mut Unstructured<'_>) -> Result<u32> {
    u.int_in_range(1..=varint::MAX)
}

fn payload_format(u: &mut Unstructured<'_>) -> Result<u8> {
    u.int_in_range(0..=1u8)
}

/// Authentication Method, and maybe Authentication Data: never data without a method
/// (MQTT 5, 3.1.2.11.10).
fn authentication(u: &mut Unstructured<'_>) -> Result<(Option<MqttString>, Option<Secret>)> {
    if u.arbitrary::<bool>()? {
        let method = mqtt_string(u)?;
        let data = opt(u, |u| binary(u, MAX_BINARY).map(Secret))?;
        Ok((Some(method), data))
    } else {
        Ok((None, None))
    }
}

// ---------------------------------------------------------------------------------
// Property sets (MQTT 5 only; empty for 3.1.1).

fn connect_properties(u: &mut Unstructured<'_>) -> Result<ConnectProperties> {
    let (authentication_method, authentication_data) = authentication(u)?;
    Ok(ConnectProperties {
        session_expiry_interval: opt(u, |u| u.arbitrary())?,
        receive_maximum: opt(u, non_zero_u16)?,
        maximum_packet_size: opt(u, non_zero_u32)?,
        topic_alias_maximum: opt(u, |u| u.arbitrary())?,
        request_response_information: opt(u, |u| u.arbitrary())?,
        request_problem_information: opt(u, |u| u.arbitrary())?,
        authentication_method,
        authentication_data,
        user_properties: user_properties(u)?,
    })
}

fn will_properties(u: &mut Unstructured<'_>) -> Result<WillProperties> {
    Ok(WillProperties {
        will_delay_interval: opt(u, |u| u.arbitrary())?,
        payload_format_indicator: opt(u, payload_format)?,
        message_expiry_interval: opt(u, |u| u.arbitrary())?,
        content_type: opt(u, mqtt_string)?,
        response_topic: opt(u, topic_name)?,
        correlation_data: opt(u, |u| binary(u, MAX_BINARY))?,
        user_properties: user_properties(u)?,
    })
}

fn connack_properties(u: &mut Unstructured<'_>) -> Result<ConnAckProperties> {
    let (authentication_method, authentication_data) = authentication(u)?;
    Ok(ConnAckProperties {
        session_expiry_interval: opt(u, |u| u.arbitrary())?,
        receive_maximum: opt(u, non_zero_u16)?,
        // Maximum QoS is 0 or 1 (MQTT 5, 3.2.2.3.4).
        maximum_qos: opt(u, |u| {
            Ok(if u.arbitrary::<bool>()? {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            })
        })?,
        retain_available: opt(u, |u| u.arbitrary())?,
        maximum_packet_size: opt(u, non_zero_u32)?,
        assigned_client_identifier: opt(u, mqtt_string)?,
        topic_alias_maximum: opt(u, |u| u.arbitrary())?,
        reason_string: opt(u, mqtt_string)?,
        wildcard_subscription_available: opt(u, |u| u.arbitrary())?,
        subscription_identifiers_available: opt(u, |u| u.arbitrary())?,
        shared_subscription_available: opt(u, |u| u.arbitrary())?,
        server_keep_alive: opt(u, |u| u.arbitrary())?,
        response_information: opt(u, mqtt_string)?,
        server_reference: opt(u, mqtt_string)?,
        authentication_method,
        authentication_data,
        user_properties: user_properties(u)?,
    })
}

fn publish_properties(u: &mut Unstructured<'_>) -> Result<PublishProperties> {
    let n = u.int_in_range(0..=3u8)?;
    Ok(PublishProperties {
        payload_format_indicator: opt(u, payload_format)?,
        message_expiry_interval: opt(u, |u| u.arbitrary())?,
        topic_alias: opt(u, non_zero_u16)?,
        response_topic: opt(u, topic_name)?,
        correlation_data: opt(u, |u| binary(u, MAX_BINARY))?,
        content_type: opt(u, mqtt_string)?,
        subscription_identifiers: (0..n)
            .map(|_| subscription_identifier(u))
            .collect::<Result<_>>()?,
        user_properties: user_properties(u)?,
    })
}

fn ack_properties(u: &mut Unstructured<'_>) -> Result<AckProperties> {
    Ok(AckProperties {
        reason_string: opt(u, mqtt_string)?,
        user_properties: user_properties(u)?,
    })
}

fn subscribe_properties(u: &mut Unstructured<'_>) -> Result<SubscribeProperties> {
    Ok(SubscribeProperties {
        subscription_identifier: opt(u, subscription_identifier)?,
        user_properties: user_properties(u)?,
    })
}

fn disconnect_properties(u: &mut Unstructured<'_>) -> Result<DisconnectProperties> {
    Ok(DisconnectProperties {
        session_expiry_interval: opt(u, |u| u.arbitrary())?,
        reason_string: opt(u, mqtt_string)?,
        server_reference: opt(u, mqtt_string)?,
        user_properties: user_properties(u)?,
    })
}

fn auth_properties(u: &mut Unstructured<'_>) -> Result<AuthProperties> {
    let (authentication_method, authentication_data) = authentication(u)?;
    Ok(AuthProperties {
        authentication_method,
        authentication_data,
        reason_string: opt(u, mqtt_string)?,
        user_properties: user_properties(u)?,
    })
}

/// `f(u)` in MQTT 5, the default (empty) set in 3.1.1.
fn properties_in<'a, T: Default>(
    u: &mut Unstructured<'a>,
    version: ProtocolVersion,
    f: impl FnOnce(&mut Unstructured<'a>) -> Result<T>,
) -> Result<T> {
    match version {
        ProtocolVersion::V5 => f(u),
        ProtocolVersion::V311 => Ok(T::default()),
    }
}

// ---------------------------------------------------------------------------------
// Packets.

fn connect(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Connect> {
    let will = opt(u, |u| {
        Ok(LastWill {
            topic: topic_name(u)?,
            payload: binary(u, MAX_PAYLOAD)?,
            qos: u.arbitrary()?,
            retain: u.arbitrary()?,
            properties: properties_in(u, version, will_properties)?,
        })
    })?;
    let mut username = opt(u, mqtt_string)?;
    let password = opt(u, |u| binary(u, MAX_BINARY).map(Secret))?;
    // MQTT 3.1.1: no password without a user name [MQTT-3.1.2-22].
    if version == ProtocolVersion::V311 && password.is_some() && username.is_none() {
        username = Some(mqtt_string(u)?);
    }
    let client_id = mqtt_string(u)?;
    // MQTT 3.1.1: an empty client identifier needs Clean Session [MQTT-3.1.3-7].
    let clean_start =
        u.arbitrary::<bool>()? || (version == ProtocolVersion::V311 && client_id.is_empty());
    Ok(Connect {
        protocol_version: version,
        client_id,
        clean_start,
        keep_alive: u.arbitrary()?,
        username,
        password,
        will,
        properties: properties_in(u, version, connect_properties)?,
    })
}

fn connack(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<ConnAck> {
    let reason_code = reason_code(u, PacketType::ConnAck, version)?;
    Ok(ConnAck {
        // [MQTT-3.2.2-4] [MQTT-3.2.2-6]: no session on a refused connection.
        session_present: reason_code.is_success() && u.arbitrary()?,
        reason_code,
        properties: properties_in(u, version, connack_properties)?,
    })
}

fn publish(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Publish> {
    let qos: QoS = u.arbitrary()?;
    let properties = properties_in(u, version, publish_properties)?;
    // MQTT 5: an empty topic name is allowed with a Topic Alias [MQTT-3.3.2-1].
    let topic = if properties.topic_alias.is_some() && u.arbitrary()? {
        MqttString::new()
    } else {
        topic_name(u)?
    };
    Ok(Publish {
        // [MQTT-3.3.1-2] DUP is 0 for QoS 0.
        dup: qos != QoS::AtMostOnce && u.arbitrary()?,
        qos,
        retain: u.arbitrary()?,
        topic,
        // [MQTT-2.2.1-2] An identifier exactly when QoS > 0.
        packet_id: match qos {
            QoS::AtMostOnce => None,
            _ => Some(packet_id(u)?),
        },
        // Decoding gives `None` for no properties, never `Some` of an empty set.
        properties: (!properties.is_empty()).then(|| Box::new(properties)),
        payload: binary(u, MAX_PAYLOAD)?,
    })
}

fn puback(
    u: &mut Unstructured<'_>,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<PubAck> {
    Ok(PubAck {
        packet_id: packet_id(u)?,
        reason_code: reason_code(u, packet_type, version)?,
        properties: properties_in(u, version, ack_properties)?,
    })
}

fn subscribe(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Subscribe> {
    let n = u.int_in_range(1..=4u8)?;
    let mut filters = Vec::new();
    for _ in 0..n {
        let (filter, shared) = topic_filter(u)?;
        let qos = u.arbitrary()?;
        let options = match version {
            // 3.1.1: only the QoS exists.
            ProtocolVersion::V311 => SubscriptionOptions::qos(qos),
            ProtocolVersion::V5 => SubscriptionOptions {
                qos,
                // [MQTT-3.8.3-4] No Local is not set on a shared subscription.
                no_local: !shared && u.arbitrary()?,
                retain_as_published: u.arbitrary()?,
                // Retain Handling 3 is a Protocol Error (3.8.3.1).
                retain_handling: match u.int_in_range(0..=2u8)? {
                    0 => RetainHandling::SendOnSubscribe,
                    1 => RetainHandling::SendIfNew,
                    _ => RetainHandling::DoNotSend,
                },
            },
        };
        filters.push((filter, options));
    }
    Ok(Subscribe {
        packet_id: packet_id(u)?,
        properties: properties_in(u, version, subscribe_properties)?,
        filters,
    })
}

fn suback(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<SubAck> {
    Ok(SubAck {
        packet_id: packet_id(u)?,
        properties: properties_in(u, version, ack_properties)?,
        reason_codes: reason_codes(u, PacketType::SubAck, version)?,
    })
}

fn unsubscribe(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Unsubscribe> {
    let n = u.int_in_range(1..=4u8)?;
    Ok(Unsubscribe {
        packet_id: packet_id(u)?,
        properties: properties_in(u, version, |u| {
            Ok(UnsubscribeProperties {
                user_properties: user_properties(u)?,
            })
        })?,
        filters: (0..n)
            .map(|_| topic_filter(u).map(|(f, _)| f))
            .collect::<Result<_>>()?,
    })
}

fn unsuback(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<UnsubAck> {
    Ok(UnsubAck {
        packet_id: packet_id(u)?,
        properties: properties_in(u, version, ack_properties)?,
        // 3.1.1: UNSUBACK has no payload; 5.0: one code per filter, at least one.
        reason_codes: match version {
            ProtocolVersion::V311 => Vec::new(),
            ProtocolVersion::V5 => reason_codes(u, PacketType::UnsubAck, version)?,
        },
    })
}

fn disconnect(u: &mut Unstructured<'_>, version: ProtocolVersion) -> Result<Disconnect> {
    Ok(match version {
        ProtocolVersion::V311 => Disconnect::default(),
        ProtocolVersion::V5 => Disconnect {
            reason_code: reason_code(u, PacketType::Disconnect, version)?,
            properties: disconnect_properties(u)?,
        },
    })
}

fn auth(u: &mut Unstructured<'_>) -> Result<Auth> {
    let reason_code = reason_code(u, PacketType::Auth, ProtocolVersion::V5)?;
    let properties = auth_properties(u)?;
    // Every AUTH but the empty short form names its method (MQTT 5, 3.15.2.2.2).
    if properties.authentication_method.is_none() {
        return Ok(Auth::default());
    }
    Ok(Auth {
        reason_code,
        properties,
    })
}
