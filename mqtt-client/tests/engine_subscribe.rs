//! Engine: SUBSCRIBE and UNSUBSCRIBE. Per-filter results, the active
//! subscription list, malformed acks, unanswered requests sent again, the
//! automatic restore of subscriptions when a session is lost, and what the
//! server said it does not support.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, Refusal, SubscribeOutcome, UnsubscribeOutcome};
use mqtt_client::{ConnectionError, ProtocolVersion, QoS, RequestError, Violation};
use mqtt_codec::packet::{Packet, PacketType};
use mqtt_codec::property::{
    AckProperties, ConnAckProperties, DisconnectProperties, SubscribeProperties,
};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;
const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn sub_id(n: u32) -> SubscribeProperties {
    SubscribeProperties {
        subscription_identifier: Some(n),
        ..SubscribeProperties::EMPTY
    }
}

fn subscriptions(h: &Harness) -> Vec<String> {
    h.engine.subscriptions().map(str::to_owned).collect()
}

/// Subscribes to `filters` one request each, all granted.
fn subscribed(h: &mut Harness, filters: &[(&str, QoS)]) {
    for &(filter, qos) in filters {
        let (_, id) = h.subscribe(&[(filter, qos)]);
        h.deliver(suback(id, &[ReasonCode(qos as u8)]));
        h.subscribe_done().1.unwrap();
    }
    h.take_sent();
}

// ----- SUBSCRIBE ---------------------------------------------------------------------

#[test]
fn suback_reports_each_filter_and_only_granted_filters_become_active() {
    let mut h = Harness::connected(V5);

    let (token, id) = h.subscribe_with(&[("a/+", Q2), ("b/#", Q1), ("c", Q0)], sub_id(7));

    assert_eq!(
        h.take_sent(),
        vec![subscribe(
            id,
            &[("a/+", Q2), ("b/#", Q1), ("c", Q0)],
            sub_id(7)
        )]
    );
    let mut ack = suback(
        id,
        &[
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::GRANTED_QOS_0,
        ],
    );
    ack.properties = reason_string("partly");
    h.deliver(ack);

    let (t, result) = h.subscribe_done();
    assert_eq!(t, token);
    assert_eq!(
        result.unwrap(),
        SubscribeOutcome {
            packet_id: pid(id),
            results: vec![Ok(Q1), Err(ReasonCode::NOT_AUTHORIZED), Ok(Q0)],
            properties: reason_string("partly"),
        }
    );
    assert_eq!(subscriptions(&h), vec!["a/+", "c"]);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn v311_suback_failure_is_0x80() {
    let mut h = Harness::connected(V311);
    let (_, id) = h.subscribe(&[("a", Q1), ("b", Q2)]);
    h.take_sent();

    h.deliver(suback(
        id,
        &[ReasonCode::GRANTED_QOS_1, ReasonCode::UNSPECIFIED_ERROR],
    ));

    let (_, result) = h.subscribe_done();
    assert_eq!(
        result.unwrap().results,
        vec![Ok(Q1), Err(ReasonCode::UNSPECIFIED_ERROR)]
    );
    assert_eq!(subscriptions(&h), vec!["a"]);
}

#[test]
fn subscribing_again_to_a_filter_replaces_it() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q0), ("b", Q0), ("a", Q2)]);

    assert_eq!(subscriptions(&h), vec!["a", "b"]);
}

#[test]
fn refuses_a_suback_with_the_wrong_number_of_codes() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.subscribe(&[("a", Q1), ("b", Q1)]);
    h.take_sent();

    h.deliver(suback(id, &[ReasonCode::GRANTED_QOS_1]));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::PROTOCOL_ERROR,
            detail: Violation::AckCountMismatch,
        }
    );
    assert!(subscriptions(&h).is_empty());
    // The request is still unanswered: sent again on the next connection.
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    assert_eq!(
        h.take_sent(),
        vec![subscribe(
            id,
            &[("a", Q1), ("b", Q1)],
            SubscribeProperties::EMPTY
        )]
    );
    h.deliver(suback(
        id,
        &[ReasonCode::GRANTED_QOS_1, ReasonCode::GRANTED_QOS_1],
    ));
    assert_eq!(h.subscribe_done().0, token);
}

