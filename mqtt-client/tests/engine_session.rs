//! Engine: the session as a value. An engine built with `Engine::resume` reports
//! every change; the harness applies them to a store before it takes the bytes of
//! the same step, and checks at every flush that the store equals the engine's
//! session and that nothing left before what it depends on was stored.
//!
//! A "crash" keeps only the store and resumes a new engine from it: these tests
//! follow each QoS flow through a crash at each of its steps.

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, State};
use mqtt_client::session::{Session, SessionChange};
use mqtt_client::{Options, ProtocolVersion, QoS, SessionLostPolicy};
use mqtt_codec::packet::Packet;
use mqtt_codec::property::{ConnAckProperties, DisconnectProperties};
use mqtt_codec::reason::ReasonCode;

fn durable(version: ProtocolVersion) -> Options {
    options(version)
        .with_clean_start(false)
        .with_session_expiry(3600)
}

/// A resumed, connected harness (the server had no session: a first start).
fn started(opts: Options) -> Harness {
    let mut h = Harness::resumed(opts, Session::default());
    h.open();
    h.connack(false, ConnAckProperties::EMPTY);
    h.events();
    h
}

/// Crash, restart and reconnect with the server's session present; returns the
/// packets the new engine sent after CONNACK.
fn crash_and_reconnect(h: &mut Harness, opts: Options, session_present: bool) -> Vec<Packet> {
    h.crash_and_resume(opts);
    let connect = h.open();
    assert!(!connect.clean_start, "a stored session is resumed");
    h.connack(session_present, ConnAckProperties::EMPTY);
    let events = h.events();
    assert_matches!(events.as_slice(), [Event::Connected { .. }]);
    h.take_sent()
}

#[test]
fn an_engine_built_with_new_records_nothing() {
    let mut h = Harness::connected(ProtocolVersion::V5);
    h.publish_id(message("t", QoS::AtLeastOnce, b"x"));
    assert!(!h.engine.has_session_changes());
    assert_eq!(h.engine.poll_session_changes().count(), 0);
}

#[test]
fn the_first_change_of_a_new_session_is_its_client_id() {
    let mut engine: mqtt_client::engine::Engine<u32> =
        mqtt_client::engine::Engine::resume(durable(ProtocolVersion::V5), Session::default());
    let changes: Vec<_> = engine.poll_session_changes().collect();
    assert_eq!(changes, [SessionChange::ClientId("client-1".to_owned())]);
}

#[test]
fn qos1_out_unacked_at_the_crash_is_resent_with_dup_and_completes() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let opts = durable(version);
        let mut h = started(opts.clone());
        let (_, id) = h.publish_id(message("t/1", QoS::AtLeastOnce, b"one"));
        let store = h.store.clone().unwrap();
        assert_eq!(store.outgoing.len(), 1);
        assert!(!store.outgoing[0].released);

        let sent = crash_and_reconnect(&mut h, opts, true);
        assert_eq!(
            sent,
            [Packet::Publish(dup(publish(
                id,
                "t/1",
                QoS::AtLeastOnce,
                b"one"
            )))]
        );
        h.deliver(puback(id));
        // Nobody in this process waited for it: no completion event.
        h.assert_no_events();
        assert!(h.store.as_ref().unwrap().outgoing.is_empty());
        assert_eq!(h.engine.packet_ids_in_use(), 0);
    }
}

#[test]
fn qos2_out_crash_before_pubrec_resends_the_publish() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts.clone());
    let (_, id) = h.publish_id(message("t/2", QoS::ExactlyOnce, b"two"));
    let sent = crash_and_reconnect(&mut h, opts, true);
    assert_eq!(
        sent,
        [Packet::Publish(dup(publish(
            id,
            "t/2",
            QoS::ExactlyOnce,
            b"two"
        )))]
    );
    h.deliver(pubrec(id));
    assert_eq!(h.take_sent(), [pubrel(id)]);
    h.deliver(pubcomp(id));
    assert!(h.store.as_ref().unwrap().outgoing.is_empty());
}

