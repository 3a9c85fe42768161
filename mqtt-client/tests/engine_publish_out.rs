//! Engine: outgoing PUBLISH flows. QoS 0/1/2 completion, failure reason codes,
//! duplicate and unknown acks, loss and disconnection at each step with resending
//! on a resumed session, lost sessions under both policies, and what the server
//! said it cannot take.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use engine_common::*;
use mqtt_client::engine::{Event, PublishOutcome, Refusal};
use mqtt_client::{ProtocolVersion, PublishError, QoS, SessionLostPolicy};
use mqtt_codec::packet::Packet;
use mqtt_codec::property::{AckProperties, ConnAckProperties, PublishProperties};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;
const Q0: QoS = QoS::AtMostOnce;
const Q1: QoS = QoS::AtLeastOnce;
const Q2: QoS = QoS::ExactlyOnce;

fn ok(id: u16, reason: ReasonCode, properties: AckProperties) -> PublishOutcome {
    PublishOutcome {
        packet_id: Some(pid(id)),
        reason,
        properties,
    }
}

fn success(id: u16) -> PublishOutcome {
    ok(id, ReasonCode::SUCCESS, AckProperties::EMPTY)
}

/// The harness after a resumable first connection (3.1.1 needs Clean Session 0
/// for the server to keep the session).
fn resumable(version: ProtocolVersion) -> Harness {
    Harness::connected_with(
        options(version).with_clean_start(version == V5),
        ConnAckProperties::EMPTY,
    )
}

// ----- QoS 1 -----------------------------------------------------------------------

#[test]
fn qos1_puback_completes_with_its_reason_and_properties() {
    let mut h = Harness::connected(V5);

    let (token, id) = h.publish_id(message("a/b", Q1, b"one"));

    assert_eq!(id, 1);
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(1, "a/b", Q1, b"one"))]
    );
    assert_eq!(h.engine.inflight(), 1);
    assert_eq!(h.engine.packet_ids_in_use(), 1);
    h.assert_no_events();

    h.deliver(puback_rc(
        1,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        reason_string("nobody listens"),
    ));

    let done = h.publish_done();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, token);
    assert_eq!(
        done[0].1.as_ref().unwrap(),
        &ok(
            1,
            ReasonCode::NO_MATCHING_SUBSCRIBERS,
            reason_string("nobody listens")
        )
    );
    assert_eq!(h.engine.inflight(), 0);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    h.assert_nothing_sent();
}

#[test]
fn v311_qos1_puback_completes_with_success() {
    let mut h = Harness::connected(V311);
    let (token, id) = h.publish_id(message("a/b", Q1, b"one"));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(id, "a/b", Q1, b"one"))]
    );

    h.deliver(puback(id));

    let done = h.publish_done();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, token);
    assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
}

#[test]
fn qos1_failure_reason_codes_reject_the_publish() {
    let mut h = Harness::connected(V5);
    for code in [0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99] {
        let (token, id) = h.publish_id(message("t", Q1, b"x"));
        h.take_sent();

        h.deliver(puback_rc(id, ReasonCode(code), reason_string("no")));

        let done = h.publish_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, token);
        assert_matches!(
            &done[0].1,
            Err(PublishError::Rejected { reason, properties })
                if *reason == ReasonCode(code) && *properties == reason_string("no")
        );
        assert_eq!(h.engine.packet_ids_in_use(), 0);
        h.assert_nothing_sent();
    }
}

#[test]
fn completions_follow_the_order_of_the_acks() {
    let mut h = Harness::connected(V5);
    let (t1, _) = h.publish_id(message("t", Q1, b"1"));
    let (t2, _) = h.publish_id(message("t", Q1, b"2"));
    let (t3, _) = h.publish_id(message("t", Q2, b"3"));
    h.take_sent();

    h.deliver(pubrec(3));
    assert_eq!(h.take_sent(), vec![pubrel(3)]);
    h.deliver(puback(2));
    h.deliver(pubcomp(3));
    h.deliver(puback(1));

    let done = h.publish_done();
    let tokens: Vec<u32> = done.iter().map(|(t, _)| *t).collect();
    assert_eq!(tokens, vec![t2, t3, t1]);
    assert_eq!(done[0].1.as_ref().unwrap(), &success(2));
    assert_eq!(done[1].1.as_ref().unwrap(), &success(3));
    assert_eq!(done[2].1.as_ref().unwrap(), &success(1));
    assert_eq!(h.engine.inflight(), 0);
}

