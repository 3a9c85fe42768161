//! Engine: CONNECT contents, CONNACK handling (acceptance, every refusal, session
//! present misuse), packets before CONNACK, and the connect timeout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use bytes::Bytes;
use engine_common::*;
use mqtt_client::engine::{Event, State};
use mqtt_client::{ConnectionError, Initiator, ProtocolVersion, QoS, RefusalKind, Violation};
use mqtt_codec::packet::{ConnAck, Connect, LastWill, PacketType};
use mqtt_codec::property::{
    ConnAckProperties, ConnectProperties, Secret, UserProperty, WillProperties,
};
use mqtt_codec::reason::ReasonCode;

fn will() -> LastWill {
    LastWill {
        topic: topic("clients/client-1/status"),
        payload: Bytes::from_static(b"offline"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: WillProperties {
            will_delay_interval: Some(30),
            ..WillProperties::EMPTY
        },
    }
}

#[test]
fn v5_connect_carries_every_configured_field() {
    let mut opts = options(ProtocolVersion::V5)
        .with_keep_alive(30)
        .with_session_expiry(3600)
        .with_credentials("alice", Bytes::from_static(b"s3cret"))
        .with_will(will());
    opts = opts.with_receive_maximum(20);
    opts = opts.with_maximum_packet_size(4096);
    opts = opts.with_topic_alias_maximum(8);
    opts = opts.with_request_response_information(true);
    opts = opts.with_request_problem_information(false);
    opts = opts.with_user_property("site", "lab");
    let mut h = Harness::new(opts);

    let connect = h.open();

    assert_eq!(
        connect,
        Connect {
            protocol_version: ProtocolVersion::V5,
            client_id: topic("client-1"),
            clean_start: true,
            keep_alive: 30,
            username: Some(topic("alice")),
            password: Some(Secret(Bytes::from_static(b"s3cret"))),
            will: Some(will()),
            properties: ConnectProperties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(20),
                maximum_packet_size: Some(4096),
                topic_alias_maximum: Some(8),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                user_properties: vec![UserProperty::new("site", "lab").unwrap()],
                ..ConnectProperties::EMPTY
            },
        }
    );
}

#[test]
fn v5_connect_leaves_protocol_defaults_out() {
    let mut opts = options(ProtocolVersion::V5);
    opts = opts.with_receive_maximum(u16::MAX);
    let mut h = Harness::new(opts);

    let connect = h.open();

    assert_eq!(connect.properties, ConnectProperties::EMPTY);
    assert_eq!(connect.keep_alive, 60);
    assert_eq!(connect.username, None);
    assert_eq!(connect.password, None);
    assert_eq!(connect.will, None);
}

#[test]
fn v5_connect_advertises_the_default_receive_maximum() {
    let mut h = Harness::new(options(ProtocolVersion::V5));

    let connect = h.open();

    assert_eq!(
        connect.properties,
        ConnectProperties {
            receive_maximum: Some(100),
            ..ConnectProperties::EMPTY
        }
    );
}

#[test]
fn v311_connect_carries_its_fields_and_no_properties() {
    let mut opts = options(ProtocolVersion::V311)
        .with_keep_alive(15)
        .with_session_expiry(3600)
        .with_credentials("bob", Bytes::from_static(b"pw"))
        .with_will(LastWill {
            properties: WillProperties::EMPTY,
            ..will()
        });
    opts = opts.with_receive_maximum(5);
    opts = opts.with_topic_alias_maximum(3);
    let mut h = Harness::new(opts);

    let connect = h.open();

    assert_eq!(
        connect,
        Connect {
            protocol_version: ProtocolVersion::V311,
            client_id: topic("client-1"),
            clean_start: true,
            keep_alive: 15,
            username: Some(topic("bob")),
            password: Some(Secret(Bytes::from_static(b"pw"))),
            will: Some(LastWill {
                properties: WillProperties::EMPTY,
                ..will()
            }),
            properties: ConnectProperties::EMPTY,
        }
    );
}