/// After PUBREC the server may complete the flow at any moment: resending the
/// PUBLISH then would deliver the message twice. The stored release makes the
/// new engine resend PUBREL, and a PUBCOMP 0x92 (the server had finished) is the
/// end of the flow.
#[test]
fn qos2_out_crash_after_pubrec_resends_pubrel_not_the_publish() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let opts = durable(version);
        let mut h = started(opts.clone());
        let (_, id) = h.publish_id(message("t/2", QoS::ExactlyOnce, b"two"));
        h.take_sent();
        h.deliver(pubrec(id));
        assert_eq!(h.take_sent(), [pubrel(id)]);
        assert!(h.store.as_ref().unwrap().outgoing[0].released);

        let sent = crash_and_reconnect(&mut h, opts, true);
        assert_eq!(sent, [pubrel(id)]);
        let comp = match version {
            ProtocolVersion::V5 => pubcomp_rc(
                id,
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                Default::default(),
            ),
            ProtocolVersion::V311 => pubcomp(id),
        };
        h.deliver(comp);
        assert!(h.store.as_ref().unwrap().outgoing.is_empty());
        assert_eq!(h.engine.packet_ids_in_use(), 0);
    }
}

/// An incoming QoS 2 message acknowledged (PUBREC) before the crash: the server
/// sends it again with DUP, and the new engine answers PUBREC without handing it
/// over; PUBREL then releases the identifier.
#[test]
fn qos2_in_acked_before_the_crash_is_not_handed_over_again() {
    for version in [ProtocolVersion::V5, ProtocolVersion::V311] {
        let opts = durable(version);
        let mut h = started(opts.clone());
        h.deliver(publish(7, "in", QoS::ExactlyOnce, b"once"));
        let ticket = h.ticket();
        h.ack(ticket).unwrap();
        assert_eq!(h.take_sent(), [pubrec(7)]);
        assert_eq!(h.store.as_ref().unwrap().awaiting_release, [pid(7)]);

        crash_and_reconnect(&mut h, opts, true);
        h.deliver(dup(publish(7, "in", QoS::ExactlyOnce, b"once")));
        h.assert_no_events();
        assert_eq!(h.take_sent(), [pubrec(7)]);
        h.deliver(pubrel(7));
        assert_eq!(h.take_sent(), [pubcomp(7)]);
        assert!(h.store.as_ref().unwrap().awaiting_release.is_empty());
        // The identifier is free for a new message, which is handed over.
        h.deliver(publish(7, "in", QoS::ExactlyOnce, b"next"));
        assert_eq!(h.messages().len(), 1);
    }
}

/// Handed over but not acknowledged: the application had not taken it, so after
/// the crash it comes again (and is handed over again).
#[test]
fn qos2_in_not_acked_before_the_crash_comes_again() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts.clone());
    h.deliver(publish(9, "in", QoS::ExactlyOnce, b"again"));
    let _unacked = h.ticket();
    assert!(h.store.as_ref().unwrap().awaiting_release.is_empty());
    crash_and_reconnect(&mut h, opts, true);
    h.deliver(dup(publish(9, "in", QoS::ExactlyOnce, b"again")));
    assert_eq!(h.messages().len(), 1);
}

/// A crash after PUBCOMP was stored but before it left: the server sends PUBREL
/// again and gets PUBCOMP (0x92 in MQTT 5: identifier not found), which ends its flow.
#[test]
fn qos2_in_released_before_the_crash_answers_a_repeated_pubrel() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts.clone());
    h.deliver(publish(3, "in", QoS::ExactlyOnce, b"x"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.deliver(pubrel(3));
    h.take_sent();
    crash_and_reconnect(&mut h, opts, true);
    h.deliver(pubrel(3));
    assert_matches!(
        h.take_sent().as_slice(),
        [Packet::PubComp(ack)] if ack.reason_code == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
    );
}

/// The server lost the session: stored messages go again as new (DUP 0, from
/// PUBLISH even if released), identifiers awaiting release are forgotten, and
/// the stored subscriptions are restored.
#[test]
fn a_stored_session_the_server_lost_is_resent_as_new_and_resubscribed() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts.clone());
    let (_, sub) = h.subscribe(&[("plant/#", QoS::ExactlyOnce)]);
    h.take_sent();
    h.deliver(suback(sub, &[ReasonCode::GRANTED_QOS_2]));
    h.events();
    let (_, a) = h.publish_id(message("a", QoS::AtLeastOnce, b"a"));
    let (_, b) = h.publish_id(message("b", QoS::ExactlyOnce, b"b"));
    h.take_sent();
    h.deliver(pubrec(b));
    h.deliver(publish(5, "in", QoS::ExactlyOnce, b"x"));
    let ticket = h.ticket();
    h.ack(ticket).unwrap();
    h.take_sent();

    let sent = crash_and_reconnect(&mut h, opts, false);
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_matches!(
        &sent[0],
        Packet::Subscribe(s) if s.filters.len() == 1 && s.filters[0].0.as_str() == "plant/#"
    );
    assert_eq!(
        sent[1..],
        [
            Packet::Publish(publish(a, "a", QoS::AtLeastOnce, b"a")),
            Packet::Publish(publish(b, "b", QoS::ExactlyOnce, b"b")),
        ]
    );
    let store = h.store.clone().unwrap();
    assert!(store.awaiting_release.is_empty());
    assert!(store.outgoing.iter().all(|m| !m.released));
    // The identifier the server forgot is a new message now.
    h.deliver(publish(5, "in", QoS::ExactlyOnce, b"x"));
    assert_eq!(h.messages().len(), 1);
}

