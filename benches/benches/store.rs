//! What a session store costs per message: the protocol engine driven the way its
//! driver drives it (changes applied to the store before the bytes of the same step
//! are taken), against a null peer, with no store, the in-memory store, and the
//! file store under each fsync policy.
//!
//! One message is a whole outgoing flow: QoS 1 (PUBLISH, PUBACK: two changes,
//! OutgoingAdded and OutgoingCompleted) or QoS 2 (PUBLISH, PUBREC, PUBREL, PUBCOMP:
//! three changes). A driver step carries `B` messages: `B` publishes, then the
//! store and the bytes; then `B` acks read, then the store and the bytes (and for
//! QoS 2 once more for PUBCOMP). `B` = 1 is a client that publishes one message at
//! a time and waits; `B` = 100 a full window in one burst. Each case runs for about
//! a second (at least 200 messages), 5 times; the table gives the median.
//!
//! Run: `cargo bench -p mqtt-benches --bench store > benches/STORE.md` (about two
//! minutes). The file store writes in `target/store-bench/`; the file system that
//! holds it is named in the output, since `fsync` costs what the disk makes it cost.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "benchmark: a failed check must stop the run; it prints its table"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_client::engine::{Engine, Event, State};
use mqtt_client::session::{FileStore, FsyncPolicy, MemoryStore, Session, SessionStore};
use mqtt_client::Options;
use mqtt_codec::packet::{Packet, PubAck, Publish};
use mqtt_codec::{MqttString, QoS};

const PAYLOAD_LEN: usize = 100;
const RUNS: usize = 5;
const CASE_TIME: Duration = Duration::from_millis(1000);

#[derive(Clone, Copy)]
enum Kind {
    None,
    Memory,
    File(FsyncPolicy),
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::None => "no store (engine only)".into(),
            Kind::Memory => "MemoryStore".into(),
            Kind::File(FsyncPolicy::Never) => "FileStore, `Never`".into(),
            Kind::File(FsyncPolicy::Batch { changes, interval }) => {
                format!("FileStore, `Batch {{ changes: {changes}, interval: {interval:?} }}`")
            }
            Kind::File(FsyncPolicy::Always) => "FileStore, `Always`".into(),
        }
    }
}

struct Bench {
    engine: Engine<()>,
    store: Option<Box<dyn SessionStore>>,
    template: Publish,
    changes: Vec<mqtt_client::session::SessionChange>,
}

impl Bench {
    fn new(kind: Kind, path: &Path) -> Self {
        let opts = Options::new("store-bench")
            .with_clean_start(false)
            .with_receive_maximum(100)
            .with_max_inflight(100)
            .with_request_queue(100);
        let (engine, store): (Engine<()>, Option<Box<dyn SessionStore>>) = match kind {
            Kind::None => (Engine::new(opts), None),
            Kind::Memory => (
                Engine::resume(opts, Session::default()),
                Some(Box::new(MemoryStore::new())),
            ),
            Kind::File(policy) => {
                let _ = std::fs::remove_file(path);
                let mut store = FileStore::open(path, policy).unwrap();
                let session = store.load().unwrap();
                (Engine::resume(opts, session), Some(Box::new(store)))
            }
        };
        let mut bench = Self {
            engine,
            store,
            template: Publish {
                qos: QoS::AtLeastOnce,
                topic: MqttString::from_static("bench/store").unwrap(),
                payload: Bytes::from(vec![7u8; PAYLOAD_LEN]),
                ..Publish::default()
            },
            changes: Vec::new(),
        };
        let now = Instant::now();
        bench.engine.handle_transport_open(now);
        bench.step();
        bench
            .engine
            .handle_packet(now, Packet::ConnAck(Box::default()));
        assert_eq!(bench.engine.state(), State::Connected);
        bench.step();
        while bench.engine.poll_event().is_some() {}
        bench
    }

    /// The driver's output step: the store first, then the bytes.
    fn step(&mut self) {
        if let Some(store) = self.store.as_mut() {
            self.changes.extend(self.engine.poll_session_changes());
            if !self.changes.is_empty() {
                store.apply(&self.changes).unwrap();
                self.changes.clear();
            }
        }
        while let Some(bytes) = self.engine.poll_transmit() {
            std::hint::black_box(bytes);
        }
    }

