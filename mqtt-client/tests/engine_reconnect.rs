//! Engine: reconnection in virtual time. The backoff schedule with and without
//! jitter, attempt counting and its reset, giving up, reconnection turned off,
//! and when the engine wants a transport.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use std::io;
use std::time::Duration;

use engine_common::*;
use mqtt_client::engine::{Event, State};
use mqtt_client::{Backoff, ConnectionError, Options, ProtocolVersion, PublishError, QoS};
use mqtt_codec::packet::ConnAck;
use mqtt_codec::property::ConnAckProperties;
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;

fn backoff(initial_ms: u64, max_ms: u64, multiplier: f64) -> Backoff {
    Backoff::default()
        .with_initial(Duration::from_millis(initial_ms))
        .with_max(Duration::from_millis(max_ms))
        .with_multiplier(multiplier)
        .with_max_attempts(None)
        .with_jitter(false)
        .with_enabled(true)
        // The count starts again at every CONNACK here; `stable_after` has its own tests.
        .with_stable_after(Duration::ZERO)
}

fn with_backoff(b: Backoff) -> Options {
    options(V5).with_reconnect(b)
}

fn refused() -> ConnectionError {
    ConnectionError::io(io::Error::new(
        io::ErrorKind::ConnectionRefused,
        "connection refused",
    ))
}

/// The driver could not open a transport: the engine is told so from Idle.
fn fail_open(h: &mut Harness) {
    assert!(h.engine.wants_transport(h.now));
    h.engine.handle_transport_error(h.now, refused());
    h.flush();
}

/// The single `Reconnecting` event left, as (attempt, delay).
fn reconnecting(h: &mut Harness) -> (u32, Duration) {
    let events = h.events();
    match events.as_slice() {
        [Event::Reconnecting { attempt, delay, .. }] => (*attempt, *delay),
        [Event::ConnectionLost(_), Event::Reconnecting { attempt, delay, .. }] => {
            (*attempt, *delay)
        }
        other => panic!("expected Reconnecting, got {other:#?}"),
    }
}

/// Delays of `n` reconnection attempts that all fail to open.
fn delays(h: &mut Harness, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, delay) = reconnecting(h);
        let waited = h.advance_to_reconnect();
        assert_eq!(waited, delay, "the deadline is the announced delay");
        out.push(delay);
        fail_open(h);
    }
    out
}

#[test]
fn without_jitter_the_schedule_is_initial_times_multiplier_capped_at_max() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 10_000, 2.0)),
        ConnAckProperties::EMPTY,
    );
    h.drop_transport(reset());

    let got = delays(&mut h, 7);

    let ms = |n| Duration::from_millis(n);
    assert_eq!(
        got,
        vec![
            ms(1_000),
            ms(2_000),
            ms(4_000),
            ms(8_000),
            ms(10_000),
            ms(10_000),
            ms(10_000)
        ]
    );
}

#[test]
fn reconnecting_events_number_the_attempts() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(100, 60_000, 3.0)),
        ConnAckProperties::EMPTY,
    );

    h.drop_transport(reset());

    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::ConnectionLost(ConnectionError::Io(_)),
            Event::Reconnecting { attempt: 1, delay, .. }
        ] if *delay == Duration::from_millis(100)
    );
    for (attempt, ms) in [(2, 300), (3, 900), (4, 2_700)] {
        h.advance_to_reconnect();
        fail_open(&mut h);
        assert_eq!(reconnecting(&mut h), (attempt, Duration::from_millis(ms)));
    }
}

#[test]
fn every_kind_of_failed_attempt_counts() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0)),
        ConnAckProperties::EMPTY,
    );
    h.drop_transport(reset());
    assert_eq!(reconnecting(&mut h), (1, SEC));

    // Attempt 1: the transport does not open.
    h.advance_to_reconnect();
    fail_open(&mut h);
    assert_eq!(reconnecting(&mut h), (2, SEC * 2));
    // Attempt 2: no CONNACK in time.
    h.advance_to_reconnect();
    h.open();
    h.advance_to_next_deadline();
    assert!(h.close_if_done());
    assert_eq!(reconnecting(&mut h), (3, SEC * 4));
    // Attempt 3: refused, server busy.
    h.advance_to_reconnect();
    h.open();
    h.deliver(ConnAck {
        session_present: false,
        reason_code: ReasonCode::SERVER_BUSY,
        properties: ConnAckProperties::EMPTY,
    });
    assert!(h.close_if_done());
    assert_eq!(reconnecting(&mut h), (4, SEC * 8));
    // Attempt 4: the transport drops before CONNACK.
    h.advance_to_reconnect();
    h.open();
    h.drop_transport(reset());
    assert_eq!(reconnecting(&mut h), (5, SEC * 16));
}

