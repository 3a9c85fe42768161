//! Engine: incoming PUBLISH flows. Delivery with tickets, acks on the wire in
//! receipt order whatever the application's order, ack errors, tickets that
//! outlive their connection, QoS 2 exactly-once across duplicates and
//! reconnections, auto-ack, malformed and oversized input, and Topic Aliases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, State};
use mqtt_client::{AckError, ConnectionError, ProtocolVersion, QoS, Violation};
use mqtt_codec::error::DecodeError;
use mqtt_codec::packet::{Decoder, Packet, PacketType};
use mqtt_codec::property::{AckProperties, ConnAckProperties, PublishProperties};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;
const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

/// Connected, with a session the server may resume (3.1.1: Clean Session 0).
fn resumable(version: ProtocolVersion) -> Harness {
    Harness::connected_with(
        options(version).with_clean_start(version == V5),
        ConnAckProperties::EMPTY,
    )
}

// ----- delivery and acks -------------------------------------------------------------

#[test]
fn qos0_messages_come_without_a_ticket_and_need_no_ack() {
    let mut h = Harness::connected(V5);

    h.deliver(message("a/b", Q0, b"zero"));

    let messages = h.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].publish, message("a/b", Q0, b"zero"));
    assert!(messages[0].ack.is_none());
    h.assert_nothing_sent();
}

#[test]
fn qos1_message_is_delivered_with_a_ticket_and_acked_with_puback() {
    for version in [V5, V311] {
        let mut h = Harness::connected(version);

        h.deliver(publish(7, "a/b", Q1, b"one"));

        let messages = h.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].publish, publish(7, "a/b", Q1, b"one"));
        let ticket = messages[0].ack.unwrap();
        assert_eq!(ticket.packet_id(), pid(7));
        assert_eq!(ticket.qos(), Q1);
        assert_eq!(ticket.connection_number(), 1);
        h.assert_nothing_sent();
        assert_eq!(h.engine.incoming_inflight(), 1);

        h.ack(ticket).unwrap();

        assert_eq!(h.take_sent(), vec![puback(7)]);
        assert_eq!(h.engine.incoming_inflight(), 0);
    }
}

#[test]
fn qos2_message_is_delivered_before_pubrec_and_pubrel_gets_pubcomp() {
    for version in [V5, V311] {
        let mut h = Harness::connected(version);

        h.deliver(publish(3, "a/b", Q2, b"two"));

        let ticket = h.ticket();
        assert_eq!(ticket.qos(), Q2);
        h.assert_nothing_sent();
        h.ack(ticket).unwrap();
        assert_eq!(h.take_sent(), vec![pubrec(3)]);
        h.deliver(pubrel(3));
        assert_eq!(h.take_sent(), vec![pubcomp(3)]);
        h.assert_no_events();
        assert_eq!(h.engine.incoming_inflight(), 0);
    }
}

#[test]
fn acks_reach_the_wire_in_receipt_order_whatever_the_application_order() {
    let mut h = Harness::connected(V5);
    for id in [10, 11, 12, 13] {
        h.deliver(publish(id, "t", Q1, b"x"));
    }
    let tickets: Vec<_> = h.messages().into_iter().map(|m| m.ack.unwrap()).collect();

    h.ack(tickets[3]).unwrap();
    h.ack(tickets[1]).unwrap();
    h.assert_nothing_sent();
    h.ack(tickets[0]).unwrap();
    assert_eq!(h.take_sent(), vec![puback(10), puback(11)]);
    h.ack(tickets[2]).unwrap();
    assert_eq!(h.take_sent(), vec![puback(12), puback(13)]);
}

