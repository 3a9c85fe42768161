//! mqtt-source consumers in their own processes (`src/bin/source_peer.rs`),
//! killed with SIGKILL and started again, against a mosquitto that stays up:
//!
//! - killed mid-stream at random points, QoS 1 and 2: every message comes back
//!   until it is processed and acked (nothing lost);
//! - QoS 2 killed before PUBREC: the message comes back; killed after PUBREC
//!   (PUBREL withheld by a proxy): it is not handed over again;
//! - a shared group of three processes: each message processed once while all are
//!   up, and the unacked messages of a killed member processed after it restarts.
//!
//! Kill points are counts of acks the child reports, chosen by a seeded generator:
//! no sleeps. Every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

mod client_common;
mod source_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use client_common::{mask, packet_type, within, Dir, Mode, Proxy, Rng, TempDir, WAIT};
use mqtt_client::QoS;
use mqtt_tests::broker::Mosquitto;
use source_common::publisher;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const RUN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Peer {
    broker: String,
    id: String,
    topic: String,
    qos: QoS,
    store: Option<PathBuf>,
    out: PathBuf,
    group: Option<String>,
    instance: Option<u32>,
    ack_limit: Option<u64>,
}

struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    async fn spawn(&self) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_source_peer"));
        command
            .env("PEER_BROKER", &self.broker)
            .env("PEER_ID", &self.id)
            .env("PEER_TOPIC", &self.topic)
            .env(
                "PEER_QOS",
                if self.qos == QoS::ExactlyOnce {
                    "2"
                } else {
                    "1"
                },
            )
            .env("PEER_OUT", &self.out)
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(store) = &self.store {
            command.env("PEER_STORE", store);
        }
        if let Some(group) = &self.group {
            command.env("PEER_GROUP", group);
        }
        if let Some(i) = self.instance {
            command.env("PEER_INSTANCE", i.to_string());
        }
        if let Some(n) = self.ack_limit {
            command.env("PEER_ACK_LIMIT", n.to_string());
        }
        let mut child = command.spawn().expect("source_peer starts");
        let stdout = child.stdout.take().expect("piped");
        let mut running = Running {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        running.expect_line("ready", |l| l == "ready").await;
        running
    }
}

impl Running {
    /// Reads lines until one satisfies `pred`; returns it.
    async fn expect_line(&mut self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        loop {
            match within(RUN_LIMIT, what, self.lines.next_line()).await {
                Ok(Some(line)) if pred(&line) => return line,
                Ok(Some(_)) => {}
                other => panic!("source_peer ended while waiting for {what}: {other:?}"),
            }
        }
    }

    /// SIGKILL: no destructor, no flush, no DISCONNECT.
    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = within(WAIT, "killed child exits", self.child.wait()).await;
    }

    /// SIGTERM: graceful shutdown; returns the child's final metrics line.
    async fn terminate(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let totals = self
            .expect_line("totals", |l| l.starts_with("totals "))
            .await;
        let status = within(WAIT, "child exits", self.child.wait())
            .await
            .unwrap();
        assert!(status.success(), "graceful exit: {status}");
        totals
    }
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn got_lines(out: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("got "))
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

