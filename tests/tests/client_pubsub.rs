//! Publish and subscribe through a real mosquitto: QoS 0/1/2 in both protocol
//! versions (payload, topic, QoS, flags checked), QoS downgrade to the granted
//! QoS, retained messages, MQTT 5 publish properties end to end (a request and
//! its response), and a shared subscription split between two clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::collections::BTreeMap;

use bytes::Bytes;
use client_common::{assert_no_message, ms, recv, within, QUIET, WAIT};
use mqtt_client::codec::{Publish, PublishProperties, ReasonCode, UserProperty};
use mqtt_client::{Client, Incoming, Options, ProtocolVersion, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;

async fn connect(broker: &Mosquitto, id: &str, version: ProtocolVersion) -> (Client, Incoming) {
    Client::connect(
        Options::new(id).with_version(version),
        Tcp::new(broker.addr().to_string()),
    )
    .await
    .unwrap_or_else(|e| panic!("{id} could not connect: {e}"))
}

/// A payload that is not text and holds every byte value.
fn binary_payload(len: usize, salt: u8) -> Bytes {
    (0..len)
        .map(|i| {
            u8::try_from(i % 256)
                .unwrap()
                .wrapping_mul(31)
                .wrapping_add(salt)
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn qos_matrix(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let (sub, mut incoming) = connect(&broker, "matrix-sub", version).await;
    // Granted QoS 2 on one filter, QoS 1 on another: a QoS 2 publish to the second
    // arrives at QoS 1 [MQTT-3.8.4-8].
    let granted = sub.subscribe("m/+/full", QoS::ExactlyOnce).await.unwrap();
    assert_eq!(granted.results, vec![Ok(QoS::ExactlyOnce)]);
    let granted = sub
        .subscribe("m/+/capped/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    assert_eq!(granted.results, vec![Ok(QoS::AtLeastOnce)]);
    let (publisher, _) = connect(&broker, "matrix-pub", version).await;

    let sizes = [0usize, 1, 127, 128, 16_383, 16_384, 200_000];
    let mut salt = 0u8;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for (suffix, delivered_qos) in [("full", qos), ("capped/x", qos.min(QoS::AtLeastOnce))] {
            for len in sizes {
                salt = salt.wrapping_add(1);
                let topic = format!("m/{}/{suffix}", qos as u8);
                let payload = binary_payload(len, salt);
                let handle = publisher
                    .publish(&topic, qos, false, payload.clone())
                    .await
                    .unwrap();
                let outcome = within(WAIT, "publish handle", handle).await.unwrap();
                assert_eq!(outcome.packet_id.is_some(), qos != QoS::AtMostOnce);
                assert!(
                    outcome.reason.is_success(),
                    "publish {topic} {qos:?}: {:?}",
                    outcome.reason
                );
                let mut m = recv(&mut incoming).await;
                assert_eq!(m.topic(), topic);
                assert_eq!(m.qos(), delivered_qos, "{topic} published at {qos:?}");
                assert_eq!(m.payload().len(), len, "{topic}");
                assert_eq!(m.payload(), &payload, "{topic} len {len}");
                assert!(!m.retain());
                assert!(!m.dup());
                assert!(m.properties().user_properties.is_empty());
                m.ack().unwrap();
            }
        }
    }
    assert_no_message(&mut incoming, QUIET, "after the matrix").await;
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
    assert!(sub.is_closed() && publisher.is_closed());
}

#[tokio::test]
async fn qos_matrix_v5() {
    qos_matrix(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn qos_matrix_v311() {
    qos_matrix(ProtocolVersion::V311).await;
}

/// MQTT 5: a publish nobody subscribed to still completes successfully. For QoS 1
/// the handle carries PUBACK's 0x10 No matching subscribers; for QoS 2 the outcome
/// is PUBCOMP's (mosquitto puts 0x10 on PUBREC, and PUBCOMP is 0x00).
#[tokio::test]
async fn no_matching_subscribers_is_success_v5() {
    let broker = Mosquitto::start();
    let (publisher, _) = connect(&broker, "lonely", ProtocolVersion::V5).await;
    let outcome = publisher
        .publish("nobody/listens", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(outcome.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert!(outcome.packet_id.is_some());
    let outcome = publisher
        .publish("nobody/listens", QoS::ExactlyOnce, false, "x")
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(outcome.reason, ReasonCode::SUCCESS);
    assert!(outcome.packet_id.is_some());
    publisher.disconnect().await.unwrap();
}

async fn retained(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let (publisher, _) = connect(&broker, "ret-pub", version).await;
    publisher
        .publish("r/a", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap()
        .await
        .unwrap();
    publisher
        .publish("r/b", QoS::ExactlyOnce, true, "kept too")
        .await
        .unwrap()
        .await
        .unwrap();

    // A later subscriber gets the retained messages, RETAIN set, at min(QoS).
    let (late, mut incoming) = connect(&broker, "ret-late", version).await;
    late.subscribe("r/#", QoS::ExactlyOnce).await.unwrap();
    let mut got = BTreeMap::new();
    for _ in 0..2 {
        let mut m = recv(&mut incoming).await;
        assert!(m.retain(), "retained message without RETAIN: {}", m.topic());
        got.insert(m.topic().to_owned(), (m.payload().clone(), m.qos()));
        m.ack().unwrap();
    }
    assert_eq!(
        got,
        BTreeMap::from([
            ("r/a".to_owned(), (Bytes::from("kept"), QoS::AtLeastOnce)),
            (
                "r/b".to_owned(),
                (Bytes::from("kept too"), QoS::ExactlyOnce)
            ),
        ])
    );
    assert_no_message(&mut incoming, QUIET, "after the retained messages").await;

    // Live delivery to an existing subscription clears RETAIN [MQTT-3.3.1-9].
    publisher
        .publish("r/a", QoS::AtLeastOnce, true, "replaced")
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert_eq!((m.topic(), &m.payload()[..]), ("r/a", &b"replaced"[..]));
    assert!(!m.retain());
    m.ack().unwrap();

    // An empty retained payload deletes the retained message.
    publisher
        .publish("r/a", QoS::AtLeastOnce, true, Bytes::new())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut m = recv(&mut incoming).await;
    assert!(m.payload().is_empty());
    m.ack().unwrap();
    let (third, mut incoming3) = connect(&broker, "ret-third", version).await;
    third.subscribe("r/#", QoS::AtLeastOnce).await.unwrap();
    let mut m = recv(&mut incoming3).await;
    assert_eq!((m.topic(), &m.payload()[..]), ("r/b", &b"kept too"[..]));
    assert!(m.retain());
    m.ack().unwrap();
    assert_no_message(&mut incoming3, QUIET, "r/a was deleted").await;
    for c in [publisher, late, third] {
        c.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn retained_messages_v5() {
    retained(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn retained_messages_v311() {
    retained(ProtocolVersion::V311).await;
}

fn user_properties(pairs: &[(&str, &str)]) -> Vec<UserProperty> {
    pairs
        .iter()
        .map(|(n, v)| UserProperty::new(n, v).unwrap())
        .collect()
}

/// A request with every application property goes through the broker intact; the
/// responder answers on the Response Topic with the Correlation Data, and the
/// requester gets that answer.
#[tokio::test]
async fn v5_properties_request_response_roundtrip() {
    let broker = Mosquitto::start();
    let (requester, mut replies) = connect(&broker, "requester", ProtocolVersion::V5).await;
    let (responder, mut requests) = connect(&broker, "responder", ProtocolVersion::V5).await;
    requester
        .subscribe("reply/requester", QoS::ExactlyOnce)
        .await
        .unwrap();
    responder
        .subscribe("service/+", QoS::ExactlyOnce)
        .await
        .unwrap();

    // Names repeat and order matters [MQTT-3.3.2-18].
    let sent_user = user_properties(&[("a", "1"), ("b", "two"), ("a", "3"), ("ünï", "cödé")]);
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let correlation = Bytes::from(vec![0u8, 1, 2, 0xFF, u8::try_from(i).unwrap()]);
        let properties = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(120),
            response_topic: Some("reply/requester".try_into().unwrap()),
            correlation_data: Some(correlation.clone()),
            content_type: Some("application/json; charset=utf-8".try_into().unwrap()),
            user_properties: sent_user.clone(),
            ..PublishProperties::default()
        };
        let request = Publish {
            qos,
            topic: "service/echo".try_into().unwrap(),
            properties: Some(Box::new(properties)),
            payload: Bytes::from(format!("{{\"n\":{i}}}")),
            ..Publish::default()
        };
        let outcome = requester
            .publish_with(request)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(outcome.reason.is_success());

        let mut m = recv(&mut requests).await;
        assert_eq!(m.topic(), "service/echo");
        assert_eq!(m.qos(), qos);
        assert_eq!(&m.payload()[..], format!("{{\"n\":{i}}}").as_bytes());
        let p = m.properties().clone();
        assert_eq!(p.user_properties, sent_user, "user properties, in order");
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(p.correlation_data.as_ref(), Some(&correlation));
        assert_eq!(p.response_topic.as_deref(), Some("reply/requester"));
        assert_eq!(p.payload_format_indicator, Some(1));
        // The broker forwards the remaining lifetime [MQTT-3.3.2-6].
        let expiry = p.message_expiry_interval.expect("message expiry forwarded");
        assert!((110..=120).contains(&expiry), "expiry {expiry}");
        assert_eq!(p.topic_alias, None);
        m.ack().unwrap();

        // Answer as a responder does: to the Response Topic, echoing the data.
        let reply = Publish {
            qos,
            topic: p.response_topic.clone().unwrap(),
            properties: Some(Box::new(PublishProperties {
                correlation_data: p.correlation_data.clone(),
                user_properties: user_properties(&[("status", "ok")]),
                ..PublishProperties::default()
            })),
            payload: Bytes::from_static(b"pong"),
            ..Publish::default()
        };
        responder.publish_with(reply).await.unwrap().await.unwrap();
        let mut r = recv(&mut replies).await;
        assert_eq!(r.topic(), "reply/requester");
        assert_eq!(&r.payload()[..], b"pong");
        assert_eq!(r.properties().correlation_data.as_ref(), Some(&correlation));
        assert_eq!(
            r.properties().user_properties,
            user_properties(&[("status", "ok")])
        );
        assert_eq!(r.properties().content_type, None);
        r.ack().unwrap();
    }
    requester.disconnect().await.unwrap();
    responder.disconnect().await.unwrap();
}

async fn shared_subscription(version: ProtocolVersion) {
    const COUNT: usize = 200;
    let broker = Mosquitto::start();
    let (a, mut in_a) = connect(&broker, "share-a", version).await;
    let (b, mut in_b) = connect(&broker, "share-b", version).await;
    // A plain subscriber to the same topic sees everything, independently.
    let (all, mut in_all) = connect(&broker, "share-all", version).await;
    for c in [&a, &b] {
        let granted = c.subscribe("$share/g/s/t", QoS::AtLeastOnce).await.unwrap();
        assert_eq!(granted.results, vec![Ok(QoS::AtLeastOnce)]);
    }
    all.subscribe("s/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(&broker, "share-pub", version).await;
    let mut handles = Vec::new();
    for i in 0..COUNT {
        handles.push(
            publisher
                .publish("s/t", QoS::AtLeastOnce, false, i.to_string())
                .await
                .unwrap(),
        );
    }
    for h in handles {
        within(WAIT, "publish handle", h).await.unwrap();
    }

    let mut seen: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    let mut per_member = [0usize; 2];
    within(WAIT, "every shared message", async {
        while per_member.iter().sum::<usize>() < COUNT {
            let (who, m) = tokio::select! {
                m = in_a.recv() => (0, m),
                m = in_b.recv() => (1, m),
            };
            let mut m = m.expect("client closed");
            assert_eq!(m.topic(), "s/t");
            let n: usize = std::str::from_utf8(m.payload()).unwrap().parse().unwrap();
            seen.entry(n).or_default().push(["a", "b"][who]);
            per_member[who] += 1;
            m.ack().unwrap();
        }
    })
    .await;
    assert_no_message(&mut in_a, QUIET, "member a, after all").await;
    assert_no_message(&mut in_b, ms(50), "member b, after all").await;
    let expected: Vec<usize> = (0..COUNT).collect();
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        expected,
        "none lost"
    );
    let duplicated: Vec<_> = seen.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(
        duplicated.is_empty(),
        "delivered to both members: {duplicated:?}"
    );
    assert!(
        per_member.iter().all(|&n| n > 0),
        "not split between the members: {per_member:?}"
    );

    let mut plain = Vec::new();
    while plain.len() < COUNT {
        let mut m = recv(&mut in_all).await;
        plain.push(
            std::str::from_utf8(m.payload())
                .unwrap()
                .parse::<usize>()
                .unwrap(),
        );
        m.ack().unwrap();
    }
    assert_eq!(plain, expected, "the plain subscriber gets all, in order");
    for c in [publisher, a, b, all] {
        c.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn shared_subscription_split_v5() {
    shared_subscription(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn shared_subscription_split_v311() {
    shared_subscription(ProtocolVersion::V311).await;
}
