//! Engine: packet identifiers. One pool for PUBLISH, SUBSCRIBE and UNSUBSCRIBE;
//! an identifier in use is never handed out again; exhaustion at 65,535 and reuse
//! once one is released; refused commands give their identifier back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use std::collections::HashSet;

use engine_common::*;
use mqtt_client::engine::Refusal;
use mqtt_client::engine::State;
use mqtt_client::{ProtocolVersion, QoS, RequestError};
use mqtt_codec::property::{ConnAckProperties, SubscribeProperties, UnsubscribeProperties};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn window(n: u16) -> mqtt_client::Options {
    let mut opts = options(V5);
    opts = opts.with_max_inflight(n);
    opts
}

#[test]
fn identifiers_in_use_are_never_handed_out_again_across_packet_kinds() {
    let mut h = Harness::connected_with(window(10), ConnAckProperties::EMPTY);
    let mut in_use = HashSet::new();
    for i in 0..10 {
        let qos = if i % 2 == 0 { Q1 } else { Q2 };
        let (_, id) = h.publish_id(message("t", qos, b"x"));
        assert!(in_use.insert(id), "{id} handed out twice");
    }
    let (_, sub) = h.subscribe(&[("a/#", Q1)]);
    let (_, unsub) = h.unsubscribe(&["b/#"]);
    assert!(in_use.insert(sub));
    assert!(in_use.insert(unsub));
    let sent = h.take_sent();
    assert_eq!(Harness::ids_of(&sent), in_use);
    assert_eq!(h.engine.packet_ids_in_use(), 12);

    // Acks out of order free 5, 2 and 9 (a QoS 2 past PUBREC keeps its own).
    h.deliver(puback(5));
    h.deliver(pubrec(2));
    h.deliver(pubcomp(2));
    h.deliver(puback(9));
    h.deliver(pubrec(4));
    in_use.remove(&5);
    in_use.remove(&2);
    in_use.remove(&9);
    h.take_sent();
    h.events();

    for _ in 0..3 {
        let (_, id) = h.publish_id(message("t", Q1, b"y"));
        assert!(in_use.insert(id), "{id} is in use");
    }
    let (_, sub2) = h.subscribe(&[("c", Q1)]);
    assert!(in_use.insert(sub2), "{sub2} is in use");
    assert_eq!(h.engine.packet_ids_in_use() as usize, in_use.len());
}

#[test]
fn a_released_identifier_is_reused_as_late_as_possible() {
    let mut h = Harness::connected(V5);
    let (_, a) = h.publish_id(message("t", Q1, b"x"));
    h.deliver(puback(a));

    let (_, b) = h.publish_id(message("t", Q1, b"x"));

    assert_ne!(a, b);
    assert_eq!(b, a + 1);
}

#[test]
fn identifiers_are_exhausted_at_65535_and_a_released_one_comes_back() {
    let mut opts = window(u16::MAX);
    opts = opts.with_receive_maximum(u16::MAX);
    // No Receive Maximum in CONNACK: the server takes 65,535.
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);
    assert_eq!(h.engine.send_quota(), 65_535);

    for _ in 0..65_534 {
        h.publish(message("t", Q1, b""));
    }
    let (_, sub) = h.subscribe(&[("a", Q1)]);
    assert_eq!(sub, 65_535);
    assert_eq!(h.take_sent().len(), 65_535);
    assert_eq!(h.engine.packet_ids_in_use(), 65_535);

    // The window has a slot left, but no identifier does.
    assert_eq!(h.engine.inflight(), 65_534);
    assert!(!h.engine.can_publish(Q1));
    assert!(!h.engine.can_publish(Q2));
    assert!(h.engine.can_publish(QoS::AtMostOnce));
    assert!(!h.engine.can_request());
    let token = h.token();
    let refused = h
        .engine
        .subscribe(
            h.now,
            sub_filters(&[("b", Q1)]),
            SubscribeProperties::EMPTY,
            token,
        )
        .unwrap_err();
    // Refused with the token back (a driver asks `can_request` first).
    assert_eq!(refused.token, token);
    h.assert_nothing_sent();

    h.deliver(puback(100));
    assert_eq!(h.events().len(), 1);
    assert!(h.engine.can_publish(Q1));

    let (_, id) = h.publish_id(message("t", Q1, b"again"));

    assert_eq!(id, 100);
    assert!(!h.engine.can_publish(Q1));
    h.deliver(suback(sub, &[ReasonCode::GRANTED_QOS_1]));
    h.events();
    assert!(h.engine.can_request());
    let (_, sub2) = h.subscribe(&[("b", Q1)]);
    assert_eq!(sub2, 65_535);
}

