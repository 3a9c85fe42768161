//! The mqtt-source examples (`mqtt-source/examples/*.rs`), run as they are
//! shipped against mosquitto: each binary as a child process, fed by a test
//! client, its exit status and output checked.
//!
//! The binaries are those `cargo build --workspace --examples` leaves in
//! `target/<profile>/examples/`; `scripts/test.sh` builds them before the
//! tests (`cargo test` builds examples only as test harnesses).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client_common;
mod examples_common;
mod source_common;

use client_common::{assert_no_message, recv, TempDir, QUIET};
use examples_common::Running;
use mqtt_client::{Client, Options, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;
use source_common::{publish_n, publisher};

/// The JSON after `metrics: ` in the output.
fn metrics(lines: &[String]) -> serde_json::Value {
    let json = lines
        .iter()
        .find_map(|l| l.strip_prefix("metrics: "))
        .unwrap_or_else(|| panic!("no metrics line in {lines:#?}"));
    serde_json::from_str(json).unwrap()
}

/// `m0`, `m1`, ... as `publish_n` sends them, sorted.
fn payloads(n: usize) -> Vec<String> {
    let mut all: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    all.sort();
    all
}

#[tokio::test]
async fn shared_group_spreads_messages_over_its_connections_and_acks_them() {
    const N: usize = 12;
    let broker = Mosquitto::start();
    let url = format!("mqtt://{}", broker.addr());
    let mut running = Running::spawn(
        "shared_group",
        &[
            &url,
            "--connections",
            "3",
            "--count",
            &N.to_string(),
            "--topic",
            "t/shared",
        ],
    );
    running
        .expect_line("subscribed", |l| l.starts_with("subscribed: "))
        .await;
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/shared", QoS::AtLeastOnce, N).await;
    let lines = running.finish().await;

    // `connection 1 (shared-group-example_1): t/shared "m4"`, once per message.
    let mut got = Vec::new();
    for line in &lines {
        let Some(rest) = line.strip_prefix("connection ") else {
            continue;
        };
        if let Some((index, rest)) = rest.split_once(" (shared-group-example_") {
            let (id, rest) = rest.split_once("): t/shared ").unwrap();
            assert_eq!(index, id, "connection index and client id: {line}");
            got.push(rest.trim_matches('"').to_owned());
        }
    }
    got.sort();
    assert_eq!(got, payloads(N), "each message handled once:\n{lines:#?}");

    // `connection 0: 4 messages`, one line per connection.
    let counts: Vec<u64> = lines
        .iter()
        .filter_map(|l| {
            l.strip_prefix("connection ")?
                .split_once(": ")?
                .1
                .strip_suffix(" messages")
        })
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 3, "a count per connection:\n{lines:#?}");
    assert_eq!(counts.iter().sum::<u64>(), N as u64);
    // mosquitto hands a shared subscription's messages out in turn.
    assert!(
        counts.iter().filter(|&&n| n > 0).count() > 1,
        "the group spread the messages: {counts:?}"
    );
    assert!(
        lines.contains(&format!("total: {N} messages")),
        "{lines:#?}"
    );
    let totals = metrics(&lines);
    assert_eq!(
        (
            &totals["received"],
            &totals["acked"],
            &totals["nacked"],
            &totals["in_flight"]
        ),
        (&N.into(), &N.into(), &0.into(), &0.into()),
        "{totals}"
    );
}

#[tokio::test]
async fn to_file_writes_each_message_once_then_acks() {
    const N: usize = 30;
    let broker = Mosquitto::start();
    let url = format!("mqtt://{}", broker.addr());
    let dir = TempDir::new("example-to-file");
    let path = dir.0.join("out.txt");
    let mut running = Running::spawn(
        "to_file",
        &[
            &url,
            "--file",
            path.to_str().unwrap(),
            "--count",
            &N.to_string(),
            "--topic",
            "t/file",
        ],
    );
    running
        .expect_line("subscribed", |l| l.starts_with("subscribed: "))
        .await;
    let publisher = publisher(broker.port()).await;
    publish_n(&publisher, "t/file", QoS::AtLeastOnce, N).await;
    let lines = running.finish().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let mut written: Vec<String> = text.lines().map(str::to_owned).collect();
    written.sort();
    assert_eq!(written, payloads(N), "the file holds each payload once");
    assert!(text.ends_with('\n'), "every line ended: {text:?}");
    assert!(
        lines.contains(&format!("wrote {N} lines to {}", path.display())),
        "{lines:#?}"
    );
    let totals = metrics(&lines);
    assert_eq!(
        (&totals["received"], &totals["acked"], &totals["in_flight"]),
        (&N.into(), &N.into(), &0.into()),
        "{totals}"
    );
    assert!(totals["batches"].as_u64().unwrap() >= 1, "{totals}");
}

#[tokio::test]
async fn sink_publishes_every_item() {
    const N: usize = 25;
    let broker = Mosquitto::start();
    let url = format!("mqtt://{}", broker.addr());
    let (subscriber, mut incoming) =
        Client::connect(Options::new(""), Tcp::new(broker.addr().to_string()))
            .await
            .unwrap();
    subscriber
        .subscribe("t/sink", QoS::AtLeastOnce)
        .await
        .unwrap();

    let running = Running::spawn(
        "sink",
        &[&url, "--count", &N.to_string(), "--topic", "t/sink"],
    );
    let lines = running.finish().await;
    assert!(
        lines.contains(&format!("published: {N}, failed: 0")),
        "{lines:#?}"
    );

    let mut got = Vec::new();
    for _ in 0..N {
        let mut message = recv(&mut incoming).await;
        assert_eq!(
            (message.topic(), message.qos()),
            ("t/sink", QoS::AtLeastOnce)
        );
        got.push(String::from_utf8(message.payload().to_vec()).unwrap());
        message.ack().unwrap();
    }
    assert_no_message(&mut incoming, QUIET, "after every item").await;
    got.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("item {i}")).collect();
    expected.sort();
    assert_eq!(got, expected, "the subscriber got each item once");
    subscriber.disconnect().await.unwrap();
}