    /// `b` messages through their whole flow.
    fn batch(&mut self, qos: QoS, b: usize) {
        let now = Instant::now();
        self.template.qos = qos;
        let mut ids = Vec::with_capacity(b);
        for _ in 0..b {
            let id = self
                .engine
                .publish(now, self.template.clone(), ())
                .unwrap()
                .unwrap();
            ids.push(id);
        }
        self.step();
        for &id in &ids {
            let ack = PubAck::new(id);
            let packet = match qos {
                QoS::AtLeastOnce => Packet::PubAck(ack),
                _ => Packet::PubRec(ack),
            };
            self.engine.handle_packet(now, packet);
        }
        self.step();
        if qos == QoS::ExactlyOnce {
            for &id in &ids {
                self.engine
                    .handle_packet(now, Packet::PubComp(PubAck::new(id)));
            }
            self.step();
        }
        let mut done = 0;
        while let Some(event) = self.engine.poll_event() {
            assert!(matches!(event, Event::PublishDone { result: Ok(_), .. }));
            done += 1;
        }
        assert_eq!(done, b);
        assert_eq!(self.engine.inflight(), 0);
    }
}

/// Nanoseconds per message, one run.
fn run(kind: Kind, qos: QoS, b: usize, path: &Path, case_time: Duration) -> f64 {
    let mut bench = Bench::new(kind, path);
    // Warm up (file created, allocations made).
    bench.batch(qos, b);
    let start = Instant::now();
    let mut messages = 0usize;
    while start.elapsed() < case_time || messages < 200 {
        bench.batch(qos, b);
        messages += b;
    }
    let elapsed = start.elapsed();
    if let Some(store) = bench.store.as_mut() {
        store.flush().unwrap();
    }
    elapsed.as_nanos() as f64 / messages as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The mount (and its file system type) that holds `path`.
fn file_system(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} ({}, {})", f[1], f[2], f[0])))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, s)| s)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Under `cargo test` (no `--bench`): every case once, 200 messages, as a smoke
    // test of the harness; nothing printed.
    let measuring = std::env::args().any(|a| a == "--bench");
    let case_time = if measuring { CASE_TIME } else { Duration::ZERO };
    let runs = if measuring { RUNS } else { 1 };
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/store-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bench.session");
    let kinds = [
        Kind::None,
        Kind::Memory,
        Kind::File(FsyncPolicy::Never),
        Kind::File(FsyncPolicy::Batch {
            changes: 256,
            interval: Duration::from_millis(10),
        }),
        Kind::File(FsyncPolicy::Always),
    ];
    if !measuring {
        for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
            for kind in kinds {
                run(kind, qos, 100, &path, case_time);
            }
        }
        let _ = std::fs::remove_file(&path);
        return;
    }
    println!("# Session store: cost per message\n");
    println!(
        "Produced by `cargo bench -p mqtt-benches --bench store > benches/STORE.md` at {}.\n",
        mqtt_benches::stamp()
    );
    println!(
        "- The engine against a null peer, driven as its driver drives it: per driver step, \
         the session changes go to the store (one `apply`), then the bytes are taken. One \
         message is a whole outgoing flow of {PAYLOAD_LEN} bytes of payload: QoS 1 (2 changes) \
         or QoS 2 (3 changes). B = messages per driver step (1: one at a time; 100: a full \
         window per burst).\n\
         - Each case runs about {} s, {RUNS} times, interleaved; the table gives the median \
         ns per message, and the cost the store adds to the engine alone.\n\
         - File store on {}.\n\
         - Machine: 2 cores, shared and noisy: read ratios and orders of magnitude.\n",
        CASE_TIME.as_secs_f64(),
        file_system(&dir)
    );
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for b in [1usize, 100] {
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
            for _ in 0..runs {
                for (k, kind) in kinds.iter().enumerate() {
                    samples[k].push(run(*kind, qos, b, &path, case_time));
                }
            }
            println!("## QoS {}, B = {b}\n", qos as u8);
            println!("| store | ns/message (median) | added by the store, ns/message | messages/s | all runs, ns/message |");
            println!("|---|---:|---:|---:|---|");
            let base = median(samples[0].clone());
            for (k, kind) in kinds.iter().enumerate() {
                let m = median(samples[k].clone());
                let added = if k == 0 {
                    "—".to_owned()
                } else {
                    format!("{:.0}", m - base)
                };
                let all: Vec<String> = samples[k].iter().map(|s| format!("{s:.0}")).collect();
                println!(
                    "| {} | {m:.0} | {added} | {:.0} | {} |",
                    kind.name(),
                    1e9 / m,
                    all.join(", ")
                );
            }
            println!();
        }
    }
    let _ = std::fs::remove_file(&path);
}