#[test]
fn connack_accepts_and_reports_the_server() {
    let mut h = Harness::new(options(ProtocolVersion::V5));
    assert!(h.engine.wants_transport(h.now));
    h.open();
    assert!(!h.engine.wants_transport(h.now));
    assert!(!h.engine.can_publish(QoS::AtMostOnce));
    assert!(!h.engine.can_request());

    h.connack(
        false,
        ConnAckProperties {
            receive_maximum: Some(7),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(false),
            maximum_packet_size: Some(1000),
            ..ConnAckProperties::EMPTY
        },
    );

    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Connected {
            session_present: false
        }]
    );
    assert_eq!(h.engine.state(), State::Connected);
    assert_eq!(h.engine.connection_number(), 1);
    assert_eq!(h.engine.send_quota(), 7);
    assert_eq!(h.engine.server().maximum_qos(), QoS::AtLeastOnce);
    assert!(!h.engine.server().retain_available());
    assert_eq!(h.engine.server().maximum_packet_size(), Some(1000));
    assert!(h.engine.can_publish(QoS::AtLeastOnce));
    assert!(h.engine.can_request());
    h.assert_nothing_sent();
}

#[test]
fn v5_reconnections_ask_to_resume_the_session() {
    let mut h = Harness::connected(ProtocolVersion::V5);
    h.lose_connection();

    let connect = h.reconnect(true, ConnAckProperties::EMPTY);

    assert!(!connect.clean_start);
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Connected {
            session_present: true
        }]
    );
    assert_eq!(h.engine.connection_number(), 2);
}

#[test]
fn v5_first_connect_may_resume_a_session_when_configured() {
    let mut h = Harness::new(options(ProtocolVersion::V5).with_clean_start(false));

    let connect = h.open();
    h.connack(true, ConnAckProperties::EMPTY);

    assert!(!connect.clean_start);
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Connected {
            session_present: true
        }]
    );
}

#[test]
fn v311_reconnections_keep_the_configured_clean_session() {
    for clean in [true, false] {
        let mut h = Harness::new(options(ProtocolVersion::V311).with_clean_start(clean));
        assert_eq!(h.open().clean_start, clean);
        h.connack(false, ConnAckProperties::EMPTY);
        h.events();
        h.lose_connection();

        let connect = h.reconnect(false, ConnAckProperties::EMPTY);

        assert_eq!(connect.clean_start, clean, "clean_start {clean}");
        assert_eq!(connect.protocol_version, ProtocolVersion::V311);
    }
}

#[test]
fn an_assigned_client_identifier_is_used_by_the_next_connect() {
    let mut opts = options(ProtocolVersion::V5);
    opts = opts.with_client_id("");
    let mut h = Harness::new(opts);
    assert_eq!(h.open().client_id, topic(""));
    h.connack(
        false,
        ConnAckProperties {
            assigned_client_identifier: Some(topic("auto-7f3a")),
            ..ConnAckProperties::EMPTY
        },
    );
    h.events();
    assert_eq!(h.engine.client_id(), "auto-7f3a");
    assert_eq!(
        h.engine.server().assigned_client_identifier(),
        Some("auto-7f3a")
    );
    h.lose_connection();

    let connect = h.reconnect(true, ConnAckProperties::EMPTY);

    assert_eq!(connect.client_id, topic("auto-7f3a"));
    assert!(!connect.clean_start);
}

/// Every failure reason code a v5 CONNACK may carry, its kind, and whether
/// reconnecting is pointless.
const REFUSALS: &[(u8, RefusalKind, bool)] = &[
    (0x80, RefusalKind::Unspecified, false),
    (0x81, RefusalKind::ProtocolError, true),
    (0x82, RefusalKind::ProtocolError, true),
    (0x83, RefusalKind::ImplementationSpecific, false),
    (0x84, RefusalKind::UnsupportedProtocolVersion, true),
    (0x85, RefusalKind::ClientIdRejected, true),
    (0x86, RefusalKind::BadCredentials, true),
    (0x87, RefusalKind::NotAuthorized, true),
    (0x88, RefusalKind::ServerUnavailable, false),
    (0x89, RefusalKind::ServerBusy, false),
    (0x8A, RefusalKind::Banned, true),
    (0x8C, RefusalKind::BadAuthenticationMethod, true),
    (0x90, RefusalKind::TopicNameInvalid, true),
    (0x95, RefusalKind::PacketTooLarge, true),
    (0x97, RefusalKind::QuotaExceeded, false),
    (0x99, RefusalKind::PayloadFormatInvalid, true),
    (0x9A, RefusalKind::RetainNotSupported, true),
    (0x9B, RefusalKind::QosNotSupported, true),
    (0x9C, RefusalKind::UseAnotherServer, false),
    (0x9D, RefusalKind::ServerMoved, false),
    (0x9F, RefusalKind::ConnectionRateExceeded, false),
];