#[test]
fn with_jitter_each_delay_is_in_the_upper_half_and_fixed_by_the_seed() {
    let run = |seed: u64| {
        let mut opts = with_backoff(backoff(1_000, 30_000, 2.0).with_jitter(true));
        opts = opts.with_jitter_seed(seed);
        let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);
        h.drop_transport(reset());
        delays(&mut h, 12)
    };
    let nominal = backoff(1_000, 30_000, 2.0);

    let first = run(42);

    for (i, d) in first.iter().enumerate() {
        let n = nominal.nominal_delay(u32::try_from(i + 1).unwrap());
        assert!(
            *d >= n / 2 && *d <= n,
            "attempt {}: {d:?} outside [{:?}, {n:?}]",
            i + 1,
            n / 2
        );
    }
    assert_eq!(run(42), first, "same seed, same delays");
    assert_ne!(run(1_042), first, "another seed, other delays");
    let distinct: std::collections::HashSet<_> = first
        .iter()
        .zip(1u32..)
        .map(|(d, i)| d.as_nanos() * 1_000 / nominal.nominal_delay(i).as_nanos())
        .collect();
    assert!(distinct.len() > 1, "the jitter varies: {first:?}");
}

#[test]
fn attempts_count_from_one_again_after_a_connack() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0)),
        ConnAckProperties::EMPTY,
    );
    h.drop_transport(reset());
    delays(&mut h, 3);
    assert_eq!(reconnecting(&mut h), (4, SEC * 8));

    h.reconnect(true, ConnAckProperties::EMPTY);
    assert_matches!(
        h.events().as_slice(),
        [Event::Connected {
            session_present: true
        }]
    );
    h.drop_transport(reset());

    assert_eq!(reconnecting(&mut h), (1, SEC));
}

#[test]
fn the_first_connection_failing_to_open_is_attempt_one() {
    let mut h = Harness::new(with_backoff(backoff(1_000, 60_000, 2.0)));

    fail_open(&mut h);

    assert_eq!(reconnecting(&mut h), (1, SEC));
    assert_eq!(h.engine.state(), State::Idle);
}

#[test]
fn wants_a_transport_only_once_the_delay_has_passed() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_500, 60_000, 2.0)),
        ConnAckProperties::EMPTY,
    );
    h.drop_transport(reset());
    h.events();
    let lost_at = h.now;

    assert!(!h.engine.wants_transport(h.now));
    assert_eq!(
        h.engine.poll_timeout(),
        Some(lost_at + Duration::from_millis(1_500))
    );
    h.advance(Duration::from_millis(1_499));
    assert!(!h.engine.wants_transport(h.now));
    // A driver that checks without having handled the deadline yet.
    assert!(h
        .engine
        .wants_transport(lost_at + Duration::from_millis(1_500)));
    h.advance(MS);
    assert!(h.engine.wants_transport(h.now));
    h.open();
    assert!(!h.engine.wants_transport(h.now));
}

#[test]
fn gives_up_after_max_attempts_failed_in_a_row() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0).with_max_attempts(Some(3))),
        ConnAckProperties::EMPTY,
    );
    let (token, _) = h.publish_id(message("t", QoS::AtLeastOnce, b"x"));
    h.drop_transport(reset());
    assert_eq!(reconnecting(&mut h), (1, SEC));

    for attempt in 2..=3 {
        h.advance_to_reconnect();
        fail_open(&mut h);
        assert_eq!(reconnecting(&mut h).0, attempt);
    }
    h.advance_to_reconnect();
    fail_open(&mut h);

    let events = h.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_matches!(
        &events[0],
        Event::PublishDone { token: t, result: Err(PublishError::Closed) } if *t == token
    );
    assert_matches!(events[1], Event::Closed(ConnectionError::Io(_)));
    assert!(h.engine.is_closed());
    assert!(!h.engine.wants_transport(h.now + SEC * 3600));
    assert_eq!(h.engine.poll_timeout(), None);
}

