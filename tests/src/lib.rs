//! Shared test data for the workspace: a catalogue of valid packets.
//!
//! [`fixtures::all`] lists valid packets of every type, for both protocol versions,
//! with and without every property. The integration tests in `tests/tests/` check
//! each of them (round trip, truncation, zero-copy); the benchmarks and the fuzz seed
//! corpus generator reuse the same list, so every entry must stay valid: encodable
//! for its version, and decoded back to an equal packet.

pub mod strategies;

/// A real mosquitto broker per test, on its own port: see [`broker::Mosquitto`].
pub mod broker;

/// An HTTP CONNECT proxy for the tests: see [`proxy::ConnectProxy`].
pub mod proxy;

/// Certificates made at test time: see [`pki::Pki`].
pub mod pki;

pub mod fixtures {
    //! The fixture catalogue: see [`all`].
    //!
    //! ```
    //! use mqtt_tests::fixtures;
    //!
    //! for fixture in fixtures::all() {
    //!     let wire = fixture.to_bytes().unwrap();
    //!     assert_eq!(wire.len(), fixture.packet.encoded_len(fixture.version).unwrap());
    //! }
    //! ```

    use bytes::Bytes;
    use mqtt_codec::{
        AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
        ConnectProperties, Disconnect, DisconnectProperties, EncodeError, LastWill, MqttString,
        Packet, PacketId, ProtocolVersion, PubAck, Publish, PublishProperties, QoS, ReasonCode,
        RetainHandling, Secret, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions,
        UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperty, WillProperties,
    };

    use ProtocolVersion::{V311, V5};

