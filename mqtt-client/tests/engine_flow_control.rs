//! Engine: flow control both ways. The outgoing window is min(server Receive
//! Maximum, `max_inflight`), resends on a resumed session respect the new
//! server's window, and the Receive Maximum we advertise is enforced on the server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::Refusal;
use mqtt_client::{ConnectionError, ProtocolVersion, QoS, Violation};
use mqtt_codec::packet::Packet;
use mqtt_codec::property::ConnAckProperties;
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;
const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn with_max_inflight(version: ProtocolVersion, max_inflight: u16) -> mqtt_client::Options {
    let mut opts = options(version);
    opts = opts.with_max_inflight(max_inflight);
    opts
}

// ----- outgoing window -----------------------------------------------------------------

#[test]
fn the_window_is_our_max_inflight_when_the_server_takes_more() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 3), receive_maximum(10));
    assert_eq!(h.engine.send_quota(), 3);

    for _ in 0..3 {
        h.publish(message("t", Q1, b"x"));
    }

    assert!(!h.engine.can_publish(Q1));
    assert!(!h.engine.can_publish(Q2));
    assert!(h.engine.can_publish(Q0), "QoS 0 takes no slot");
    assert_eq!(h.take_sent().len(), 3);
    h.deliver(puback(2));
    assert!(h.engine.can_publish(Q1));
}

#[test]
fn the_window_is_the_server_receive_maximum_when_smaller() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 10), receive_maximum(2));
    assert_eq!(h.engine.send_quota(), 2);

    h.publish(message("t", Q1, b"x"));
    h.publish(message("t", Q2, b"x"));

    assert!(!h.engine.can_publish(Q1));
    // A QoS 2 message keeps its slot until PUBCOMP, not PUBREC.
    h.deliver(pubrec(2));
    assert!(!h.engine.can_publish(Q1));
    h.deliver(pubcomp(2));
    assert!(h.engine.can_publish(Q1));
}

#[test]
fn a_publish_offered_to_a_full_window_is_refused_with_nothing_written() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 1), ConnAckProperties::EMPTY);
    h.publish(message("t", Q1, b"x"));
    h.take_sent();

    let refused = h.try_publish(message("t", Q1, b"y")).unwrap_err();

    assert_matches!(refused.error, Refusal::NotReady);
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 1);
    assert_eq!(h.engine.inflight(), 1);
}

#[test]
fn v311_uses_max_inflight_alone() {
    let mut h = Harness::connected_with(with_max_inflight(V311, 2), ConnAckProperties::EMPTY);
    assert_eq!(h.engine.send_quota(), 2);
    h.publish(message("t", Q1, b"x"));
    h.publish(message("t", Q1, b"x"));
    assert!(!h.engine.can_publish(Q1));
}

#[test]
fn a_lower_receive_maximum_on_resume_limits_how_many_are_resent_at_once() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 10), receive_maximum(4));
    for payload in [b"1", b"2", b"3", b"4"] {
        h.publish(message("t", Q1, payload));
    }
    h.take_sent();
    h.lose_connection();

    h.reconnect(true, receive_maximum(2));

    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(dup(publish(1, "t", Q1, b"1"))),
            Packet::Publish(dup(publish(2, "t", Q1, b"2"))),
        ]
    );
    h.events();
    assert!(!h.engine.can_publish(Q1), "resends are pending");
    assert!(
        !h.engine.can_publish(Q0),
        "nothing new goes before the resends"
    );

    h.deliver(puback(1));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(3, "t", Q1, b"3")))]
    );
    assert!(!h.engine.can_publish(Q1));
    h.deliver(puback(2));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(4, "t", Q1, b"4")))]
    );
    // All resent, but the window (2) is full.
    assert!(!h.engine.can_publish(Q1));
    assert!(h.engine.can_publish(Q0));
    h.deliver(puback(3));
    assert!(h.engine.can_publish(Q1));
    assert_eq!(h.publish_done().len(), 3);
}

#[test]
fn pubrels_pending_resend_also_wait_for_the_window() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 10), ConnAckProperties::EMPTY);
    h.publish(message("t", Q2, b"1"));
    h.publish(message("t", Q2, b"2"));
    h.deliver(pubrec(1));
    h.deliver(pubrec(2));
    h.take_sent();
    h.lose_connection();

    h.reconnect(true, receive_maximum(1));

    assert_eq!(h.take_sent(), vec![pubrel(1)]);
    h.events();
    h.deliver(pubcomp(1));
    assert_eq!(h.take_sent(), vec![pubrel(2)]);
    h.deliver(pubcomp(2));
    assert_eq!(h.publish_done().len(), 2);
    assert!(h.engine.can_publish(Q1));
}

#[test]
fn acks_for_messages_still_waiting_to_be_resent_complete_them_within_the_window() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 10), ConnAckProperties::EMPTY);
    let (t1, _) = h.publish_id(message("t", Q1, b"1"));
    let (t2, _) = h.publish_id(message("t", Q1, b"2"));
    let (t3, _) = h.publish_id(message("t", Q1, b"3"));
    let (t4, _) = h.publish_id(message("t", Q1, b"4"));
    h.take_sent();
    h.lose_connection();
    h.reconnect(true, receive_maximum(1));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(1, "t", Q1, b"1")))]
    );
    h.events();

    // The server acknowledges messages not yet resent on this connection (it had
    // them from the last one). They complete, and the window of 1 stays full
    // with message 1: nothing more goes out.
    h.deliver(puback(4));
    h.assert_nothing_sent();
    h.deliver(puback(3));
    h.assert_nothing_sent();

    let done = h.publish_done();
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![t4, t3]
    );
    assert!(!h.engine.can_publish(Q1), "1 is in flight, window 1");
    h.deliver(puback(1));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(2, "t", Q1, b"2")))]
    );
    h.deliver(puback(2));
    h.assert_nothing_sent();
    let done = h.publish_done();
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![t1, t2]
    );
    assert!(h.engine.can_publish(Q1));
    assert_eq!(h.engine.inflight(), 0);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

