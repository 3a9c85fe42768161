//! Engine: ending connections. The application's DISCONNECT (both versions, from
//! every state), the server's DISCONNECT, the transport failing, what unfinished
//! work becomes, and who each error says ended the connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, Refusal, State};
use mqtt_client::{
    AckError, ConnectRefusal, ConnectionError, Initiator, ProtocolVersion, PublishError, QoS,
    RequestError, Violation,
};
use mqtt_codec::error::DecodeError;
use mqtt_codec::packet::{Disconnect, Packet, PacketType};
use mqtt_codec::property::{AckProperties, ConnAckProperties, DisconnectProperties, UserProperty};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn goodbye_properties() -> DisconnectProperties {
    DisconnectProperties {
        session_expiry_interval: Some(0),
        reason_string: Some(topic("shutting down")),
        ..DisconnectProperties::EMPTY
    }
}

#[test]
fn v5_disconnect_follows_the_acks_already_given_and_carries_reason_and_properties() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();
    let (t_pub, _) = h.publish_id(message("t", Q2, b"x"));
    let (t_sub, _) = h.subscribe(&[("a", Q1)]);
    h.take_sent();

    // One input step: the ack, then the disconnect, then one flush.
    h.engine
        .ack(h.now, ticket, ReasonCode::SUCCESS, AckProperties::EMPTY)
        .unwrap();
    h.engine
        .disconnect(
            h.now,
            ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
            goodbye_properties(),
        )
        .unwrap();
    h.flush();

    assert_eq!(
        h.take_sent(),
        vec![
            puback(1),
            Packet::Disconnect(Box::new(Disconnect {
                reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
                properties: goodbye_properties(),
            })),
        ]
    );
    assert_eq!(h.engine.state(), State::Closing);
    assert!(h.engine.should_close_transport());
    assert_eq!(h.engine.poll_timeout(), None);
    h.assert_no_events();

    assert!(h.close_if_done());

    let events = h.events();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_matches!(
        events[0],
        Event::ConnectionLost(ConnectionError::LocalDisconnect)
    );
    assert_matches!(
        &events[1],
        Event::PublishDone { token, result: Err(PublishError::Closed) } if *token == t_pub
    );
    assert_matches!(
        &events[2],
        Event::SubscribeDone { token, result: Err(RequestError::Closed) } if *token == t_sub
    );
    assert_matches!(events[3], Event::Closed(ConnectionError::LocalDisconnect));
    assert!(h.engine.is_closed());
    assert!(!h.engine.wants_transport(h.now + SEC * 3600));
}

#[test]
fn v311_disconnect_is_plain() {
    let mut h = Harness::connected(V311);

    h.disconnect(
        ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        goodbye_properties(),
    );

    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::NORMAL_DISCONNECTION)]
    );
    assert!(h.close_if_done());
    assert_matches!(
        h.events().as_slice(),
        [
            Event::ConnectionLost(ConnectionError::LocalDisconnect),
            Event::Closed(ConnectionError::LocalDisconnect)
        ]
    );
}

#[test]
fn disconnect_while_waiting_to_reconnect_closes_at_once() {
    let mut h = Harness::connected(V5);
    let (token, _) = h.publish_id(message("t", Q1, b"x"));
    h.take_sent();
    h.lose_connection();

    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );

    h.assert_nothing_sent();
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::PublishDone { token: t, result: Err(PublishError::Closed) },
            Event::Closed(ConnectionError::LocalDisconnect)
        ] if *t == token
    );
    assert!(h.engine.is_closed());
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn disconnect_before_connack_still_says_goodbye() {
    let mut h = Harness::new(options(V5));
    h.open();

    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );

    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::NORMAL_DISCONNECTION)]
    );
    // A CONNACK arriving now is not read.
    h.connack(false, ConnAckProperties::EMPTY);
    h.assert_no_events();
    assert!(h.close_if_done());
    assert!(h.engine.is_closed());
}