#[test]
fn mixed_qos1_and_qos2_acks_keep_receipt_order() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q2, b"a"));
    h.deliver(publish(2, "t", Q1, b"b"));
    h.deliver(publish(3, "t", Q2, b"c"));
    h.deliver(message("t", Q0, b"d"));
    h.deliver(publish(4, "t", Q1, b"e"));
    let tickets: Vec<_> = h.messages().into_iter().filter_map(|m| m.ack).collect();
    assert_eq!(tickets.len(), 4);

    h.ack(tickets[3]).unwrap();
    h.ack(tickets[1]).unwrap();
    h.ack(tickets[2]).unwrap();
    h.assert_nothing_sent();
    h.ack(tickets[0]).unwrap();

    assert_eq!(
        h.take_sent(),
        vec![pubrec(1), puback(2), pubrec(3), puback(4)]
    );
}

#[test]
fn v5_acks_carry_the_application_reason_and_properties() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    h.deliver(publish(2, "t", Q2, b"b"));
    let tickets: Vec<_> = h.messages().into_iter().map(|m| m.ack.unwrap()).collect();

    h.ack_with(
        tickets[0],
        ReasonCode::NOT_AUTHORIZED,
        reason_string("nope"),
    )
    .unwrap();
    h.ack_with(
        tickets[1],
        ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
        reason_string("bad"),
    )
    .unwrap();

    assert_eq!(
        h.take_sent(),
        vec![
            puback_rc(1, ReasonCode::NOT_AUTHORIZED, reason_string("nope")),
            pubrec_rc(
                2,
                ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR,
                reason_string("bad")
            ),
        ]
    );
    // A refused QoS 2 message is finished: no PUBREL is awaited for it.
    assert_eq!(h.engine.incoming_inflight(), 0);
    h.deliver(pubrel(2));
    assert_eq!(
        h.take_sent(),
        vec![pubcomp_rc(
            2,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            AckProperties::EMPTY
        )]
    );
    // And the identifier may carry a new message, delivered.
    h.deliver(publish(2, "t", Q2, b"new"));
    assert_eq!(h.messages().len(), 1);
}

#[test]
fn v5_success_with_no_matching_subscribers_is_a_valid_ack() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();

    h.ack_with(
        ticket,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        AckProperties::EMPTY,
    )
    .unwrap();

    assert_eq!(
        h.take_sent(),
        vec![puback_rc(
            1,
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
            AckProperties::EMPTY
        )]
    );
}

#[test]
fn refuses_an_ack_reason_code_not_valid_for_the_packet_or_version() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();

    for code in [
        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        ReasonCode::GRANTED_QOS_1,
        ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
    ] {
        assert_eq!(
            h.ack_with(ticket, code, AckProperties::EMPTY),
            Err(AckError::InvalidReasonCode)
        );
    }
    h.assert_nothing_sent();
    // The ticket is still good.
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![puback(1)]);

    let mut v311 = Harness::connected(V311);
    v311.deliver(publish(1, "t", Q2, b"a"));
    let ticket = v311.ticket();
    assert_eq!(
        v311.ack_with(ticket, ReasonCode::UNSPECIFIED_ERROR, AckProperties::EMPTY),
        Err(AckError::InvalidReasonCode)
    );
    v311.assert_nothing_sent();
}

#[test]
fn v311_acks_drop_properties() {
    let mut h = Harness::connected(V311);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();

    h.ack_with(ticket, ReasonCode::SUCCESS, reason_string("ignored"))
        .unwrap();

    assert_eq!(h.take_sent(), vec![puback(1)]);
}

#[test]
fn refuses_a_second_ack_of_the_same_message() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    h.deliver(publish(2, "t", Q1, b"b"));
    let tickets: Vec<_> = h.messages().into_iter().map(|m| m.ack.unwrap()).collect();

    // Queued behind message 1.
    h.ack(tickets[1]).unwrap();
    assert_eq!(h.ack(tickets[1]), Err(AckError::AlreadyAcked));
    h.ack(tickets[0]).unwrap();
    // On the wire.
    assert_eq!(h.ack(tickets[0]), Err(AckError::AlreadyAcked));
    assert_eq!(h.ack(tickets[1]), Err(AckError::AlreadyAcked));

    assert_eq!(h.take_sent(), vec![puback(1), puback(2)]);
}