#[test]
fn max_attempts_counts_again_after_a_connack() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0).with_max_attempts(Some(1))),
        ConnAckProperties::EMPTY,
    );
    for _ in 0..3 {
        h.lose_connection();
        h.reconnect(true, ConnAckProperties::EMPTY);
        h.events();
    }
    h.drop_transport(reset());
    h.events();
    h.advance_to_reconnect();
    fail_open(&mut h);

    assert_matches!(
        h.events().as_slice(),
        [Event::Closed(ConnectionError::Io(_))]
    );
}

#[test]
fn with_reconnection_off_the_first_loss_closes() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0).with_enabled(false)),
        ConnAckProperties::EMPTY,
    );
    let (token, _) = h.publish_id(message("t", QoS::ExactlyOnce, b"x"));
    h.subscribe(&[("a", QoS::AtLeastOnce)]);

    h.drop_transport(reset());

    let events = h.events();
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_matches!(events[0], Event::ConnectionLost(ConnectionError::Io(_)));
    assert_matches!(
        &events[1],
        Event::PublishDone { token: t, result: Err(PublishError::Closed) } if *t == token
    );
    assert_matches!(
        events[2],
        Event::SubscribeDone {
            result: Err(mqtt_client::RequestError::Closed),
            ..
        }
    );
    assert_matches!(events[3], Event::Closed(ConnectionError::Io(_)));
    assert!(h.engine.is_closed());
    assert!(!h.engine.wants_transport(h.now + SEC * 3600));
}

#[test]
fn with_reconnection_off_a_failed_first_open_closes() {
    let mut h = Harness::new(with_backoff(
        backoff(1_000, 60_000, 2.0).with_enabled(false),
    ));

    fail_open(&mut h);

    assert_matches!(
        h.events().as_slice(),
        [Event::Closed(ConnectionError::Io(_))]
    );
}

#[test]
fn nominal_delays_are_sane_at_the_edges() {
    let b = backoff(500, 30_000, 2.0);
    assert_eq!(b.nominal_delay(1), Duration::from_millis(500));
    assert_eq!(b.nominal_delay(0), Duration::from_millis(500));
    assert_eq!(b.nominal_delay(7), Duration::from_millis(30_000));
    assert_eq!(b.nominal_delay(u32::MAX), Duration::from_millis(30_000));
    // A multiplier below 1 does not shrink the delays.
    let flat = backoff(500, 30_000, 0.5);
    assert_eq!(flat.nominal_delay(5), Duration::from_millis(500));
}

#[test]
fn a_closed_engine_ignores_further_transport_news() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0).with_enabled(false)),
        ConnAckProperties::EMPTY,
    );
    h.drop_transport(reset());
    h.events();

    h.engine.handle_transport_open(h.now);
    h.engine.handle_transport_error(h.now, reset());
    h.engine.handle_timeout(h.now + SEC * 3600);
    h.flush();

    h.assert_nothing_sent();
    h.assert_no_events();
    assert!(h.engine.is_closed());
}

#[test]
fn a_connection_dropped_right_after_its_connack_does_not_reset_the_count() {
    let mut h = Harness::connected_with(
        with_backoff(backoff(1_000, 60_000, 2.0).with_stable_after(SEC * 5)),
        ConnAckProperties::EMPTY,
    );
    // Established for longer than `stable_after`: the first loss is attempt 1.
    h.advance(SEC * 6);
    h.drop_transport(reset());
    assert_eq!(reconnecting(&mut h), (1, SEC));
    // Each later connection is accepted and dropped at once: the delay keeps growing.
    for (attempt, delay) in [(2, SEC * 2), (3, SEC * 4), (4, SEC * 8)] {
        h.reconnect(true, ConnAckProperties::EMPTY);
        h.events();
        h.advance(SEC);
        h.drop_transport(reset());
        assert_eq!(reconnecting(&mut h), (attempt, delay));
    }
    // One that lasts resets it.
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.advance(SEC * 5);
    h.drop_transport(reset());
    assert_eq!(reconnecting(&mut h), (1, SEC));
}

// ----- several servers: rounds -------------------------------------------------

/// The `Reconnecting` event left, as (attempt, delay, server).
fn reconnecting_to(h: &mut Harness) -> (u32, Duration, usize) {
    let events = h.events();
    match events.as_slice() {
        [Event::Reconnecting {
            attempt,
            delay,
            server,
        }]
        | [Event::ConnectionLost(_), Event::Reconnecting {
            attempt,
            delay,
            server,
        }] => (*attempt, *delay, *server),
        other => panic!("expected Reconnecting, got {other:#?}"),
    }
}

