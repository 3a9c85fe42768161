//! The client across broker restarts, against a real mosquitto:
//!
//! - SIGTERM with persistence in the middle of a QoS 1 / QoS 2 stream: nothing is
//!   lost either way (at least once / exactly once), every publish completes Ok;
//! - SIGKILL in the middle of a stream: the client reconnects with backoff, and
//!   every publish not yet acknowledged when the broker died completes Ok and is
//!   delivered; what the broker acknowledged and then lost is counted apart
//!   (broker durability, not the client's doing);
//! - no persistence, clean sessions: the client restores its subscriptions by
//!   itself;
//! - a session lost after PUBREC: the QoS 2 message resent as new keeps its
//!   payload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use client_common::packet_type::{PUBCOMP, PUBLISH};
use client_common::{
    assert_no_message, fast_backoff, kill, mask, ms, recv, recv_within, restart, wait_event,
    wait_reconnected, within, Dir, Mode, Proxy, QUIET, WAIT,
};
use mqtt_client::{
    AckError, Client, ConnectionEvent, Incoming, Options, ProtocolVersion, PublishError,
    PublishHandle, PublishOutcome, QoS, Tcp,
};
use mqtt_tests::broker::Mosquitto;
use tokio::sync::watch;

/// A persistent MQTT 5 session: fixed id, no clean start, 300 s expiry.
fn persistent(id: &str) -> Options {
    Options::new(id)
        .with_clean_start(false)
        .with_session_expiry(300)
        .with_reconnect(fast_backoff())
}

async fn connect(options: Options, addr: &str) -> (Client, Incoming) {
    let id = options.client_id().to_owned();
    within(WAIT, "connect", Client::connect(options, Tcp::new(addr)))
        .await
        .unwrap_or_else(|e| panic!("{id} could not connect: {e}"))
}

fn seq_of(payload: &[u8]) -> usize {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.strip_prefix("seq-"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected payload {payload:?}"))
}

/// Per sequence number, the outcome of the ack of each delivery to the
/// application: `Ok`, or `Err` when the message came on a connection that has
/// since been lost (the broker then sends it again).
type Tally = Arc<Mutex<Vec<Vec<Delivery>>>>;

/// One delivery to the application.
#[derive(Debug, Clone)]
struct Delivery {
    packet_id: u16,
    ack: Result<(), AckError>,
}

/// Receives and acks everything, recording every delivery. `progress` carries
/// the number of distinct sequence numbers delivered.
fn spawn_counter(mut incoming: Incoming, k: usize) -> (Tally, watch::Receiver<usize>) {
    let tally: Tally = Arc::new(Mutex::new(vec![Vec::new(); k]));
    let (tx, rx) = watch::channel(0usize);
    let shared = tally.clone();
    tokio::spawn(async move {
        while let Some(mut m) = incoming.recv().await {
            let seq = seq_of(m.payload());
            let delivery = Delivery {
                packet_id: m.publish().packet_id.map_or(0, |id| id.get()),
                ack: m.ack(),
            };
            let distinct = {
                let mut tally = shared.lock().unwrap();
                tally[seq].push(delivery);
                tally.iter().filter(|d| !d.is_empty()).count()
            };
            tx.send_replace(distinct);
        }
    });
    (tally, rx)
}

/// A publish handle, polled or awaited later.
enum Slot {
    Pending(PublishHandle),
    Done(Result<PublishOutcome, PublishError>),
}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls every pending handle once: returns, per sequence number published so
/// far, whether its flow had completed.
fn completed_now(slots: &Mutex<Vec<Slot>>) -> Vec<bool> {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);
    let mut slots = slots.lock().unwrap();
    slots
        .iter_mut()
        .map(|slot| {
            if let Slot::Pending(handle) = slot {
                if let Poll::Ready(result) = Pin::new(handle).poll(&mut cx) {
                    *slot = Slot::Done(result);
                }
            }
            matches!(slot, Slot::Done(_))
        })
        .collect()
}