#[test]
fn a_ticket_from_an_earlier_connection_is_stale_and_writes_nothing() {
    let mut h = resumable(V5);
    h.deliver(publish(5, "t", Q1, b"a"));
    let old = h.ticket();
    h.lose_connection();
    assert_eq!(h.ack(old), Err(AckError::StaleConnection), "while idle");

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    assert_eq!(h.ack(old), Err(AckError::StaleConnection));
    h.assert_nothing_sent();

    // The server sends it again; the new ticket acks it.
    h.deliver(dup(publish(5, "t", Q1, b"a")));
    let new = h.ticket();
    assert_eq!(new.connection_number(), 2);
    assert_eq!(new.packet_id(), pid(5));
    h.ack(new).unwrap();
    assert_eq!(h.take_sent(), vec![puback(5)]);
}

#[test]
fn acks_while_the_connection_is_ending_are_stale() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();
    h.deliver(disconnect(ReasonCode::SERVER_SHUTTING_DOWN));
    assert_eq!(h.engine.state(), State::Closing);

    assert_eq!(h.ack(ticket), Err(AckError::StaleConnection));
    h.assert_nothing_sent();
}

// ----- duplicates and reconnections ----------------------------------------------------

#[test]
fn a_qos1_duplicate_before_the_ack_is_not_delivered_twice() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();

    h.deliver(dup(publish(1, "t", Q1, b"a")));

    h.assert_no_events();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![puback(1)]);
}

#[test]
fn a_qos1_resent_after_a_lost_puback_is_delivered_again() {
    // At least once: after its PUBACK is lost, the message comes again.
    let mut h = resumable(V5);
    h.deliver(publish(1, "t", Q1, b"a"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.lose_sent();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.deliver(dup(publish(1, "t", Q1, b"a")));

    let again = h.ticket();
    assert_eq!(again.connection_number(), 2);
    h.ack(again).unwrap();
    assert_eq!(h.take_sent(), vec![puback(1)]);
}

#[test]
fn a_qos1_unacked_at_disconnection_is_delivered_again_with_a_new_ticket() {
    let mut h = resumable(V311);
    h.deliver(publish(1, "t", Q1, b"a"));
    h.deliver(publish(2, "t", Q1, b"b"));
    let first: Vec<_> = h.messages().into_iter().map(|m| m.ack.unwrap()).collect();
    h.ack(first[1]).unwrap();
    h.assert_nothing_sent();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.deliver(dup(publish(1, "t", Q1, b"a")));
    h.deliver(dup(publish(2, "t", Q1, b"b")));

    let again: Vec<_> = h.messages().into_iter().map(|m| m.ack.unwrap()).collect();
    assert_eq!(again.len(), 2);
    h.ack(again[0]).unwrap();
    h.ack(again[1]).unwrap();
    assert_eq!(h.take_sent(), vec![puback(1), puback(2)]);
}

#[test]
fn a_qos2_duplicate_after_pubrec_is_acknowledged_not_delivered() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(4, "t", Q2, b"once"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(4)]);

    h.deliver(dup(publish(4, "t", Q2, b"once")));

    h.assert_no_events();
    assert_eq!(h.take_sent(), vec![pubrec(4)]);
    h.deliver(pubrel(4));
    assert_eq!(h.take_sent(), vec![pubcomp(4)]);
    // After PUBCOMP the identifier carries a new message.
    h.deliver(publish(4, "t", Q2, b"next"));
    assert_eq!(h.messages()[0].publish.payload.as_ref(), b"next");
}

#[test]
fn a_qos2_duplicate_before_the_ack_is_not_delivered_twice() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(4, "t", Q2, b"once"));
    let ticket = h.ticket();

    h.deliver(dup(publish(4, "t", Q2, b"once")));

    h.assert_no_events();
    h.assert_nothing_sent();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(4)]);
}

