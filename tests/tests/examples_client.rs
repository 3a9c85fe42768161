//! The mqtt-client examples (`mqtt-client/examples/*.rs`), run as they are
//! shipped against mosquitto: each binary as a child process, its exit status
//! and output checked, and what it did checked from the broker's side (a test
//! client, the broker's log).
//!
//! The binaries are those `cargo build --workspace --examples` leaves in
//! `target/<profile>/examples/`; `scripts/test.sh` builds them before the
//! tests (`cargo test` builds examples only as test harnesses).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;
mod examples_common;

use std::path::Path;

use client_common::{assert_no_message, recv, within, QUIET};
use examples_common::{Running, RUN_LIMIT};
use mqtt_client::{Client, Incoming, Options, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;
use mqtt_tests::pki::{KeyFormat, Pki, Validity};

/// Asserts that `line` is among `lines`.
fn assert_line(lines: &[String], line: &str) {
    assert!(
        lines.iter().any(|l| l == line),
        "no line {line:?} in the output:\n{lines:#?}"
    );
}

/// The lines that start with `prefix`, with the prefix removed.
fn lines_after<'a>(lines: &'a [String], prefix: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

/// A test client on the broker's TCP listener, acking on arrival.
async fn test_client(broker: &Mosquitto, id: &str) -> (Client, Incoming) {
    within(
        RUN_LIMIT,
        "the test client connects",
        Client::connect(
            Options::new(id).with_auto_ack(true),
            Tcp::new(broker.addr().to_string()),
        ),
    )
    .await
    .unwrap()
}

/// How many lines of the broker's log contain `text`.
fn log_count(broker: &Mosquitto, text: &str) -> usize {
    broker.log().lines().filter(|l| l.contains(text)).count()
}

/// A path as an argument.
fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

#[tokio::test]
async fn publish_completes_each_message_at_the_end_of_its_qos_flow() {
    const N: usize = 3;
    const TOPIC: &str = "examples/publish";
    let broker = Mosquitto::start();
    // A subscriber, so that every message is routed (reason Success, not 0x10
    // No matching subscribers) and its arrival can be checked.
    let (subscriber, mut incoming) = test_client(&broker, "publish-watcher").await;
    subscriber
        .subscribe(TOPIC, QoS::ExactlyOnce)
        .await
        .unwrap()
        .check()
        .unwrap();

    let url = format!("mqtt://{}", broker.addr());
    let lines = Running::spawn("publish", &[&url, &N.to_string(), "--topic", TOPIC])
        .finish()
        .await;
    assert_line(&lines, &format!("connected to {url}"));
    for i in 0..N {
        assert_line(
            &lines,
            &format!("QoS 0 #{i}: done at written, packet id none, reason Success (0x00)"),
        );
    }
    for (qos, done_at) in [(1, "PUBACK"), (2, "PUBCOMP")] {
        let prefix = format!("QoS {qos} #");
        let outcomes = lines_after(&lines, &prefix);
        assert_eq!(outcomes.len(), N, "{N} outcomes at QoS {qos}:\n{lines:#?}");
        for (i, outcome) in outcomes.iter().enumerate() {
            let packet_id = outcome
                .strip_prefix(&format!("{i}: done at {done_at}, packet id "))
                .and_then(|rest| rest.strip_suffix(", reason Success (0x00)"))
                .unwrap_or_else(|| panic!("QoS {qos} #{i}: {outcome:?}"));
            let packet_id: u16 = packet_id.parse().unwrap();
            assert_ne!(packet_id, 0, "{outcome:?}");
        }
    }
    assert_line(
        &lines,
        &format!("published {N} messages at each of QoS 0, 1 and 2"),
    );

    // What the broker routed: every message, in order, at its QoS.
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for i in 0..N {
            let message = recv(&mut incoming).await;
            assert_eq!(
                (message.topic(), message.qos(), &message.payload()[..]),
                (
                    TOPIC,
                    qos,
                    format!("message {i} at QoS {}", qos as u8).as_bytes()
                )
            );
        }
    }
    assert_no_message(&mut incoming, QUIET, "after the example's messages").await;
    subscriber.disconnect().await.unwrap();
}