// ----- QoS 2 -----------------------------------------------------------------------

#[test]
fn qos2_completes_after_pubrec_pubrel_pubcomp() {
    for version in [V5, V311] {
        let mut h = Harness::connected(version);
        let (token, id) = h.publish_id(message("a/b", Q2, b"two"));
        assert_eq!(
            h.take_sent(),
            vec![Packet::Publish(publish(id, "a/b", Q2, b"two"))]
        );

        h.deliver(pubrec(id));
        assert_eq!(h.take_sent(), vec![pubrel(id)]);
        h.assert_no_events();
        assert_eq!(h.engine.packet_ids_in_use(), 1, "held until PUBCOMP");

        h.deliver(pubcomp(id));

        let done = h.publish_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, token);
        assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
        assert_eq!(h.engine.packet_ids_in_use(), 0);
        h.assert_nothing_sent();
    }
}

#[test]
fn qos2_pubcomp_reason_and_properties_reach_the_outcome() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.publish_id(message("t", Q2, b"x"));
    h.deliver(pubrec_rc(
        id,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        AckProperties::EMPTY,
    ));
    h.take_sent();

    h.deliver(pubcomp_rc(id, ReasonCode::SUCCESS, reason_string("stored")));

    let done = h.publish_done();
    assert_eq!(
        done[0].1.as_ref().unwrap(),
        &ok(id, ReasonCode::SUCCESS, reason_string("stored"))
    );
}

#[test]
fn qos2_pubcomp_failure_rejects_the_publish() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("t", Q2, b"x"));
    h.deliver(pubrec(id));
    h.take_sent();

    h.deliver(pubcomp_rc(
        id,
        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        AckProperties::EMPTY,
    ));

    let done = h.publish_done();
    assert_eq!(done[0].0, token);
    assert_matches!(
        done[0].1,
        Err(PublishError::Rejected {
            reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
            ..
        })
    );
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn qos2_pubrec_failure_ends_the_flow_without_pubrel() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("t", Q2, b"x"));
    h.take_sent();

    h.deliver(pubrec_rc(
        id,
        ReasonCode::QUOTA_EXCEEDED,
        reason_string("full"),
    ));

    h.assert_nothing_sent();
    let done = h.publish_done();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, token);
    assert_matches!(
        &done[0].1,
        Err(PublishError::Rejected { reason: ReasonCode::QUOTA_EXCEEDED, properties })
            if *properties == reason_string("full")
    );
    assert_eq!(h.engine.inflight(), 0);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    // A late PUBCOMP for it is ignored.
    h.deliver(pubcomp(id));
    h.assert_no_events();
    h.assert_nothing_sent();
}

// ----- duplicate and unknown acks --------------------------------------------------

#[test]
fn duplicate_and_unknown_acks_are_ignored() {
    let mut h = Harness::connected(V5);
    let (t1, _) = h.publish_id(message("t", Q1, b"1"));
    let (t2, _) = h.publish_id(message("t", Q2, b"2"));
    h.take_sent();

    // A PUBACK for the QoS 2 message, a PUBCOMP before its PUBREC, acks for
    // identifiers not in use: nothing happens.
    h.deliver(puback(2));
    h.deliver(pubcomp(2));
    h.deliver(puback(77));
    h.deliver(pubcomp(78));
    h.assert_no_events();
    h.assert_nothing_sent();
    assert_eq!(h.engine.inflight(), 2);

    h.deliver(puback(1));
    h.deliver(puback(1));
    h.deliver(pubrec(2));
    h.deliver(pubcomp(2));
    h.deliver(pubcomp(2));

    let done = h.publish_done();
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![t1, t2]
    );
    assert_eq!(h.take_sent(), vec![pubrel(2)]);
}