#[test]
fn a_full_window_of_65535_uses_every_identifier() {
    let mut opts = window(u16::MAX);
    opts = opts.with_receive_maximum(u16::MAX);
    let mut h = Harness::connected_with(opts, receive_maximum(u16::MAX));

    for _ in 0..65_535 {
        h.publish(message("t", Q1, b""));
    }

    assert!(!h.engine.can_publish(Q1));
    assert!(!h.engine.can_request());
    let sent = h.take_sent();
    assert_eq!(Harness::ids_of(&sent).len(), 65_535);
    h.deliver(puback(40_000));
    h.events();
    let (_, id) = h.publish_id(message("t", Q1, b""));
    assert_eq!(id, 40_000);
}

#[test]
fn identifiers_wrap_around_skipping_those_in_use() {
    let mut h = Harness::connected_with(window(3), ConnAckProperties::EMPTY);
    // Cycle the cursor to the end of the range with one identifier held at 1.
    let (_, held) = h.publish_id(message("t", Q1, b"held"));
    assert_eq!(held, 1);
    for _ in 0..65_533 {
        let (_, id) = h.publish_id(message("t", Q1, b""));
        h.deliver(puback(id));
    }
    h.take_sent();
    h.events();

    let (_, last) = h.publish_id(message("t", Q1, b""));
    let (_, wrapped) = h.publish_id(message("t", Q1, b""));

    assert_eq!(last, 65_535);
    assert_eq!(wrapped, 2, "1 is still in use");
}

#[test]
fn identifiers_survive_reconnection_and_are_not_reissued_while_held() {
    let mut h = Harness::connected(V5);
    let (_, a) = h.publish_id(message("t", Q1, b"a"));
    let (_, sub) = h.subscribe(&[("x", Q1)]);
    h.take_sent();
    h.lose_connection();
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    let resent = h.take_sent();
    assert_eq!(Harness::ids_of(&resent), HashSet::from([a, sub]));

    let (_, b) = h.publish_id(message("t", Q1, b"b"));

    assert!(b != a && b != sub);
}

#[test]
fn refused_requests_give_their_identifier_back() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            wildcard_subscription_available: Some(false),
            maximum_packet_size: Some(32),
            ..ConnAckProperties::EMPTY
        },
    );
    let long = "a".repeat(64);

    let wildcard = h.engine.subscribe(
        h.now,
        sub_filters(&[("a/+", Q1)]),
        SubscribeProperties::EMPTY,
        1,
    );
    let too_large = h.engine.subscribe(
        h.now,
        sub_filters(&[(long.as_str(), Q1)]),
        SubscribeProperties::EMPTY,
        2,
    );
    let empty = h
        .engine
        .unsubscribe(h.now, Vec::new(), UnsubscribeProperties::EMPTY, 3);

    assert_matches!(
        wildcard.unwrap_err().error,
        Refusal::Invalid(RequestError::NotSupported(_))
    );
    assert_matches!(
        too_large.unwrap_err().error,
        Refusal::Invalid(RequestError::PacketTooLarge)
    );
    assert_matches!(
        empty.unwrap_err().error,
        Refusal::Invalid(RequestError::Encode(_))
    );
    h.flush();
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn requests_without_a_connection_do_not_leak_identifiers() {
    let mut h = Harness::new(options(V5));
    let before = h.engine.packet_ids_in_use();

    let sub = h.engine.subscribe(
        h.now,
        sub_filters(&[("a", Q1)]),
        SubscribeProperties::EMPTY,
        1,
    );
    let unsub = h
        .engine
        .unsubscribe(h.now, vec![topic("a")], UnsubscribeProperties::EMPTY, 2);

    assert_eq!(sub.unwrap_err().error, Refusal::NotReady);
    assert_eq!(unsub.unwrap_err().error, Refusal::NotReady);
    assert_eq!(h.engine.state(), State::Idle);
    assert_eq!(h.engine.packet_ids_in_use(), before);
    // And the first request once connected gets identifier 1.
    h.open();
    h.connack(false, ConnAckProperties::EMPTY);
    h.events();
    let (_, id) = h.subscribe(&[("a", Q1)]);
    assert_eq!(id, 1);
    assert_eq!(
        h.take_sent(),
        vec![subscribe(1, &[("a", Q1)], SubscribeProperties::EMPTY)]
    );
}