#[test]
fn a_closed_engine_refuses_everything() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();
    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );
    h.close_if_done();
    h.take_sent();
    h.events();

    assert_matches!(
        h.try_publish(message("t", Q1, b"x")).unwrap_err().error,
        Refusal::Closed
    );
    assert_eq!(h.ack(ticket), Err(AckError::Closed));
    assert!(!h.engine.can_publish(QoS::AtMostOnce));
    assert!(!h.engine.can_request());
    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );
    h.assert_nothing_sent();
    h.assert_no_events();
}

#[test]
fn disconnect_while_a_violation_is_closing_the_connection_closes_for_good() {
    let mut h = Harness::connected(V5);
    h.deliver_bytes(&[0x00, 0x00]);
    assert_eq!(h.take_sent().len(), 1, "the DISCONNECT of the violation");

    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );

    h.assert_nothing_sent();
    assert!(h.close_if_done());
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::ConnectionLost(ConnectionError::ProtocolViolation { .. }),
            Event::Closed(ConnectionError::ProtocolViolation { .. })
        ]
    );
}

#[test]
fn a_server_disconnect_ends_the_connection_and_reconnection_follows() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("t", Q1, b"x"));
    h.take_sent();

    h.deliver(Packet::Disconnect(Box::new(Disconnect {
        reason_code: ReasonCode::SERVER_SHUTTING_DOWN,
        properties: DisconnectProperties {
            reason_string: Some(topic("maintenance")),
            server_reference: Some(topic("other.example:1883")),
            ..DisconnectProperties::EMPTY
        },
    })));

    // The client answers nothing.
    h.assert_nothing_sent();
    let error = h.close_and_expect_reconnect();
    assert_eq!(error.initiator(), Initiator::Remote);
    assert!(!error.is_fatal());
    let ConnectionError::ServerDisconnect {
        reason,
        reason_string,
        server_reference,
        ..
    } = error
    else {
        panic!("expected ServerDisconnect, got {error:?}");
    };
    assert_eq!(reason, ReasonCode::SERVER_SHUTTING_DOWN);
    assert_eq!(reason_string.as_deref(), Some("maintenance"));
    assert_eq!(server_reference.as_deref(), Some("other.example:1883"));

    // The unfinished publish survives into the next connection.
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(id, "t", Q1, b"x")))]
    );
    h.deliver(puback(id));
    assert_eq!(h.publish_done()[0].0, token);
}

#[test]
fn packets_after_a_server_disconnect_are_not_read() {
    let mut h = Harness::connected(V5);
    let mut wire = bytes::BytesMut::new();
    disconnect(ReasonCode::ADMINISTRATIVE_ACTION)
        .encode(V5, &mut wire)
        .unwrap();
    Packet::Publish(message("t", QoS::AtMostOnce, b"late"))
        .encode(V5, &mut wire)
        .unwrap();

    h.deliver_bytes(&wire);

    h.assert_no_events();
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ServerDisconnect {
            reason: ReasonCode::ADMINISTRATIVE_ACTION,
            ..
        }
    );
}

#[test]
fn the_transport_closing_underneath_is_the_transports_doing() {
    let mut h = Harness::connected(V5);

    h.drop_transport(ConnectionError::TransportClosed);

    let events = h.events();
    let Event::ConnectionLost(error) = &events[0] else {
        panic!("{events:#?}");
    };
    assert_matches!(error, ConnectionError::TransportClosed);
    assert_eq!(error.initiator(), Initiator::Transport);
    assert_matches!(events[1], Event::Reconnecting { attempt: 1, .. });
}

#[test]
fn a_transport_closed_without_an_error_while_connected_is_transport_closed() {
    let mut h = Harness::connected(V5);

    h.engine.handle_transport_closed(h.now);

    assert_matches!(
        h.events().as_slice(),
        [
            Event::ConnectionLost(ConnectionError::TransportClosed),
            Event::Reconnecting { .. }
        ]
    );
}