#[test]
fn a_duplicate_pubrec_gets_pubrel_again() {
    let mut h = Harness::connected(V5);
    let (_, id) = h.publish_id(message("t", Q2, b"x"));
    h.take_sent();

    h.deliver(pubrec(id));
    h.deliver(pubrec(id));

    assert_eq!(h.take_sent(), vec![pubrel(id), pubrel(id)]);
    h.deliver(pubcomp(id));
    assert_eq!(h.publish_done().len(), 1);
}

#[test]
fn a_pubrec_for_an_unknown_identifier_gets_pubrel_not_found() {
    let mut h = Harness::connected(V5);

    h.deliver(pubrec(9));

    assert_eq!(
        h.take_sent(),
        vec![pubrel_rc(9, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)]
    );
    h.assert_no_events();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn v311_a_pubrec_for_an_unknown_identifier_gets_a_plain_pubrel() {
    let mut h = Harness::connected(V311);

    h.deliver(pubrec(9));

    assert_eq!(h.take_sent(), vec![pubrel(9)]);
    h.assert_no_events();
}

#[test]
fn a_pubrec_for_a_qos1_identifier_leaves_the_qos1_flow_alone() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("t", Q1, b"x"));
    h.take_sent();

    h.deliver(pubrec(id));

    assert_eq!(
        h.take_sent(),
        vec![pubrel_rc(id, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)]
    );
    h.deliver(puback(id));
    let done = h.publish_done();
    assert_eq!(done[0].0, token);
    assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
}

// ----- loss and disconnection at each step, session resumed ------------------------

#[test]
fn qos1_lost_publish_or_puback_is_resent_with_dup_on_the_resumed_session() {
    for version in [V5, V311] {
        for lose_publish in [true, false] {
            let mut h = resumable(version);
            let (token, id) = h.publish_id(message("t", Q1, b"x"));
            if lose_publish {
                h.lose_sent();
            } else {
                // The broker got it; its PUBACK is what gets lost.
                assert_eq!(h.take_sent().len(), 1);
            }
            h.lose_connection();

            h.reconnect(true, ConnAckProperties::EMPTY);

            assert_eq!(
                h.take_sent(),
                vec![Packet::Publish(dup(publish(id, "t", Q1, b"x")))],
                "{version:?}"
            );
            let events = h.events();
            assert_matches!(
                events.as_slice(),
                [Event::Connected {
                    session_present: true
                }]
            );
            h.deliver(puback(id));
            let done = h.publish_done();
            assert_eq!(done[0].0, token);
            assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
        }
    }
}

#[test]
fn qos2_lost_publish_or_pubrec_is_resent_with_dup_on_the_resumed_session() {
    for version in [V5, V311] {
        for lose_publish in [true, false] {
            let mut h = resumable(version);
            let (token, id) = h.publish_id(message("t", Q2, b"x"));
            if lose_publish {
                h.lose_sent();
            } else {
                // The broker got it and answered PUBREC, which gets lost.
                assert_eq!(h.take_sent().len(), 1);
            }
            h.lose_connection();

            h.reconnect(true, ConnAckProperties::EMPTY);

            assert_eq!(
                h.take_sent(),
                vec![Packet::Publish(dup(publish(id, "t", Q2, b"x")))]
            );
            h.events();
            h.deliver(pubrec(id));
            assert_eq!(h.take_sent(), vec![pubrel(id)]);
            h.deliver(pubcomp(id));
            let done = h.publish_done();
            assert_eq!(done[0].0, token);
            assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
        }
    }
}

#[test]
fn qos2_lost_pubrel_or_pubcomp_resends_pubrel_on_the_resumed_session() {
    for version in [V5, V311] {
        for lose_pubrel in [true, false] {
            let mut h = resumable(version);
            let (token, id) = h.publish_id(message("t", Q2, b"x"));
            h.take_sent();
            h.deliver(pubrec(id));
            if lose_pubrel {
                h.lose_sent();
            } else {
                assert_eq!(h.take_sent(), vec![pubrel(id)]);
            }
            h.lose_connection();

            h.reconnect(true, ConnAckProperties::EMPTY);

            assert_eq!(h.take_sent(), vec![pubrel(id)], "{version:?}");
            h.events();
            h.deliver(pubcomp(id));
            let done = h.publish_done();
            assert_eq!(done[0].0, token);
            assert_eq!(done[0].1.as_ref().unwrap(), &success(id));
            assert_eq!(h.engine.packet_ids_in_use(), 0);
        }
    }
}

