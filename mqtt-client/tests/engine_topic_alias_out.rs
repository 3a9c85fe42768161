//! Engine: outgoing Topic Aliases (MQTT 5, 3.3.2.3.4). The engine sets them
//! itself when the server's CONNACK accepts them: first use sends topic and alias,
//! later uses an empty topic and the alias, the least recently used alias is
//! replaced once all are taken; aliases end with their connection, never go on a
//! DUP resend, never reach the session, and the size checked against the server's
//! Maximum Packet Size is the size sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, Refusal};
use mqtt_client::session::Session;
use mqtt_client::{Options, ProtocolVersion, PublishError, QoS};
use mqtt_codec::packet::{Packet, Publish};
use mqtt_codec::property::{ConnAckProperties, PublishProperties};

const V5: ProtocolVersion = ProtocolVersion::V5;
const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;

/// CONNACK properties with a Topic Alias Maximum.
fn alias_maximum(n: u16) -> ConnAckProperties {
    ConnAckProperties {
        topic_alias_maximum: Some(n),
        ..ConnAckProperties::EMPTY
    }
}

/// `publish` as it goes on the wire with `alias` (topic as given: empty for a
/// known alias).
fn aliased(publish: Publish, alias: u16) -> Packet {
    Packet::Publish(with_properties(
        publish,
        PublishProperties {
            topic_alias: Some(alias),
            ..PublishProperties::EMPTY
        },
    ))
}

fn connected(opts: Options, maximum: u16) -> Harness {
    Harness::connected_with(opts, alias_maximum(maximum))
}

#[test]
fn first_use_sends_topic_and_alias_then_only_the_alias() {
    let mut h = connected(options(V5), 4);

    h.publish(message("plant/line1/temp", Q0, b"20"));
    h.publish(message("plant/line1/temp", Q0, b"21"));
    let (_, id) = h.publish_id(message("plant/line1/temp", Q1, b"22"));
    h.publish(message("plant/line2/temp", Q0, b"19"));

    assert_eq!(
        h.take_sent(),
        vec![
            aliased(message("plant/line1/temp", Q0, b"20"), 1),
            aliased(message("", Q0, b"21"), 1),
            aliased(publish(id, "", Q1, b"22"), 1),
            aliased(message("plant/line2/temp", Q0, b"19"), 2),
        ]
    );
    // The engine keeps the message with its full topic and no alias.
    let session = h.engine.session();
    assert_eq!(session.outgoing.len(), 1);
    assert_eq!(
        session.outgoing[0].publish,
        publish(id, "plant/line1/temp", Q1, b"22")
    );

    // The flow completes as any other.
    h.deliver(puback(id));
    let done = h.publish_done();
    assert_eq!(done.len(), 4, "three QoS 0 and the QoS 1: {done:#?}");
    assert!(done.iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn the_least_recently_used_alias_is_replaced_at_the_maximum() {
    let mut h = connected(options(V5), 2);

    h.publish(message("a", Q0, b"1")); // a = 1
    h.publish(message("b", Q0, b"2")); // b = 2
    h.publish(message("a", Q0, b"3")); // a used: b is now the least recent
    h.publish(message("c", Q0, b"4")); // c takes b's alias 2
    h.publish(message("c", Q0, b"5"));
    h.publish(message("a", Q0, b"6"));
    h.publish(message("b", Q0, b"7")); // b again: takes c's alias 2 (c older than a)
    h.publish(message("a", Q0, b"8"));

    assert_eq!(
        h.take_sent(),
        vec![
            aliased(message("a", Q0, b"1"), 1),
            aliased(message("b", Q0, b"2"), 2),
            aliased(message("", Q0, b"3"), 1),
            aliased(message("c", Q0, b"4"), 2),
            aliased(message("", Q0, b"5"), 2),
            aliased(message("", Q0, b"6"), 1),
            aliased(message("b", Q0, b"7"), 2),
            aliased(message("", Q0, b"8"), 1),
        ]
    );
}

#[test]
fn aliases_are_forgotten_on_a_new_connection() {
    let mut h = connected(options(V5), 4);
    h.publish(message("a/b", Q0, b"1"));
    h.publish(message("c/d", Q0, b"2"));
    h.take_sent();
    h.events();
    h.lose_connection();

    h.reconnect(true, alias_maximum(4));
    h.events();
    h.publish(message("c/d", Q0, b"3"));
    h.publish(message("c/d", Q0, b"4"));

    // c/d is new to this connection: topic in full, and alias 1 from the start.
    assert_eq!(
        h.take_sent(),
        vec![
            aliased(message("c/d", Q0, b"3"), 1),
            aliased(message("", Q0, b"4"), 1),
        ]
    );
}

#[test]
fn a_dup_resend_carries_the_full_topic_and_no_alias() {
    let mut h = connected(options(V5), 4);
    let (_, first) = h.publish_id(message("a/b", Q1, b"1"));
    let (_, second) = h.publish_id(message("a/b", Q1, b"2"));
    assert_eq!(
        h.take_sent(),
        vec![
            aliased(publish(first, "a/b", Q1, b"1"), 1),
            aliased(publish(second, "", Q1, b"2"), 1),
        ]
    );
    h.lose_connection();

    h.reconnect(true, alias_maximum(4));

    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(dup(publish(first, "a/b", Q1, b"1"))),
            Packet::Publish(dup(publish(second, "a/b", Q1, b"2"))),
        ]
    );
    h.events();
    // New messages set aliases again from scratch.
    let (_, third) = h.publish_id(message("a/b", Q1, b"3"));
    assert_eq!(
        h.take_sent(),
        vec![aliased(publish(third, "a/b", Q1, b"3"), 1)]
    );
}

