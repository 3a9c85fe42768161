//! Proptest strategies for VALID packets of both protocol versions.
//!
//! Every packet [`packet`] generates for a version encodes without error in that
//! version and decodes back to itself. MQTT 3.1.1 packets carry no properties, only
//! reason codes 3.1.1 can express and default subscription options, and AUTH exists
//! only in MQTT 5. MQTT 5 packets draw every property of their packet type with valid
//! values (non-zero where zero is a Protocol Error, Authentication Data only with an
//! Authentication Method, Response Topic a valid topic name, ...) and user properties.
//!
//! Strings are arbitrary UTF-8 without U+0000, biased toward ASCII and toward the
//! characters topics treat specially; topics are never empty (except a PUBLISH with a
//! Topic Alias in MQTT 5) and have no wildcards; topic filters use `+`, `#` and empty
//! levels, and MQTT 5 adds shared subscriptions `$share/{group}/{filter}`.

use bytes::Bytes;
use mqtt_codec::packet::PacketType;
use mqtt_codec::topic::SHARED_PREFIX;
use mqtt_codec::{
    varint, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, LastWill, MqttString, Packet, PacketId,
    ProtocolVersion, PubAck, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, Secret,
    SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeProperties, UserProperty, WillProperties,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Probability that an optional property is present.
const P: f64 = 0.3;

/// Either protocol version.
pub fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

/// Any QoS.
pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// A non-zero packet identifier [MQTT-2.2.1-3].
pub fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_filter_map("packet identifiers are not 0", PacketId::new)
}

/// A character: mostly ASCII letters, sometimes a special one, sometimes anything
/// (proptest's `char` strategy favours the edges of the Unicode ranges).
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => proptest::sample::select(vec![
            '/', '$', ' ', '+', '#', '\u{7F}', '\u{80}', 'é', '\u{FEFF}', '\u{FFFF}',
            '\u{10FFFF}', '\u{2A6D4}',
        ]),
        2 => any::<char>(),
    ]
}

/// A string of at most `max` characters, without U+0000 and without `forbid`.
pub fn text(max: usize, forbid: &'static [char]) -> impl Strategy<Value = String> {
    vec(any_char(), 0..=max).prop_map(move |chars| {
        chars
            .into_iter()
            .filter(|c| *c != '\0' && !forbid.contains(c))
            .collect()
    })
}

fn to_mqtt(s: impl Strategy<Value = String>) -> impl Strategy<Value = MqttString> {
    s.prop_filter_map("no U+0000", |s| MqttString::try_from(s).ok())
}

/// A valid MQTT UTF-8 string (MQTT 5, 1.5.4): any UTF-8 without U+0000.
pub fn mqtt_string() -> impl Strategy<Value = MqttString> {
    to_mqtt(text(12, &[]))
}

/// Binary data of up to `max` bytes.
pub fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

/// A PUBLISH or Will payload: usually small, sometimes long enough for a two- or
/// three-byte Remaining Length.
pub fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        8 => binary(64),
        2 => binary(400),
        1 => (any::<u8>(), 16_384..17_000usize).prop_map(|(b, n)| Bytes::from(vec![b; n])),
    ]
}

/// A topic name: not empty, no `+` or `#` [MQTT-4.7.3-1] [MQTT-3.3.2-2].
pub fn topic_name() -> impl Strategy<Value = MqttString> {
    to_mqtt(text(16, &['+', '#']).prop_map(|s| if s.is_empty() { "t".to_owned() } else { s }))
}

/// One level of a topic filter: `+`, empty, or text without `/`, `+`, `#`.
fn filter_level() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("+".to_owned()),
        1 => Just(String::new()),
        3 => text(6, &['/', '+', '#']),
    ]
}

/// A topic filter that is not a shared subscription: levels of text, `+` and empty
/// levels, maybe a final `#` [MQTT-4.7.1-1] [MQTT-4.7.1-2].
pub fn plain_topic_filter() -> impl Strategy<Value = String> {
    (vec(filter_level(), 1..5), any::<bool>()).prop_map(|(mut levels, hash)| {
        if hash {
            levels.push("#".to_owned());
        }
        let filter = levels.join("/");
        if filter.is_empty() {
            "#".to_owned()
        } else if filter.starts_with(SHARED_PREFIX) {
            // Keep plain filters plain: `$share/+/a` is an invalid shared filter.
            format!("x{filter}")
        } else {
            filter
        }
    })
}

