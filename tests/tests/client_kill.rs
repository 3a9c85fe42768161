//! A client process killed with SIGKILL at random points of a stream, and started
//! again on the same session store (`src/bin/kill_peer.rs`), in both directions,
//! against a mosquitto on 127.0.0.1 that stays up.
//!
//! - Publisher killed: every message the store ever held reaches the subscriber
//!   (QoS 1 and 2), and at QoS 2 none reaches it twice.
//! - Subscriber killed: every message published reaches the application at least
//!   once, and at QoS 2 a message whose PUBREC identifier was stored is never handed
//!   to the application again.
//! - The store always opens again (the child exits 3 if it cannot).
//!
//! Kill points are chosen by the test's seeded generator as counts of completed
//! messages the child reports, so the child is killed mid-stream without a sleep;
//! the rounds and every wait are bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use client_common::{within, Rng, WAIT};
use mqtt_client::session::{FileStore, FsyncPolicy, StoreError};
use mqtt_client::{Client, Options, QoS, Tcp};
use mqtt_tests::broker::Mosquitto;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Rounds of kill-and-restart per test (before the last incarnation runs to the end).
const ROUNDS: usize = 40;
/// Messages in each stream.
const COUNT: u64 = 2000;
/// The longest one incarnation may run.
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Peer {
    mode: &'static str,
    addr: String,
    store: PathBuf,
    log: PathBuf,
    qos: QoS,
}

