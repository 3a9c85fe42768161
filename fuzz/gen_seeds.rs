//! Writes the seed corpus of the raw decoding targets: one valid packet of each type
//! per version, as `corpus/decode_v5/seed-<packet>` and
//! `corpus/decode_v311/seed-<packet>`, plus `seed-stream` (several packets back to
//! back). MQTT 5 seeds carry properties so that fuzzing starts inside the property
//! decoder.
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --bin gen-seeds`.

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, LastWill, MqttString, Packet, PacketId, ProtocolVersion,
    PubAck, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, Secret, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties,
    UserProperty, WillProperties, MAX_PACKET_SIZE,
};

fn s(text: &str) -> MqttString {
    MqttString::try_from(text).expect("no U+0000")
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("not 0")
}

fn user() -> Vec<UserProperty> {
    vec![UserProperty::new("region", "eu-west").expect("valid")]
}

/// One packet of each type, valid in `version`, named for the file.
fn seeds(version: ProtocolVersion) -> Vec<(&'static str, Packet)> {
    let v5 = version == ProtocolVersion::V5;
    fn only_v5<T: Default>(v5: bool, props: T) -> T {
        if v5 {
            props
        } else {
            T::default()
        }
    }
    let ack = || {
        only_v5(
            v5,
            AckProperties {
                reason_string: Some(s("ok")),
                user_properties: user(),
            },
        )
    };
    let mut out = vec![
        (
            "connect",
            Packet::from(Connect {
                protocol_version: version,
                client_id: s("client-1"),
                clean_start: true,
                keep_alive: 30,
                username: Some(s("user")),
                password: Some(Secret(Bytes::from_static(b"pass"))),
                will: Some(LastWill {
                    topic: s("clients/1/status"),
                    payload: Bytes::from_static(b"offline"),
                    qos: QoS::AtLeastOnce,
                    retain: true,
                    properties: only_v5(
                        v5,
                        WillProperties {
                            will_delay_interval: Some(5),
                            payload_format_indicator: Some(1),
                            message_expiry_interval: Some(3600),
                            content_type: Some(s("text/plain")),
                            response_topic: Some(s("clients/1/reply")),
                            correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                            user_properties: user(),
                        },
                    ),
                }),
                properties: only_v5(
                    v5,
                    ConnectProperties {
                        session_expiry_interval: Some(120),
                        receive_maximum: Some(20),
                        maximum_packet_size: Some(65_536),
                        topic_alias_maximum: Some(10),
                        request_response_information: Some(true),
                        request_problem_information: Some(false),
                        authentication_method: Some(s("SCRAM-SHA-256")),
                        authentication_data: Some(Secret(Bytes::from_static(b"n,,n=user"))),
                        user_properties: user(),
                    },
                ),
            }),
        ),
        (
            "connack",
            Packet::from(ConnAck {
                session_present: true,
                reason_code: ReasonCode::SUCCESS,
                properties: only_v5(
                    v5,
                    ConnAckProperties {
                        session_expiry_interval: Some(60),
                        receive_maximum: Some(100),
                        maximum_qos: Some(QoS::AtLeastOnce),
                        retain_available: Some(true),
                        maximum_packet_size: Some(1 << 20),
                        assigned_client_identifier: Some(s("auto-7f3a")),
                        topic_alias_maximum: Some(16),
                        reason_string: Some(s("welcome")),
                        wildcard_subscription_available: Some(true),
                        subscription_identifiers_available: Some(true),
                        shared_subscription_available: Some(false),
                        server_keep_alive: Some(45),
                        response_information: Some(s("responses/")),
                        server_reference: Some(s("other.example")),
                        authentication_method: Some(s("SCRAM-SHA-256")),
                        authentication_data: Some(Secret(Bytes::from_static(b"r=nonce"))),
                        user_properties: user(),
                    },
                ),
            }),
        ),
        (
            "publish",
            Packet::from(Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: s("sensors/k1/temp"),
                packet_id: Some(id(10)),
                properties: only_v5(
                    v5,
                    Some(Box::new(PublishProperties {
                        payload_format_indicator: Some(1),
                        message_expiry_interval: Some(30),
                        topic_alias: Some(3),
                        response_topic: Some(s("sensors/k1/ack")),
                        correlation_data: Some(Bytes::from_static(b"corr")),
                        content_type: Some(s("application/json")),
                        subscription_identifiers: vec![1, 300],
                        user_properties: user(),
                    })),
                ),
                payload: Bytes::from_static(b"{\"t\":21.5}"),
            }),
        ),
        (
            "puback",
            Packet::PubAck(PubAck {
                packet_id: id(10),
                reason_code: if v5 {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                } else {
                    ReasonCode::SUCCESS
                },
                properties: ack(),
            }),
        ),
        (
            "pubrec",
            Packet::PubRec(PubAck {
                packet_id: id(11),
                reason_code: ReasonCode::SUCCESS,
                properties: ack(),
            }),
        ),
        (
            "pubrel",
            Packet::PubRel(PubAck {
                packet_id: id(11),
                reason_code: if v5 {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                } else {
                    ReasonCode::SUCCESS
                },
                properties: ack(),
            }),
        ),
        ("pubcomp", Packet::PubComp(PubAck::new(id(11)))),
        (
            "subscribe",
            Packet::from(Subscribe {
                packet_id: id(12),
                properties: only_v5(
                    v5,
                    SubscribeProperties {
                        subscription_identifier: Some(42),
                        user_properties: user(),
                    },
                ),
                filters: vec![
                    (
                        s("sensors/+/temp"),
                        SubscriptionOptions::qos(QoS::AtLeastOnce),
                    ),
                    (
                        s("$share/group/alerts/#"),
                        if v5 {
                            SubscriptionOptions {
                                qos: QoS::ExactlyOnce,
                                no_local: false,
                                retain_as_published: true,
                                retain_handling: RetainHandling::SendIfNew,
                            }
                        } else {
                            SubscriptionOptions::qos(QoS::ExactlyOnce)
                        },
                    ),
                ],
            }),
        ),
        (
            "suback",
            Packet::from(SubAck {
                packet_id: id(12),
                properties: ack(),
                reason_codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
            }),
        ),
        (
            "unsubscribe",
            Packet::from(Unsubscribe {
                packet_id: id(13),
                properties: only_v5(
                    v5,
                    UnsubscribeProperties {
                        user_properties: user(),
                    },
                ),
                filters: vec![s("sensors/+/temp"), s("$share/group/alerts/#")],
            }),
        ),
        (
            "unsuback",
            Packet::from(UnsubAck {
                packet_id: id(13),
                properties: ack(),
                reason_codes: if v5 {
                    vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
                } else {
                    Vec::new()
                },
            }),
        ),
        ("pingreq", Packet::PingReq),
        ("pingresp", Packet::PingResp),
        (
            "disconnect",
            Packet::from(if v5 {
                Disconnect {
                    reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
                    properties: DisconnectProperties {
                        session_expiry_interval: Some(0),
                        reason_string: Some(s("bye")),
                        server_reference: Some(s("other.example")),
                        user_properties: user(),
                    },
                }
            } else {
                Disconnect::default()
            }),
        ),
    ];
    if v5 {
        out.push((
            "auth",
            Packet::from(Auth {
                reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM-SHA-256")),
                    authentication_data: Some(Secret(Bytes::from_static(b"c=biws"))),
                    reason_string: Some(s("continue")),
                    user_properties: user(),
                },
            }),
        ));
    }
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(format!("seed-{name}"));
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!("{} ({} bytes)", path.display(), bytes.len());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (version, target) in [
        (ProtocolVersion::V5, "decode_v5"),
        (ProtocolVersion::V311, "decode_v311"),
    ] {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        let mut stream = BytesMut::new();
        for (name, packet) in seeds(version) {
            let wire = packet
                .to_bytes(version)
                .unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
            // Every seed must be a valid packet that decodes to itself.
            let mut check = wire.clone();
            let decoded = Packet::decode_bytes(&mut check, version, MAX_PACKET_SIZE);
            assert_eq!(decoded, Ok(Some(packet)), "{target}/{name}");
            write(&dir, name, &wire);
            stream.extend_from_slice(&wire);
        }
        write(&dir, "stream", &stream);
    }
}