#[test]
fn every_v5_connack_refusal_is_typed_and_fatal_ones_stop_reconnecting() {
    for &(code, kind, fatal) in REFUSALS {
        let mut h = Harness::new(options(ProtocolVersion::V5));
        h.open();

        h.deliver(ConnAck {
            session_present: false,
            reason_code: ReasonCode(code),
            properties: ConnAckProperties {
                reason_string: Some(topic("go away")),
                ..ConnAckProperties::EMPTY
            },
        });

        // The server closes after a refusal; the client sends nothing.
        h.assert_nothing_sent();
        assert_eq!(h.engine.state(), State::Closing, "code {code:#x}");
        assert!(h.close_if_done());
        let events = h.events();
        assert_eq!(events.len(), 2, "code {code:#x}: {events:#?}");
        let Event::ConnectionLost(ConnectionError::Refused(refusal)) = &events[0] else {
            panic!("code {code:#x}: {events:#?}");
        };
        assert_eq!(refusal.kind, kind, "code {code:#x}");
        assert_eq!(refusal.reason, ReasonCode(code));
        assert_eq!(refusal.reason_string.as_deref(), Some("go away"));
        assert_eq!(refusal.is_fatal(), fatal, "code {code:#x}");
        if fatal {
            assert_matches!(
                &events[1],
                Event::Closed(ConnectionError::Refused(r)) if r.reason == ReasonCode(code)
            );
            assert!(h.engine.is_closed());
            assert!(!h.engine.wants_transport(h.now + SEC * 3600));
            assert_eq!(h.engine.poll_timeout(), None);
        } else {
            assert_matches!(
                events[1],
                Event::Reconnecting {
                    attempt: 1,
                    delay,
                    ..
                } if delay == SEC
            );
            assert_eq!(h.engine.state(), State::Idle);
            h.advance_to_reconnect();
            h.open();
        }
    }
}

#[test]
fn v311_connack_return_codes_map_to_refusals() {
    let cases: &[(u8, RefusalKind, u8, bool)] = &[
        (1, RefusalKind::UnsupportedProtocolVersion, 0x84, true),
        (2, RefusalKind::ClientIdRejected, 0x85, true),
        (3, RefusalKind::ServerUnavailable, 0x88, false),
        (4, RefusalKind::BadCredentials, 0x86, true),
        (5, RefusalKind::NotAuthorized, 0x87, true),
    ];
    for &(return_code, kind, reason, fatal) in cases {
        let mut h = Harness::new(options(ProtocolVersion::V311));
        h.open();

        // CONNACK as the bytes a 3.1.1 broker writes.
        h.deliver_bytes(&[0x20, 0x02, 0x00, return_code]);

        assert!(h.close_if_done());
        let events = h.events();
        let Event::ConnectionLost(ConnectionError::Refused(refusal)) = &events[0] else {
            panic!("return code {return_code}: {events:#?}");
        };
        assert_eq!(refusal.kind, kind);
        assert_eq!(refusal.reason, ReasonCode(reason));
        assert_eq!(refusal.reason_string, None);
        if fatal {
            assert_matches!(events[1], Event::Closed(ConnectionError::Refused(_)));
            assert!(h.engine.is_closed());
        } else {
            assert_matches!(events[1], Event::Reconnecting { attempt: 1, .. });
        }
        assert_eq!(events.len(), 2);
    }
}

