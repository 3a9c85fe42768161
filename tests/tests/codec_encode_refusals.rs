//! Encoder refusals: the encoder writes nothing the decoder would reject, nothing the
//! protocol version cannot express, and nothing at all (not a byte) when it refuses.
//! The decoder side of the same rules is in `codec_rejects.rs`.

// Helpers outside `#[test]` functions assert by panicking too; clippy.toml allows
// that only inside the test functions themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, Auth, ConnAck, ConnAckProperties, Connect, ConnectProperties, DecodeError,
    Disconnect, EncodeError, LastWill, MqttString, Packet, PacketId, PacketType, ProtocolVersion,
    PubAck, Publish, PublishProperties, QoS, ReasonCode, Secret, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, UnsubAck, UserProperty, WillProperties,
};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const BOTH: [ProtocolVersion; 2] = [V3, V5];

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn s(text: &str) -> MqttString {
    MqttString::try_from(text).unwrap()
}

/// `packet` is refused for `version` with `expected` by `encoded_len`, `to_bytes` and
/// `encode`, and `encode` leaves the buffer as it was.
#[track_caller]
fn refuses(packet: &Packet, version: ProtocolVersion, expected: EncodeError) {
    assert_eq!(packet.encoded_len(version), Err(expected), "encoded_len");
    assert_eq!(packet.to_bytes(version), Err(expected), "to_bytes");
    let mut buf = BytesMut::from(&b"keep"[..]);
    assert_eq!(packet.encode(version, &mut buf), Err(expected), "encode");
    assert_eq!(&buf[..], b"keep", "encode wrote into the buffer on error");
}

fn long_string(len: usize) -> MqttString {
    MqttString::try_from("a".repeat(len)).unwrap()
}

/// 5.0 1.5.4 / 1.5.6: strings and binary data hold at most 65,535 bytes.
#[test]
fn refuses_to_encode_fields_over_65535_bytes() {
    let e = EncodeError::FieldTooLong;
    for version in BOTH {
        let publish = |topic| Publish {
            topic,
            payload: Bytes::from_static(b"x"),
            ..Publish::default()
        };
        refuses(&publish(long_string(65_536)).into(), version, e);
        // 65,535 is the largest length that fits.
        let ok: Packet = publish(long_string(65_535)).into();
        assert_eq!(
            ok.encoded_len(version).unwrap(),
            ok.to_bytes(version).unwrap().len()
        );

        let connect = |f: fn(&mut Connect)| {
            let mut c = Connect {
                protocol_version: version,
                client_id: s("c"),
                ..Connect::default()
            };
            f(&mut c);
            Packet::from(c)
        };
        refuses(&connect(|c| c.client_id = long_string(65_536)), version, e);
        refuses(
            &connect(|c| {
                c.username = Some(s("u"));
                c.password = Some(Secret(Bytes::from(vec![0u8; 65_536])));
            }),
            version,
            e,
        );
        refuses(
            &connect(|c| {
                c.will = Some(LastWill {
                    topic: s("t"),
                    payload: Bytes::from(vec![0u8; 65_536]),
                    ..LastWill::default()
                });
            }),
            version,
            e,
        );
    }
    // Properties: a User Property value and Correlation Data.
    let publish = Publish {
        topic: s("t"),
        properties: Some(Box::new(PublishProperties {
            user_properties: vec![UserProperty {
                name: s("k"),
                value: long_string(65_536),
            }],
            ..PublishProperties::default()
        })),
        ..Publish::default()
    };
    refuses(&publish.into(), V5, e);
    let publish = Publish {
        topic: s("t"),
        properties: Some(Box::new(PublishProperties {
            correlation_data: Some(Bytes::from(vec![1u8; 65_536])),
            ..PublishProperties::default()
        })),
        ..Publish::default()
    };
    refuses(&publish.into(), V5, e);
}