/// A topic filter and whether it is a shared subscription `$share/{group}/{filter}`
/// (MQTT 5, 4.8.2: the group is not empty and holds no `/`, `+`, `#`). MQTT 3.1.1
/// has no shared subscriptions, but the same string is a valid ordinary filter there.
pub fn topic_filter() -> impl Strategy<Value = (MqttString, bool)> {
    let shared = (text(6, &['/', '+', '#']), plain_topic_filter()).prop_map(|(group, inner)| {
        let group = if group.is_empty() {
            "g".to_owned()
        } else {
            group
        };
        (format!("{SHARED_PREFIX}{group}/{inner}"), true)
    });
    let plain = plain_topic_filter().prop_map(|f| (f, false));
    prop_oneof![3 => plain, 1 => shared].prop_filter_map("no U+0000", |(f, shared)| {
        MqttString::try_from(f).ok().map(|f| (f, shared))
    })
}

/// The reason codes valid in a packet of `packet_type` in `version`.
pub fn valid_reason_codes(packet_type: PacketType, version: ProtocolVersion) -> Vec<ReasonCode> {
    (0..=u8::MAX)
        .map(ReasonCode)
        .filter(|c| c.is_valid_in(packet_type, version))
        .collect()
}

/// A reason code valid in a packet of `packet_type` in `version`.
pub fn reason_code(
    packet_type: PacketType,
    version: ProtocolVersion,
) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(valid_reason_codes(packet_type, version))
}

/// User Properties: none most of the time, otherwise one to three pairs (names may
/// repeat).
pub fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    let pair =
        (mqtt_string(), mqtt_string()).prop_map(|(name, value)| UserProperty { name, value });
    prop_oneof![1 => Just(Vec::new()), 1 => vec(pair, 1..4)]
}

fn opt<T: Strategy>(s: T) -> impl Strategy<Value = Option<T::Value>> {
    option::weighted(P, s)
}

/// Authentication Method and Data: data never without a method (MQTT 5, 3.1.2.11.10).
fn authentication() -> impl Strategy<Value = (Option<MqttString>, Option<Secret>)> {
    opt((mqtt_string(), opt(binary(16).prop_map(Secret)))).prop_map(|a| match a {
        Some((method, data)) => (Some(method), data),
        None => (None, None),
    })
}

/// Properties of CONNECT, every one of them possible.
pub fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        opt(any::<u32>()),
        opt(1..=u16::MAX),
        opt(1..=u32::MAX),
        opt(any::<u16>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        authentication(),
        user_properties(),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, (am, ad), user)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                authentication_method: am,
                authentication_data: ad,
                user_properties: user,
            },
        )
}

/// Will Properties of CONNECT.
pub fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        opt(any::<u32>()),
        opt(0..=1u8),
        opt(any::<u32>()),
        opt(mqtt_string()),
        opt(topic_name()),
        opt(binary(16)),
        user_properties(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, user)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: user,
        })
}

/// Properties of CONNACK.
pub fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let a = (
        opt(any::<u32>()),
        opt(1..=u16::MAX),
        // Maximum QoS is 0 or 1 (MQTT 5, 3.2.2.3.4).
        opt(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        opt(any::<bool>()),
        opt(1..=u32::MAX),
        opt(mqtt_string()),
        opt(any::<u16>()),
        opt(mqtt_string()),
    );
    let b = (
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<u16>()),
        opt(mqtt_string()),
        opt(mqtt_string()),
        authentication(),
        user_properties(),
    );
    (a, b).prop_map(
        |((sei, rm, mq, ra, mps, aci, tam, rs), (wsa, sia, ssa, ska, ri, sr, (am, ad), user))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                wildcard_subscription_available: wsa,
                subscription_identifiers_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
                user_properties: user,
            }
        },
    )
}

/// A Subscription Identifier: 1..=268,435,455.
pub fn subscription_identifier() -> impl Strategy<Value = u32> {
    prop_oneof![1..128u32, 1..=varint::MAX]
}

/// Properties of PUBLISH (Subscription Identifiers may repeat).
pub fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        opt(0..=1u8),
        opt(any::<u32>()),
        opt(1..=u16::MAX),
        opt(topic_name()),
        opt(binary(16)),
        opt(mqtt_string()),
        prop_oneof![2 => Just(Vec::new()), 1 => vec(subscription_identifier(), 1..4)],
        user_properties(),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, ct, ids, user)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            content_type: ct,
            subscription_identifiers: ids,
            user_properties: user,
        })
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
pub fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (opt(mqtt_string()), user_properties()).prop_map(|(rs, user)| AckProperties {
        reason_string: rs,
        user_properties: user,
    })
}

/// Properties of SUBSCRIBE.
pub fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (opt(subscription_identifier()), user_properties()).prop_map(|(id, user)| SubscribeProperties {
        subscription_identifier: id,
        user_properties: user,
    })
}

/// Properties of UNSUBSCRIBE.
pub fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|user| UnsubscribeProperties {
        user_properties: user,
    })
}