#[test]
fn refuses_session_present_after_a_clean_start() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let mut h = Harness::new(options(version));
        assert!(h.open().clean_start);

        h.connack(true, ConnAckProperties::EMPTY);

        if version == ProtocolVersion::V5 {
            assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
        } else {
            // A 3.1.1 client has no reason code to send: it just closes.
            h.assert_nothing_sent();
        }
        let error = h.close_and_expect_reconnect();
        assert_matches!(
            error,
            ConnectionError::ProtocolViolation {
                reason: ReasonCode::PROTOCOL_ERROR,
                detail: Violation::UnexpectedPacket(PacketType::ConnAck),
            }
        );
        assert_eq!(error.initiator(), Initiator::Local);
    }
}

#[test]
fn refuses_any_packet_before_connack() {
    let mut h = Harness::new(options(ProtocolVersion::V5));
    h.open();

    h.deliver(message("early/bird", QoS::AtMostOnce, b"hi"));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    // A CONNACK after the violation is not read: the connection is over.
    h.connack(false, ConnAckProperties::EMPTY);
    h.assert_nothing_sent();
    let error = h.close_and_expect_reconnect();
    assert_matches!(
        error,
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::PROTOCOL_ERROR,
            detail: Violation::UnexpectedPacket(PacketType::Publish),
        }
    );
}

#[test]
fn refuses_a_second_connack() {
    let mut h = Harness::connected(ProtocolVersion::V5);

    h.connack(false, ConnAckProperties::EMPTY);

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::UnexpectedPacket(PacketType::ConnAck),
            ..
        }
    );
}

#[test]
fn refuses_auth_since_no_authentication_method_was_sent() {
    let mut h = Harness::connected(ProtocolVersion::V5);

    // AUTH, Re-authenticate, with an Authentication Method "X".
    h.deliver_bytes(&[0xF0, 0x06, 0x19, 0x04, 0x15, 0x00, 0x01, b'X']);

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::UnexpectedPacket(PacketType::Auth),
            ..
        }
    );
}

#[test]
fn connect_timeout_ends_the_attempt_exactly_on_time() {
    let mut opts = options(ProtocolVersion::V5);
    opts = opts.with_connect_timeout(SEC * 5);
    let mut h = Harness::new(opts);
    h.open();

    h.advance(SEC * 5 - MS);
    assert_eq!(h.engine.state(), State::Connecting);
    h.advance(MS);

    assert_eq!(h.engine.state(), State::Closing);
    assert_eq!(h.elapsed(), SEC * 5);
    h.assert_nothing_sent();
    let error = h.close_and_expect_reconnect();
    assert_matches!(error, ConnectionError::ConnectTimeout);
    assert_eq!(error.initiator(), Initiator::Local);
}

#[test]
fn connack_stops_the_connect_timeout() {
    let mut opts = options(ProtocolVersion::V5).with_keep_alive(0);
    opts = opts.with_connect_timeout(SEC * 5);
    let mut h = Harness::new(opts);
    h.open();
    h.advance(SEC * 4);
    h.connack(false, ConnAckProperties::EMPTY);

    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(SEC * 3600);
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn a_connack_split_across_reads_is_put_together() {
    let mut h = Harness::new(options(ProtocolVersion::V311));
    h.open();

    h.deliver_bytes(&[0x20]);
    h.deliver_bytes(&[0x02, 0x00]);
    assert_eq!(h.engine.state(), State::Connecting);
    h.deliver_bytes(&[0x00]);

    assert_eq!(h.engine.state(), State::Connected);
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Connected {
            session_present: false
        }]
    );
}

#[test]
fn the_connect_packet_is_the_only_thing_written_before_connack() {
    let mut h = Harness::new(options(ProtocolVersion::V5));
    h.open();

    let refused = h.try_publish(message("t", QoS::AtLeastOnce, b"x"));

    assert!(refused.is_err());
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn a_will_marked_utf8_that_is_not_is_refused_at_start() {
    let mut bad = will();
    bad.payload = Bytes::from_static(b"\xc3(");
    bad.properties.payload_format_indicator = Some(1);
    let opts = options(ProtocolVersion::V5).with_will(bad);
    assert_matches!(opts.validate(), Err(ConnectionError::InvalidOptions(what)) if what.starts_with("will"));

    let mut good = will();
    good.properties.payload_format_indicator = Some(1);
    assert!(options(ProtocolVersion::V5)
        .with_will(good)
        .validate()
        .is_ok());
}