#[test]
fn the_session_store_keeps_full_topics() {
    let opts = options(V5).with_clean_start(false).with_session_expiry(60);
    let mut h = Harness::resumed(opts.clone(), Session::default());
    h.open();
    h.connack(false, alias_maximum(2));
    h.events();

    let (_, first) = h.publish_id(message("a/b", Q1, b"1"));
    let (_, second) = h.publish_id(message("a/b", Q1, b"2"));
    assert_eq!(
        h.take_sent(),
        vec![
            aliased(publish(first, "a/b", Q1, b"1"), 1),
            aliased(publish(second, "", Q1, b"2"), 1),
        ]
    );

    // (The harness also checks, at every step, that the store equals the engine's
    // session.)
    let store = h.store.clone().unwrap();
    let stored: Vec<&Publish> = store.outgoing.iter().map(|m| &m.publish).collect();
    assert_eq!(
        stored,
        vec![
            &publish(first, "a/b", Q1, b"1"),
            &publish(second, "a/b", Q1, b"2"),
        ]
    );

    // A crash: the resumed engine sends them in full.
    h.crash_and_resume(opts);
    h.open();
    h.connack(true, alias_maximum(2));
    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(dup(publish(first, "a/b", Q1, b"1"))),
            Packet::Publish(dup(publish(second, "a/b", Q1, b"2"))),
        ]
    );
}

#[test]
fn a_server_without_aliases_gets_none() {
    for props in [ConnAckProperties::EMPTY, alias_maximum(0)] {
        let mut h = Harness::connected_with(options(V5), props);
        h.publish(message("a/b", Q0, b"1"));
        h.publish(message("a/b", Q0, b"2"));
        assert_eq!(
            h.take_sent(),
            vec![
                Packet::Publish(message("a/b", Q0, b"1")),
                Packet::Publish(message("a/b", Q0, b"2")),
            ]
        );
    }
}

#[test]
fn the_option_off_sends_no_alias() {
    let mut h = connected(options(V5).with_outgoing_topic_aliases(false), 10);
    h.publish(message("a/b", Q0, b"1"));
    h.publish(message("a/b", Q0, b"2"));
    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(message("a/b", Q0, b"1")),
            Packet::Publish(message("a/b", Q0, b"2")),
        ]
    );
}

#[test]
fn an_alias_set_by_the_application_is_still_refused() {
    let mut h = connected(options(V5), 4);
    let publish = with_properties(
        message("a/b", Q0, b"x"),
        PublishProperties {
            topic_alias: Some(1),
            ..PublishProperties::EMPTY
        },
    );
    assert_matches!(
        h.try_publish(publish).unwrap_err().error,
        Refusal::Invalid(PublishError::PropertyNotAllowed("Topic Alias"))
    );
    h.assert_nothing_sent();
}

#[test]
fn the_maximum_packet_size_is_checked_on_the_packet_sent() {
    // A 22-byte topic; QoS 0 sizes: in full 27 + payload, with a new alias
    // 30 + payload, with a known alias (empty topic) 8 + payload.
    let long = "a/very/long/topic/name";
    assert_eq!(long.len(), 22);
    let props = ConnAckProperties {
        topic_alias_maximum: Some(4),
        maximum_packet_size: Some(40),
        ..ConnAckProperties::EMPTY
    };
    let mut h = Harness::connected_with(options(V5), props);

    // 31 bytes with its new alias: fits.
    h.publish(message(long, Q0, b"x"));
    // 20 bytes of payload: 47 in full, 28 with the known alias, which is sent.
    h.publish(message(long, Q0, b"twenty-bytes-payload"));
    assert_eq!(
        h.take_sent(),
        vec![
            aliased(message(long, Q0, b"x"), 1),
            aliased(message("", Q0, b"twenty-bytes-payload"), 1),
        ]
    );
    h.events();

    // Another long topic with 11 bytes: 38 in full fits, 41 with a new alias does
    // not: sent in full, no alias set.
    let other = "b/very/long/topic/name";
    h.publish(message(other, Q0, b"eleven-byte"));
    h.publish(message(other, Q0, b"e"));
    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(message(other, Q0, b"eleven-byte")),
            aliased(message(other, Q0, b"e"), 2),
        ]
    );
    h.events();

    // Too large even with its known alias: refused, with the size it would have had.
    let big = &[b'x'; 40];
    assert_matches!(
        h.try_publish(message(long, Q0, big)).unwrap_err().error,
        Refusal::Invalid(PublishError::PacketTooLarge {
            size: 48,
            maximum: 40
        })
    );
    h.assert_nothing_sent();
    let events = h.events();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PublishDone { .. })),
        "{events:#?}"
    );
}