/// Properties of DISCONNECT.
pub fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        opt(any::<u32>()),
        opt(mqtt_string()),
        opt(mqtt_string()),
        user_properties(),
    )
        .prop_map(|(sei, rs, sr, user)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            server_reference: sr,
            user_properties: user,
        })
}

/// Properties of AUTH.
pub fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (authentication(), opt(mqtt_string()), user_properties()).prop_map(|((am, ad), rs, user)| {
        AuthProperties {
            authentication_method: am,
            authentication_data: ad,
            reason_string: rs,
            user_properties: user,
        }
    })
}

/// `s` in MQTT 5; the default (empty) value in MQTT 3.1.1.
fn in_v5<T>(version: ProtocolVersion, s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<T>
where
    T: Default + Clone + core::fmt::Debug + 'static,
{
    match version {
        ProtocolVersion::V5 => s.boxed(),
        ProtocolVersion::V311 => Just(T::default()).boxed(),
    }
}

/// A Will Message valid in `version`.
pub fn last_will(version: ProtocolVersion) -> impl Strategy<Value = LastWill> {
    (
        topic_name(),
        payload(),
        qos(),
        any::<bool>(),
        in_v5(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

/// A CONNECT valid in `version` (its `protocol_version` is `version`).
pub fn connect(version: ProtocolVersion) -> impl Strategy<Value = Connect> {
    (
        mqtt_string(),
        any::<bool>(),
        any::<u16>(),
        option::of(mqtt_string()),
        option::of(binary(16).prop_map(Secret)),
        option::of(last_will(version)),
        in_v5(version, connect_properties()),
    )
        .prop_map(
            move |(client_id, clean_start, keep_alive, username, password, will, properties)| {
                // MQTT 3.1.1: no password without a user name [MQTT-3.1.2-22].
                let password = if version == ProtocolVersion::V311 && username.is_none() {
                    None
                } else {
                    password
                };
                // MQTT 3.1.1: an empty client identifier needs Clean Session [MQTT-3.1.3-7].
                let clean_start =
                    clean_start || (version == ProtocolVersion::V311 && client_id.is_empty());
                Connect {
                    protocol_version: version,
                    client_id,
                    clean_start,
                    keep_alive,
                    username,
                    password,
                    will,
                    properties,
                }
            },
        )
}

/// A CONNACK valid in `version`.
pub fn connack(version: ProtocolVersion) -> impl Strategy<Value = ConnAck> {
    (
        any::<bool>(),
        reason_code(PacketType::ConnAck, version),
        in_v5(version, connack_properties()),
    )
        .prop_map(|(session_present, reason_code, properties)| ConnAck {
            // [MQTT-3.2.2-4] [MQTT-3.2.2-6] no session on a refused connection.
            session_present: session_present && reason_code.is_success(),
            reason_code,
            properties,
        })
}

/// A PUBLISH valid in `version`.
pub fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        in_v5(version, publish_properties()),
        payload(),
    )
        .prop_map(
            |(qos, dup, retain, topic, empty_topic, id, properties, payload)| Publish {
                // [MQTT-3.3.1-2] DUP is 0 for QoS 0.
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                // MQTT 5: an empty topic name with a Topic Alias [MQTT-3.3.2-1].
                topic: if empty_topic && properties.topic_alias.is_some() {
                    MqttString::new()
                } else {
                    topic
                },
                // [MQTT-2.2.1-2] a packet identifier exactly when QoS > 0.
                packet_id: (qos != QoS::AtMostOnce).then_some(id),
                // Decoding gives `None` for no properties, never `Some` of an empty set.
                properties: (!properties.is_empty()).then(|| Box::new(properties)),
                payload,
            },
        )
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP body valid for `packet_type` in `version`.
pub fn puback(packet_type: PacketType, version: ProtocolVersion) -> impl Strategy<Value = PubAck> {
    (
        packet_id(),
        reason_code(packet_type, version),
        in_v5(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_code, properties)| PubAck {
            packet_id,
            reason_code,
            properties,
        })
}

/// Subscription options for `filter` in `version`: QoS only in 3.1.1; in MQTT 5 every
/// option, Retain Handling never 3 and No Local never on a shared subscription
/// [MQTT-3.8.3-4].
fn subscription_options(
    version: ProtocolVersion,
    shared: bool,
) -> impl Strategy<Value = SubscriptionOptions> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(RetainHandling::SendOnSubscribe),
            Just(RetainHandling::SendIfNew),
            Just(RetainHandling::DoNotSend),
        ],
    )
        .prop_map(move |(qos, no_local, rap, rh)| match version {
            ProtocolVersion::V311 => SubscriptionOptions::qos(qos),
            ProtocolVersion::V5 => SubscriptionOptions {
                qos,
                no_local: no_local && !shared,
                retain_as_published: rap,
                retain_handling: rh,
            },
        })
}

