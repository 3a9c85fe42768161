//! The natural pattern — subscribe, do more requests, then loop over the messages —
//! with a retained backlog far larger than `Incoming` holds, against mosquitto:
//! the client keeps reading, so every SUBACK and PUBACK behind the burst is read.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::collections::BTreeSet;

use client_common::{within, WAIT};
use mqtt_client::{Client, ConnectionEvent, Options, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;

const RETAINED: usize = 3000;

/// Fills the broker with `RETAINED` retained messages on `backlog/{i}`.
async fn seed(addr: &str) {
    let (seeder, _incoming) = Client::connect(
        Options::new("seeder")
            .with_receive_maximum(100)
            .with_max_inflight(100)
            .with_request_queue(100),
        Tcp::new(addr),
    )
    .await
    .unwrap();
    let mut handles = Vec::new();
    for i in 0..RETAINED {
        let h = seeder
            .publish(
                format!("backlog/{i}"),
                QoS::AtLeastOnce,
                true,
                vec![b'r'; 100],
            )
            .await
            .unwrap();
        handles.push(h);
    }
    for h in handles {
        h.await.unwrap();
    }
    seeder.disconnect().await.unwrap();
}

/// Subscribes to the backlog, then subscribes again and publishes (both answers
/// are behind the burst), and only then reads: returns the distinct backlog topics
/// received, the `Qos0Dropped` events seen, and the client.
async fn natural_pattern(addr: &str, options: Options) -> (BTreeSet<String>, Vec<u64>, Client) {
    let (client, mut incoming) = Client::connect(options, Tcp::new(addr)).await.unwrap();
    let mut events = client.events();
    within(
        WAIT,
        "subscribe backlog/#",
        client.subscribe("backlog/#", QoS::AtMostOnce),
    )
    .await
    .unwrap();
    within(
        WAIT,
        "subscribe other/#",
        client.subscribe("other/#", QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    let done = client
        .publish("other/mine", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    within(WAIT, "PUBACK behind the backlog", done)
        .await
        .unwrap();
    let mut topics = BTreeSet::new();
    let mut mine = false;
    while !mine {
        let mut m = within(WAIT, "next message", incoming.recv()).await.unwrap();
        let _ = m.ack();
        if m.topic() == "other/mine" {
            mine = true;
        } else {
            topics.insert(m.topic().to_owned());
        }
    }
    let mut dropped = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ConnectionEvent::Qos0Dropped { total } = event {
            dropped.push(total);
        }
    }
    (topics, dropped, client)
}

#[tokio::test]
async fn subscribe_then_loop_with_a_retained_backlog_the_backlog_holds() {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    seed(&addr).await;
    let mut options = Options::new("natural-large");
    options = options.with_qos0_backlog(2 * RETAINED);
    let (topics, events, client) = natural_pattern(&addr, options).await;
    assert!(events.is_empty());
    assert_eq!(
        topics.len(),
        RETAINED,
        "every retained message, none dropped"
    );
    assert_eq!(client.dropped_qos0(), 0);
    client.disconnect().await.unwrap();
}

#[tokio::test]
async fn subscribe_then_loop_with_a_retained_backlog_beyond_the_limit_drops_and_says_so() {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    seed(&addr).await;
    let options = Options::new("natural-default");
    assert!(
        options.qos0_backlog() < RETAINED,
        "the default limit is below the backlog"
    );
    let (topics, events, client) = natural_pattern(&addr, options).await;
    let dropped = client.dropped_qos0();
    assert!(
        dropped > 0,
        "the application was {RETAINED} messages behind"
    );
    assert_eq!(
        topics.len() as u64 + dropped,
        RETAINED as u64,
        "each retained message either received or counted as dropped"
    );
    assert!(!events.is_empty(), "the drop was reported");
    assert!(events.iter().all(|&t| t <= dropped));
    client.disconnect().await.unwrap();
}