/// With three servers, a failed attempt moves to the next server at once; the
/// backoff applies only when the round is back where it started, and counts
/// rounds (`max_attempts` 2: the first round and two more, then closed).
#[test]
fn a_failed_attempt_tries_the_next_server_at_once_and_backoff_applies_between_rounds() {
    let b = backoff(1_000, 10_000, 2.0).with_max_attempts(Some(2));
    let mut h = Harness::new(with_backoff(b));
    h.engine.set_server_count(3);
    assert_eq!(h.engine.server_index(), 0);
    let ms = Duration::from_millis;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let server = h.engine.server_index();
        fail_open(&mut h);
        let events = h.events();
        match events.as_slice() {
            [Event::Reconnecting {
                attempt,
                delay,
                server: next,
            }] => {
                seen.push((server, *attempt, *delay, *next));
                h.advance_to_reconnect();
            }
            [Event::Closed(_)] => {
                seen.push((server, 0, Duration::ZERO, usize::MAX));
                break;
            }
            other => panic!("unexpected {other:#?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            (0, 0, ms(0), 1),
            (1, 0, ms(0), 2),
            (2, 1, ms(1_000), 0),
            (0, 1, ms(0), 1),
            (1, 1, ms(0), 2),
            (2, 2, ms(2_000), 0),
            (0, 2, ms(0), 1),
            (1, 2, ms(0), 2),
            // The third round is over and `max_attempts` is 2: closed.
            (2, 0, ms(0), usize::MAX),
        ]
    );
    assert_eq!(h.engine.state(), State::Closed);
}

/// A connection lost after CONNACK starts the next round at the server that
/// served; `round_in_progress` says whether another server is due at once.
#[test]
fn a_round_starts_at_the_server_that_served_last() {
    let mut h = Harness::new(with_backoff(backoff(1_000, 10_000, 2.0)));
    h.engine.set_server_count(2);
    fail_open(&mut h);
    assert_eq!(reconnecting_to(&mut h), (0, Duration::ZERO, 1));
    assert!(h.engine.round_in_progress());
    h.advance_to_reconnect();
    h.open();
    assert_eq!(h.engine.server_index(), 1);
    h.connack(false, ConnAckProperties::EMPTY);
    h.events();
    h.drop_transport(reset());
    // Server 1 served: it is tried first, after the backoff.
    assert_eq!(reconnecting_to(&mut h), (1, Duration::from_secs(1), 1));
    assert!(!h.engine.round_in_progress());
    h.advance_to_reconnect();
    fail_open(&mut h);
    assert_eq!(reconnecting_to(&mut h), (1, Duration::ZERO, 0));
    h.advance_to_reconnect();
    fail_open(&mut h);
    assert_eq!(reconnecting_to(&mut h), (2, Duration::from_secs(2), 1));
}

/// An attempt that opened the transport but got no CONNACK (refused, timed out)
/// also moves on to the next server.
#[test]
fn a_refused_connack_moves_to_the_next_server() {
    let mut h = Harness::new(with_backoff(backoff(1_000, 10_000, 2.0)));
    h.engine.set_server_count(2);
    h.open();
    h.deliver(ConnAck {
        session_present: false,
        reason_code: ReasonCode::SERVER_UNAVAILABLE,
        properties: ConnAckProperties::EMPTY,
    });
    h.close_if_done();
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::ConnectionLost(ConnectionError::Refused(_)),
            Event::Reconnecting {
                attempt: 0,
                server: 1,
                ..
            }
        ]
    );
    assert_eq!(h.engine.server_index(), 1);
}

// ----- MQTT 3.1.1 fallback -------------------------------------------------------