/// MQTT 3.1.1 has no properties, no reason codes but CONNACK's and SUBACK's, no
/// subscription options but QoS, and no AUTH.
#[test]
fn refuses_to_encode_v5_only_fields_in_v311() {
    let e = EncodeError::NotInVersion;
    let with_reason_string = AckProperties {
        reason_string: Some(s("r")),
        ..AckProperties::default()
    };
    refuses(&Auth::default().into(), V3, e);
    refuses(
        &Publish {
            topic: s("t"),
            properties: Some(Box::new(PublishProperties {
                message_expiry_interval: Some(1),
                ..PublishProperties::default()
            })),
            ..Publish::default()
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &Connect {
            protocol_version: V3,
            properties: ConnectProperties {
                session_expiry_interval: Some(1),
                ..ConnectProperties::default()
            },
            ..Connect::default()
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &Connect {
            protocol_version: V3,
            will: Some(LastWill {
                topic: s("t"),
                properties: WillProperties {
                    will_delay_interval: Some(1),
                    ..WillProperties::default()
                },
                ..LastWill::default()
            }),
            ..Connect::default()
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &ConnAck {
            reason_code: ReasonCode::UNSPECIFIED_ERROR,
            ..ConnAck::default()
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &ConnAck {
            properties: ConnAckProperties {
                receive_maximum: Some(1),
                ..ConnAckProperties::default()
            },
            ..ConnAck::default()
        }
        .into(),
        V3,
        e,
    );
    type MakeAck = fn(PubAck) -> Packet;
    let acks: [(MakeAck, ReasonCode); 4] = [
        (Packet::PubAck, ReasonCode::UNSPECIFIED_ERROR),
        (Packet::PubRec, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        (Packet::PubRel, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        (Packet::PubComp, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
    ];
    for (make, reason_code) in acks {
        let code = make(PubAck {
            reason_code,
            ..PubAck::new(pid(1))
        });
        assert!(code.encoded_len(V5).is_ok());
        refuses(&code, V3, e);
        let props = make(PubAck {
            properties: with_reason_string.clone(),
            ..PubAck::new(pid(1))
        });
        assert!(props.encoded_len(V5).is_ok());
        refuses(&props, V3, e);
    }
    refuses(
        &SubAck {
            packet_id: pid(1),
            properties: AckProperties::default(),
            reason_codes: vec![ReasonCode::QUOTA_EXCEEDED],
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &SubAck {
            packet_id: pid(1),
            properties: with_reason_string,
            reason_codes: vec![ReasonCode::SUCCESS],
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &UnsubAck {
            packet_id: pid(1),
            properties: AckProperties::default(),
            reason_codes: vec![ReasonCode::SUCCESS],
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &Subscribe {
            packet_id: pid(1),
            properties: SubscribeProperties::default(),
            filters: vec![(
                s("a"),
                SubscriptionOptions {
                    no_local: true,
                    ..SubscriptionOptions::default()
                },
            )],
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &Subscribe {
            packet_id: pid(1),
            properties: SubscribeProperties {
                subscription_identifier: Some(1),
                ..SubscribeProperties::default()
            },
            filters: vec![(s("a"), SubscriptionOptions::default())],
        }
        .into(),
        V3,
        e,
    );
    refuses(
        &Disconnect {
            reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            ..Disconnect::default()
        }
        .into(),
        V3,
        e,
    );
}

/// [MQTT-2.2.1-2]: a PUBLISH has a packet identifier exactly when its QoS is 1 or 2.
#[test]
fn refuses_to_encode_publish_with_mismatched_packet_identifier() {
    let e = EncodeError::PacketIdMismatch;
    for version in BOTH {
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let p = Publish {
                qos,
                topic: s("a/b"),
                packet_id: None,
                ..Publish::default()
            };
            refuses(&p.into(), version, e);
        }
        let p = Publish {
            topic: s("a/b"),
            packet_id: Some(pid(1)),
            ..Publish::default()
        };
        refuses(&p.into(), version, e);
    }
}

/// The encoder refuses what the decoder refuses, with the decoder's error.
#[test]
fn refuses_to_encode_what_the_decoder_rejects() {
    let invalid = EncodeError::Invalid;
    let publish = |topic: &str| Publish {
        topic: s(topic),
        ..Publish::default()
    };
    for version in BOTH {
        refuses(
            &publish("a/+").into(),
            version,
            invalid(DecodeError::WildcardInTopicName),
        );
        refuses(
            &publish("").into(),
            version,
            invalid(DecodeError::EmptyTopicName),
        );
        refuses(
            &Publish {
                dup: true,
                ..publish("a")
            }
            .into(),
            version,
            invalid(DecodeError::DupWithQos0),
        );
        refuses(
            &Subscribe {
                packet_id: pid(1),
                properties: SubscribeProperties::default(),
                filters: Vec::new(),
            }
            .into(),
            version,
            invalid(DecodeError::NoTopicFilters),
        );
        refuses(
            &Subscribe {
                packet_id: pid(1),
                properties: SubscribeProperties::default(),
                filters: vec![(s("a/#/b"), SubscriptionOptions::default())],
            }
            .into(),
            version,
            invalid(DecodeError::InvalidTopicFilter),
        );
    }
    refuses(
        &Connect {
            protocol_version: V3,
            password: Some(Secret(Bytes::from_static(b"pw"))),
            ..Connect::default()
        }
        .into(),
        V3,
        invalid(DecodeError::PasswordWithoutUsername),
    );
    refuses(
        &Packet::PubAck(PubAck {
            reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            ..PubAck::new(pid(1))
        }),
        V5,
        invalid(DecodeError::InvalidReasonCode {
            packet_type: PacketType::PubAck,
            code: 0x92,
        }),
    );
    refuses(
        &Publish {
            properties: Some(Box::new(PublishProperties {
                topic_alias: Some(0),
                ..PublishProperties::default()
            })),
            ..publish("a")
        }
        .into(),
        V5,
        invalid(DecodeError::InvalidPropertyValue(0x23)),
    );
    refuses(
        &ConnAck {
            session_present: true,
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        }
        .into(),
        V5,
        invalid(DecodeError::SessionPresentOnError),
    );
    refuses(
        &Subscribe {
            packet_id: pid(1),
            properties: SubscribeProperties::default(),
            filters: vec![(
                s("$share/g/a"),
                SubscriptionOptions {
                    no_local: true,
                    ..SubscriptionOptions::default()
                },
            )],
        }
        .into(),
        V5,
        invalid(DecodeError::NoLocalOnSharedSubscription),
    );
}

/// A CONNECT carries its protocol level: asking for the other version is refused, not
/// silently written as the packet's own version.
#[test]
fn refuses_to_encode_connect_in_another_version() {
    let v5_connect: Packet = Connect {
        protocol_version: V5,
        client_id: s("c"),
        ..Connect::default()
    }
    .into();
    refuses(&v5_connect, V3, EncodeError::NotInVersion);
    assert!(v5_connect.to_bytes(V5).is_ok());
    let v3_connect: Packet = Connect {
        protocol_version: V3,
        client_id: s("c"),
        ..Connect::default()
    }
    .into();
    refuses(&v3_connect, V5, EncodeError::NotInVersion);
    assert!(v3_connect.to_bytes(V3).is_ok());
}

/// [MQTT-3.1.3-7]: in 3.1.1 a zero-byte ClientId needs CleanSession 1, but the
/// packet is well-formed: the decoder accepts it (so that a server can answer CONNACK
/// 0x02 [MQTT-3.1.3-8]) and the encoder writes it, so what decodes re-encodes. The
/// client refuses it in its options (mqtt-client's `Options::validate`).
#[test]
fn empty_client_id_without_clean_session_in_v311_round_trips() {
    let connect = |protocol_version, clean_start| -> Packet {
        Connect {
            protocol_version,
            client_id: MqttString::new(),
            clean_start,
            ..Connect::default()
        }
        .into()
    };
    let bytes = connect(V3, false);
    assert!(connect(V3, true).to_bytes(V3).is_ok());
    assert!(connect(V5, false).to_bytes(V5).is_ok());
    #[rustfmt::skip]
    let wire = [0x10, 0x0C,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3C,
        0x00, 0x00];
    let mut buf = BytesMut::from(&wire[..]);
    let decoded = Packet::decode(&mut buf, V3, mqtt_codec::MAX_PACKET_SIZE).unwrap();
    assert_eq!(bytes.to_bytes(V3).unwrap(), &wire[..]);
    assert_eq!(decoded, Some(bytes));
}

/// MQTT 5, 3.15.2.2.2: an AUTH other than the empty short form names its method.
#[test]
fn refuses_to_encode_auth_without_method() {
    let auth = Auth {
        reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
        ..Auth::default()
    };
    refuses(
        &auth.into(),
        V5,
        EncodeError::Invalid(DecodeError::AuthWithoutMethod),
    );
    // The short form needs none: Remaining Length 0.
    let short: Packet = Auth::default().into();
    assert_eq!(
        short.to_bytes(V5).unwrap(),
        Bytes::from_static(&[0xF0, 0x00])
    );
}