#[test]
fn qos2_pubrec_lost_then_resumed_session_acks_the_resend_without_delivery() {
    for version in [V5, V311] {
        let mut h = resumable(version);
        h.deliver(publish(9, "t", Q2, b"once"));
        let ticket = h.ticket();
        h.ack(ticket).unwrap();
        h.lose_sent();
        h.lose_connection();

        h.reconnect(true, ConnAckProperties::EMPTY);
        h.events();
        h.deliver(dup(publish(9, "t", Q2, b"once")));

        h.assert_no_events();
        assert_eq!(h.take_sent(), vec![pubrec(9)], "{version:?}");
        h.deliver(pubrel(9));
        assert_eq!(h.take_sent(), vec![pubcomp(9)]);
    }
}

#[test]
fn qos2_unacked_at_disconnection_is_delivered_again() {
    let mut h = resumable(V5);
    h.deliver(publish(9, "t", Q2, b"once"));
    let _never_acked = h.ticket();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.deliver(dup(publish(9, "t", Q2, b"once")));

    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(9)]);
}

#[test]
fn qos2_pubrel_lost_is_answered_when_resent_on_the_resumed_session() {
    let mut h = resumable(V5);
    h.deliver(publish(9, "t", Q2, b"once"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.take_sent();
    // The server's PUBREL is lost with the connection.
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.deliver(pubrel(9));

    assert_eq!(h.take_sent(), vec![pubcomp(9)]);
    h.assert_no_events();
}

#[test]
fn qos2_pubcomp_lost_a_resent_pubrel_still_gets_pubcomp() {
    for (version, reason) in [
        (V5, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        (V311, ReasonCode::SUCCESS),
    ] {
        let mut h = resumable(version);
        h.deliver(publish(9, "t", Q2, b"once"));
        let ticket = h.ticket();
        h.ack(ticket).unwrap();
        h.deliver(pubrel(9));
        h.lose_sent();
        h.lose_connection();

        h.reconnect(true, ConnAckProperties::EMPTY);
        h.events();
        h.deliver(pubrel(9));

        // Not an error during recovery: the flow is complete on our side.
        assert_eq!(
            h.take_sent(),
            vec![pubcomp_rc(9, reason, AckProperties::EMPTY)],
            "{version:?}"
        );
        h.assert_no_events();
    }
}

#[test]
fn an_unknown_pubrel_gets_pubcomp_not_found() {
    let mut h = Harness::connected(V5);

    h.deliver(pubrel(33));

    assert_eq!(
        h.take_sent(),
        vec![pubcomp_rc(
            33,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            AckProperties::EMPTY
        )]
    );
    let mut v311 = Harness::connected(V311);
    v311.deliver(pubrel(33));
    assert_eq!(v311.take_sent(), vec![pubcomp(33)]);
}

#[test]
fn refuses_a_pubrel_before_our_pubrec() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(2, "t", Q2, b"x"));
    h.events();

    h.deliver(pubrel(2));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::UnexpectedPacket(PacketType::PubRel),
            ..
        }
    );
}

#[test]
fn a_lost_session_forgets_messages_awaiting_pubrel() {
    let mut h = resumable(V5);
    h.deliver(publish(9, "t", Q2, b"old"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.take_sent();
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);
    h.events();
    assert_eq!(h.engine.incoming_inflight(), 0);

    // Identifier 9 now carries a new message: delivered.
    h.deliver(publish(9, "t", Q2, b"new"));
    let messages = h.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].publish.payload.as_ref(), b"new");
}

#[test]
fn a_lost_session_answers_a_stray_pubrel_with_not_found() {
    let mut h = resumable(V5);
    h.deliver(publish(9, "t", Q2, b"old"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.take_sent();
    h.lose_connection();
    h.reconnect(false, ConnAckProperties::EMPTY);
    h.events();

    h.deliver(pubrel(9));

    assert_eq!(
        h.take_sent(),
        vec![pubcomp_rc(
            9,
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            AckProperties::EMPTY
        )]
    );
}

// ----- auto-ack ----------------------------------------------------------------------------

#[test]
fn auto_ack_acknowledges_on_delivery() {
    let mut h = Harness::connected_with(options(V5).with_auto_ack(true), ConnAckProperties::EMPTY);

    h.deliver(publish(1, "t", Q1, b"a"));
    h.deliver(publish(2, "t", Q2, b"b"));
    h.deliver(message("t", Q0, b"c"));

    let messages = h.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|m| m.ack.is_none()));
    assert_eq!(h.take_sent(), vec![puback(1), pubrec(2)]);
    h.deliver(pubrel(2));
    assert_eq!(h.take_sent(), vec![pubcomp(2)]);
    assert_eq!(h.engine.incoming_inflight(), 0);
}