/// A SUBSCRIBE valid in `version`.
pub fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    let entry = topic_filter().prop_flat_map(move |(filter, shared)| {
        (Just(filter), subscription_options(version, shared))
    });
    (
        packet_id(),
        in_v5(version, subscribe_properties()),
        vec(entry, 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| Subscribe {
            packet_id,
            properties,
            filters,
        })
}

/// A SUBACK valid in `version`.
pub fn suback(version: ProtocolVersion) -> impl Strategy<Value = SubAck> {
    (
        packet_id(),
        in_v5(version, ack_properties()),
        vec(reason_code(PacketType::SubAck, version), 1..6),
    )
        .prop_map(|(packet_id, properties, reason_codes)| SubAck {
            packet_id,
            properties,
            reason_codes,
        })
}

/// An UNSUBSCRIBE valid in `version`.
pub fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Unsubscribe> {
    (
        packet_id(),
        in_v5(version, unsubscribe_properties()),
        vec(topic_filter().prop_map(|(f, _)| f), 1..5),
    )
        .prop_map(|(packet_id, properties, filters)| Unsubscribe {
            packet_id,
            properties,
            filters,
        })
}

/// An UNSUBACK valid in `version`: no reason codes in 3.1.1, at least one in 5.0.
pub fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = UnsubAck> {
    let codes = match version {
        ProtocolVersion::V311 => Just(Vec::new()).boxed(),
        ProtocolVersion::V5 => vec(reason_code(PacketType::UnsubAck, version), 1..6).boxed(),
    };
    (packet_id(), in_v5(version, ack_properties()), codes).prop_map(
        |(packet_id, properties, reason_codes)| UnsubAck {
            packet_id,
            properties,
            reason_codes,
        },
    )
}

/// A DISCONNECT valid in `version` (always the empty one in 3.1.1).
pub fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Disconnect> {
    match version {
        ProtocolVersion::V311 => Just(Disconnect::default()).boxed(),
        ProtocolVersion::V5 => (
            reason_code(PacketType::Disconnect, version),
            disconnect_properties(),
        )
            .prop_map(|(reason_code, properties)| Disconnect {
                reason_code,
                properties,
            })
            .boxed(),
    }
}

/// An AUTH (MQTT 5 only).
pub fn auth() -> impl Strategy<Value = Auth> {
    (
        reason_code(PacketType::Auth, ProtocolVersion::V5),
        auth_properties(),
    )
        .prop_map(|(reason_code, properties)| {
            // Every AUTH but the empty short form names its method (MQTT 5, 3.15.2.2.2).
            if properties.authentication_method.is_none() {
                Auth::default()
            } else {
                Auth {
                    reason_code,
                    properties,
                }
            }
        })
}

/// A packet of any type valid in `version` (AUTH only in MQTT 5).
pub fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(version).prop_map(Packet::from),
        connack(version).prop_map(Packet::from),
        publish(version).prop_map(Packet::from),
        puback(PacketType::PubAck, version).prop_map(Packet::PubAck),
        puback(PacketType::PubRec, version).prop_map(Packet::PubRec),
        puback(PacketType::PubRel, version).prop_map(Packet::PubRel),
        puback(PacketType::PubComp, version).prop_map(Packet::PubComp),
        subscribe(version).prop_map(Packet::from),
        suback(version).prop_map(Packet::from),
        unsubscribe(version).prop_map(Packet::from),
        unsuback(version).prop_map(Packet::from),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version).prop_map(Packet::from),
    ];
    match version {
        ProtocolVersion::V311 => common.boxed(),
        ProtocolVersion::V5 => {
            prop_oneof![14 => common, 1 => auth().prop_map(Packet::from)].boxed()
        }
    }
}

/// A version and a packet valid in it.
pub fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

/// The first byte of a fixed header the decoder accepts for `version`: every packet
/// type with its required flags, and PUBLISH with every flag combination whose QoS
/// is not 3 (DUP on QoS 0 included: the body decoder refuses it).
pub fn valid_header_bytes(version: ProtocolVersion) -> Vec<u8> {
    let mut bytes = Vec::new();
    let last = match version {
        ProtocolVersion::V311 => 14u8,
        ProtocolVersion::V5 => 15,
    };
    for packet_type in 1..=last {
        match packet_type {
            3 => bytes.extend((0..16u8).filter(|f| (f >> 1) & 0b11 != 3).map(|f| 0x30 | f)),
            6 | 8 | 10 => bytes.push((packet_type << 4) | 0b0010),
            _ => bytes.push(packet_type << 4),
        }
    }
    bytes
}

/// Encodes a Remaining Length (a Variable Byte Integer, MQTT 5, 1.5.5).
pub fn encode_varint(mut value: u32, out: &mut Vec<u8>) {
    loop {
        let byte = u8::try_from(value & 0x7F).unwrap_or(0x7F);
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