/// Awaits every handle; panics on any failure.
async fn all_complete_ok(slots: &Mutex<Vec<Slot>>, k: usize) {
    let taken: Vec<Slot> = std::mem::take(&mut *slots.lock().unwrap());
    assert_eq!(taken.len(), k, "every message was published");
    let mut failures = Vec::new();
    for (seq, slot) in taken.into_iter().enumerate() {
        let result = match slot {
            Slot::Done(r) => r,
            Slot::Pending(handle) => within(WAIT, "a publish handle", handle).await,
        };
        if let Err(e) = result {
            failures.push((seq, e));
        }
    }
    assert!(failures.is_empty(), "publish handles failed: {failures:?}");
}

/// Publishes `seq-0..seq-k` one by one, pacing itself so that the stream lasts,
/// and keeps the handles in `slots`.
fn spawn_publisher(
    client: Client,
    qos: QoS,
    k: usize,
    slots: Arc<Mutex<Vec<Slot>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for seq in 0..k {
            let handle = client
                .publish("s/t", qos, false, format!("seq-{seq}"))
                .await
                .expect("publish refused");
            slots.lock().unwrap().push(Slot::Pending(handle));
            if seq % 4 == 0 {
                tokio::time::sleep(ms(1)).await;
            }
        }
    })
}

async fn wait_progress(progress: &mut watch::Receiver<usize>, at_least: usize, what: &str) {
    within(WAIT, what, progress.wait_for(|&n| n >= at_least))
        .await
        .expect("subscriber gone");
}

/// Reconnecting events among `events`: (attempt, delay).
fn reconnecting(events: &[ConnectionEvent]) -> Vec<(u32, Duration)> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Reconnecting { attempt, delay, .. } => Some((*attempt, *delay)),
            _ => None,
        })
        .collect()
}