// ----- malformed and oversized input -------------------------------------------------------

#[test]
fn refuses_a_packet_larger_than_our_maximum_packet_size() {
    let mut opts = options(V5);
    opts = opts.with_maximum_packet_size(32);
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);

    h.deliver(message("t", Q0, &[0u8; 64]));

    h.assert_no_events();
    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::PACKET_TOO_LARGE)]
    );
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::PACKET_TOO_LARGE,
            detail: Violation::Decode(DecodeError::PacketTooLarge { max: 32, .. }),
        }
    );
}

#[test]
fn a_packet_of_exactly_our_maximum_packet_size_is_taken() {
    let mut opts = options(V5);
    opts = opts.with_maximum_packet_size(32);
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);
    let payload_len = 32
        - Packet::Publish(message("t", Q0, b""))
            .encoded_len(V5)
            .unwrap();
    let payload = &[7u8; 64][..payload_len];
    assert_eq!(
        Packet::Publish(message("t", Q0, payload))
            .encoded_len(V5)
            .unwrap(),
        32
    );

    h.deliver(message("t", Q0, payload));

    assert_eq!(h.messages().len(), 1);
    h.assert_nothing_sent();
}

/// Malformed inputs, each with the reason code its decode error maps to.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("reserved packet type 0", vec![0x00, 0x00]),
        (
            "PUBLISH with QoS 3",
            vec![0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01],
        ),
        (
            "QoS 0 PUBLISH with DUP",
            vec![0x38, 0x04, 0x00, 0x01, b't', 0x00],
        ),
        (
            "PUBACK with packet identifier 0",
            vec![0x40, 0x02, 0x00, 0x00],
        ),
        ("PUBREL with wrong flags", vec![0x60, 0x02, 0x00, 0x01]),
        (
            "topic with a wildcard",
            vec![0x30, 0x04, 0x00, 0x01, b'#', 0x00],
        ),
        (
            "invalid UTF-8 topic",
            vec![0x30, 0x04, 0x00, 0x01, 0xFF, 0x00],
        ),
        (
            "PUBACK with an invalid reason code",
            vec![0x40, 0x03, 0x00, 0x01, 0x05],
        ),
        (
            "variable byte integer of five bytes",
            vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ),
        (
            "duplicate property",
            vec![0x30, 0x08, 0x00, 0x01, b't', 0x04, 0x01, 0x00, 0x01, 0x00],
        ),
        (
            "empty topic without an alias",
            vec![0x30, 0x03, 0x00, 0x00, 0x00],
        ),
    ]
}

#[test]
fn malformed_input_ends_the_connection_with_the_decode_errors_reason_code() {
    for (what, bytes) in malformed() {
        let expected = Decoder::new(V5)
            .decode(&mut bytes::BytesMut::from(&bytes[..]))
            .expect_err(what);
        let mut h = Harness::connected(V5);

        h.deliver_bytes(&bytes);

        h.assert_no_events();
        assert_eq!(
            h.take_sent(),
            vec![disconnect(expected.reason_code())],
            "{what}"
        );
        let error = h.close_and_expect_reconnect();
        assert_matches!(
            error,
            ConnectionError::ProtocolViolation { reason, detail: Violation::Decode(e) }
                if reason == expected.reason_code() && e == expected
        );
    }
}