#[test]
fn every_connection_error_names_its_initiator() {
    let cases = [
        (
            ConnectionError::Refused(ConnectRefusal::new(ReasonCode::BANNED, None)),
            Initiator::Remote,
            true,
        ),
        (
            ConnectionError::Refused(ConnectRefusal::new(ReasonCode::SERVER_BUSY, None)),
            Initiator::Remote,
            false,
        ),
        (
            ConnectionError::ServerDisconnect {
                reason: ReasonCode::SESSION_TAKEN_OVER,
                reason_string: None,
                server_reference: None,
                user_properties: Vec::new(),
            },
            Initiator::Remote,
            false,
        ),
        (
            ConnectionError::ProtocolViolation {
                reason: ReasonCode::PROTOCOL_ERROR,
                detail: Violation::UnexpectedPacket(PacketType::Subscribe),
            },
            Initiator::Local,
            false,
        ),
        (
            ConnectionError::ProtocolViolation {
                reason: ReasonCode::MALFORMED_PACKET,
                detail: Violation::Decode(DecodeError::Truncated),
            },
            Initiator::Local,
            false,
        ),
        (ConnectionError::KeepAliveTimeout, Initiator::Local, false),
        (ConnectionError::ConnectTimeout, Initiator::Local, false),
        (ConnectionError::LocalDisconnect, Initiator::Local, true),
        (reset(), Initiator::Transport, false),
        (
            ConnectionError::TransportClosed,
            Initiator::Transport,
            false,
        ),
    ];
    for (error, initiator, fatal) in cases {
        assert_eq!(error.initiator(), initiator, "{error:?}");
        assert_eq!(error.is_fatal(), fatal, "{error:?}");
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn refuses_a_reason_code_disconnect_cannot_carry_and_changes_nothing() {
    let mut h = Harness::connected(V5);
    // 0x0B is not a DISCONNECT reason code; 0x8B (Server shutting down) is one.
    let refused = h
        .engine
        .disconnect(h.now, ReasonCode(0x0B), DisconnectProperties::EMPTY);
    assert_matches!(refused, Err(RequestError::Encode(_)));
    h.flush();
    h.assert_nothing_sent();
    assert_eq!(h.engine.state(), State::Connected);
    // The session goes on: a normal disconnect afterwards works.
    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );
    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::NORMAL_DISCONNECTION)]
    );
}

// ----- Reason Strings and User Properties surfaced ---------------------------------------

#[test]
fn a_server_disconnect_shows_its_reason_string_and_keeps_its_user_properties() {
    let mut h = Harness::connected(V5);
    h.deliver(Packet::Disconnect(Box::new(Disconnect {
        reason_code: ReasonCode::NOT_AUTHORIZED,
        properties: DisconnectProperties {
            reason_string: Some(topic("token \"expired\"")),
            user_properties: vec![
                UserProperty::new("node", "b-3").unwrap(),
                UserProperty::new("node", "b-4").unwrap(),
            ],
            ..DisconnectProperties::EMPTY
        },
    })));

    let error = h.close_and_expect_reconnect();
    assert_eq!(
        error.to_string(),
        r#"the server disconnected: Not authorized (0x87) ("token \"expired\"")"#
    );
    assert_eq!(error.reason_string(), Some(r#"token "expired""#));
    assert_eq!(
        error.user_properties(),
        &[
            ("node".to_owned(), "b-3".to_owned()),
            ("node".to_owned(), "b-4".to_owned())
        ]
    );
    // Without a Reason String, nothing is added.
    assert_eq!(
        ConnectionError::ServerDisconnect {
            reason: ReasonCode::SERVER_BUSY,
            reason_string: None,
            server_reference: None,
            user_properties: Vec::new(),
        }
        .to_string(),
        "the server disconnected: Server busy (0x89)"
    );
    assert!(ConnectionError::TransportClosed
        .user_properties()
        .is_empty());
}