#[test]
fn a_connection_lost_before_connack_keeps_everything_for_the_next() {
    let mut h = resumable(V5);
    let (_, id) = h.publish_id(message("t", Q1, b"x"));
    h.take_sent();
    h.lose_connection();
    h.advance_to_reconnect();
    h.open();
    // Lost again before CONNACK: nothing is resent before a CONNACK.
    h.drop_transport(reset());
    h.events();

    h.reconnect(true, ConnAckProperties::EMPTY);

    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(id, "t", Q1, b"x")))]
    );
}

#[test]
fn resends_follow_the_original_order_before_anything_new() {
    let mut h = resumable(V5);
    let (_, a) = h.publish_id(message("a", Q1, b"a"));
    let (_, b) = h.publish_id(message("b", Q2, b"b"));
    let (_, c) = h.publish_id(message("c", Q1, b"c"));
    let (_, d) = h.publish_id(message("d", Q2, b"d"));
    let (_, e) = h.publish_id(message("e", Q2, b"e"));
    h.take_sent();
    // D and B are past PUBREC, in that order; E's PUBREC is lost.
    h.deliver(pubrec(d));
    h.deliver(pubrec(b));
    h.take_sent();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);

    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(dup(publish(a, "a", Q1, b"a"))),
            pubrel(b),
            Packet::Publish(dup(publish(c, "c", Q1, b"c"))),
            pubrel(d),
            Packet::Publish(dup(publish(e, "e", Q2, b"e"))),
        ]
    );
    h.events();
    // A new message comes after the resends, with an identifier not in use.
    let (_, f) = h.publish_id(message("f", Q1, b"f"));
    assert!(![a, b, c, d, e].contains(&f));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(f, "f", Q1, b"f"))]
    );
}

#[test]
fn disconnected_twice_the_resends_still_carry_dup_and_order() {
    let mut h = resumable(V5);
    let (_, a) = h.publish_id(message("a", Q1, b"a"));
    let (_, b) = h.publish_id(message("b", Q2, b"b"));
    h.take_sent();
    h.lose_connection();
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    h.take_sent();
    h.deliver(pubrec(b));
    h.take_sent();
    h.lose_connection();

    h.reconnect(true, ConnAckProperties::EMPTY);

    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(a, "a", Q1, b"a"))), pubrel(b)]
    );
}

// ----- lost session ------------------------------------------------------------------

#[test]
fn lost_session_resend_as_new_sends_everything_again_without_dup() {
    let mut h = Harness::connected_with(
        options(V5).with_session_lost_policy(SessionLostPolicy::ResendAsNew),
        ConnAckProperties::EMPTY,
    );
    let (ta, a) = h.publish_id(message("a", Q1, b"payload-a"));
    let (tb, b) = h.publish_id(message("b", Q2, b"payload-b"));
    let (tc, c) = h.publish_id(message("c", Q2, b"payload-c"));
    h.take_sent();
    h.deliver(pubrec(b));
    h.take_sent();
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    // B had reached PUBREC; the server forgot it, so it goes again as a new
    // message, payload and all.
    assert_eq!(
        h.take_sent(),
        vec![
            Packet::Publish(publish(a, "a", Q1, b"payload-a")),
            Packet::Publish(publish(b, "b", Q2, b"payload-b")),
            Packet::Publish(publish(c, "c", Q2, b"payload-c")),
        ]
    );
    let events = h.events();
    assert_matches!(
        events.as_slice(),
        [Event::Connected {
            session_present: false
        }]
    );
    h.deliver(puback(a));
    h.deliver(pubrec(b));
    h.deliver(pubrec(c));
    assert_eq!(h.take_sent(), vec![pubrel(b), pubrel(c)]);
    h.deliver(pubcomp(c));
    h.deliver(pubcomp(b));
    let done = h.publish_done();
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![ta, tc, tb]
    );
    assert!(done.iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn v311_clean_session_reconnect_resends_as_new() {
    let mut h = Harness::connected(V311);
    let (_, a) = h.publish_id(message("a", Q1, b"a"));
    h.take_sent();
    h.lose_connection();

    let connect = h.reconnect(false, ConnAckProperties::EMPTY);

    assert!(connect.clean_start);
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(a, "a", Q1, b"a"))]
    );
}

