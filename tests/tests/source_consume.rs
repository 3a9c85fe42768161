//! mqtt-source against mosquitto: consuming, acks after processing and in
//! order, redelivery, dead letters, flow control, QoS 2, shared groups, shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client_common;
mod source_common;

use std::time::Duration;

use client_common::{ms, packet_type, within, Dir, Proxy, QUIET, WAIT};
use futures_util::StreamExt;
use mqtt_client::{Client, Options, QoS};
use mqtt_source::{Message, OnFailure, Source, SourceConfig};
use mqtt_tests::broker::Mosquitto;
use source_common::{config, next, nothing, publish_n, publisher, url};

#[tokio::test]
async fn consumes_acks_and_counts() {
    let broker = Mosquitto::start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "count",
        "t/count",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/count", QoS::AtLeastOnce, 20).await;
    for i in 0..20 {
        let m = within(WAIT, "message", source.next()).await.unwrap();
        assert_eq!(m.payload(), format!("m{i}").as_bytes());
        assert_eq!(
            (
                m.topic(),
                m.qos(),
                m.delivery_attempt(),
                m.connection_index()
            ),
            ("t/count", QoS::AtLeastOnce, 1, 0)
        );
        assert!(m.packet_id().is_some());
        m.ack().unwrap();
    }
    let totals = source.shutdown().await;
    assert_eq!(
        (
            totals.received,
            totals.acked,
            totals.nacked,
            totals.in_flight
        ),
        (20, 20, 0, 0)
    );
    assert_eq!(
        totals.received_bytes,
        (0..20).map(|i| format!("m{i}").len() as u64).sum::<u64>()
    );
    assert_eq!(totals.connects, 1);
    let json: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&totals).unwrap()).unwrap();
    assert_eq!(json["acked"], 20);
}

#[tokio::test]
async fn out_of_order_completion_gives_in_order_acks_on_the_wire() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let port: u16 = proxy.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut source = Source::connect(config(url(port), "order", "t/order", QoS::AtLeastOnce))
        .await
        .unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/order", QoS::AtLeastOnce, 5).await;
    let mut batch = Vec::new();
    for _ in 0..5 {
        batch.push(next(&mut source).await);
    }
    let received: Vec<u16> = batch.iter().map(|m| m.packet_id().unwrap().get()).collect();
    // Finish them last to first.
    while let Some(m) = batch.pop() {
        m.ack().unwrap();
    }
    let totals = source.shutdown().await;
    assert_eq!(totals.acked, 5);
    // The proxy may not have read everything the client wrote before it closed.
    proxy
        .wait_frame("DISCONNECT", |f| {
            f.dir == Dir::ToBroker && f.packet_type() == 14
        })
        .await;
    let acks: Vec<u16> = proxy
        .frames()
        .iter()
        .filter(|f| f.dir == Dir::ToBroker && f.packet_type() == packet_type::PUBACK)
        .map(|f| f.packet_id.unwrap())
        .collect();
    assert_eq!(
        acks, received,
        "PUBACKs must follow the order of arrival [MQTT-4.6.0-2]"
    );
}