#[test]
fn acks_of_the_wrong_kind_or_unknown_identifier() {
    let mut h = Harness::connected(V5);
    // Unknown identifiers: ignored.
    h.deliver(suback(40, &[ReasonCode::GRANTED_QOS_0]));
    h.deliver(unsuback(41, &[ReasonCode::SUCCESS]));
    h.assert_nothing_sent();
    h.assert_no_events();

    // An UNSUBACK answering a SUBSCRIBE: a violation.
    let (_, id) = h.subscribe(&[("a", Q1)]);
    h.take_sent();
    h.deliver(unsuback(id, &[ReasonCode::SUCCESS]));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::UnexpectedPacket(PacketType::UnsubAck),
            ..
        }
    );
}

#[test]
fn a_suback_answering_an_unsubscribe_is_a_violation() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.unsubscribe(&["a"]);
    h.take_sent();

    h.deliver(suback(id, &[ReasonCode::GRANTED_QOS_0]));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::UnexpectedPacket(PacketType::SubAck),
            ..
        }
    );
}

// ----- UNSUBSCRIBE ---------------------------------------------------------------------

#[test]
fn unsubscribe_removes_filters_unless_refused() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q1), ("b", Q1), ("c", Q1)]);

    let (token, id) = h.unsubscribe(&["a", "b", "c"]);

    assert_eq!(h.take_sent(), vec![unsubscribe(id, &["a", "b", "c"])]);
    let codes = [
        ReasonCode::SUCCESS,
        ReasonCode::NOT_AUTHORIZED,
        ReasonCode::NO_SUBSCRIPTION_EXISTED,
    ];
    h.deliver(unsuback(id, &codes));
    let (t, result) = h.unsubscribe_done();
    assert_eq!(t, token);
    assert_eq!(
        result.unwrap(),
        UnsubscribeOutcome {
            packet_id: pid(id),
            results: codes.to_vec(),
            properties: AckProperties::EMPTY,
        }
    );
    assert_eq!(subscriptions(&h), vec!["b"]);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn v311_unsuback_has_no_codes_and_removes_every_filter() {
    let mut h = Harness::connected(V311);
    subscribed(&mut h, &[("a", Q1), ("b", Q1)]);

    let (_, id) = h.unsubscribe(&["a", "b"]);
    h.deliver(unsuback(id, &[]));

    let (_, result) = h.unsubscribe_done();
    assert_eq!(result.unwrap().results, vec![]);
    assert!(subscriptions(&h).is_empty());
}

#[test]
fn refuses_a_v5_unsuback_with_the_wrong_number_of_codes() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.unsubscribe(&["a", "b"]);
    h.take_sent();

    h.deliver(unsuback(id, &[ReasonCode::SUCCESS]));

    assert_eq!(h.take_sent(), vec![disconnect(ReasonCode::PROTOCOL_ERROR)]);
    assert_matches!(
        h.close_and_expect_reconnect(),
        ConnectionError::ProtocolViolation {
            detail: Violation::AckCountMismatch,
            ..
        }
    );
}

// ----- unanswered requests and reconnection ------------------------------------------------

#[test]
fn unanswered_requests_are_sent_again_first_on_a_resumed_session() {
    let mut h = Harness::connected(V5);
    let (t_sub, sub) = h.subscribe(&[("a", Q1)]);
    let (_, p) = h.publish_id(message("t", Q1, b"x"));
    let (t_unsub, unsub) = h.unsubscribe(&["z"]);
    h.take_sent();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);

    assert_eq!(
        h.take_sent(),
        vec![
            subscribe(sub, &[("a", Q1)], SubscribeProperties::EMPTY),
            unsubscribe(unsub, &["z"]),
            Packet::Publish(dup(publish(p, "t", Q1, b"x"))),
        ]
    );
    h.events();
    h.deliver(suback(sub, &[ReasonCode::GRANTED_QOS_1]));
    assert_eq!(h.subscribe_done().0, t_sub);
    h.deliver(unsuback(unsub, &[ReasonCode::NO_SUBSCRIPTION_EXISTED]));
    assert_eq!(h.unsubscribe_done().0, t_unsub);
    assert_eq!(subscriptions(&h), vec!["a"]);
}