#[test]
fn lost_session_fail_completes_every_unfinished_publish_with_session_lost() {
    let mut h = Harness::connected_with(
        options(V5).with_session_lost_policy(SessionLostPolicy::Fail),
        ConnAckProperties::EMPTY,
    );
    let (ta, _) = h.publish_id(message("a", Q1, b"a"));
    let (tb, b) = h.publish_id(message("b", Q2, b"b"));
    let (tc, _) = h.publish_id(message("c", Q2, b"c"));
    h.take_sent();
    h.deliver(pubrec(b));
    h.take_sent();
    h.lose_connection();

    h.reconnect(false, ConnAckProperties::EMPTY);

    h.assert_nothing_sent();
    let mut done = Vec::new();
    let mut connected = 0;
    for event in h.events() {
        match event {
            Event::PublishDone { token, result } => done.push((token, result)),
            Event::Connected {
                session_present: false,
            } => connected += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(connected, 1);
    assert_eq!(
        done.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        vec![ta, tb, tc]
    );
    for (_, result) in &done {
        assert_matches!(result, Err(PublishError::SessionLost));
    }
    assert_eq!(h.engine.inflight(), 0);
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    // A late PUBCOMP for B is ignored.
    h.deliver(pubcomp(b));
    h.assert_no_events();
}

// ----- refused before anything is written -------------------------------------------

#[test]
fn refuses_qos_above_the_server_maximum_before_writing() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            maximum_qos: Some(Q1),
            ..ConnAckProperties::EMPTY
        },
    );

    let refused = h.try_publish(message("t", Q2, b"x")).unwrap_err();

    assert_matches!(
        refused.error,
        Refusal::Invalid(PublishError::QosNotSupported)
    );
    assert_eq!(refused.token, h.token() - 1);
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    assert_eq!(h.engine.inflight(), 0);
    // QoS 1 is within the maximum.
    let (_, id) = h.publish_id(message("t", Q1, b"x"));
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(id, "t", Q1, b"x"))]
    );
}

#[test]
fn refuses_retain_when_the_server_has_none() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            retain_available: Some(false),
            ..ConnAckProperties::EMPTY
        },
    );
    let mut retained = message("t", Q1, b"x");
    retained.retain = true;

    let refused = h.try_publish(retained).unwrap_err();

    assert_matches!(
        refused.error,
        Refusal::Invalid(PublishError::RetainNotSupported)
    );
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    h.publish(message("t", Q0, b"not retained"));
    assert_eq!(h.take_sent().len(), 1);
}

#[test]
fn refuses_a_packet_larger_than_the_server_maximum() {
    let mut h = Harness::connected_with(
        options(V5),
        ConnAckProperties {
            maximum_packet_size: Some(64),
            ..ConnAckProperties::EMPTY
        },
    );
    let payload = &[b'x'; 100];
    let size = Packet::Publish(publish(1, "t", Q1, payload))
        .encoded_len(V5)
        .unwrap();

    let refused = h.try_publish(message("t", Q1, payload)).unwrap_err();

    assert_matches!(
        refused.error,
        Refusal::Invalid(PublishError::PacketTooLarge { size: s, maximum: 64 }) if s == size
    );
    h.assert_nothing_sent();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
    assert_eq!(h.engine.inflight(), 0);
    // One that fits goes, and gets the next identifier.
    let (_, id) = h.publish_id(message("t", Q1, b"small"));
    assert_eq!(h.take_sent().len(), 1);
    assert_eq!(h.engine.packet_ids_in_use(), 1);
    assert!(id >= 1);
}