    /// One valid packet and the protocol version it is encoded and decoded with.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Fixture {
        /// A unique name, `"{version}/{packet}/{variant}"`, e.g. `"v5/publish/qos1-all-properties"`.
        pub name: &'static str,
        /// The protocol version to encode and decode with. For CONNECT it equals the
        /// packet's own `protocol_version`.
        pub version: ProtocolVersion,
        /// The packet.
        pub packet: Packet,
    }

    impl Fixture {
        /// Encodes the packet for the fixture's version.
        pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
            self.packet.to_bytes(self.version)
        }
    }

    /// Every fixture, in a stable order. Names are unique.
    ///
    /// Coverage: every packet type in both versions (AUTH in MQTT 5 only); for each
    /// MQTT 5 property set at least one packet with every property of the set filled
    /// in, including repeated User Property names (order matters) and several
    /// Subscription Identifiers in PUBLISH; the minimal forms (MQTT 5 PUBACK family
    /// short form, DISCONNECT and AUTH without a body); PUBLISH at QoS 0, 1 and 2 with
    /// RETAIN and DUP; CONNECT with combinations of Will, User Name and Password;
    /// SUBSCRIBE with every subscription option combination and a shared
    /// subscription; non-ASCII UTF-8 strings; empty payloads; an MQTT 5 PUBLISH with
    /// an empty topic and a Topic Alias.
    pub fn all() -> Vec<Fixture> {
        let mut out = Vec::new();
        connect(&mut out);
        connack(&mut out);
        publish(&mut out);
        acks(&mut out);
        subscribe(&mut out);
        suback(&mut out);
        unsubscribe(&mut out);
        unsuback(&mut out);
        ping(&mut out);
        disconnect(&mut out);
        auth(&mut out);
        out
    }

    /// The fixture with this name, if any.
    pub fn by_name(name: &str) -> Option<Fixture> {
        all().into_iter().find(|f| f.name == name)
    }

    // Helpers. Fixture data is written by hand: a value the codec refuses is a bug in
    // this file, so failing loudly is right.

    #[allow(clippy::expect_used)]
    fn s(text: &'static str) -> MqttString {
        MqttString::from_static(text).expect("fixture strings hold no U+0000")
    }

    #[allow(clippy::expect_used)]
    fn owned(text: String) -> MqttString {
        MqttString::try_from(text).expect("fixture strings hold no U+0000")
    }

    #[allow(clippy::expect_used)]
    fn pid(id: u16) -> PacketId {
        PacketId::new(id).expect("fixture packet identifiers are not 0")
    }

    fn up(name: &'static str, value: &'static str) -> UserProperty {
        UserProperty {
            name: s(name),
            value: s(value),
        }
    }

    /// User properties with a repeated name ("k" twice, in order), non-ASCII text
    /// and an empty pair.
    fn user_properties() -> Vec<UserProperty> {
        vec![
            up("k", "v1"),
            up("région", "Zürich ✓"),
            up("k", "v2"),
            up("", ""),
            up("k", "v1"),
        ]
    }

    fn secret(data: &'static [u8]) -> Secret {
        Secret(Bytes::from_static(data))
    }

    fn push(out: &mut Vec<Fixture>, name: &'static str, version: ProtocolVersion, packet: Packet) {
        out.push(Fixture {
            name,
            version,
            packet,
        });
    }

    fn all_connect_properties() -> ConnectProperties {
        ConnectProperties {
            session_expiry_interval: Some(u32::MAX),
            receive_maximum: Some(20),
            maximum_packet_size: Some(1_048_576),
            topic_alias_maximum: Some(0),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(secret(b"\x00n,,n=user,r=rOprNGfwEbeRWgbNEkqO")),
            user_properties: user_properties(),
        }
    }

    fn all_will_properties() -> WillProperties {
        WillProperties {
            will_delay_interval: Some(30),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(3600),
            content_type: Some(s("text/plain; charset=utf-8")),
            response_topic: Some(s("réponses/client-ü")),
            correlation_data: Some(Bytes::from_static(&[0x00, 0x01, 0xFE, 0xFF])),
            user_properties: user_properties(),
        }
    }

    fn all_connack_properties() -> ConnAckProperties {
        ConnAckProperties {
            session_expiry_interval: Some(7200),
            receive_maximum: Some(u16::MAX),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(268_435_460),
            assigned_client_identifier: Some(s("auto-3F2504E0-4F89-11D3")),
            topic_alias_maximum: Some(64),
            reason_string: Some(s("bienvenue ✓")),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            server_keep_alive: Some(120),
            response_information: Some(s("responses/auto-3F2504E0")),
            server_reference: Some(s("broker2.example:8883")),
            authentication_method: Some(s("SCRAM-SHA-256")),
            authentication_data: Some(secret(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj")),
            user_properties: user_properties(),
        }
    }

    fn all_publish_properties() -> PublishProperties {
        PublishProperties {
            payload_format_indicator: Some(0),
            message_expiry_interval: Some(86_400),
            topic_alias: Some(7),
            response_topic: Some(s("replies/k1")),
            correlation_data: Some(Bytes::from_static(b"\x00req-42\xFF")),
            content_type: Some(s("application/cbor")),
            // One value for each Variable Byte Integer length boundary.
            subscription_identifiers: vec![1, 127, 128, 16_383, 16_384, 2_097_152, 268_435_455],
            user_properties: user_properties(),
        }
    }

    fn all_ack_properties() -> AckProperties {
        AckProperties {
            reason_string: Some(s("raison: déjà traité")),
            user_properties: user_properties(),
        }
    }

    fn connect(out: &mut Vec<Fixture>) {
        let base = |version| Connect {
            protocol_version: version,
            client_id: s("client-1"),
            clean_start: true,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties::default(),
        };
        let will = |qos, retain| LastWill {
            topic: s("clients/client-1/status"),
            payload: Bytes::from_static(b"offline"),
            qos,
            retain,
            properties: WillProperties::default(),
        };

        // MQTT 3.1.1.
        push(
            out,
            "v311/connect/minimal",
            V311,
            Connect {
                client_id: MqttString::new(),
                keep_alive: 0,
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/username",
            V311,
            Connect {
                username: Some(s("alice")),
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/username-password",
            V311,
            Connect {
                clean_start: false,
                keep_alive: u16::MAX,
                username: Some(s("alice")),
                password: Some(secret(b"\x00\xFFs3cr3t")),
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/will-qos0",
            V311,
            Connect {
                will: Some(will(QoS::AtMostOnce, false)),
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/will-qos1-retain-username",
            V311,
            Connect {
                will: Some(will(QoS::AtLeastOnce, true)),
                username: Some(s("alice")),
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/will-qos2-username-password-non-ascii",
            V311,
            Connect {
                client_id: s("capteur-é-𝄞"),
                will: Some(LastWill {
                    topic: s("état/capteur-é"),
                    payload: Bytes::from_static("hors ligne ✗".as_bytes()),
                    qos: QoS::ExactlyOnce,
                    retain: false,
                    properties: WillProperties::default(),
                }),
                username: Some(s("żółw")),
                password: Some(secret("пароль".as_bytes())),
                ..base(V311)
            }
            .into(),
        );
        push(
            out,
            "v311/connect/will-retain-empty-payload",
            V311,
            Connect {
                clean_start: false,
                will: Some(LastWill {
                    payload: Bytes::new(),
                    ..will(QoS::AtMostOnce, true)
                }),
                ..base(V311)
            }
            .into(),
        );

        // MQTT 5.
        push(
            out,
            "v5/connect/minimal",
            V5,
            Connect {
                client_id: MqttString::new(),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/username",
            V5,
            Connect {
                username: Some(s("alice")),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/password-without-username",
            V5,
            Connect {
                password: Some(secret(b"token")),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/username-password",
            V5,
            Connect {
                clean_start: false,
                username: Some(s("alice")),
                password: Some(Secret(Bytes::new())),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/will-qos0",
            V5,
            Connect {
                will: Some(will(QoS::AtMostOnce, false)),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/will-qos1-retain-all-will-properties",
            V5,
            Connect {
                will: Some(LastWill {
                    properties: all_will_properties(),
                    ..will(QoS::AtLeastOnce, true)
                }),
                username: Some(s("alice")),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/will-qos2-empty-payload-password",
            V5,
            Connect {
                will: Some(LastWill {
                    payload: Bytes::new(),
                    ..will(QoS::ExactlyOnce, false)
                }),
                password: Some(secret(b"pw")),
                ..base(V5)
            }
            .into(),
        );
        push(
            out,
            "v5/connect/all-properties",
            V5,
            Connect {
                protocol_version: V5,
                client_id: s("capteur-é-𝄞"),
                clean_start: false,
                keep_alive: 30,
                username: Some(s("żółw")),
                password: Some(secret("пароль".as_bytes())),
                will: Some(LastWill {
                    topic: s("état/capteur-é"),
                    payload: Bytes::from_static("hors ligne ✗".as_bytes()),
                    qos: QoS::ExactlyOnce,
                    retain: true,
                    properties: all_will_properties(),
                }),
                properties: all_connect_properties(),
            }
            .into(),
        );
    }

    fn connack(out: &mut Vec<Fixture>) {
        push(
            out,
            "v311/connack/accepted",
            V311,
            ConnAck::default().into(),
        );
        push(
            out,
            "v311/connack/accepted-session-present",
            V311,
            ConnAck {
                session_present: true,
                ..ConnAck::default()
            }
            .into(),
        );
        // Return codes 1 to 5, held as their MQTT 5 equivalents.
        for (name, code) in [
            ("v311/connack/refused-1-protocol-version", 0x84),
            ("v311/connack/refused-2-identifier", 0x85),
            ("v311/connack/refused-3-server-unavailable", 0x88),
            ("v311/connack/refused-4-bad-credentials", 0x86),
            ("v311/connack/refused-5-not-authorized", 0x87),
        ] {
            push(
                out,
                name,
                V311,
                ConnAck {
                    reason_code: ReasonCode(code),
                    ..ConnAck::default()
                }
                .into(),
            );
        }

        push(out, "v5/connack/minimal", V5, ConnAck::default().into());
        push(
            out,
            "v5/connack/session-present-all-properties",
            V5,
            ConnAck {
                session_present: true,
                reason_code: ReasonCode::SUCCESS,
                properties: all_connack_properties(),
            }
            .into(),
        );
        push(
            out,
            "v5/connack/refused-with-reason-string",
            V5,
            ConnAck {
                session_present: false,
                reason_code: ReasonCode::NOT_AUTHORIZED,
                properties: ConnAckProperties {
                    reason_string: Some(s("accès refusé")),
                    ..ConnAckProperties::default()
                },
            }
            .into(),
        );
        push(
            out,
            "v5/connack/refused-server-moved",
            V5,
            ConnAck {
                session_present: false,
                reason_code: ReasonCode::SERVER_MOVED,
                properties: ConnAckProperties {
                    server_reference: Some(s("broker2.example")),
                    ..ConnAckProperties::default()
                },
            }
            .into(),
        );
    }

    fn publish(out: &mut Vec<Fixture>) {
        // MQTT 3.1.1.
        push(
            out,
            "v311/publish/qos0",
            V311,
            Publish {
                topic: s("a/b"),
                payload: Bytes::from_static(b"hello"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v311/publish/qos0-retain-empty-payload",
            V311,
            Publish {
                retain: true,
                topic: s("sensors/k1/temp"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v311/publish/qos1-dup-binary-payload",
            V311,
            Publish {
                dup: true,
                qos: QoS::AtLeastOnce,
                topic: s("/"),
                packet_id: Some(pid(1)),
                payload: binary_payload(),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v311/publish/qos2-retain",
            V311,
            Publish {
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: s("$SYS/broker/uptime"),
                packet_id: Some(pid(u16::MAX)),
                payload: Bytes::from_static(b"12345"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v311/publish/qos2-dup-retain-non-ascii",
            V311,
            Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: s("capteurs/température/°C/𝄞"),
                packet_id: Some(pid(0x1234)),
                payload: Bytes::from_static("21,5 °C ✓".as_bytes()),
                ..Publish::default()
            }
            .into(),
        );

        // MQTT 5.
        push(
            out,
            "v5/publish/qos0",
            V5,
            Publish {
                topic: s("a/b"),
                payload: Bytes::from_static(b"hello"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v5/publish/qos1-all-properties",
            V5,
            Publish {
                qos: QoS::AtLeastOnce,
                topic: s("sensors/k1/temp"),
                packet_id: Some(pid(10)),
                properties: Some(Box::new(all_publish_properties())),
                payload: Bytes::from_static(b"\xA1\x64temp\xF9\x4D\x60"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v5/publish/qos2-dup-retain-content-type",
            V5,
            Publish {
                dup: true,
                qos: QoS::ExactlyOnce,
                retain: true,
                topic: s("a/b/c"),
                packet_id: Some(pid(u16::MAX)),
                properties: Some(Box::new(PublishProperties {
                    content_type: Some(s("text/plain")),
                    ..PublishProperties::default()
                })),
                payload: binary_payload(),
            }
            .into(),
        );
        push(
            out,
            "v5/publish/empty-topic-with-topic-alias",
            V5,
            Publish {
                topic: MqttString::new(),
                properties: Some(Box::new(PublishProperties {
                    topic_alias: Some(1),
                    ..PublishProperties::default()
                })),
                payload: Bytes::from_static(b"aliased"),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v5/publish/qos1-empty-payload-utf8-indicator",
            V5,
            Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: s("retained/clear"),
                packet_id: Some(pid(2)),
                properties: Some(Box::new(PublishProperties {
                    payload_format_indicator: Some(1),
                    ..PublishProperties::default()
                })),
                ..Publish::default()
            }
            .into(),
        );
        push(
            out,
            "v5/publish/qos1-non-ascii-multiple-subscription-identifiers",
            V5,
            Publish {
                qos: QoS::AtLeastOnce,
                topic: s("capteurs/température/°C/𝄞"),
                packet_id: Some(pid(3)),
                properties: Some(Box::new(PublishProperties {
                    payload_format_indicator: Some(1),
                    subscription_identifiers: vec![5, 1, 5],
                    user_properties: vec![up("ключ", "значение"), up("ключ", "второе")],
                    ..PublishProperties::default()
                })),
                payload: Bytes::from_static("21,5 °C ✓".as_bytes()),
                ..Publish::default()
            }
            .into(),
        );
    }

    /// 300 bytes covering every byte value: a payload whose remaining length needs
    /// a two-byte Variable Byte Integer.
    fn binary_payload() -> Bytes {
        (0..=u8::MAX).cycle().take(300).collect()
    }

    /// PUBACK, PUBREC, PUBREL and PUBCOMP in every form.
    fn acks(out: &mut Vec<Fixture>) {
        struct Kind {
            names: [&'static str; 5],
            make: fn(PubAck) -> Packet,
            failure: ReasonCode,
        }
        let kinds = [
            Kind {
                names: [
                    "v311/puback",
                    "v5/puback/short-form",
                    "v5/puback/reason-code-only",
                    "v5/puback/reason-code-all-properties",
                    "v5/puback/success-with-properties",
                ],
                make: Packet::PubAck,
                failure: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            },
            Kind {
                names: [
                    "v311/pubrec",
                    "v5/pubrec/short-form",
                    "v5/pubrec/reason-code-only",
                    "v5/pubrec/reason-code-all-properties",
                    "v5/pubrec/success-with-properties",
                ],
                make: Packet::PubRec,
                failure: ReasonCode::QUOTA_EXCEEDED,
            },
            Kind {
                names: [
                    "v311/pubrel",
                    "v5/pubrel/short-form",
                    "v5/pubrel/reason-code-only",
                    "v5/pubrel/reason-code-all-properties",
                    "v5/pubrel/success-with-properties",
                ],
                make: Packet::PubRel,
                failure: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            },
            Kind {
                names: [
                    "v311/pubcomp",
                    "v5/pubcomp/short-form",
                    "v5/pubcomp/reason-code-only",
                    "v5/pubcomp/reason-code-all-properties",
                    "v5/pubcomp/success-with-properties",
                ],
                make: Packet::PubComp,
                failure: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            },
        ];
        for kind in kinds {
            let [v311, short, code_only, code_props, success_props] = kind.names;
            push(out, v311, V311, (kind.make)(PubAck::new(pid(10))));
            push(out, short, V5, (kind.make)(PubAck::new(pid(u16::MAX))));
            push(
                out,
                code_only,
                V5,
                (kind.make)(PubAck {
                    reason_code: kind.failure,
                    ..PubAck::new(pid(1))
                }),
            );
            push(
                out,
                code_props,
                V5,
                (kind.make)(PubAck {
                    packet_id: pid(0x0102),
                    reason_code: kind.failure,
                    properties: all_ack_properties(),
                }),
            );
            push(
                out,
                success_props,
                V5,
                (kind.make)(PubAck {
                    packet_id: pid(7),
                    reason_code: ReasonCode::SUCCESS,
                    properties: AckProperties {
                        user_properties: vec![up("trace", "abc")],
                        ..AckProperties::default()
                    },
                }),
            );
        }
    }

    fn subscribe(out: &mut Vec<Fixture>) {
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
        push(
            out,
            "v311/subscribe/single",
            V311,
            Subscribe {
                packet_id: pid(1),
                properties: SubscribeProperties::default(),
                filters: vec![(s("a/b"), SubscriptionOptions::default())],
            }
            .into(),
        );
        push(
            out,
            "v311/subscribe/every-qos-wildcards-non-ascii",
            V311,
            Subscribe {
                packet_id: pid(u16::MAX),
                properties: SubscribeProperties::default(),
                filters: vec![
                    (s("sport/tennis/+"), SubscriptionOptions::qos(qos[0])),
                    (s("sport/#"), SubscriptionOptions::qos(qos[1])),
                    (s("#"), SubscriptionOptions::qos(qos[2])),
                    (s("+/+/température"), SubscriptionOptions::qos(qos[1])),
                    (s("/"), SubscriptionOptions::qos(qos[0])),
                ],
            }
            .into(),
        );

        push(
            out,
            "v5/subscribe/minimal",
            V5,
            Subscribe {
                packet_id: pid(1),
                properties: SubscribeProperties::default(),
                filters: vec![(s("a/b"), SubscriptionOptions::default())],
            }
            .into(),
        );
        // Every combination of QoS, No Local, Retain As Published and Retain
        // Handling: 3 x 2 x 2 x 3 = 36 filters.
        let mut filters = Vec::new();
        for q in qos {
            for no_local in [false, true] {
                for retain_as_published in [false, true] {
                    for retain_handling in [
                        RetainHandling::SendOnSubscribe,
                        RetainHandling::SendIfNew,
                        RetainHandling::DoNotSend,
                    ] {
                        let filter = format!(
                            "opts/{}/{}/{}/{}/+",
                            q as u8,
                            u8::from(no_local),
                            u8::from(retain_as_published),
                            retain_handling as u8
                        );
                        let options = SubscriptionOptions {
                            qos: q,
                            no_local,
                            retain_as_published,
                            retain_handling,
                        };
                        filters.push((owned(filter), options));
                    }
                }
            }
        }
        push(
            out,
            "v5/subscribe/every-option-combination",
            V5,
            Subscribe {
                packet_id: pid(2),
                properties: SubscribeProperties::default(),
                filters,
            }
            .into(),
        );
        push(
            out,
            "v5/subscribe/shared-all-properties-non-ascii",
            V5,
            Subscribe {
                packet_id: pid(3),
                properties: SubscribeProperties {
                    subscription_identifier: Some(268_435_455),
                    user_properties: user_properties(),
                },
                filters: vec![
                    (
                        s("$share/groupe-é/capteurs/+/température"),
                        SubscriptionOptions {
                            qos: QoS::AtLeastOnce,
                            no_local: false,
                            retain_as_published: true,
                            retain_handling: RetainHandling::DoNotSend,
                        },
                    ),
                    (
                        s("état/#"),
                        SubscriptionOptions {
                            qos: QoS::ExactlyOnce,
                            no_local: true,
                            retain_as_published: false,
                            retain_handling: RetainHandling::SendIfNew,
                        },
                    ),
                ],
            }
            .into(),
        );
    }

    fn suback(out: &mut Vec<Fixture>) {
        push(
            out,
            "v311/suback/every-return-code",
            V311,
            SubAck {
                packet_id: pid(10),
                properties: AckProperties::default(),
                reason_codes: vec![
                    ReasonCode::GRANTED_QOS_0,
                    ReasonCode::GRANTED_QOS_1,
                    ReasonCode::GRANTED_QOS_2,
                    ReasonCode::UNSPECIFIED_ERROR,
                ],
            }
            .into(),
        );
        push(
            out,
            "v5/suback/minimal",
            V5,
            SubAck {
                packet_id: pid(1),
                properties: AckProperties::default(),
                reason_codes: vec![ReasonCode::GRANTED_QOS_1],
            }
            .into(),
        );
        push(
            out,
            "v5/suback/every-reason-code-all-properties",
            V5,
            SubAck {
                packet_id: pid(u16::MAX),
                properties: all_ack_properties(),
                reason_codes: [
                    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
                ]
                .into_iter()
                .map(ReasonCode)
                .collect(),
            }
            .into(),
        );
    }

    fn unsubscribe(out: &mut Vec<Fixture>) {
        push(
            out,
            "v311/unsubscribe/filters",
            V311,
            Unsubscribe {
                packet_id: pid(10),
                properties: UnsubscribeProperties::default(),
                filters: vec![s("a/b"), s("c/+/#"), s("température/#")],
            }
            .into(),
        );
        push(
            out,
            "v5/unsubscribe/minimal",
            V5,
            Unsubscribe {
                packet_id: pid(1),
                properties: UnsubscribeProperties::default(),
                filters: vec![s("a/b")],
            }
            .into(),
        );
        push(
            out,
            "v5/unsubscribe/shared-all-properties",
            V5,
            Unsubscribe {
                packet_id: pid(u16::MAX),
                properties: UnsubscribeProperties {
                    user_properties: user_properties(),
                },
                filters: vec![s("$share/groupe-é/capteurs/+/température"), s("#"), s("+")],
            }
            .into(),
        );
    }

    fn unsuback(out: &mut Vec<Fixture>) {
        push(
            out,
            "v311/unsuback",
            V311,
            UnsubAck {
                packet_id: pid(10),
                properties: AckProperties::default(),
                reason_codes: Vec::new(),
            }
            .into(),
        );
        push(
            out,
            "v5/unsuback/minimal",
            V5,
            UnsubAck {
                packet_id: pid(1),
                properties: AckProperties::default(),
                reason_codes: vec![ReasonCode::SUCCESS],
            }
            .into(),
        );
        push(
            out,
            "v5/unsuback/every-reason-code-all-properties",
            V5,
            UnsubAck {
                packet_id: pid(u16::MAX),
                properties: all_ack_properties(),
                reason_codes: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91]
                    .into_iter()
                    .map(ReasonCode)
                    .collect(),
            }
            .into(),
        );
    }

    fn ping(out: &mut Vec<Fixture>) {
        push(out, "v311/pingreq", V311, Packet::PingReq);
        push(out, "v311/pingresp", V311, Packet::PingResp);
        push(out, "v5/pingreq", V5, Packet::PingReq);
        push(out, "v5/pingresp", V5, Packet::PingResp);
    }

    fn disconnect(out: &mut Vec<Fixture>) {
        push(out, "v311/disconnect", V311, Disconnect::default().into());
        push(
            out,
            "v5/disconnect/no-body",
            V5,
            Disconnect::default().into(),
        );
        push(
            out,
            "v5/disconnect/reason-code-only",
            V5,
            Disconnect {
                reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
                properties: DisconnectProperties::default(),
            }
            .into(),
        );
        push(
            out,
            "v5/disconnect/reason-code-all-properties",
            V5,
            Disconnect {
                reason_code: ReasonCode::SERVER_MOVED,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(s("maintenance ⚙")),
                    server_reference: Some(s("broker2.example:8883")),
                    user_properties: user_properties(),
                },
            }
            .into(),
        );
        push(
            out,
            "v5/disconnect/normal-with-properties",
            V5,
            Disconnect {
                reason_code: ReasonCode::NORMAL_DISCONNECTION,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(300),
                    ..DisconnectProperties::default()
                },
            }
            .into(),
        );
    }

    fn auth(out: &mut Vec<Fixture>) {
        push(out, "v5/auth/no-body", V5, Auth::default().into());
        push(
            out,
            "v5/auth/success-method-only",
            V5,
            Auth {
                reason_code: ReasonCode::SUCCESS,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM-SHA-256")),
                    ..AuthProperties::default()
                },
            }
            .into(),
        );
        push(
            out,
            "v5/auth/continue-method-data",
            V5,
            Auth {
                reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM-SHA-256")),
                    authentication_data: Some(secret(b"c=biws,r=rOprNGfwEbeRWgbNEkqO")),
                    ..AuthProperties::default()
                },
            }
            .into(),
        );
        push(
            out,
            "v5/auth/re-authenticate-all-properties",
            V5,
            Auth {
                reason_code: ReasonCode::RE_AUTHENTICATE,
                properties: AuthProperties {
                    authentication_method: Some(s("SCRAM-SHA-256")),
                    authentication_data: Some(secret(b"\x00\x01\x02\xFF")),
                    reason_string: Some(s("jeton expiré")),
                    user_properties: user_properties(),
                },
            }
            .into(),
        );
    }
}