#[tokio::test]
async fn a_nacked_message_comes_back_then_acks() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "nack", "t/nack", QoS::AtLeastOnce)
        .with_redelivery_delay(ms(10));
    let mut source = Source::connect(cfg).await.unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/nack", QoS::AtLeastOnce, 1).await;
    let first = next(&mut source).await;
    let id = first.packet_id();
    assert_eq!(first.delivery_attempt(), 1);
    first.nack();
    let again = next(&mut source).await;
    assert_eq!(
        (
            again.payload().as_ref(),
            again.packet_id(),
            again.delivery_attempt()
        ),
        (&b"m0"[..], id, 2)
    );
    // Dropping is a nack too.
    drop(again);
    let third = next(&mut source).await;
    assert_eq!(third.delivery_attempt(), 3);
    third.ack().unwrap();
    nothing(&mut source, "after the ack").await;
    let totals = source.shutdown().await;
    assert_eq!(
        (
            totals.received,
            totals.nacked,
            totals.redelivered,
            totals.dropped_unacked,
            totals.acked
        ),
        (1, 2, 2, 1, 1)
    );
    // The broker got its PUBACK: a new session does not get the message again.
    let mut again = Source::connect(config(
        url(broker.port()),
        "nack",
        "t/nack",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    nothing(&mut again, "after a resumed session").await;
}

#[tokio::test]
async fn poison_goes_to_the_dead_letter_topic_and_frees_the_window() {
    let broker = Mosquitto::start();
    let (dlq, mut dlq_in) = Client::connect(
        Options::new("dlq-reader"),
        mqtt_client::Tcp::new(format!("127.0.0.1:{}", broker.port())),
    )
    .await
    .unwrap();
    dlq.subscribe("dlq/poison", QoS::AtLeastOnce).await.unwrap();
    let cfg = config(url(broker.port()), "poison", "t/poison", QoS::AtLeastOnce)
        .with_redelivery_delay(ms(5))
        .with_max_deliveries(3)
        .with_dead_letter_topic("dlq/poison")
        // A window of one: a stuck message would stop everything behind it.
        .with_max_in_flight(1);
    let mut source = Source::connect(cfg).await.unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/poison", QoS::AtLeastOnce, 2).await;
    for attempt in 1..=3 {
        let m = next(&mut source).await;
        assert_eq!(
            (m.payload().as_ref(), m.delivery_attempt()),
            (&b"m0"[..], attempt)
        );
        m.nack_with("bad record");
    }
    // The window moved on.
    let m = next(&mut source).await;
    assert_eq!(m.payload().as_ref(), b"m1");
    m.ack().unwrap();
    let mut dead = within(WAIT, "dead letter", dlq_in.recv()).await.unwrap();
    assert_eq!(dead.payload().as_ref(), b"m0");
    let props: Vec<(String, String)> = dead
        .properties()
        .user_properties
        .iter()
        .map(|p| (p.name.to_string(), p.value.to_string()))
        .collect();
    assert!(
        props.contains(&("original_topic".into(), "t/poison".into())),
        "{props:?}"
    );
    assert!(
        props.contains(&("delivery_attempts".into(), "3".into())),
        "{props:?}"
    );
    assert!(
        props.contains(&("failure".into(), "nacked: bad record".into())),
        "{props:?}"
    );
    dead.ack().unwrap();
    let totals = source.shutdown().await;
    assert_eq!(
        (
            totals.dead_lettered,
            totals.acked,
            totals.in_flight,
            totals.redelivered
        ),
        (1, 1, 0, 2)
    );
}

#[tokio::test]
async fn on_failure_ack_drops_and_counts() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "failack", "t/failack", QoS::AtLeastOnce)
        .with_on_failure(OnFailure::Ack);
    let mut source = Source::connect(cfg).await.unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/failack", QoS::AtLeastOnce, 1).await;
    next(&mut source).await.nack();
    nothing(&mut source, "an acked failure").await;
    let totals = source.shutdown().await;
    assert_eq!((totals.poison_acked, totals.redelivered), (1, 0));
}

#[tokio::test]
async fn a_stopped_consumer_holds_exactly_max_in_flight_and_keeps_pinging() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "slow", "t/slow", QoS::AtLeastOnce)
        .with_max_in_flight(5)
        .with_keep_alive(1);
    let mut source = Source::connect(cfg).await.unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/slow", QoS::AtLeastOnce, 30).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next(&mut source).await);
    }
    nothing(&mut source, "past the window").await;
    assert_eq!(source.metrics().snapshot().in_flight, 5);
    // Keep-alive goes on while the window is full.
    client_common::wait_log(&broker, "Received PINGREQ from slow", 2).await;
    assert_eq!(source.metrics().snapshot().in_flight, 5);
    nothing(&mut source, "past the window, after pings").await;
    // One finished: exactly one more is handed over, even though mosquitto
    // 2.0.11 releases up to 20 of its backlog for one PUBACK (the source holds
    // the excess in the client, not in the pipeline).
    held.remove(0).ack().unwrap();
    held.push(next(&mut source).await);
    nothing(&mut source, "past the window after one ack").await;
    for m in held {
        m.ack().unwrap();
    }
    for _ in 0..24 {
        next(&mut source).await.ack().unwrap();
    }
    let totals = source.shutdown().await;
    assert_eq!((totals.received, totals.acked), (30, 30));
}