#[test]
fn nothing_is_resubscribed_when_the_session_is_resumed() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q1), ("b", Q2)]);
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);

    h.assert_nothing_sent();
    assert_eq!(subscriptions(&h), vec!["a", "b"]);
}

#[test]
fn a_lost_session_restores_subscriptions_grouped_by_properties_before_resends() {
    let mut h = Harness::connected(V5);
    let (_, a) = h.subscribe(&[("a/+", Q1)]);
    let (_, b) = h.subscribe_with(&[("b", Q2)], sub_id(5));
    let (_, c) = h.subscribe(&[("c", Q0)]);
    for (id, qos) in [(a, Q1), (b, Q2), (c, Q0)] {
        h.deliver(suback(id, &[ReasonCode(qos as u8)]));
    }
    h.events();
    let (_, p) = h.publish_id(message("t", Q1, b"x"));
    h.take_sent();
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    let sent = h.take_sent();
    let (r1, r2) = match (&sent[0], &sent[1]) {
        (Packet::Subscribe(s1), Packet::Subscribe(s2)) => (s1.packet_id.get(), s2.packet_id.get()),
        other => panic!("expected two SUBSCRIBEs first, got {other:#?}"),
    };
    assert_eq!(
        sent,
        vec![
            subscribe(r1, &[("a/+", Q1), ("c", Q0)], SubscribeProperties::EMPTY),
            subscribe(r2, &[("b", Q2)], sub_id(5)),
            Packet::Publish(publish(p, "t", Q1, b"x")),
        ]
    );
    assert!(![p, r1].contains(&r2) && r1 != p);
    // The engine's own requests complete silently.
    assert_matches!(
        h.events().as_slice(),
        [Event::Connected {
            session_present: false
        }]
    );
    h.deliver(suback(
        r1,
        &[ReasonCode::GRANTED_QOS_1, ReasonCode::GRANTED_QOS_0],
    ));
    h.deliver(suback(r2, &[ReasonCode::GRANTED_QOS_2]));
    h.assert_no_events();
    assert_eq!(subscriptions(&h), vec!["a/+", "b", "c"]);
    assert_eq!(h.engine.packet_ids_in_use(), 1, "only the publish");
}

#[test]
fn a_refused_restore_is_reported_and_forgotten() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q1), ("secret", Q1)]);
    h.lose_connection();
    h.reconnect(false, ConnAckProperties::EMPTY);
    h.events();
    let id = match h.next_sent() {
        Packet::Subscribe(s) => s.packet_id.get(),
        other => panic!("expected SUBSCRIBE, got {other:?}"),
    };

    h.deliver(suback(
        id,
        &[ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED],
    ));

    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::ResubscribeFailed { filter, reason: ReasonCode::NOT_AUTHORIZED }]
            if filter.as_str() == "secret"
    );
    assert_eq!(subscriptions(&h), vec!["a"]);
}

#[test]
fn an_unanswered_restore_is_sent_again_once() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q1)]);
    h.lose_connection();
    h.reconnect(false, ConnAckProperties::EMPTY);
    h.events();
    let first = h.take_sent();
    assert_eq!(first.len(), 1);
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    assert_eq!(h.take_sent(), first, "the same request, not a second one");
}

#[test]
fn no_restore_when_turned_off() {
    let mut opts = options(V5);
    opts = opts.with_restore_subscriptions(false);
    let mut h = Harness::connected_with(opts, ConnAckProperties::EMPTY);
    subscribed(&mut h, &[("a", Q1)]);
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    h.assert_nothing_sent();
}