async fn killed_mid_stream(qos: QoS, seed: u64) {
    const COUNT: u64 = 5000;
    const ROUNDS: usize = 30;
    let broker = Mosquitto::start();
    let dir = TempDir::new("source-kill");
    let peer = Peer {
        broker: format!("mqtt://127.0.0.1:{}", broker.port()),
        id: "killed".into(),
        topic: "kill/source".into(),
        qos,
        store: Some(dir.0.join("store")),
        out: dir.0.join("out.log"),
        group: None,
        instance: None,
        ack_limit: None,
    };
    // The first incarnation makes the session; the stream is published meanwhile.
    let mut running = peer.spawn().await;
    let publisher = publisher(broker.port()).await;
    let publishing = tokio::spawn(async move {
        for i in 0..COUNT {
            let done = publisher
                .publish("kill/source", qos, false, i.to_string())
                .await
                .unwrap();
            done.await.unwrap();
        }
    });
    // Lines of a killed incarnation after the kill point are lost with it (its
    // acks were real): what was processed is in the output file.
    let processed = |out: &Path| -> BTreeSet<u64> {
        got_lines(out)
            .iter()
            .map(|w| w[1].parse().unwrap())
            .collect()
    };
    let mut rng = Rng(seed);
    let mut kills: u32 = 0;
    'rounds: for _ in 0..ROUNDS {
        let n = 1 + rng.below(80);
        for _ in 0..n {
            // The stream may end before the kill point.
            let wait = running.expect_line("acked", |l| l.starts_with("acked "));
            if tokio::time::timeout(Duration::from_secs(5), wait)
                .await
                .is_err()
            {
                let done = processed(&peer.out).len() as u64;
                assert_eq!(
                    done,
                    COUNT,
                    "no progress before a kill point\n{}",
                    tail(&broker.log(), 40)
                );
                break 'rounds;
            }
        }
        running.kill().await;
        kills += 1;
        running = peer.spawn().await;
    }
    assert!(
        kills as usize >= ROUNDS / 2,
        "only {kills} kills happened mid-stream"
    );
    while processed(&peer.out).len() < COUNT as usize {
        let wait = running.expect_line("acked", |l| l.starts_with("acked "));
        if tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_err()
        {
            let done = processed(&peer.out);
            let missing: Vec<u64> = (0..COUNT).filter(|i| !done.contains(i)).collect();
            panic!(
                "no progress; not processed: {missing:?}\nbroker log tail:\n{}",
                tail(&broker.log(), 40)
            );
        }
    }
    within(RUN_LIMIT, "publisher done", publishing)
        .await
        .unwrap();
    running.terminate().await;
    let got = got_lines(&peer.out);
    let mut count: BTreeMap<u64, u32> = BTreeMap::new();
    for words in &got {
        *count.entry(words[1].parse().unwrap()).or_default() += 1;
    }
    let missing: Vec<u64> = (0..COUNT).filter(|i| !count.contains_key(i)).collect();
    assert!(missing.is_empty(), "lost through the kills: {missing:?}");
    // Every duplicate is a message handed over again after a kill: processed,
    // but its ack had not reached the broker. That is the pipeline's window plus
    // the acks queued while the consumer had not yielded to the client's driver
    // (tokio's budget: 128 operations per task turn) when it was killed.
    let dups: u32 = count.values().map(|n| n - 1).sum();
    assert!(
        dups <= kills * (20 + 256),
        "{dups} duplicates over {kills} kills: more than the acks one kill can lose"
    );
}

#[tokio::test]
async fn consumer_killed_mid_stream_loses_nothing_qos1() {
    killed_mid_stream(QoS::AtLeastOnce, 0x5EED_0001).await;
}

#[tokio::test]
async fn consumer_killed_mid_stream_loses_nothing_qos2() {
    killed_mid_stream(QoS::ExactlyOnce, 0x5EED_0002).await;
}

fn qos2_peer(proxy: &Proxy, dir: &TempDir, ack_limit: Option<u64>) -> Peer {
    Peer {
        broker: format!("mqtt://{}", proxy.addr()),
        id: "q2crash".into(),
        topic: "kill/q2".into(),
        qos: QoS::ExactlyOnce,
        store: Some(dir.0.join("store")),
        out: dir.0.join("out.log"),
        group: None,
        instance: None,
        ack_limit,
    }
}

#[tokio::test]
async fn qos2_killed_before_pubrec_comes_back() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let dir = TempDir::new("source-q2-before");
    // Holds every message: never acks, so no PUBREC.
    let mut running = qos2_peer(&proxy, &dir, Some(0)).spawn().await;
    let publisher = publisher(broker.port()).await;
    publisher
        .publish("kill/q2", QoS::ExactlyOnce, false, "m0")
        .await
        .unwrap()
        .await
        .unwrap();
    running
        .expect_line("holding m0", |l| l == "holding m0")
        .await;
    running.kill().await;
    assert!(
        !proxy
            .frames()
            .iter()
            .any(|f| f.dir == Dir::ToBroker && f.packet_type() == packet_type::PUBREC),
        "PUBREC went out before the pipeline finished"
    );
    let mut running = qos2_peer(&proxy, &dir, None).spawn().await;
    running.expect_line("acked m0", |l| l == "acked m0").await;
    running.terminate().await;
    let got = got_lines(&dir.0.join("out.log"));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0][1].as_str(), got[0][3].as_str()),
        ("m0", "true"),
        "resent with DUP"
    );
}