// ----- incoming: our Receive Maximum ----------------------------------------------------

fn receiving(receive_max: u16) -> Harness {
    let mut opts = options(V5);
    opts = opts.with_receive_maximum(receive_max);
    Harness::connected_with(opts, ConnAckProperties::EMPTY)
}

#[test]
fn refuses_a_server_exceeding_our_receive_maximum() {
    let mut h = receiving(2);
    h.deliver(publish(1, "t", Q1, b"1"));
    h.deliver(publish(2, "t", Q2, b"2"));
    assert_eq!(h.messages().len(), 2);

    h.deliver(publish(3, "t", Q1, b"3"));

    assert_eq!(
        h.take_sent(),
        vec![disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)]
    );
    let error = h.close_and_expect_reconnect();
    assert_matches!(
        error,
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            detail: Violation::ReceiveMaximumExceeded,
        }
    );
}

#[test]
fn qos0_messages_do_not_count_against_receive_maximum() {
    let mut h = receiving(1);
    h.deliver(publish(1, "t", Q1, b"1"));
    for _ in 0..5 {
        h.deliver(message("t", Q0, b"0"));
    }
    assert_eq!(h.messages().len(), 6);
    h.assert_nothing_sent();
}

#[test]
fn an_ack_on_the_wire_frees_a_receive_slot() {
    let mut h = receiving(1);
    h.deliver(publish(1, "t", Q1, b"1"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![puback(1)]);

    h.deliver(publish(2, "t", Q1, b"2"));

    assert_eq!(h.messages().len(), 1);
    h.assert_nothing_sent();
    assert_eq!(h.engine.state(), mqtt_client::engine::State::Connected);
}

#[test]
fn a_qos2_message_holds_its_receive_slot_until_pubcomp() {
    let mut h = receiving(1);
    h.deliver(publish(1, "t", Q2, b"1"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    assert_eq!(h.take_sent(), vec![pubrec(1)]);
    assert_eq!(h.engine.incoming_inflight(), 1);

    // Still awaiting PUBREL: a second message exceeds the maximum of 1.
    let mut probe = receiving(1);
    probe.deliver(publish(1, "t", Q2, b"1"));
    let t = probe.ticket();
    probe.ack(t).unwrap();
    probe.take_sent();
    probe.deliver(publish(2, "t", Q1, b"2"));
    assert_eq!(
        probe.take_sent(),
        vec![disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)]
    );

    // After PUBREL/PUBCOMP the slot is free.
    h.deliver(pubrel(1));
    assert_eq!(h.take_sent(), vec![pubcomp(1)]);
    assert_eq!(h.engine.incoming_inflight(), 0);
    h.deliver(publish(2, "t", Q1, b"2"));
    assert_eq!(h.messages().len(), 1);
    h.assert_nothing_sent();
}

#[test]
fn a_redelivered_unacked_message_takes_no_second_slot() {
    let mut h = receiving(1);
    h.deliver(publish(1, "t", Q1, b"1"));
    assert_eq!(h.messages().len(), 1);

    h.deliver(dup(publish(1, "t", Q1, b"1")));

    h.assert_no_events();
    h.assert_nothing_sent();
    assert_eq!(h.engine.incoming_inflight(), 1);
}

#[test]
fn v311_has_no_receive_maximum_to_enforce() {
    let mut opts = options(V311);
    opts = opts.with_receive_maximum(1);
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);

    for id in 1..=5 {
        h.deliver(publish(id, "t", Q1, b"x"));
    }

    assert_eq!(h.messages().len(), 5);
    h.assert_nothing_sent();
}

#[test]
fn acks_are_never_held_back_by_a_full_outgoing_window() {
    let mut h = Harness::connected_with(with_max_inflight(V5, 1), receive_maximum(1));
    h.publish(message("out", Q1, b"x"));
    h.take_sent();
    assert!(!h.engine.can_publish(Q1));
    h.deliver(publish(7, "in", Q1, b"y"));
    let ticket = h.ticket();

    h.ack(ticket).unwrap();

    assert_eq!(h.take_sent(), vec![puback(7)]);
    h.assert_no_events();
}

#[test]
fn a_lenient_client_takes_and_counts_an_overrun_and_still_acks_in_order() {
    let mut opts = options(V5);
    opts = opts.with_receive_maximum(2);
    opts = opts.with_strict_receive_maximum(false);
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);
    for id in 1..=4 {
        h.deliver(publish(id, "t", Q1, b"x"));
    }
    let messages = h.messages();
    assert_eq!(messages.len(), 4, "the overrun is taken, not refused");
    h.assert_nothing_sent();
    assert_eq!(h.engine.receive_maximum_overruns(), 2);
    assert_eq!(h.engine.state(), mqtt_client::engine::State::Connected);
    // Acked last to first: the PUBACKs still follow the arrival order.
    let tickets: Vec<_> = messages.iter().map(|m| m.ack.unwrap()).collect();
    for t in tickets.iter().rev() {
        h.ack(*t).unwrap();
    }
    assert_eq!(
        h.take_sent(),
        vec![puback(1), puback(2), puback(3), puback(4)]
    );
}