#[test]
fn malformed_input_covers_malformed_and_protocol_error_codes() {
    let codes: Vec<ReasonCode> = malformed()
        .into_iter()
        .map(|(what, bytes)| {
            Decoder::new(V5)
                .decode(&mut bytes::BytesMut::from(&bytes[..]))
                .expect_err(what)
                .reason_code()
        })
        .collect();
    assert!(codes.contains(&ReasonCode::MALFORMED_PACKET));
    assert!(codes.contains(&ReasonCode::PROTOCOL_ERROR));
}

#[test]
fn v311_malformed_input_closes_without_disconnect() {
    let mut h = Harness::connected(V311);

    h.deliver_bytes(&[0x36, 0x05, 0x00, 0x01, b't', 0x00, 0x01]);

    h.assert_nothing_sent();
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::Decode(DecodeError::InvalidQos),
            ..
        }
    );
}

#[test]
fn packets_after_a_malformed_one_in_the_same_read_are_ignored() {
    let mut h = Harness::connected(V5);
    let mut bytes = vec![0x00, 0x00];
    let mut good = bytes::BytesMut::new();
    Packet::Publish(message("t", Q0, b"late"))
        .encode(V5, &mut good)
        .unwrap();
    bytes.extend_from_slice(&good);

    h.deliver_bytes(&bytes);

    h.assert_no_events();
    assert_eq!(h.take_sent().len(), 1);
}

#[test]
fn several_packets_in_one_read_and_one_packet_over_several_reads() {
    let mut h = Harness::connected(V5);
    let mut wire = bytes::BytesMut::new();
    for id in 1..=3 {
        Packet::Publish(publish(id, "t", Q1, b"x"))
            .encode(V5, &mut wire)
            .unwrap();
    }
    let split = wire.len() - 3;

    h.deliver_bytes(&wire[..split]);
    assert_eq!(h.messages().len(), 2);
    h.deliver_bytes(&wire[split..split + 1]);
    h.assert_no_events();
    h.deliver_bytes(&wire[split + 1..]);

    assert_eq!(h.messages().len(), 1);
}

// ----- Topic Aliases -------------------------------------------------------------------------

fn aliased(id: Option<u16>, topic_name: &str, alias: u16, payload: &'static [u8]) -> Packet {
    let publish = match id {
        Some(id) => publish(id, topic_name, Q1, payload),
        None => message(topic_name, Q0, payload),
    };
    Packet::Publish(with_properties(
        publish,
        PublishProperties {
            topic_alias: Some(alias),
            ..PublishProperties::EMPTY
        },
    ))
}

fn accepting_aliases(max: u16) -> Harness {
    let mut opts = options(V5);
    opts = opts.with_topic_alias_maximum(max);
    Harness::connected_with(opts, ConnAckProperties::EMPTY)
}

#[test]
fn a_topic_alias_is_set_then_resolved() {
    let mut h = accepting_aliases(4);

    h.deliver(aliased(None, "sensors/k1/temp", 2, b"21.5"));
    h.deliver(aliased(Some(1), "", 2, b"21.6"));
    h.deliver(aliased(None, "sensors/k2/temp", 2, b"19.0"));
    h.deliver(aliased(None, "", 2, b"19.1"));

    let topics: Vec<String> = h
        .messages()
        .iter()
        .map(|m| m.publish.topic.to_string())
        .collect();
    assert_eq!(
        topics,
        vec![
            "sensors/k1/temp",
            "sensors/k1/temp",
            "sensors/k2/temp",
            "sensors/k2/temp"
        ]
    );
    h.assert_nothing_sent();
}

#[test]
fn refuses_an_unknown_topic_alias() {
    let mut h = accepting_aliases(4);

    h.deliver(aliased(None, "", 3, b"x"));

    h.assert_no_events();
    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::TOPIC_ALIAS_INVALID)]
    );
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::TOPIC_ALIAS_INVALID,
            detail: Violation::TopicAliasInvalid,
        }
    );
}