#[test]
fn an_unanswered_unsubscribe_is_not_undone_by_the_restore() {
    let mut h = Harness::connected(V5);
    subscribed(&mut h, &[("a", Q1), ("b", Q1)]);
    let (token, unsub) = h.unsubscribe(&["a"]);
    h.take_sent();
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0], unsubscribe(unsub, &["a"]));
    let Packet::Subscribe(restore) = &sent[1] else {
        panic!("expected SUBSCRIBE, got {:?}", sent[1]);
    };
    assert_eq!(
        sent[1],
        subscribe(
            restore.packet_id.get(),
            &[("b", Q1)],
            SubscribeProperties::EMPTY
        )
    );
    h.events();
    h.deliver(unsuback(unsub, &[ReasonCode::NO_SUBSCRIPTION_EXISTED]));
    assert_eq!(h.unsubscribe_done().0, token);
    h.deliver(suback(
        restore.packet_id.get(),
        &[ReasonCode::GRANTED_QOS_1],
    ));
    assert_eq!(subscriptions(&h), vec!["b"]);
}

// ----- what the server does not support ------------------------------------------------

#[test]
fn refuses_what_the_server_said_it_does_not_support_before_sending() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            wildcard_subscription_available: Some(false),
            shared_subscription_available: Some(false),
            subscription_identifiers_available: Some(false),
            ..ConnAckProperties::EMPTY
        },
    );
    let cases = [
        (
            vec![("a/+", Q1)],
            SubscribeProperties::EMPTY,
            "wildcard subscriptions",
        ),
        (
            vec![("x", Q0), ("a/#", Q1)],
            SubscribeProperties::EMPTY,
            "wildcard subscriptions",
        ),
        (
            vec![("$share/g/a", Q1)],
            SubscribeProperties::EMPTY,
            "shared subscriptions",
        ),
        (vec![("a", Q1)], sub_id(3), "subscription identifiers"),
    ];

    for (filters, properties, what) in cases {
        let token = h.token();
        let refused = h
            .engine
            .subscribe(h.now, sub_filters(&filters), properties, token)
            .unwrap_err();
        assert_eq!(
            refused.error,
            Refusal::Invalid(RequestError::NotSupported(what))
        );
        assert_eq!(refused.token, token);
    }

    h.flush();
    h.assert_nothing_sent();
    h.assert_no_events();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    // A plain filter is fine.
    h.subscribe(&[("a/b", Q1)]);
    assert_eq!(h.take_sent().len(), 1);
}

#[test]
fn requests_without_a_connection_are_refused() {
    let mut h = Harness::new(options(V5));
    let refused = h
        .engine
        .subscribe(
            h.now,
            sub_filters(&[("a", Q1)]),
            SubscribeProperties::EMPTY,
            1,
        )
        .unwrap_err();
    assert_eq!(refused.error, Refusal::NotReady);
    assert!(!h.engine.can_request());

    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );
    h.events();
    let refused = h
        .engine
        .unsubscribe(h.now, vec![topic("a")], Default::default(), 2)
        .unwrap_err();
    assert_eq!(refused.error, Refusal::Closed);
}

// ----- Subscription Identifiers -----------------------------------------------------

/// A PUBLISH from the server carrying Subscription Identifiers.
fn identified(topic_name: &str, ids: &[u32]) -> mqtt_codec::packet::Publish {
    with_properties(
        message(topic_name, Q0, b"x"),
        mqtt_codec::property::PublishProperties {
            subscription_identifiers: ids.to_vec(),
            ..mqtt_codec::property::PublishProperties::EMPTY
        },
    )
}

fn matched(h: &mut Harness) -> Vec<Vec<String>> {
    h.messages()
        .into_iter()
        .map(|m| m.matched.iter().map(|f| f.to_string()).collect())
        .collect()
}

fn granted(h: &mut Harness, filters: &[(&str, QoS)], properties: SubscribeProperties) {
    let (_, id) = h.subscribe_with(filters, properties);
    let codes: Vec<ReasonCode> = filters.iter().map(|(_, q)| ReasonCode(*q as u8)).collect();
    h.deliver(suback(id, &codes));
    h.subscribe_done().1.unwrap();
    h.take_sent();
}