#[test]
fn the_fail_policy_completes_stored_messages_in_the_store_too() {
    let opts = durable(ProtocolVersion::V5).with_session_lost_policy(SessionLostPolicy::Fail);
    let mut h = started(opts.clone());
    h.publish_id(message("a", QoS::AtLeastOnce, b"a"));
    let sent = crash_and_reconnect(&mut h, opts, false);
    assert!(sent.is_empty(), "{sent:?}");
    assert!(h.store.as_ref().unwrap().outgoing.is_empty());
}

/// New messages never take an identifier of a restored one.
#[test]
fn restored_identifiers_are_not_handed_out_again() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts.clone());
    let mut restored = Vec::new();
    for _ in 0..5 {
        restored.push(h.publish_id(message("t", QoS::AtLeastOnce, b"r")).1);
    }
    crash_and_reconnect(&mut h, opts, true);
    for _ in 0..20 {
        let (_, id) = h.publish_id(message("t", QoS::AtLeastOnce, b"n"));
        assert!(!restored.contains(&id), "identifier {id} reused");
        h.take_sent();
        h.deliver(puback(id));
    }
}

/// A server-assigned client identifier is stored and used by the next process,
/// so that its session can resume.
#[test]
fn an_assigned_client_id_is_stored_and_reused() {
    let mut opts = durable(ProtocolVersion::V5);
    opts = opts.with_client_id("");
    let mut h = Harness::resumed(opts.clone(), Session::default());
    h.open();
    h.connack(
        false,
        ConnAckProperties {
            assigned_client_identifier: Some(topic("srv-42")),
            ..ConnAckProperties::EMPTY
        },
    );
    assert_eq!(
        h.store.as_ref().unwrap().client_id.as_deref(),
        Some("srv-42")
    );
    h.crash_and_resume(opts);
    let connect = h.open();
    assert_eq!(connect.client_id.as_str(), "srv-42");
}

/// A local disconnect ends the client, not the session: unfinished messages stay
/// in the store for the next process.
#[test]
fn a_local_disconnect_keeps_unfinished_messages_in_the_store() {
    let opts = durable(ProtocolVersion::V5);
    let mut h = started(opts);
    h.publish_id(message("t", QoS::AtLeastOnce, b"keep"));
    h.disconnect(
        ReasonCode::NORMAL_DISCONNECTION,
        DisconnectProperties::EMPTY,
    );
    h.close_if_done();
    assert_eq!(h.engine.state(), State::Closed);
    assert_eq!(h.store.as_ref().unwrap().outgoing.len(), 1);
}

/// Subscriptions follow SUBACK and UNSUBACK into the store.
#[test]
fn subscriptions_are_stored_when_granted_and_removed_when_unsubscribed() {
    let mut h = started(durable(ProtocolVersion::V5));
    let (_, id) = h.subscribe(&[("a/+", QoS::AtLeastOnce), ("b", QoS::AtMostOnce)]);
    h.deliver(suback(
        id,
        &[ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED],
    ));
    let filters: Vec<_> = h
        .store
        .as_ref()
        .unwrap()
        .subscriptions
        .iter()
        .map(|s| s.filter.to_string())
        .collect();
    assert_eq!(filters, ["a/+"]);
    let (_, id) = h.unsubscribe(&["a/+"]);
    h.deliver(unsuback(id, &[ReasonCode::SUCCESS]));
    assert!(h.store.as_ref().unwrap().subscriptions.is_empty());
}