#[test]
fn refuses_a_topic_alias_or_subscription_identifier_in_an_outgoing_publish() {
    let mut h = Harness::connected(V5);
    let aliased = with_properties(
        message("t", Q1, b"x"),
        PublishProperties {
            topic_alias: Some(1),
            ..PublishProperties::EMPTY
        },
    );
    let with_sub_id = with_properties(
        message("t", Q0, b"x"),
        PublishProperties {
            subscription_identifiers: vec![3],
            ..PublishProperties::EMPTY
        },
    );

    assert_matches!(
        h.try_publish(aliased).unwrap_err().error,
        Refusal::Invalid(PublishError::PropertyNotAllowed("Topic Alias"))
    );
    assert_matches!(
        h.try_publish(with_sub_id).unwrap_err().error,
        Refusal::Invalid(PublishError::PropertyNotAllowed("Subscription Identifier"))
    );
    h.assert_nothing_sent();
    h.assert_no_events();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn a_resend_larger_than_the_new_server_maximum_fails_alone() {
    let mut h = resumable(V5);
    let big = &[b'x'; 100];
    let (t_big, _) = h.publish_id(message("big", Q1, big));
    let (_, small) = h.publish_id(message("small", Q1, b"s"));
    h.take_sent();
    h.lose_connection();

    h.reconnect(
        true,
        ConnAckProperties {
            maximum_packet_size: Some(64),
            ..ConnAckProperties::EMPTY
        },
    );

    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(dup(publish(small, "small", Q1, b"s")))]
    );
    let events = h.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_matches!(
        events[0],
        Event::Connected {
            session_present: true
        }
    );
    assert_matches!(
        &events[1],
        Event::PublishDone {
            token,
            result: Err(PublishError::PacketTooLarge { maximum: 64, .. })
        } if *token == t_big
    );
    assert_eq!(h.engine.packet_ids_in_use(), 1);
}

#[test]
fn the_engine_sets_identifier_and_dup_itself() {
    let mut h = Harness::connected(V5);

    let (_, id) = h.publish_id(dup(publish(4242, "t", Q1, b"x")));

    assert_eq!(id, 1);
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(publish(1, "t", Q1, b"x"))]
    );
}

// ----- QoS 0 ---------------------------------------------------------------------------

#[test]
fn qos0_completes_when_its_bytes_are_taken_for_the_transport() {
    let mut h = Harness::connected(V5);
    let token = h.token();

    let id = h
        .engine
        .publish(h.now, message("t", Q0, b"fire"), token)
        .unwrap();

    assert_eq!(id, None);
    assert_eq!(h.engine.inflight(), 0);
    h.assert_no_events();
    h.flush();
    assert_eq!(
        h.take_sent(),
        vec![Packet::Publish(message("t", Q0, b"fire"))]
    );
    let done = h.publish_done();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, token);
    assert_eq!(
        done[0].1.as_ref().unwrap(),
        &PublishOutcome {
            packet_id: None,
            reason: ReasonCode::SUCCESS,
            properties: AckProperties::EMPTY,
        }
    );
}

#[test]
fn qos0_fails_with_connection_lost_when_the_transport_drops_first() {
    let mut h = Harness::connected(V5);
    let token = h.token();
    h.engine
        .publish(h.now, message("t", Q0, b"fire"), token)
        .unwrap();

    h.drop_transport(reset());

    h.assert_nothing_sent();
    let events = h.events();
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_matches!(
        &events[0],
        Event::PublishDone { token: t, result: Err(PublishError::ConnectionLost) } if *t == token
    );
    assert_matches!(events[1], Event::ConnectionLost(_));
    assert_matches!(events[2], Event::Reconnecting { .. });
    // Not sent again on the next connection.
    h.reconnect(false, ConnAckProperties::EMPTY);
    h.assert_nothing_sent();
}