#[tokio::test]
async fn subscribe_processes_then_acks_and_exits_after_count() {
    let broker = Mosquitto::start();
    let url = format!("mqtt://{}", broker.addr());
    let mut running = Running::spawn("subscribe", &[&url, "examples/sub/#", "--count", "4"]);
    running
        .expect_line("subscribed", |l| {
            l.starts_with("subscribed to examples/sub/#: granted ")
        })
        .await;

    let (publisher, _) = test_client(&broker, "subscribe-feeder").await;
    let sent = [
        (QoS::AtMostOnce, "examples/sub/a"),
        (QoS::AtLeastOnce, "examples/sub/b"),
        (QoS::ExactlyOnce, "examples/sub/c/d"),
        (QoS::AtLeastOnce, "examples/sub/a"),
    ];
    for (i, (qos, topic)) in sent.iter().enumerate() {
        // Each one complete before the next: they arrive in this order.
        let done = publisher
            .publish(topic, *qos, false, format!("m{i}"))
            .await
            .unwrap();
        within(RUN_LIMIT, "the feeder's publish", done)
            .await
            .unwrap();
    }
    let lines = running.finish().await;

    for (i, (qos, topic)) in sent.iter().enumerate() {
        let n = i + 1;
        assert_line(
            &lines,
            &format!("message #{n} on {topic} (QoS {}): \"m{i}\"", *qos as u8),
        );
        let acked = lines_after(&lines, &format!("acked #{n} "));
        if *qos == QoS::AtMostOnce {
            assert!(acked.is_empty(), "QoS 0 has no ack:\n{lines:#?}");
        } else {
            assert_eq!(acked.len(), 1, "message #{n} acked once:\n{lines:#?}");
        }
    }
    // Processed, then acked: the ack line follows the message line.
    let position = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}:\n{lines:#?}"))
    };
    assert!(
        position("message #2 ") < position("acked #2 "),
        "{lines:#?}"
    );
    assert_line(&lines, "done: 4 messages processed");
    assert_eq!(
        lines_after(&lines, "message #").len(),
        4,
        "nothing after --count:\n{lines:#?}"
    );

    // The broker got the acks: two PUBACKs (QoS 1) and a PUBREC (QoS 2).
    assert_eq!(
        log_count(&broker, "Received PUBACK from subscribe-example-"),
        2,
        "{}",
        broker.log()
    );
    assert_eq!(
        log_count(&broker, "Received PUBREC from subscribe-example-"),
        1,
        "{}",
        broker.log()
    );
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn tls_client_cert_round_trips_over_mutual_tls() {
    let pki = Pki::new("examples CA");
    let server = pki.server("server", &["localhost", "127.0.0.1"], Validity::Current);
    let device = pki.client("example-device", KeyFormat::Pkcs8);
    let broker = Mosquitto::builder()
        .listener([
            format!("certfile {}", server.cert.display()),
            format!("keyfile {}", server.key.display()),
            format!("cafile {}", pki.ca_file().display()),
            "require_certificate true".to_owned(),
        ])
        .start();
    let url = format!("mqtts://127.0.0.1:{}", broker.listener_port(0));

    let lines = Running::spawn(
        "tls_client_cert",
        &[
            &url,
            "--ca",
            arg(pki.ca_file()),
            "--cert",
            arg(&device.cert),
            "--key",
            arg(&device.key),
        ],
    )
    .finish()
    .await;
    assert_line(&lines, &format!("connected over TLS to {url}"));
    assert_line(&lines, "subscribed to mqtt-client/example/tls");
    let published = lines_after(&lines, "published: packet id ");
    assert_eq!(published.len(), 1, "{lines:#?}");
    assert!(
        published[0].ends_with(", reason Success (0x00)"),
        "{lines:#?}"
    );
    assert_line(
        &lines,
        "received on mqtt-client/example/tls: \"hello over mutual TLS\"",
    );
    assert_line(&lines, "disconnected");

    // A client certificate of another CA is refused: the example fails.
    let other = Pki::new("another CA");
    let stranger = other.client("stranger", KeyFormat::Pkcs8);
    let (status, lines, stderr) = Running::spawn(
        "tls_client_cert",
        &[
            &url,
            "--ca",
            arg(pki.ca_file()),
            "--cert",
            arg(&stranger.cert),
            "--key",
            arg(&stranger.key),
        ],
    )
    .wait()
    .await;
    assert!(
        !status.success(),
        "a certificate of another CA must fail: {status}\nstdout:\n{}\nstderr:\n{stderr}",
        lines.join("\n")
    );
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(
        !lines.iter().any(|l| l.starts_with("connected")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn websocket_round_trips_over_ws() {
    let broker = Mosquitto::builder()
        .listener(["protocol websockets"])
        .start();
    let url = format!("ws://127.0.0.1:{}/mqtt", broker.listener_port(0));
    let lines = Running::spawn("websocket", &[&url]).finish().await;
    assert_line(&lines, &format!("connected over WebSocket to {url}"));
    assert_line(&lines, "subscribed to mqtt-client/example/websocket");
    let published = lines_after(&lines, "published: packet id ");
    assert_eq!(published.len(), 1, "{lines:#?}");
    assert!(
        published[0].ends_with(", reason Success (0x00)"),
        "{lines:#?}"
    );
    assert_line(
        &lines,
        "received on mqtt-client/example/websocket: \"hello over WebSocket\"",
    );
    assert_line(&lines, "disconnected");
    // The broker took it as a WebSocket client, and got the PUBACK.
    assert_eq!(
        log_count(&broker, "Received PUBACK from websocket-example-"),
        1,
        "{}",
        broker.log()
    );
}

#[tokio::test]
async fn request_response_answers_each_request_on_its_response_topic() {
    let broker = Mosquitto::start();
    let url = format!("mqtt://{}", broker.addr());
    let lines = Running::spawn("request_response", &[&url, "3"])
        .finish()
        .await;
    assert_line(
        &lines,
        "responder: serving mqtt-client/example/service/uppercase",
    );
    let answers = lines_after(&lines, "requester: ");
    assert_eq!(answers.len(), 3, "{lines:#?}");
    for (i, answer) in answers.iter().enumerate() {
        // `"hello 0" -> "HELLO 0" (on responses/requester-PID)`
        let topic = answer
            .strip_prefix(&format!("\"hello {i}\" -> \"HELLO {i}\" (on "))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("answer {i}: {answer:?}"));
        assert!(topic.starts_with("responses/requester-"), "{answer:?}");
        assert_line(
            &lines,
            &format!("responder: request \"hello {i}\", answering on {topic}"),
        );
    }
    assert_line(&lines, "responder: answered 3 requests");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_failure_exit() {
    // A port nothing listens on (free a moment ago).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let ws = format!("ws://127.0.0.1:{port}/mqtt");
    for (name, args) in [
        ("publish", vec![url.as_str(), "1"]),
        ("subscribe", vec![url.as_str(), "t/#", "--count", "1"]),
        ("request_response", vec![url.as_str(), "1"]),
        ("websocket", vec![ws.as_str()]),
    ] {
        let (status, lines, stderr) = Running::spawn(name, &args).wait().await;
        assert!(
            !status.success(),
            "{name} must fail without a broker: {status}\nstdout:\n{}\nstderr:\n{stderr}",
            lines.join("\n")
        );
        assert!(stderr.starts_with("Error: "), "{name}: {stderr}");
    }
    // Bad arguments too.
    let (status, _, stderr) = Running::spawn("subscribe", &[&url, "t/#", "--count", "many"])
        .wait()
        .await;
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("--count"), "{stderr}");
}