/// SIGTERM (the database is saved) in the middle of a stream between two
/// persistent sessions: every message arrives, at least once for QoS 1 and
/// exactly once for QoS 2, and every handle completes Ok.
///
/// Both clients go through proxies that record the packets. For QoS 2 a second
/// delivery to the application is the client's fault unless the broker sent
/// that PUBLISH again after its PUBREL (mosquitto 2.0.11 does after a restart:
/// it resumes a flow whose PUBCOMP it had not read as if PUBREC had never come,
/// and a receiver that completed the flow cannot tell that PUBLISH from a new
/// one); those are counted and reported.
async fn sigterm_mid_stream(qos: QoS) {
    const K: usize = 400;
    let mut broker = Mosquitto::builder().persistence(true).start();
    let pub_proxy = Proxy::start(broker.addr()).await;
    let sub_proxy = Proxy::start(broker.addr()).await;
    // See sigkill_mid_stream for the window.
    let sub_options = persistent(&format!("term-sub-{qos:?}"))
        .with_receive_maximum(1000)
        .with_max_inflight(1000)
        .with_request_queue(1000);
    let (sub, incoming) = connect(sub_options, &sub_proxy.addr()).await;
    let mut sub_events = sub.events();
    sub.subscribe("s/t", qos).await.unwrap();
    let (publisher, _) = connect(persistent(&format!("term-pub-{qos:?}")), &pub_proxy.addr()).await;
    let mut pub_events = publisher.events();
    let (tally, mut progress) = spawn_counter(incoming, K);
    let slots = Arc::new(Mutex::new(Vec::new()));
    let publishing = spawn_publisher(publisher.clone(), qos, K, slots.clone());

    wait_progress(&mut progress, K / 4, "a quarter of the stream").await;
    let done_before = completed_now(&slots);
    restart(&mut broker);
    assert!(
        done_before.iter().filter(|&&d| d).count() < K,
        "the restart came after the stream"
    );
    assert!(
        wait_reconnected(&mut pub_events).await,
        "publisher session resumed"
    );
    assert!(
        wait_reconnected(&mut sub_events).await,
        "subscriber session resumed"
    );

    within(WAIT, "the publisher", publishing).await.unwrap();
    all_complete_ok(&slots, K).await;
    wait_progress(&mut progress, K, "every message at the subscriber").await;
    // Late duplicates would show now.
    tokio::time::sleep(QUIET).await;
    let tally = tally.lock().unwrap().clone();
    let accepted = |s: usize| tally[s].iter().filter(|d| d.ack.is_ok()).count();
    let missing: Vec<usize> = (0..K).filter(|&s| accepted(s) == 0).collect();
    assert!(missing.is_empty(), "never delivered and acked: {missing:?}");
    let again: Vec<(usize, &Vec<Delivery>)> = (0..K)
        .filter(|&s| tally[s].len() > 1)
        .map(|s| (s, &tally[s]))
        .collect();
    // The client never replays a QoS 2 PUBLISH after its PUBREL.
    let client_replays =
        client_common::qos2_replays_after_pubrel(&pub_proxy.frames(), Dir::ToBroker);
    assert!(
        client_replays.is_empty(),
        "publisher resent PUBLISH after PUBREL: {client_replays:?}"
    );
    let broker_replays =
        client_common::qos2_replays_after_pubrel(&sub_proxy.frames(), Dir::ToClient);
    if qos == QoS::ExactlyOnce {
        // A delivery whose ack was refused (stale connection) comes again, as
        // documented; one whose ack was taken must not, unless the broker broke
        // the protocol.
        let unexplained: Vec<_> = again
            .iter()
            .filter(|(_, ds)| {
                ds.iter()
                    .skip(1)
                    .any(|d| !broker_replays.iter().any(|&(_, id)| id == d.packet_id))
                    && ds[..ds.len() - 1].iter().any(|d| d.ack.is_ok())
            })
            .collect();
        assert!(
            unexplained.is_empty(),
            "QoS 2 handed over again after a successful ack: {unexplained:?}"
        );
    }
    eprintln!(
        "sigterm_mid_stream {qos:?}: {} of {K} handles done before the restart; delivered \
         more than once: {:?}; QoS 2 PUBLISH replayed by mosquitto after PUBREL: {broker_replays:?}",
        done_before.iter().filter(|&&d| d).count(),
        again.iter().map(|(s, ds)| (s, ds.len())).collect::<Vec<_>>(),
    );
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigterm_mid_stream_loses_nothing_qos1() {
    sigterm_mid_stream(QoS::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigterm_mid_stream_loses_nothing_qos2() {
    sigterm_mid_stream(QoS::ExactlyOnce).await;
}

/// SIGKILL in the middle of a QoS 1 stream from a persistent-session publisher
/// to a persistent-session subscriber (online during the stream, or offline and
/// back after it).
///
/// The sessions and the subscription are saved by a SIGTERM restart before the
/// stream; nothing is saved after that (`autosave_interval` 3600 s), so the
/// broker comes back with the state from before the stream. Then:
/// - the client's part: every publish whose handle had not completed when the
///   connection died is resent after the reconnection, completes Ok, and reaches
///   the subscriber (whose subscription lives in the saved session);
/// - the broker's part: messages whose PUBACK arrived before the kill but that
///   mosquitto had not delivered yet are gone with its memory; they are counted
///   and reported, not failed.
async fn sigkill_mid_stream(subscriber_online: bool) {
    const K: usize = 400;
    let backoff = fast_backoff();
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .autosave_interval(3600)
        .start();
    let addr = broker.addr().to_string();
    // A window larger than the stream: mosquitto 2.0.11 overshoots a Receive
    // Maximum smaller than its backlog (see client_acks.rs), which is not what
    // this test is about.
    let sub_options = || {
        persistent("kill-sub")
            .with_receive_maximum(1000)
            .with_max_inflight(1000)
            .with_request_queue(1000)
    };
    let (sub, incoming) = connect(sub_options(), &addr).await;
    let mut sub_events = sub.events();
    sub.subscribe("s/t", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(persistent("kill-pub"), &addr).await;
    let mut pub_events = publisher.events();
    restart(&mut broker);
    assert!(wait_reconnected(&mut pub_events).await);
    assert!(wait_reconnected(&mut sub_events).await);
    // (Dropping every handle of a client disconnects it: keep `sub`.)
    let counter = if subscriber_online {
        Some(spawn_counter(incoming, K))
    } else {
        sub.disconnect().await.unwrap();
        client_common::wait_log(&broker, "Client kill-sub disconnected", 1).await;
        None
    };

    let slots = Arc::new(Mutex::new(Vec::new()));
    let publishing = spawn_publisher(publisher.clone(), QoS::AtLeastOnce, K, slots.clone());
    within(WAIT, "a third of the stream acked", async {
        while completed_now(&slots).iter().filter(|&&d| d).count() < K / 3 {
            tokio::time::sleep(ms(2)).await;
        }
    })
    .await;

    kill(&mut broker);
    // Every PUBACK read before the connection died has completed its handle
    // before the Disconnected event was sent: poll the handles now.
    let (lost, _) = wait_event(&mut pub_events, WAIT, "publisher Disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected(_))
    })
    .await;
    let acked_before_kill = completed_now(&slots);
    let published_before_kill = acked_before_kill.len();
    let acked_count = acked_before_kill.iter().filter(|&&d| d).count();
    assert!(acked_count < K, "the kill came after the stream");
    // Down for a while: the client retries with growing delays.
    tokio::time::sleep(ms(400)).await;
    restart(&mut broker);
    let (_, before) = wait_event(&mut pub_events, WAIT, "publisher Connected", |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    let attempts = reconnecting(&before);
    assert!(
        attempts.len() >= 2,
        "retried while the broker was down: {before:?}"
    );
    for (i, (attempt, delay)) in attempts.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1, "attempts count up: {attempts:?}");
        let nominal = backoff.nominal_delay(*attempt);
        assert!(
            *delay <= nominal && *delay >= nominal / 2,
            "attempt {attempt}: delay {delay:?} outside [{:?}, {nominal:?}]",
            nominal / 2
        );
    }

    within(WAIT, "the publisher", publishing).await.unwrap();
    all_complete_ok(&slots, K).await;
    let (sub, (tally, mut progress)) = match counter {
        Some(counter) => (sub, counter),
        None => {
            // Back after the stream: the saved session holds the subscription.
            let (client, incoming) = connect(sub_options(), &addr).await;
            assert!(client.server().session_present);
            (client, spawn_counter(incoming, K))
        }
    };
    let client_owed: Vec<usize> = (0..K)
        .filter(|&s| !acked_before_kill.get(s).copied().unwrap_or(false))
        .collect();
    let counts_now = || -> Vec<usize> { tally.lock().unwrap().iter().map(Vec::len).collect() };
    // Wait for every message the client is responsible for.
    let waited = tokio::time::timeout(WAIT, async {
        // `progress` changes at every delivery.
        while !client_owed.iter().all(|&s| counts_now()[s] > 0) {
            if progress.changed().await.is_err() {
                break;
            }
        }
    })
    .await;
    if waited.is_err() {
        let c = counts_now();
        let missing: Vec<usize> = client_owed.iter().copied().filter(|&s| c[s] == 0).collect();
        panic!("not acked before the kill, never delivered: {missing:?}");
    }
    tokio::time::sleep(QUIET).await;
    let c = counts_now();
    let lost_by_broker: Vec<usize> = (0..K)
        .filter(|&s| c[s] == 0 && acked_before_kill.get(s).copied().unwrap_or(false))
        .collect();
    eprintln!(
        "sigkill_mid_stream (subscriber {}): connection ended with {lost:?}; \
         {published_before_kill} published, {acked_count} acked before the kill; {} owed by the \
         client, all delivered; {} acked then lost by mosquitto (SIGKILL, no autosave); \
         reconnect attempts {attempts:?}; {} duplicate deliveries",
        if subscriber_online {
            "online"
        } else {
            "offline"
        },
        client_owed.len(),
        lost_by_broker.len(),
        c.iter().filter(|&&n| n > 1).count(),
    );
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigkill_mid_stream_client_resends_unacked_subscriber_online() {
    sigkill_mid_stream(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_sigkill_mid_stream_client_resends_unacked_subscriber_offline() {
    sigkill_mid_stream(false).await;
}

/// No persistence and clean sessions: after the broker restarts it knows nothing
/// of the subscriber, which subscribes again by itself (same filters, same QoS);
/// messages published after the restart arrive without a new subscribe call.
async fn subscriptions_restored(version: ProtocolVersion) {
    let mut broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let options = |id: &str| {
        Options::new(id)
            .with_version(version)
            .with_reconnect(fast_backoff())
    };
    let (sub, mut incoming) = connect(options("restored-sub"), &addr).await;
    let mut events = sub.events();
    sub.subscribe("r/+/x", QoS::ExactlyOnce).await.unwrap();
    sub.subscribe("capped/#", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _) = connect(options("restored-pub"), &addr).await;

    restart(&mut broker);
    assert!(!wait_reconnected(&mut events).await, "no session survives");
    // Until the resubscription is processed, publications are dropped: probe.
    within(WAIT, "the subscription restored", async {
        loop {
            publisher
                .publish("r/probe/x", QoS::AtLeastOnce, false, "probe")
                .await
                .unwrap()
                .await
                .unwrap();
            if let Some(mut m) = recv_within(&mut incoming, ms(100)).await {
                assert_eq!(m.topic(), "r/probe/x");
                m.ack().unwrap();
                break;
            }
        }
    })
    .await;
    while let Some(mut m) = recv_within(&mut incoming, ms(100)).await {
        assert_eq!(&m.payload()[..], b"probe");
        m.ack().unwrap();
    }
    for i in 0..10 {
        for (topic, delivered) in [("r/a/x", QoS::ExactlyOnce), ("capped/y", QoS::AtLeastOnce)] {
            publisher
                .publish(topic, QoS::ExactlyOnce, false, format!("{topic}-{i}"))
                .await
                .unwrap()
                .await
                .unwrap();
            let mut m = recv(&mut incoming).await;
            assert_eq!(m.topic(), topic);
            assert_eq!(&m.payload()[..], format!("{topic}-{i}").as_bytes());
            assert_eq!(m.qos(), delivered, "the granted QoS is restored too");
            m.ack().unwrap();
        }
    }
    assert_no_message(&mut incoming, QUIET, "after the restored stream").await;
    let later = client_common::drain_events(&mut events);
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, ConnectionEvent::ResubscribeFailed { .. })),
        "{later:?}"
    );
    assert_eq!(sub.connection_number(), 2);
    sub.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_restored_after_restart_without_session_v5() {
    subscriptions_restored(ProtocolVersion::V5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_restored_after_restart_without_session_v311() {
    subscriptions_restored(ProtocolVersion::V311).await;
}

/// A QoS 2 publish whose PUBREC arrived but whose PUBCOMP did not, when the
/// reconnection finds no session: with `SessionLostPolicy::ResendAsNew` (the
/// default) it is sent again as a new message. Subscribers may then get it
/// twice, as documented, but both copies must be the message that was published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_resent_as_new_after_session_loss_keeps_its_payload() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    let addr = broker.addr().to_string();
    let proxy = Proxy::start(broker.addr()).await;
    // The subscriber's session and subscription survive the restart.
    let (sub, mut incoming) = connect(persistent("keep-sub"), &addr).await;
    sub.subscribe("k/t", QoS::ExactlyOnce).await.unwrap();
    // The publisher's session ends with its connection. Without Topic Aliases
    // both PUBLISHes carry the topic, so equal sizes mean the same message.
    let (publisher, _) = connect(
        Options::new("keep-pub")
            .with_reconnect(fast_backoff())
            .with_outgoing_topic_aliases(false),
        &proxy.addr(),
    )
    .await;
    let mut pub_events = publisher.events();

    proxy.set(Dir::ToClient, Mode::Drop(mask(PUBCOMP)));
    let handle = publisher
        .publish("k/t", QoS::ExactlyOnce, false, "the payload")
        .await
        .unwrap();
    proxy
        .wait_frame("PUBCOMP (dropped)", |f| {
            f.dir == Dir::ToClient && f.packet_type() == PUBCOMP && f.dropped
        })
        .await;
    let mut m = recv(&mut incoming).await;
    assert_eq!(&m.payload()[..], b"the payload");
    m.ack().unwrap();
    proxy.pass();

    restart(&mut broker);
    assert!(
        !wait_reconnected(&mut pub_events).await,
        "precondition: the publisher's session is gone"
    );
    within(WAIT, "the publish handle", handle).await.unwrap();
    let sent: Vec<usize> = proxy
        .frames()
        .iter()
        .filter(|f| f.dir == Dir::ToBroker && f.packet_type() == PUBLISH)
        .map(|f| f.len)
        .collect();
    assert_eq!(sent.len(), 2, "sent, then resent as new: {sent:?}");
    assert_eq!(sent[0], sent[1], "the resent PUBLISH differs in size");
    while let Some(mut m) = recv_within(&mut incoming, QUIET).await {
        assert_eq!(
            &m.payload()[..],
            b"the payload",
            "a copy with another payload"
        );
        m.ack().unwrap();
    }
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}