#[test]
fn refuses_a_topic_alias_above_our_maximum() {
    for (max, alias) in [(4, 5), (0, 1)] {
        let mut h = accepting_aliases(max);

        h.deliver(aliased(None, "a/b", alias, b"x"));

        h.assert_no_events();
        assert_eq!(
            h.take_sent(),
            vec![disconnect(ReasonCode::TOPIC_ALIAS_INVALID)],
            "maximum {max}, alias {alias}"
        );
    }
}

#[test]
fn topic_aliases_are_forgotten_on_a_new_connection() {
    let mut h = accepting_aliases(4);
    h.deliver(aliased(None, "a/b", 1, b"x"));
    h.events();
    h.lose_connection();
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();

    h.deliver(aliased(None, "", 1, b"y"));

    h.assert_no_events();
    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::TOPIC_ALIAS_INVALID)]
    );
}

#[test]
fn a_topic_alias_on_a_qos1_message_still_gets_its_ack() {
    let mut h = accepting_aliases(1);
    h.deliver(aliased(Some(1), "a/b", 1, b"x"));
    h.deliver(aliased(Some(2), "", 1, b"y"));
    let messages = h.messages();
    assert_eq!(messages[1].publish.topic, topic("a/b"));

    for m in &messages {
        h.ack(m.ack.unwrap()).unwrap();
    }

    assert_eq!(h.take_sent(), vec![puback(1), puback(2)]);
    h.assert_no_events();
}

#[test]
fn a_decode_error_with_a_connack_only_code_disconnects_as_malformed() {
    let mut h = Harness::connected(V5);
    // A CONNECT from the server with the protocol name "MQTX": the codec's error
    // maps to 0x84 (Unsupported Protocol Version), which only CONNACK may carry.
    let connect = [
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'X', 0x05, 0x02, 0x00, 0x3C, 0x00, 0x00, 0x00,
    ];
    let decoded = Decoder::new(V5).decode(&mut bytes::BytesMut::from(&connect[..]));
    assert_eq!(decoded.unwrap_err().reason_code(), ReasonCode(0x84));
    h.deliver_bytes(&connect);
    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::MALFORMED_PACKET)]
    );
    let error = h.close_and_expect_reconnect();
    assert_matches!(
        error,
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::MALFORMED_PACKET,
            detail: Violation::Decode(_)
        }
    );
}

#[test]
fn ack_properties_are_dropped_when_they_would_exceed_the_server_maximum_packet_size() {
    let mut connack = ConnAckProperties::EMPTY;
    connack.maximum_packet_size = Some(16);
    let mut h = Harness::connected_with(options(V5), connack);
    h.deliver(publish(1, "t", Q1, b"x"));
    let ticket = h.ticket();
    let mut properties = AckProperties::EMPTY;
    properties.reason_string =
        Some(mqtt_codec::MqttString::try_from("a reason far longer than sixteen bytes").unwrap());
    h.engine
        .ack(h.now, ticket, ReasonCode::UNSPECIFIED_ERROR, properties)
        .unwrap();
    h.flush();
    assert_eq!(
        h.take_sent(),
        vec![puback_rc(
            1,
            ReasonCode::UNSPECIFIED_ERROR,
            AckProperties::EMPTY
        )]
    );
}

#[test]
fn the_pubrec_for_a_repeated_qos2_publish_keeps_its_place_in_the_ack_order() {
    let mut h = Harness::connected(V5);
    // Message 1 (QoS 2) acked: PUBREC 1, awaiting PUBREL.
    h.deliver(publish(1, "t", Q2, b"one"));
    let one = h.ticket();
    h.ack(one).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(1)]);
    // Message 2 (QoS 1) arrives, not acked yet; then message 1 again.
    h.deliver(publish(2, "t", Q1, b"two"));
    let two = h.ticket();
    h.deliver(dup(publish(1, "t", Q2, b"one")));
    // Not delivered again, and its PUBREC waits behind message 2's PUBACK.
    assert!(h.messages().is_empty());
    h.assert_nothing_sent();
    assert_eq!(h.engine.incoming_inflight(), 2, "a repeat takes no slot");
    h.ack(two).unwrap();
    assert_eq!(h.take_sent(), vec![puback(2), pubrec(1)]);
    // The flow of message 1 then completes normally.
    h.deliver(pubrel(1));
    assert_eq!(h.take_sent(), vec![pubcomp(1)]);
    assert_eq!(h.engine.incoming_inflight(), 0);
}

