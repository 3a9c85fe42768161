//! Manual acknowledgements against a real mosquitto: what is not acked comes back
//! with DUP=1 on a resumed session (new client with the same id, or a broker
//! restarted with persistence), acks reach the broker in arrival order, a QoS 2
//! message whose PUBREC was sent is never handed to the application twice (PUBREC
//! or PUBREL lost, through a proxy), and our Receive Maximum bounds how many
//! unacked messages the broker sends.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::collections::BTreeSet;
use std::time::Duration;

use client_common::packet_type::{PUBCOMP, PUBLISH, PUBREC, PUBREL};
use client_common::{
    assert_no_message, assert_one_connection, fast_backoff, mask, ms, recv, restart, wait_log,
    wait_reconnected, within, Dir, Mode, Proxy, QUIET, WAIT,
};
use mqtt_client::codec::ReasonCode;
use mqtt_client::{
    AckError, Client, ConnectionError, ConnectionEvent, Incoming, Message, Options,
    ProtocolVersion, QoS, Tcp, Violation,
};
use mqtt_tests::broker::Mosquitto;

/// A persistent session: fixed id, no clean start, 300 s expiry (MQTT 5) or
/// Clean Session 0 (3.1.1).
fn persistent(id: &str, version: ProtocolVersion) -> Options {
    let options = Options::new(id)
        .with_version(version)
        .with_clean_start(false)
        .with_reconnect(fast_backoff());
    match version {
        ProtocolVersion::V5 => options.with_session_expiry(300),
        ProtocolVersion::V311 => options,
    }
}

async fn connect(options: Options, addr: &str) -> (Client, Incoming) {
    let id = options.client_id().to_owned();
    within(WAIT, "connect", Client::connect(options, Tcp::new(addr)))
        .await
        .unwrap_or_else(|e| panic!("{id} could not connect: {e}"))
}

fn text(m: &Message) -> String {
    String::from_utf8(m.payload().to_vec()).unwrap()
}

async fn publish_all(publisher: &Client, topic: &str, qos: QoS, payloads: &[&str]) {
    for p in payloads {
        let handle = publisher
            .publish(topic, qos, false, p.to_string())
            .await
            .unwrap();
        within(WAIT, "publish handle", handle).await.unwrap();
    }
}