#[test]
fn incoming_messages_name_the_filters_of_their_subscription_identifiers() {
    let mut h = Harness::connected(V5);
    granted(&mut h, &[("a/+", Q0), ("a/#", Q0)], sub_id(7));
    granted(&mut h, &[("+/b", Q0)], sub_id(9));
    granted(&mut h, &[("plain/#", Q0)], SubscribeProperties::EMPTY);

    h.deliver(identified("a/b", &[9, 7]));
    h.deliver(identified("plain/x", &[]));
    h.deliver(identified("a/x", &[42]));

    assert_eq!(
        matched(&mut h),
        vec![
            vec!["+/b".to_owned(), "a/+".to_owned(), "a/#".to_owned()],
            vec![],
            vec![],
        ]
    );
}

#[test]
fn a_subscription_awaiting_its_suback_already_names_its_messages() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.subscribe_with(&[("early/#", Q1)], sub_id(3));
    // The server may send matching messages before SUBACK (3.8.4).
    h.deliver(identified("early/x", &[3]));
    assert_eq!(matched(&mut h), vec![vec!["early/#".to_owned()]]);

    h.deliver(suback(id, &[ReasonCode::GRANTED_QOS_1]));
    h.subscribe_done().1.unwrap();
    h.deliver(identified("early/y", &[3]));
    assert_eq!(matched(&mut h), vec![vec!["early/#".to_owned()]]);
}

#[test]
fn unsubscribing_or_resubscribing_moves_the_identifier() {
    let mut h = Harness::connected(V5);
    granted(&mut h, &[("a", Q0), ("b", Q0)], sub_id(1));

    // "a" subscribed again with another identifier: 1 now means only "b".
    granted(&mut h, &[("a", Q0)], sub_id(2));
    h.deliver(identified("a", &[1]));
    h.deliver(identified("a", &[2]));
    assert_eq!(
        matched(&mut h),
        vec![vec!["b".to_owned()], vec!["a".to_owned()]]
    );

    let (_, id) = h.unsubscribe(&["b"]);
    h.deliver(unsuback(id, &[ReasonCode::SUCCESS]));
    h.unsubscribe_done().1.unwrap();
    h.deliver(identified("b", &[1]));
    assert_eq!(matched(&mut h), vec![Vec::<String>::new()]);
}

#[test]
fn identifiers_are_kept_with_the_subscriptions_in_the_session() {
    let mut h = Harness::connected(V5);
    granted(&mut h, &[("s/#", Q1)], sub_id(11));
    let session = h.engine.session();
    assert_eq!(
        session.subscriptions[0].properties.subscription_identifier,
        Some(11)
    );

    // A new engine resuming that session knows what 11 means.
    let mut resumed = Harness::resumed(options(V5), session);
    resumed.open();
    resumed.connack(false, ConnAckProperties::EMPTY);
    resumed.events();
    resumed.deliver(identified("s/1", &[11]));
    assert_eq!(matched(&mut resumed), vec![vec!["s/#".to_owned()]]);
}

#[test]
fn refuses_a_subscription_identifier_of_0_or_above_the_maximum() {
    let mut h = Harness::connected(V5);
    for bad in [0, 268_435_456, u32::MAX] {
        let token = h.token();
        let refused = h
            .engine
            .subscribe(h.now, sub_filters(&[("a", Q0)]), sub_id(bad), token)
            .unwrap_err();
        assert_eq!(
            refused.error,
            Refusal::Invalid(RequestError::InvalidSubscriptionIdentifier(bad))
        );
        assert!(RequestError::InvalidSubscriptionIdentifier(bad)
            .to_string()
            .contains("Subscription Identifier"));
    }
    h.flush();
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    // The largest one goes.
    h.subscribe_with(&[("a", Q0)], sub_id(268_435_455));
    assert_eq!(
        h.take_sent(),
        vec![subscribe(1, &[("a", Q0)], sub_id(268_435_455))]
    );
}