#[tokio::test]
async fn qos2_pubrec_only_after_the_pipeline_finishes() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let port: u16 = proxy.addr().rsplit(':').next().unwrap().parse().unwrap();
    let mut source = Source::connect(config(url(port), "q2", "t/q2", QoS::ExactlyOnce))
        .await
        .unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/q2", QoS::ExactlyOnce, 1).await;
    let m = next(&mut source).await;
    assert_eq!(m.qos(), QoS::ExactlyOnce);
    tokio::time::timeout(QUIET, std::future::pending::<()>())
        .await
        .ok();
    let pubrecs = |p: &Proxy| {
        p.frames()
            .iter()
            .filter(|f| f.dir == Dir::ToBroker && f.packet_type() == packet_type::PUBREC)
            .count()
    };
    assert_eq!(pubrecs(&proxy), 0, "PUBREC before the pipeline finished");
    m.ack().unwrap();
    proxy
        .wait_frame("PUBCOMP", |f| {
            f.dir == Dir::ToBroker && f.packet_type() == packet_type::PUBCOMP
        })
        .await;
    assert_eq!(pubrecs(&proxy), 1);
    nothing(&mut source, "a completed QoS 2 message").await;
    source.shutdown().await;
}

#[tokio::test]
async fn concurrency_spreads_a_shared_group_over_connections() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "grp", "t/grp/#", QoS::AtLeastOnce)
        .with_shared_group("workers")
        .with_concurrency(3);
    let mut source = Source::connect(cfg).await.unwrap();
    let ids: Vec<String> = source.clients().map(Client::client_id).collect();
    assert_eq!(ids, ["grp_0", "grp_1", "grp_2"]);
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/grp/a", QoS::AtLeastOnce, 60).await;
    let mut seen = std::collections::HashMap::new();
    let mut per_conn = [0u32; 3];
    for _ in 0..60 {
        let m = next(&mut source).await;
        *seen.entry(m.payload().clone()).or_insert(0) += 1;
        per_conn[m.connection_index() as usize] += 1;
        m.ack().unwrap();
    }
    nothing(&mut source, "every message once").await;
    assert_eq!(seen.len(), 60);
    assert!(seen.values().all(|&n| n == 1));
    assert!(
        per_conn.iter().all(|&n| n > 0),
        "the broker spread the group: {per_conn:?}"
    );
    let totals = source.shutdown().await;
    assert_eq!((totals.acked, totals.connects), (60, 3));
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_finish_and_leaves_the_rest() {
    let broker = Mosquitto::start();
    let mut source = Source::connect(config(
        url(broker.port()),
        "drain",
        "t/drain",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let handle = source.handle();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/drain", QoS::AtLeastOnce, 3).await;
    let a = next(&mut source).await;
    let b = next(&mut source).await;
    // Shutdown begins while two messages are in the pipeline.
    handle.shutdown();
    assert!(
        source.recv().await.is_none(),
        "no message after shutdown began"
    );
    let finisher = tokio::spawn(async move {
        tokio::task::yield_now().await;
        a.ack().unwrap();
        drop(b); // unfinished: left for the broker
    });
    let totals = within(WAIT + WAIT, "shutdown", source.shutdown()).await;
    finisher.await.unwrap();
    assert_eq!((totals.acked, totals.in_flight), (1, 0));
    // m1 (dropped) and m2 (never handed over) come back on the resumed session.
    let mut again = Source::connect(config(
        url(broker.port()),
        "drain",
        "t/drain",
        QoS::AtLeastOnce,
    ))
    .await
    .unwrap();
    let mut payloads = vec![];
    for _ in 0..2 {
        let m = next(&mut again).await;
        payloads.push(String::from_utf8(m.payload().to_vec()).unwrap());
        m.ack().unwrap();
    }
    payloads.sort();
    assert_eq!(payloads, ["m1", "m2"]);
    again.shutdown().await;
}

#[tokio::test]
async fn run_processes_concurrently_and_acks_on_success() {
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "run", "t/run", QoS::AtLeastOnce)
        .with_redelivery_delay(ms(5))
        .with_max_deliveries(2)
        .with_on_failure(OnFailure::Redeliver);
    let source = Source::connect(cfg).await.unwrap();
    let handle = source.handle();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/run", QoS::AtLeastOnce, 10).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = tokio::spawn(source.run(4, move |m: Message| {
        let seen_tx = seen_tx.clone();
        async move {
            let payload = String::from_utf8(m.payload().to_vec()).unwrap();
            let _ = seen_tx.send((payload.clone(), m.delivery_attempt()));
            if payload == "m3" {
                Err("m3 fails")
            } else {
                Ok(())
            }
        }
    }));
    let mut seen = Vec::new();
    // 10 messages, m3 twice (it fails twice, then is poison and acked).
    while seen.len() < 11 {
        seen.push(within(WAIT, "handler call", seen_rx.recv()).await.unwrap());
    }
    assert!(seen.contains(&("m3".into(), 2)), "{seen:?}");
    // Poison without a dead-letter topic is acked: wait for it to be counted.
    within(WAIT, "poison acked", async {
        while handle.metrics().snapshot().poison_acked < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    handle.shutdown();
    let totals = within(WAIT, "run returns", runner).await.unwrap();
    assert_eq!(
        (
            totals.acked,
            totals.nacked,
            totals.poison_acked,
            totals.in_flight
        ),
        (9, 2, 1, 0)
    );
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn mqtt_3_1_1_window_is_held_by_the_source() {
    // mosquitto's own window for 3.1.1 clients is unlimited in these tests
    // (`max_inflight_messages 0`): only the source holds the line.
    let broker = Mosquitto::start();
    let cfg = config(url(broker.port()), "v311", "t/v311", QoS::AtLeastOnce)
        .with_version(mqtt_client::ProtocolVersion::V311)
        .with_max_in_flight(5);
    let mut source = Source::connect(cfg).await.unwrap();
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/v311", QoS::AtLeastOnce, 50).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(next(&mut source).await);
    }
    nothing(&mut source, "past the 3.1.1 window").await;
    held.remove(0).ack().unwrap();
    held.push(next(&mut source).await);
    nothing(&mut source, "past the 3.1.1 window after one ack").await;
    for m in held {
        m.ack().unwrap();
    }
    for _ in 0..44 {
        next(&mut source).await.ack().unwrap();
    }
    let totals = source.shutdown().await;
    assert_eq!((totals.received, totals.acked), (50, 50));
}

/// The source's futures can be spawned on a multi-threaded runtime.
#[test]
fn source_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let config = SourceConfig::new(["mqtt://127.0.0.1:1"]);
    let connect = Source::connect(config.clone());
    send(&connect);
    let check = mqtt_source::check(&config);
    send(&check);
}

/// The consuming futures can be spawned too.
#[allow(dead_code, reason = "compiled, never run: the check is the build")]
fn consuming_futures_are_send(mut source: Source) {
    fn send<T: Send>(_: T) {}
    send(source.recv());
    send(source.next_batch(100, Duration::from_millis(10)));
    send(source.run(4, |_m: Message| async { Ok::<(), String>(()) }));
}