#[tokio::test]
async fn qos2_killed_after_pubrec_is_not_handed_over_again() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr()).await;
    let dir = TempDir::new("source-q2-after");
    let mut running = qos2_peer(&proxy, &dir, None).spawn().await;
    // The broker's PUBREL never reaches the consumer: its flow stops after PUBREC.
    proxy.set(Dir::ToClient, Mode::Drop(mask(packet_type::PUBREL)));
    let publisher = publisher(broker.port()).await;
    publisher
        .publish("kill/q2", QoS::ExactlyOnce, false, "m0")
        .await
        .unwrap()
        .await
        .unwrap();
    running.expect_line("acked m0", |l| l == "acked m0").await;
    proxy
        .wait_frame("PUBREL withheld", |f| {
            f.dir == Dir::ToClient && f.packet_type() == packet_type::PUBREL && f.dropped
        })
        .await;
    running.kill().await;
    proxy.pass();
    let mut running = qos2_peer(&proxy, &dir, None).spawn().await;
    // The resumed flow completes (PUBREL, PUBCOMP) without a second hand-over.
    proxy
        .wait_frame("PUBCOMP on the new connection", |f| {
            f.dir == Dir::ToBroker && f.packet_type() == packet_type::PUBCOMP && f.connection == 2
        })
        .await;
    publisher
        .publish("kill/q2", QoS::ExactlyOnce, false, "m1")
        .await
        .unwrap()
        .await
        .unwrap();
    running.expect_line("acked m1", |l| l == "acked m1").await;
    running.terminate().await;
    let payloads: Vec<String> = got_lines(&dir.0.join("out.log"))
        .into_iter()
        .map(|w| w[1].clone())
        .collect();
    assert_eq!(payloads, ["m0", "m1"], "m0 handed over once");
}

#[tokio::test]
async fn shared_group_of_three_processes() {
    const COUNT: u64 = 300;
    let broker = Mosquitto::start();
    let dir = TempDir::new("source-group");
    let peer = |instance: u32, ack_limit: Option<u64>| Peer {
        broker: format!("mqtt://127.0.0.1:{}", broker.port()),
        id: "member".into(),
        topic: "group/stream".into(),
        qos: QoS::AtLeastOnce,
        store: None,
        out: dir.0.join("out.log"),
        group: Some("ingest".into()),
        instance: Some(instance),
        ack_limit,
    };
    let mut members = Vec::new();
    // Member 1 acks 20 messages, then holds what it gets.
    for (i, limit) in [(0, None), (1, Some(20)), (2, None)] {
        members.push(peer(i, limit).spawn().await);
    }
    let publisher = publisher(broker.port()).await;
    for i in 0..COUNT {
        publisher
            .publish("group/stream", QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut member1 = members.remove(1);
    member1
        .expect_line("member 1 holds", |l| l.starts_with("holding "))
        .await;
    // While all are up, no message is processed twice.
    let got = got_lines(&dir.0.join("out.log"));
    let unique: BTreeSet<&str> = got.iter().map(|w| w[1].as_str()).collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "a message processed twice while all members were up"
    );
    // Member 1 dies with unacked messages, and is started again (as a pod would be).
    member1.kill().await;
    let restarted = peer(1, None).spawn().await;
    members.insert(1, restarted);
    // Everything is processed in the end; the held messages only after the restart.
    let all = within(RUN_LIMIT, "every message processed", async {
        loop {
            let got = got_lines(&dir.0.join("out.log"));
            let seen: BTreeSet<u64> = got.iter().map(|w| w[1].parse().unwrap()).collect();
            if seen.len() as u64 == COUNT {
                return got;
            }
            // Wait for the next ack of any member.
            let [a, b, c] = &mut members[..] else {
                unreachable!()
            };
            let line = tokio::select! {
                l = a.lines.next_line() => l,
                l = b.lines.next_line() => l,
                l = c.lines.next_line() => l,
            };
            assert!(matches!(line, Ok(Some(_))), "a member ended: {line:?}");
        }
    })
    .await;
    let mut by_member: BTreeMap<String, u32> = BTreeMap::new();
    for words in &all {
        *by_member.entry(words[4].clone()).or_default() += 1;
    }
    assert_eq!(by_member.len(), 3, "every member took part: {by_member:?}");
    for member in members {
        member.terminate().await;
    }
    let got = got_lines(&dir.0.join("out.log"));
    let seen: BTreeSet<u64> = got.iter().map(|w| w[1].parse().unwrap()).collect();
    assert_eq!(seen.len() as u64, COUNT);
}