#[test]
fn automatic_identifiers_are_assigned_when_the_server_has_them() {
    let opts = options(V5).with_automatic_subscription_identifiers(true);
    let mut h = Harness::connected_with(opts.clone(), ConnAckProperties::EMPTY);

    h.subscribe(&[("a/#", Q0)]);
    h.subscribe_with(&[("b/#", Q0)], sub_id(2)); // the application's own: kept
    h.subscribe(&[("c/#", Q0), ("d/#", Q0)]);
    assert_eq!(
        h.take_sent(),
        vec![
            subscribe(1, &[("a/#", Q0)], sub_id(1)),
            subscribe(2, &[("b/#", Q0)], sub_id(2)),
            // 2 is taken (pending): the next free one.
            subscribe(3, &[("c/#", Q0), ("d/#", Q0)], sub_id(3)),
        ]
    );
    h.deliver(identified("c/x", &[3]));
    assert_eq!(
        matched(&mut h),
        vec![vec!["c/#".to_owned(), "d/#".to_owned()]]
    );

    // A server without them: none assigned (and an explicit one is refused).
    let no_ids = ConnAckProperties {
        subscription_identifiers_available: Some(false),
        ..ConnAckProperties::EMPTY
    };
    let mut h = Harness::connected_with(opts, no_ids);
    h.subscribe(&[("a/#", Q0)]);
    assert_eq!(
        h.take_sent(),
        vec![subscribe(1, &[("a/#", Q0)], SubscribeProperties::EMPTY)]
    );

    // Off by default.
    let mut h = Harness::connected(V5);
    h.subscribe(&[("a/#", Q0)]);
    assert_eq!(
        h.take_sent(),
        vec![subscribe(1, &[("a/#", Q0)], SubscribeProperties::EMPTY)]
    );
}

// ----- Reason Strings surfaced ---------------------------------------------------------

#[test]
fn suback_and_unsuback_failures_show_the_reason_string() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.subscribe(&[("ok/#", Q1), ("secret/#", Q1), ("x/#", Q0)]);
    let mut ack = suback(
        id,
        &[
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::QUOTA_EXCEEDED,
        ],
    );
    ack.properties = reason_string("topic denied by ACL");
    h.deliver(ack);
    let outcome = h.subscribe_done().1.unwrap();
    assert_eq!(outcome.reason_string(), Some("topic denied by ACL"));
    let error = outcome.check().unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"refused by the server: filter 1: Not authorized (0x87), filter 2: Quota exceeded (0x97) ("topic denied by ACL")"#
    );
    assert_eq!(error.reason_string(), Some("topic denied by ACL"));
    assert_eq!(error.kind(), mqtt_client::ErrorKind::Rejected);
    assert_matches!(
        &error,
        RequestError::Rejected { failures, .. }
            if *failures == vec![(1, ReasonCode::NOT_AUTHORIZED), (2, ReasonCode::QUOTA_EXCEEDED)]
    );
    h.take_sent();

    // Everything granted: check passes the outcome through.
    let (_, id) = h.subscribe(&[("fine", Q0)]);
    h.deliver(suback(id, &[ReasonCode::GRANTED_QOS_0]));
    assert!(h.subscribe_done().1.unwrap().check().is_ok());

    let (_, id) = h.unsubscribe(&["ok/#", "gone"]);
    let mut ack = unsuback(
        id,
        &[
            ReasonCode::NOT_AUTHORIZED,
            ReasonCode::NO_SUBSCRIPTION_EXISTED,
        ],
    );
    ack.properties = reason_string("read-only");
    h.deliver(ack);
    let outcome = h.unsubscribe_done().1.unwrap();
    assert_eq!(outcome.reason_string(), Some("read-only"));
    assert_eq!(
        outcome.check().unwrap_err().to_string(),
        r#"refused by the server: filter 0: Not authorized (0x87) ("read-only")"#
    );
}
