//! Engine: keep-alive in virtual time. PINGREQ after Keep Alive seconds without
//! sending, the PINGRESP deadline, the server's Keep Alive, keep-alive off, and
//! paused reading.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use std::time::Duration;

use engine_common::*;
use mqtt_client::engine::State;
use mqtt_client::{ConnectionError, Initiator, ProtocolVersion, QoS};
use mqtt_codec::packet::Packet;
use mqtt_codec::property::ConnAckProperties;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Advances to `at` (since the origin) and returns what was written on the way.
fn run_until(h: &mut Harness, at: Duration) -> Vec<Packet> {
    let until = h.start + at;
    h.advance_until(until);
    h.take_sent()
}

#[test]
fn a_pingreq_goes_out_after_keep_alive_seconds_without_sending() {
    for version in [V5, V311] {
        let mut h = Harness::connected(version);
        assert_eq!(h.engine.keep_alive(), 60);
        assert_eq!(h.engine.poll_timeout(), Some(h.start + secs(60)));

        assert_eq!(run_until(&mut h, secs(60) - MS), vec![]);
        assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);

        h.deliver(Packet::PingResp);
        assert_eq!(run_until(&mut h, secs(120) - MS), vec![]);
        assert_eq!(run_until(&mut h, secs(120)), vec![Packet::PingReq]);
        assert_eq!(h.engine.state(), State::Connected);
    }
}

#[test]
fn the_interval_counts_from_the_connect_packet() {
    let mut h = Harness::new(options(V5));
    h.open();
    h.advance(secs(5));
    h.connack(false, ConnAckProperties::EMPTY);
    h.events();

    assert_eq!(run_until(&mut h, secs(60) - MS), vec![]);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
}

#[test]
fn sending_starts_the_interval_again() {
    let mut h = Harness::connected(V5);
    h.advance(secs(30));
    h.publish(message("t", QoS::AtMostOnce, b"x"));
    h.take_sent();

    assert_eq!(run_until(&mut h, secs(90) - MS), vec![]);
    assert_eq!(run_until(&mut h, secs(90)), vec![Packet::PingReq]);
}

#[test]
fn sending_an_ack_starts_the_interval_again() {
    let mut h = Harness::connected(V5);
    h.deliver(publish(1, "t", QoS::AtLeastOnce, b"x"));
    let ticket = h.ticket();
    h.advance(secs(45));
    h.ack(ticket).unwrap();
    h.take_sent();

    assert_eq!(run_until(&mut h, secs(105) - MS), vec![]);
    assert_eq!(run_until(&mut h, secs(105)), vec![Packet::PingReq]);
}

#[test]
fn receiving_does_not_start_the_interval_again() {
    let mut h = Harness::connected(V5);
    h.advance(secs(30));
    h.deliver(message("t", QoS::AtMostOnce, b"x"));
    h.advance(secs(20));
    h.deliver(message("t", QoS::AtMostOnce, b"x"));
    h.events();

    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
}

#[test]
fn a_missing_pingresp_ends_the_connection_exactly_at_the_ping_timeout() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);

    h.advance(secs(10) - MS);
    assert_eq!(h.engine.state(), State::Connected);
    h.advance(MS);

    assert_eq!(h.engine.state(), State::Closing);
    assert_eq!(h.elapsed(), secs(70));
    // The client has no DISCONNECT reason for this: it just closes.
    h.assert_nothing_sent();
    let error = h.close_and_expect_reconnect();
    assert_matches!(error, ConnectionError::KeepAliveTimeout);
    assert_eq!(error.initiator(), Initiator::Local);
}

#[test]
fn other_packets_do_not_answer_a_pingreq() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    h.advance(secs(5));
    h.deliver(message("t", QoS::AtMostOnce, b"x"));
    h.deliver(puback(9));
    h.events();

    h.advance(secs(5));

    assert_eq!(h.engine.state(), State::Closing);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::KeepAliveTimeout
    );
}

#[test]
fn a_pingresp_in_time_keeps_the_connection() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    h.advance(secs(10) - MS);

    h.deliver(Packet::PingResp);

    assert_eq!(run_until(&mut h, secs(120)), vec![Packet::PingReq]);
    h.advance(secs(9));
    h.deliver(Packet::PingResp);
    assert_eq!(run_until(&mut h, secs(180)), vec![Packet::PingReq]);
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn a_repeated_pingreq_does_not_move_the_pingresp_deadline() {
    let mut opts = options(V5).with_keep_alive(5);
    opts = opts.with_ping_timeout(secs(8));
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);

    assert_eq!(run_until(&mut h, secs(5)), vec![Packet::PingReq]);
    assert_eq!(run_until(&mut h, secs(10)), vec![Packet::PingReq]);
    h.advance_until(h.start + secs(13) - MS);
    assert_eq!(h.engine.state(), State::Connected);
    h.advance(MS);

    assert_eq!(h.engine.state(), State::Closing);
    assert_eq!(h.elapsed(), secs(13));
}