#[test]
fn publishing_without_a_connection_is_refused_with_the_token() {
    let mut h = Harness::new(options(V5));
    for qos in [Q0, Q1, Q2] {
        assert!(!h.engine.can_publish(qos));
        let refused = h.try_publish(message("t", qos, b"x")).unwrap_err();
        assert_matches!(refused.error, Refusal::NotReady);
    }
    h.assert_no_events();
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

#[test]
fn pubcomp_not_found_after_a_resent_pubrel_is_success() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("t", Q2, b"x"));
    h.take_sent();
    h.deliver(pubrec(id));
    assert_eq!(h.take_sent(), vec![pubrel(id)]);
    // The server's PUBCOMP is lost with the connection; the session resumes.
    h.lose_connection();
    h.reconnect(true, ConnAckProperties::EMPTY);
    h.events();
    assert_eq!(h.take_sent(), vec![pubrel(id)]);

    // It had completed the flow: "Packet Identifier not found".
    h.deliver(pubcomp_rc(
        id,
        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        AckProperties::EMPTY,
    ));

    let done = h.publish_done();
    assert_eq!(done[0].0, token);
    assert_matches!(
        &done[0].1,
        Ok(outcome) if outcome.reason == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
    );
    assert_eq!(h.engine.packet_ids_in_use(), 0);
}

// ----- Payload Format Indicator (3.3.2.3.2) ----------------------------------------------

#[test]
fn refuses_a_payload_marked_utf8_that_is_not() {
    let mut h = Harness::connected(V5);
    let marked = |payload: &'static [u8], qos| {
        with_properties(
            message("t", qos, payload),
            PublishProperties {
                payload_format_indicator: Some(1),
                ..PublishProperties::EMPTY
            },
        )
    };

    for qos in [Q0, Q1, Q2] {
        let refused = h.try_publish(marked(b"\xff\xfe", qos)).unwrap_err();
        assert_matches!(
            &refused.error,
            Refusal::Invalid(e @ PublishError::InvalidPayload)
                if e.kind() == mqtt_client::ErrorKind::Configuration
        );
    }
    h.assert_nothing_sent();
    h.assert_no_events();
    assert_eq!(h.engine.packet_ids_in_use(), 0);

    // Valid UTF-8 goes, and so do bytes marked as unspecified (0).
    h.publish(marked("grüße".as_bytes(), Q0));
    h.publish(with_properties(
        message("t", Q0, b"\xff"),
        PublishProperties {
            payload_format_indicator: Some(0),
            ..PublishProperties::EMPTY
        },
    ));
    assert_eq!(h.take_sent().len(), 2);
}

// ----- Reason Strings surfaced ---------------------------------------------------------

#[test]
fn a_rejection_shows_the_servers_reason_string() {
    let mut h = Harness::connected(V5);
    let (token, id) = h.publish_id(message("secret/t", Q1, b"x"));
    h.deliver(puback_rc(
        id,
        ReasonCode::NOT_AUTHORIZED,
        reason_string("topic denied by ACL"),
    ));
    let done = h.publish_done();
    assert_eq!(done[0].0, token);
    let error = done[0].1.clone().unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"rejected by the server: Not authorized (0x87) ("topic denied by ACL")"#
    );
    assert_eq!(error.reason_string(), Some("topic denied by ACL"));
    assert_eq!(error.kind(), mqtt_client::ErrorKind::Rejected);

    // Without one, the code alone.
    let (_, id) = h.publish_id(message("t", Q1, b"x"));
    h.deliver(puback_rc(
        id,
        ReasonCode::QUOTA_EXCEEDED,
        AckProperties::EMPTY,
    ));
    let error = h.publish_done()[0].1.clone().unwrap_err();
    assert_eq!(
        error.to_string(),
        "rejected by the server: Quota exceeded (0x97)"
    );

    // A success ack's Reason String is there too.
    let (_, id) = h.publish_id(message("t", Q1, b"x"));
    h.deliver(puback_rc(
        id,
        ReasonCode::NO_MATCHING_SUBSCRIBERS,
        reason_string("nobody"),
    ));
    let outcome = h.publish_done()[0].1.clone().unwrap();
    assert_eq!(outcome.reason_string(), Some("nobody"));
}