async fn redelivered_after_new_connect(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let id = format!("redeliver-{version:?}");
    let (sub, mut incoming) = connect(persistent(&id, version), &addr).await;
    assert!(!sub.server().session_present);
    sub.subscribe("a/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("pub").with_version(version), &addr).await;
    publish_all(
        &publisher,
        "a/t",
        QoS::AtLeastOnce,
        &["m0", "m1", "m2", "m3"],
    )
    .await;

    let mut first = Vec::new();
    for _ in 0..4 {
        let m = recv(&mut incoming).await;
        assert!(!m.dup());
        first.push(m);
    }
    assert_eq!(
        first.iter().map(text).collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3"]
    );
    // m0 acked; m2 acked out of order, so its PUBACK waits behind m1's and never
    // reaches the broker; m1 and m3 not acked.
    first[0].ack().unwrap();
    first[2].ack().unwrap();
    let mut stale = first[1].take_ack_token().unwrap();
    sub.disconnect().await.unwrap();
    assert!(sub.is_closed());
    // The broker may take a new connection with this id before it has read the
    // old one's last packets (acks, DISCONNECT): wait until it has.
    let gone = format!("Client {id} disconnected");
    wait_log(&broker, &gone, 1).await;

    let (sub2, mut incoming2) = connect(persistent(&id, version), &addr).await;
    assert!(sub2.server().session_present, "the session was resumed");
    let mut again = Vec::new();
    for _ in 0..3 {
        let m = recv(&mut incoming2).await;
        assert!(
            m.dup(),
            "a redelivered QoS 1 message has DUP=1: {}",
            text(&m)
        );
        assert_eq!(m.qos(), QoS::AtLeastOnce);
        assert_eq!(m.topic(), "a/t");
        again.push(m);
    }
    assert_eq!(
        again.iter().map(text).collect::<Vec<_>>(),
        ["m1", "m2", "m3"],
        "m0 was acked; m2's ack was held behind m1's"
    );
    assert_no_message(&mut incoming2, QUIET, "only the unacked come back").await;
    // A token of the first connection cannot ack on the second.
    assert_eq!(stale.ack(), Err(AckError::StaleConnection));
    stale = again[0].take_ack_token().unwrap();
    for m in &mut again[1..] {
        m.ack().unwrap();
    }
    stale.ack().unwrap();
    sub2.disconnect().await.unwrap();
    wait_log(&broker, &gone, 2).await;

    // All acked: a third connection gets nothing.
    let (sub3, mut incoming3) = connect(persistent(&id, version), &addr).await;
    assert!(sub3.server().session_present);
    assert_no_message(&mut incoming3, QUIET, "everything was acked").await;
    // The subscription is part of the session.
    publish_all(&publisher, "a/t", QoS::AtLeastOnce, &["after"]).await;
    let mut m = recv(&mut incoming3).await;
    assert_eq!((text(&m), m.dup()), ("after".to_owned(), false));
    m.ack().unwrap();
    sub3.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn unacked_qos1_redelivered_with_dup_to_new_client_v5() {
    redelivered_after_new_connect(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn unacked_qos1_redelivered_with_dup_to_new_client_v311() {
    redelivered_after_new_connect(ProtocolVersion::V311).await;
}

/// The same client reconnects by itself to a broker restarted with persistence
/// (SIGTERM: the session is saved); what it had not acked comes back with DUP=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_qos1_redelivered_after_broker_restart() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let addr = broker.addr().to_string();
    let (sub, mut incoming) = connect(persistent("restart-sub", ProtocolVersion::V5), &addr).await;
    let mut events = sub.events();
    sub.subscribe("b/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("pub").with_reconnect(fast_backoff()), &addr).await;
    publish_all(&publisher, "b/t", QoS::AtLeastOnce, &["x", "y"]).await;
    let mut x = recv(&mut incoming).await;
    let mut y = recv(&mut incoming).await;
    assert_eq!((text(&x), text(&y)), ("x".to_owned(), "y".to_owned()));
    x.ack().unwrap();
    wait_log(&broker, "Received PUBACK from restart-sub", 1).await;
    let connection = sub.connection_number();

    restart(&mut broker);
    assert!(
        wait_reconnected(&mut events).await,
        "session resumed after restart"
    );
    assert_eq!(sub.connection_number(), connection + 1);
    let mut y2 = recv(&mut incoming).await;
    assert_eq!(text(&y2), "y");
    assert!(y2.dup(), "redelivered with DUP=1");
    assert_eq!(y.ack(), Err(AckError::StaleConnection));
    y2.ack().unwrap();
    assert_no_message(&mut incoming, QUIET, "x was acked before the restart").await;
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

/// QoS 2, the PUBREC lost: the broker sends the PUBLISH again (DUP=1) on the
/// resumed session; the client answers PUBREC again but does not hand the message
/// over a second time [MQTT-4.3.3-9].
async fn qos2_pubrec_lost(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let id = format!("qos2-pubrec-{version:?}");
    let (sub, mut incoming) = connect(persistent(&id, version), &proxy.addr()).await;
    let mut events = sub.events();
    sub.subscribe("q/t", QoS::ExactlyOnce).await.unwrap();
    let (publisher, _) = connect(
        Options::new("pub").with_version(version),
        &broker.addr().to_string(),
    )
    .await;
    publish_all(&publisher, "q/t", QoS::ExactlyOnce, &["once"]).await;
    let mut m = recv(&mut incoming).await;
    assert_eq!(
        (text(&m), m.qos(), m.dup()),
        ("once".to_owned(), QoS::ExactlyOnce, false)
    );

    proxy.set(Dir::ToBroker, Mode::Drop(mask(PUBREC)));
    m.ack().unwrap();
    proxy
        .wait_frame("our PUBREC (dropped)", |f| {
            f.dir == Dir::ToBroker && f.packet_type() == PUBREC && f.dropped
        })
        .await;
    proxy.pass();
    proxy.cut();
    assert!(wait_reconnected(&mut events).await, "session resumed");
    // The broker resends the PUBLISH with DUP=1 on the new connection...
    proxy
        .wait_frame("the PUBLISH resent with DUP=1", |f| {
            f.connection == 2 && f.dir == Dir::ToClient && f.dup()
        })
        .await;
    // ...the client acknowledges it again, and the flow ends.
    proxy
        .wait_frame("PUBCOMP on the new connection", |f| {
            f.connection == 2 && f.dir == Dir::ToBroker && f.packet_type() == PUBCOMP
        })
        .await;
    assert_no_message(&mut incoming, QUIET, "QoS 2 handed over twice").await;

    publish_all(&publisher, "q/t", QoS::ExactlyOnce, &["next"]).await;
    let mut n = recv(&mut incoming).await;
    assert_eq!((text(&n), n.dup()), ("next".to_owned(), false));
    n.ack().unwrap();
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn qos2_not_handed_over_twice_when_pubrec_lost_v5() {
    qos2_pubrec_lost(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn qos2_not_handed_over_twice_when_pubrec_lost_v311() {
    qos2_pubrec_lost(ProtocolVersion::V311).await;
}

/// QoS 2, PUBREC received by the broker but its PUBREL lost with the connection:
/// the broker sends PUBREL again on the resumed session, the client completes the
/// flow with PUBCOMP, and the application sees nothing more.
async fn qos2_pubrel_lost(version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let id = format!("qos2-pubrel-{version:?}");
    let (sub, mut incoming) = connect(persistent(&id, version), &proxy.addr()).await;
    let mut events = sub.events();
    sub.subscribe("q/t", QoS::ExactlyOnce).await.unwrap();
    let (publisher, _) = connect(
        Options::new("pub").with_version(version),
        &broker.addr().to_string(),
    )
    .await;
    publish_all(&publisher, "q/t", QoS::ExactlyOnce, &["once"]).await;
    let mut m = recv(&mut incoming).await;
    assert_eq!(text(&m), "once");

    proxy.set(Dir::ToClient, Mode::Drop(mask(PUBREL)));
    m.ack().unwrap();
    proxy
        .wait_frame("the broker's PUBREL (dropped)", |f| {
            f.dir == Dir::ToClient && f.packet_type() == PUBREL && f.dropped
        })
        .await;
    proxy.pass();
    proxy.cut();
    assert!(wait_reconnected(&mut events).await, "session resumed");
    proxy
        .wait_frame("PUBREL resent", |f| {
            f.connection == 2 && f.dir == Dir::ToClient && f.packet_type() == PUBREL
        })
        .await;
    proxy
        .wait_frame("our PUBCOMP", |f| {
            f.connection == 2 && f.dir == Dir::ToBroker && f.packet_type() == PUBCOMP
        })
        .await;
    let resent_publish = proxy
        .frames()
        .iter()
        .any(|f| f.connection == 2 && f.dir == Dir::ToClient && f.packet_type() == PUBLISH);
    assert!(
        !resent_publish,
        "the broker had the PUBREC: no PUBLISH again"
    );
    assert_no_message(&mut incoming, QUIET, "QoS 2 handed over twice").await;

    publish_all(&publisher, "q/t", QoS::ExactlyOnce, &["next"]).await;
    let mut n = recv(&mut incoming).await;
    assert_eq!(text(&n), "next");
    n.ack().unwrap();
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn qos2_not_handed_over_twice_when_pubrel_lost_v5() {
    qos2_pubrel_lost(ProtocolVersion::V5).await;
}

#[tokio::test]
async fn qos2_not_handed_over_twice_when_pubrel_lost_v311() {
    qos2_pubrel_lost(ProtocolVersion::V311).await;
}

/// With Receive Maximum N and a consumer that does not ack, exactly N messages
/// arrive, and the next one only after an ack. The broker's backlog is kept to
/// one message at a time: mosquitto 2.0.11 overshoots the Receive Maximum when it
/// drains a longer backlog after a PUBACK (see `receive_maximum_with_a_backlog`).
async fn receive_maximum_bounds(qos: QoS) {
    const N: usize = 3;
    const ROUNDS: usize = 4;
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (sub, mut incoming) = connect(
        Options::new("slow")
            .with_receive_maximum(u16::try_from(N).unwrap())
            .with_max_inflight(u16::try_from(N).unwrap())
            .with_request_queue(usize::from(u16::try_from(N).unwrap())),
        &addr,
    )
    .await;
    let mut events = sub.events();
    sub.subscribe("f/t", qos).await.unwrap();
    let (publisher, _) = connect(Options::new("fast"), &addr).await;
    let names: Vec<String> = (0..N + ROUNDS).map(|i| format!("m{i}")).collect();
    // N + 1 messages: the publisher is not held back (the broker queues).
    let first: Vec<&str> = names[..=N].iter().map(String::as_str).collect();
    publish_all(&publisher, "f/t", qos, &first).await;

    let mut held = Vec::new();
    for _ in 0..N {
        held.push(recv(&mut incoming).await);
    }
    assert_no_message(&mut incoming, ms(600), "more than Receive Maximum unacked").await;
    let mut got: Vec<String> = held.iter().map(text).collect();
    for round in 0..ROUNDS {
        // Ack the oldest: the queued message comes.
        held.remove(0).ack().unwrap();
        let m = recv(&mut incoming).await;
        got.push(text(&m));
        held.push(m);
        if round + 1 < ROUNDS {
            // One more for the broker to queue: the window is full again.
            publish_all(&publisher, "f/t", qos, &[&names[N + 1 + round]]).await;
            assert_no_message(&mut incoming, ms(300), "window full again").await;
        }
    }
    assert_eq!(got, names, "all, in order, none twice");
    assert!(held.iter().all(|m| !m.dup() && m.qos() == qos));
    for mut m in held {
        m.ack().unwrap();
    }
    assert_no_message(&mut incoming, QUIET, "nothing left").await;
    assert_one_connection(&sub, &mut events);
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test]
async fn receive_maximum_bounds_unacked_qos1() {
    receive_maximum_bounds(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn receive_maximum_bounds_unacked_qos2() {
    receive_maximum_bounds(QoS::ExactlyOnce).await;
}

/// A lenient client (`strict_receive_maximum = false`) against mosquitto 2.0.11.
fn lenient(options: Options) -> Options {
    let mut options = options;
    options = options.with_strict_receive_maximum(false);
    options
}

/// A backlog of queued messages and a consumer with Receive Maximum N that acks
/// one message at a time: every message is delivered and acked, on one connection.
///
/// mosquitto 2.0.11 (the Debian package here) sends up to N queued messages at
/// once after one PUBACK, so more than N are in flight ("Various fixes around
/// inflight quota management" in 2.0.13). A lenient client takes the overrun.
#[tokio::test]
async fn a_lenient_client_drains_a_backlog_from_an_overrunning_broker() {
    const N: usize = 2;
    const TOTAL: usize = 8;
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (sub, mut incoming) = connect(
        lenient(
            persistent("backlog", ProtocolVersion::V5)
                .with_receive_maximum(u16::try_from(N).unwrap())
                .with_max_inflight(u16::try_from(N).unwrap())
                .with_request_queue(usize::from(u16::try_from(N).unwrap())),
        ),
        &addr,
    )
    .await;
    let mut events = sub.events();
    sub.subscribe("g/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("fast"), &addr).await;
    let names: Vec<String> = (0..TOTAL).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    publish_all(&publisher, "g/t", QoS::AtLeastOnce, &refs).await;

    let mut acked = Vec::new();
    let mut held: Vec<Message> = Vec::new();
    let done = tokio::time::timeout(WAIT, async {
        while acked.len() < TOTAL {
            // A slow consumer: the window fills before the oldest is acked.
            if !held.is_empty() && (held.len() >= N || acked.len() + held.len() >= TOTAL) {
                tokio::time::sleep(ms(50)).await;
                let mut oldest = held.remove(0);
                oldest.ack().unwrap();
                acked.push(text(&oldest));
            } else {
                held.push(incoming.recv().await.expect("client closed"));
            }
        }
    })
    .await;
    assert!(done.is_ok(), "acked {acked:?} of {TOTAL} within {WAIT:?}");
    assert_eq!(acked, names, "each message once, in order");
    assert_one_connection(&sub, &mut events);
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

/// The same broker against a strict client (the default): the overrun is a typed
/// protocol violation (DISCONNECT 0x93), and since the resumed session overruns
/// again at once, the reconnection delays grow instead of looping: a connection
/// dropped right after its CONNACK does not reset the backoff.
#[tokio::test]
async fn a_strict_client_reports_an_overrunning_broker_and_backs_off() {
    const N: u16 = 2;
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let options = persistent("strict", ProtocolVersion::V5)
        .with_receive_maximum(N)
        .with_max_inflight(N)
        .with_request_queue(usize::from(N))
        .with_reconnect(fast_backoff().with_stable_after(Duration::from_secs(10)));
    let (sub, mut incoming) = connect(options, &addr).await;
    let mut events = sub.events();
    sub.subscribe("s/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("fast"), &addr).await;
    let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    publish_all(&publisher, "s/t", QoS::AtLeastOnce, &refs).await;
    // Take N, ack one: mosquitto 2.0.11 answers with more than one.
    let mut first = recv(&mut incoming).await;
    let _second = recv(&mut incoming).await;
    first.ack().unwrap();

    let mut violations = 0;
    let mut attempts = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while attempts.len() < 3 {
            tokio::select! {
                _ = incoming.recv() => {}
                e = events.recv() => match e {
                    Ok(ConnectionEvent::Disconnected(ConnectionError::ProtocolViolation {
                        reason,
                        detail: Violation::ReceiveMaximumExceeded,
                    })) => {
                        assert_eq!(reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
                        violations += 1;
                    }
                    Ok(ConnectionEvent::Reconnecting { attempt, .. }) => attempts.push(attempt),
                    _ => {}
                },
            }
        }
    })
    .await;
    assert!(
        violations >= 1,
        "mosquitto 2.0.11 overruns the Receive Maximum with a backlog"
    );
    assert!(
        attempts.windows(2).all(|w| w[1] > w[0]),
        "attempts grow, they do not start again at each CONNACK: {attempts:?}"
    );
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

/// The common case of the same interop problem, with the default Receive Maximum
/// (100): a persistent-session subscriber comes back to 300 queued QoS 1 messages
/// and acks each at once. A lenient client delivers every message without the
/// connection being dropped. (A strict one, against mosquitto 2.0.11, was measured
/// at 1 to 46 disconnections and 400 to 4,900 deliveries for 300 messages.)
#[tokio::test]
async fn resumed_session_drains_a_backlog_without_reconnecting() {
    const TOTAL: usize = 300;
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (sub, _) = connect(lenient(persistent("resumer", ProtocolVersion::V5)), &addr).await;
    sub.subscribe("h/t", QoS::AtLeastOnce).await.unwrap();
    sub.disconnect().await.unwrap();
    wait_log(&broker, "Client resumer disconnected", 1).await;
    let (publisher, _) = connect(Options::new("fast"), &addr).await;
    let names: Vec<String> = (0..TOTAL).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    publish_all(&publisher, "h/t", QoS::AtLeastOnce, &refs).await;

    let (sub, mut incoming) =
        connect(lenient(persistent("resumer", ProtocolVersion::V5)), &addr).await;
    assert!(sub.server().session_present);
    let mut events = sub.events();
    let mut acked = BTreeSet::new();
    let mut deliveries = 0;
    let _ = tokio::time::timeout(WAIT, async {
        while acked.len() < TOTAL {
            let mut m = incoming.recv().await.expect("client closed");
            deliveries += 1;
            if m.ack().is_ok() {
                acked.insert(text(&m));
            }
        }
    })
    .await;
    let lost: Vec<_> = client_common::drain_events(&mut events)
        .into_iter()
        .filter(|e| matches!(e, ConnectionEvent::Disconnected(_)))
        .collect();
    assert_eq!(acked.len(), TOTAL, "acked within {WAIT:?}");
    assert_eq!(deliveries, TOTAL, "each message delivered once");
    assert!(
        lost.is_empty(),
        "{} disconnection(s), {deliveries} deliveries for {TOTAL} messages; first: {:?}",
        lost.len(),
        lost.first()
    );
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

/// Acks reach the broker in arrival order [MQTT-4.6.0-2]: acking a later message
/// frees no slot while an earlier one is unacked; acking the earlier one then
/// releases both.
#[tokio::test]
async fn out_of_order_ack_waits_for_earlier_messages() {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let (sub, mut incoming) = connect(
        Options::new("slow")
            .with_receive_maximum(2)
            .with_max_inflight(2)
            .with_request_queue(2),
        &addr,
    )
    .await;
    let mut events = sub.events();
    sub.subscribe("o/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(Options::new("fast"), &addr).await;
    publish_all(&publisher, "o/t", QoS::AtLeastOnce, &["a", "b", "c"]).await;
    let mut a = recv(&mut incoming).await;
    let mut b = recv(&mut incoming).await;
    assert_eq!((text(&a), text(&b)), ("a".to_owned(), "b".to_owned()));
    assert_no_message(&mut incoming, ms(400), "window of 2").await;
    b.ack().unwrap();
    assert_no_message(&mut incoming, ms(400), "b's ack must wait for a's").await;
    a.ack().unwrap();
    let mut c = recv(&mut incoming).await;
    assert_eq!(text(&c), "c");
    // b's PUBACK went out with a's: one slot is free for d while c is unacked.
    publish_all(&publisher, "o/t", QoS::AtLeastOnce, &["d"]).await;
    let mut d = recv(&mut incoming).await;
    assert_eq!(text(&d), "d");
    c.ack().unwrap();
    d.ack().unwrap();
    assert_one_connection(&sub, &mut events);
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}