/// With the fallback on, a 3.1.1 server's answer to an MQTT 5 CONNECT (CONNACK
/// return code 1, in the 3.1.1 format) makes the next attempt, at once, a 3.1.1
/// CONNECT; and the client stays on 3.1.1.
#[test]
fn a_3_1_1_server_refusing_mqtt_5_is_retried_with_3_1_1() {
    let mut h =
        Harness::new(with_backoff(backoff(1_000, 10_000, 2.0)).with_protocol_fallback(true));
    let connect = h.open();
    assert_eq!(connect.protocol_version, V5);
    // 3.1.1 CONNACK: flags 0, return code 1 (unacceptable protocol level).
    h.deliver_bytes(&[0x20, 0x02, 0x00, 0x01]);
    h.close_if_done();
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [
            Event::ConnectionLost(ConnectionError::Refused(r)),
            Event::Reconnecting { delay, .. }
        ] if r.reason == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION && *delay == Duration::ZERO
    );
    assert_eq!(h.engine.version(), ProtocolVersion::V311);
    h.version = ProtocolVersion::V311;
    h.advance_to_reconnect();
    let connect = h.open();
    assert_eq!(connect.protocol_version, ProtocolVersion::V311);
    h.connack(false, ConnAckProperties::EMPTY);
    assert_matches!(h.events().as_slice(), [Event::Connected { .. }]);
}

/// An MQTT 5 server's refusal 0x84 with the fallback on is retried with 3.1.1;
/// without it, the refusal is fatal.
#[test]
fn connack_0x84_falls_back_only_when_asked() {
    for fallback in [true, false] {
        let mut h = Harness::new(
            with_backoff(backoff(1_000, 10_000, 2.0)).with_protocol_fallback(fallback),
        );
        h.open();
        h.deliver(ConnAck {
            session_present: false,
            reason_code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            properties: ConnAckProperties::EMPTY,
        });
        h.close_if_done();
        let events = h.events();
        if fallback {
            assert_matches!(
                events.as_slice(),
                [Event::ConnectionLost(_), Event::Reconnecting { .. }]
            );
            assert_eq!(h.engine.version(), ProtocolVersion::V311);
        } else {
            assert_matches!(
                events.as_slice(),
                [Event::ConnectionLost(_), Event::Closed(_)]
            );
            assert_eq!(h.engine.version(), V5);
        }
    }
}

// ----- Server redirection --------------------------------------------------------

fn refused_with_reference(h: &mut Harness, code: ReasonCode, reference: &str) {
    h.open();
    let mut properties = ConnAckProperties::EMPTY;
    properties.server_reference = Some(reference.try_into().unwrap());
    h.deliver(ConnAck {
        session_present: false,
        reason_code: code,
        properties,
    });
    h.close_if_done();
}

/// CONNACK 0x9D with a Server Reference: the reference is in the error either
/// way; with `follow_redirects` the next attempt is at once and the driver gets
/// the reference; without it, the usual backoff and no redirect.
#[test]
fn a_server_reference_is_surfaced_and_followed_when_asked() {
    for follow in [true, false] {
        let mut h =
            Harness::new(with_backoff(backoff(1_000, 10_000, 2.0)).with_follow_redirects(follow));
        refused_with_reference(&mut h, ReasonCode::SERVER_MOVED, "other.example.com:1884");
        let events = h.events();
        let (error, delay) = match events.as_slice() {
            [Event::ConnectionLost(e), Event::Reconnecting { delay, .. }] => (e.clone(), *delay),
            other => panic!("unexpected {other:#?}"),
        };
        assert_eq!(error.server_reference(), Some("other.example.com:1884"));
        if follow {
            assert_eq!(delay, Duration::ZERO);
            assert_eq!(
                h.engine.take_redirect().as_deref(),
                Some("other.example.com:1884")
            );
            h.engine.redirected(1, 2);
            assert_eq!(h.engine.server_index(), 1);
        } else {
            assert_eq!(delay, Duration::from_secs(1));
            assert_eq!(h.engine.take_redirect(), None);
        }
    }
}

/// Redirects are followed a bounded number of times in a row: a loop of them
/// falls back to the backoff.
#[test]
fn a_loop_of_redirects_is_bounded() {
    let mut h = Harness::new(with_backoff(backoff(1_000, 10_000, 2.0)).with_follow_redirects(true));
    let mut immediate = 0;
    for _ in 0..10 {
        refused_with_reference(&mut h, ReasonCode::USE_ANOTHER_SERVER, "a:1");
        let events = h.events();
        match events.as_slice() {
            [Event::ConnectionLost(_), Event::Reconnecting { delay, .. }]
                if *delay == Duration::ZERO =>
            {
                immediate += 1;
            }
            [Event::ConnectionLost(_), Event::Reconnecting { .. }] => break,
            other => panic!("unexpected {other:#?}"),
        }
        h.engine.take_redirect();
        h.advance_to_reconnect();
    }
    assert_eq!(immediate, 5);
}