#[test]
fn an_unsolicited_pingresp_is_harmless() {
    let mut h = Harness::connected(V5);

    h.deliver(Packet::PingResp);

    h.assert_nothing_sent();
    h.assert_no_events();
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
}

#[test]
fn the_server_keep_alive_overrides_ours() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            server_keep_alive: Some(10),
            ..ConnAckProperties::EMPTY
        },
    );

    assert_eq!(h.engine.keep_alive(), 10);
    assert_eq!(run_until(&mut h, secs(10)), vec![Packet::PingReq]);
    h.deliver(Packet::PingResp);
    assert_eq!(run_until(&mut h, secs(20)), vec![Packet::PingReq]);
}

#[test]
fn a_server_keep_alive_of_zero_turns_pings_off() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            server_keep_alive: Some(0),
            ..ConnAckProperties::EMPTY
        },
    );

    assert_eq!(h.engine.keep_alive(), 0);
    assert_eq!(h.engine.poll_timeout(), None);
    h.advance(secs(86_400));
    h.assert_nothing_sent();
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn keep_alive_zero_never_pings() {
    for version in [V5, V311] {
        let mut h = Harness::connected_with(
            options(version).with_keep_alive(0),
            ConnAckProperties::EMPTY,
        );

        assert_eq!(h.engine.poll_timeout(), None);
        h.publish(message("t", QoS::AtMostOnce, b"x"));
        h.take_sent();
        assert_eq!(h.engine.poll_timeout(), None);
        h.advance(secs(86_400));

        h.assert_nothing_sent();
        assert_eq!(h.engine.state(), State::Connected);
    }
}

#[test]
fn paused_reading_suspends_the_pingresp_deadline_keeping_what_it_had_left() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    h.advance(secs(5));

    h.engine.set_reading_paused(h.now, true);

    // The answer may be sitting unread: no deadline, but the PINGREQs go on.
    assert_eq!(
        run_until(&mut h, secs(200)),
        vec![Packet::PingReq, Packet::PingReq]
    );
    assert_eq!(h.engine.state(), State::Connected);

    // Reading again: the deadline resumes with the 5 s it had left, not from zero,
    // so a server that never answers is found even when reading keeps pausing.
    h.engine.set_reading_paused(h.now, false);
    h.advance(secs(5) - MS);
    assert_eq!(h.engine.state(), State::Connected);
    h.advance(MS);
    assert_eq!(h.engine.state(), State::Closing);
    assert_eq!(h.elapsed(), secs(205));
}

#[test]
fn a_pingreq_sent_while_paused_gets_its_deadline_on_resume() {
    let mut h = Harness::connected(V5);
    h.advance(secs(30));
    h.engine.set_reading_paused(h.now, true);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    h.advance(secs(40));

    h.engine.set_reading_paused(h.now, false);
    h.advance(secs(5));
    h.deliver(Packet::PingResp);

    h.advance(secs(10));
    assert_eq!(h.engine.state(), State::Connected);
    h.assert_nothing_sent();
    assert_eq!(run_until(&mut h, secs(120)), vec![Packet::PingReq]);
}

#[test]
fn resuming_with_nothing_outstanding_arms_no_deadline() {
    let mut h = Harness::connected(V5);
    h.engine.set_reading_paused(h.now, true);
    h.engine.set_reading_paused(h.now, false);

    assert_eq!(h.engine.poll_timeout(), Some(h.start + secs(60)));
}

#[test]
fn the_interval_starts_again_on_a_new_connection() {
    let mut h = Harness::connected(V5);
    h.advance(secs(30));
    h.lose_connection();
    assert_eq!(
        h.engine.poll_timeout(),
        Some(h.now + SEC),
        "only the backoff"
    );

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();

    assert_eq!(h.elapsed(), secs(31));
    assert_eq!(run_until(&mut h, secs(91) - MS), vec![]);
    assert_eq!(run_until(&mut h, secs(91)), vec![Packet::PingReq]);
}

#[test]
fn a_pingresp_outstanding_at_disconnection_is_forgotten() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();

    // No PINGRESP deadline carried over: the next event is the next PINGREQ.
    assert_eq!(h.engine.poll_timeout(), Some(h.now + secs(60)));
    assert_eq!(run_until(&mut h, secs(121)), vec![Packet::PingReq]);
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn a_server_that_never_answers_is_found_even_when_reading_keeps_pausing() {
    let mut h = Harness::connected(V5);
    assert_eq!(run_until(&mut h, secs(60)), vec![Packet::PingReq]);
    // Paused for 1 s out of every 2 s: only reading time counts, 10 s of it.
    for _ in 0..9 {
        h.advance(secs(1));
        h.engine.set_reading_paused(h.now, true);
        h.advance(secs(1));
        h.engine.set_reading_paused(h.now, false);
        assert_eq!(h.engine.state(), State::Connected);
    }
    h.advance(secs(1));
    assert_eq!(h.engine.state(), State::Closing);
    assert_eq!(h.elapsed(), secs(60 + 19));
}