// ----- Payload Format Indicator (3.3.2.3.2) ----------------------------------------------

/// A PUBLISH whose Payload Format Indicator says UTF-8 (`format` 1) or bytes (0).
fn formatted(
    id: Option<u16>,
    qos: QoS,
    format: u8,
    payload: &'static [u8],
) -> mqtt_codec::packet::Publish {
    let publish = match id {
        Some(id) => publish(id, "text/t", qos, payload),
        None => message("text/t", qos, payload),
    };
    with_properties(
        publish,
        PublishProperties {
            payload_format_indicator: Some(format),
            ..PublishProperties::EMPTY
        },
    )
}

const NOT_UTF8: &[u8] = b"caf\xc3";

#[test]
fn a_utf8_payload_marked_utf8_is_delivered() {
    let mut h = Harness::connected(V5);
    h.deliver(formatted(None, Q0, 1, "café".as_bytes()));
    h.deliver(formatted(Some(1), Q1, 1, b"plain"));
    // Format 0: unspecified bytes, never checked.
    h.deliver(formatted(None, Q0, 0, NOT_UTF8));
    assert_eq!(h.messages().len(), 3);
}

#[test]
fn qos1_and_qos2_with_an_invalid_utf8_payload_are_acked_with_0x99_and_not_delivered() {
    let mut h = Harness::connected(V5);

    h.deliver(formatted(Some(1), Q1, 1, NOT_UTF8));
    h.deliver(formatted(Some(2), Q2, 1, NOT_UTF8));

    assert_eq!(
        h.take_sent(),
        vec![
            puback_rc(1, ReasonCode::PAYLOAD_FORMAT_INVALID, AckProperties::EMPTY),
            pubrec_rc(2, ReasonCode::PAYLOAD_FORMAT_INVALID, AckProperties::EMPTY),
        ]
    );
    let events = h.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    for (event, id) in events.iter().zip([1, 2]) {
        assert_matches!(
            event,
            Event::MessageRefused { topic, packet_id: Some(p), reason }
                if topic.as_str() == "text/t"
                    && *p == pid(id)
                    && *reason == ReasonCode::PAYLOAD_FORMAT_INVALID
        );
    }
    // The QoS 2 flow ended with the failure PUBREC [MQTT-4.3.3-4]: nothing is
    // awaited, and the same identifier is a new message afterwards.
    assert_eq!(h.engine.incoming_inflight(), 0);
    h.deliver(publish(2, "text/t", Q2, b"fine"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(2)]);
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn a_refused_message_keeps_its_ack_in_arrival_order() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", Q1, b"first"));
    let first = h.ticket();

    h.deliver(formatted(Some(2), Q1, 1, NOT_UTF8));
    // The 0x99 PUBACK waits for the ack of the message before it [MQTT-4.6.0-2].
    h.assert_nothing_sent();
    assert_matches!(h.events().as_slice(), [Event::MessageRefused { .. }]);

    h.ack(first).unwrap();
    assert_eq!(
        h.take_sent(),
        vec![
            puback(1),
            puback_rc(2, ReasonCode::PAYLOAD_FORMAT_INVALID, AckProperties::EMPTY),
        ]
    );
}

#[test]
fn qos0_with_an_invalid_utf8_payload_is_dropped_and_reported() {
    let mut h = Harness::connected(V5);

    h.deliver(formatted(None, Q0, 1, NOT_UTF8));

    h.assert_nothing_sent();
    assert_matches!(
        h.events().as_slice(),
        [Event::MessageRefused {
            packet_id: None,
            reason: ReasonCode::PAYLOAD_FORMAT_INVALID,
            ..
        }]
    );
    assert_eq!(h.engine.state(), State::Connected);
}