impl Peer {
    fn spawn(&self, round: usize) -> (Child, Lines<BufReader<ChildStdout>>) {
        let policy = ["always", "batch", "never"][round % 3];
        let qos = if self.qos == QoS::AtLeastOnce {
            "1"
        } else {
            "2"
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_kill_peer"))
            .args([self.mode, &self.addr])
            .arg(&self.store)
            .arg(&self.log)
            .args([qos, &COUNT.to_string(), policy])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kill_peer starts");
        let stdout = child.stdout.take().expect("piped");
        (child, BufReader::new(stdout).lines())
    }

    /// Reads the child's lines until `n` of them start with `acked` (or it ends),
    /// then kills it.
    async fn kill_after(
        &self,
        mut child: Child,
        lines: &mut Lines<BufReader<ChildStdout>>,
        n: u64,
    ) {
        let mut acked = 0;
        while acked < n {
            match within(RUN_LIMIT, "child output", lines.next_line()).await {
                Ok(Some(line)) if line.starts_with("acked") => acked += 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        // SIGKILL: no destructor, no flush, no DISCONNECT.
        let _ = child.start_kill();
        let status = within(WAIT, "killed child exits", child.wait())
            .await
            .unwrap();
        assert!(
            status.code().is_none() || status.success(),
            "the child failed on its own: {status} (3: the store did not open)"
        );
    }

    async fn run_to_end(&self, round: usize) {
        let (mut child, mut lines) = self.spawn(round);
        while let Ok(Some(_)) = within(RUN_LIMIT, "child output", lines.next_line()).await {}
        let status = within(RUN_LIMIT, "last child exits", child.wait())
            .await
            .unwrap();
        assert!(status.success(), "the last incarnation failed: {status}");
    }
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The store opens after the last round, and damage to it is a clear error.
fn store_opens_and_damage_is_an_error(store: &Path) {
    FileStore::open(store, FsyncPolicy::Never).expect("the store opens after the rounds");
    let damaged = store.with_extension("damaged");
    let mut bytes = std::fs::read(store).unwrap();
    if bytes.len() > 20 {
        // A byte in the first record's body (after the 12-byte header and 8-byte
        // record header): not a torn tail.
        bytes[20] ^= 0xFF;
        std::fs::write(&damaged, &bytes).unwrap();
        match FileStore::open(&damaged, FsyncPolicy::Never) {
            Err(StoreError::Corrupt { .. }) => {}
            other => panic!("a damaged store must be refused, got {other:?}"),
        }
    }
}

async fn publisher_killed(qos: QoS, seed: u64) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    // The subscriber that must see everything; it never dies.
    // A persistent session, lenient about mosquitto 2.0.11's Receive Maximum
    // overrun with a backlog: if it reconnects, it loses nothing either.
    let mut options = Options::new("kill-observer")
        .with_receive_maximum(100)
        .with_max_inflight(100)
        .with_request_queue(100)
        .with_clean_start(false)
        .with_session_expiry(600);
    options = options.with_strict_receive_maximum(false);
    let (sub, mut incoming) = Client::connect(options, Tcp::new(addr.clone()))
        .await
        .unwrap();
    sub.subscribe("kill/stream", qos).await.unwrap();
    let received = tokio::spawn(async move {
        let mut got: BTreeMap<u64, u32> = BTreeMap::new();
        while let Some(mut m) = incoming.recv().await {
            let _ = m.ack();
            let payload = std::str::from_utf8(m.payload()).unwrap().to_owned();
            if payload == "end" {
                return got;
            }
            *got.entry(payload.parse().unwrap()).or_default() += 1;
        }
        panic!("the observer closed before the end marker");
    });

    let peer = Peer {
        mode: "publish",
        addr,
        store: broker.dir().join("publisher.session"),
        log: broker.dir().join("publisher.log"),
        qos,
    };
    let mut rng = Rng(seed);
    for round in 0..ROUNDS {
        let (child, mut lines) = peer.spawn(round);
        peer.kill_after(child, &mut lines, 1 + rng.below(100)).await;
    }
    peer.run_to_end(ROUNDS).await;
    let got = within(Duration::from_secs(30), "end marker", received)
        .await
        .unwrap();

    let log = log_lines(&peer.log);
    let starts = log.iter().filter(|l| *l == "start").count();
    assert_eq!(starts, ROUNDS + 1);
    // The log lags the store by a batch when the kill falls between them, so
    // "stored" lines are not all there; the observer's count is the check.
    let stored: BTreeSet<u64> = log
        .iter()
        .filter_map(|l| l.strip_prefix("stored "))
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        stored.len() as u64 > COUNT / 2,
        "the children published: {}",
        stored.len()
    );
    let missing: Vec<_> = (0..COUNT).filter(|n| !got.contains_key(n)).collect();
    assert!(missing.is_empty(), "messages lost: {missing:?}");
    if qos == QoS::ExactlyOnce {
        let twice: Vec<_> = got.iter().filter(|(_, c)| **c > 1).collect();
        assert!(
            twice.is_empty(),
            "QoS 2 messages delivered twice: {twice:?}"
        );
    }
    store_opens_and_damage_is_an_error(&peer.store);
}

async fn subscriber_killed(qos: QoS, seed: u64) {
    let broker = Mosquitto::start();
    let addr = broker.addr().to_string();
    let peer = Peer {
        mode: "subscribe",
        addr: addr.clone(),
        store: broker.dir().join("subscriber.session"),
        log: broker.dir().join("subscriber.log"),
        qos,
    };
    // The first incarnation subscribes (its session keeps the subscription), then
    // the stream starts.
    let (child, mut lines) = peer.spawn(0);
    loop {
        match within(RUN_LIMIT, "subscribed", lines.next_line()).await {
            Ok(Some(line)) if line == "subscribed" => break,
            Ok(Some(_)) => {}
            other => panic!("the subscriber ended before subscribing: {other:?}"),
        }
    }
    let (publisher, _incoming) = Client::connect(
        Options::new("kill-source")
            .with_receive_maximum(50)
            .with_max_inflight(50)
            .with_request_queue(50),
        Tcp::new(addr),
    )
    .await
    .unwrap();
    let source = tokio::spawn(async move {
        let mut handles = Vec::new();
        for n in 0..COUNT {
            let h = publisher
                .publish("kill/stream", qos, false, n.to_string())
                .await
                .unwrap();
            handles.push(h);
        }
        for h in handles {
            h.await.unwrap();
        }
        publisher
    });

    let mut rng = Rng(seed);
    peer.kill_after(child, &mut lines, 1 + rng.below(100)).await;
    for round in 1..ROUNDS {
        let (child, mut lines) = peer.spawn(round);
        peer.kill_after(child, &mut lines, 1 + rng.below(100)).await;
    }
    peer.run_to_end(ROUNDS).await;
    let publisher = within(Duration::from_secs(30), "source done", source)
        .await
        .unwrap();
    publisher.disconnect().await.unwrap();

    // Replay the log: incarnations, deliveries, stored PUBRECs.
    let mut incarnation = 0;
    let mut delivered: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    // Per incarnation: the message last delivered with each packet identifier.
    let mut by_pid: BTreeMap<u64, u64> = BTreeMap::new();
    // Message -> the incarnation in which its PUBREC identifier was stored.
    let mut committed: BTreeMap<u64, usize> = BTreeMap::new();
    for line in log_lines(&peer.log) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["start"] => {
                incarnation += 1;
                by_pid.clear();
            }
            ["got", n, pid] => {
                let n: u64 = n.parse().unwrap();
                if let Some(at) = committed.get(&n) {
                    panic!(
                        "message {n} handed over in incarnation {incarnation} although its \
                         PUBREC was stored in incarnation {at}"
                    );
                }
                delivered.entry(n).or_default().push(incarnation);
                by_pid.insert(pid.parse().unwrap(), n);
            }
            ["rec", pid] => {
                let n = by_pid
                    .get(&pid.parse::<u64>().unwrap())
                    .copied()
                    .unwrap_or_else(|| panic!("PUBREC {pid} stored for no delivered message"));
                committed.insert(n, incarnation);
            }
            _ => {}
        }
    }
    assert_eq!(incarnation, ROUNDS + 1);
    let missing: Vec<_> = (0..COUNT).filter(|n| !delivered.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "messages never handed over: {missing:?}"
    );
    if qos == QoS::ExactlyOnce {
        assert!(
            !committed.is_empty(),
            "no PUBREC was ever stored: the check above checked nothing"
        );
    }
    store_opens_and_damage_is_an_error(&peer.store);
}

#[tokio::test]
async fn publisher_killed_at_random_points_qos1_loses_nothing() {
    publisher_killed(QoS::AtLeastOnce, 0x1234_5678).await;
}

#[tokio::test]
async fn publisher_killed_at_random_points_qos2_loses_nothing_and_duplicates_nothing() {
    publisher_killed(QoS::ExactlyOnce, 0x9E37_79B9).await;
}

#[tokio::test]
async fn subscriber_killed_at_random_points_qos1_loses_nothing() {
    subscriber_killed(QoS::AtLeastOnce, 0xC0FF_EE11).await;
}

#[tokio::test]
async fn subscriber_killed_at_random_points_qos2_never_hands_over_a_stored_message_again() {
    subscriber_killed(QoS::ExactlyOnce, 0xBADC_0DE5).await;
}
