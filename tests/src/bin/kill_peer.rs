//! The process that `tests/client_kill.rs` kills with SIGKILL at random points: a
//! client with a [`FileStore`] and a persistent session, publishing or receiving a
//! numbered stream. Each incarnation resumes from the store and goes on.
//!
//! ```text
//! kill_peer publish   ADDR STORE LOG QOS COUNT POLICY
//! kill_peer subscribe ADDR STORE LOG QOS COUNT POLICY
//! ```
//!
//! - `publish`: publishes the payloads `0..COUNT` (decimal) to `kill/stream`,
//!   starting after the highest one the store ever held, then, once every message
//!   of the session is complete, the payload `end`; prints `acked N` for each
//!   completed publish and exits 0.
//! - `subscribe`: subscribes to `kill/stream`, and for each message appends `got N
//!   PID` to LOG and then acks it; prints `subscribed` once subscribed and `acked N`
//!   after each ack; exits 0 once every payload of `0..COUNT` was seen (by any
//!   incarnation, as LOG says).
//!
//! LOG also gets `start` at each start, and from the store (after each successful
//! `apply`): `stored N` for a PUBLISH stored, `rec PID` for an incoming QoS 2
//! identifier stored before its PUBREC. POLICY is `always`, `batch` or `never`.
//! A store that cannot be opened exits 3 with the error.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a test program")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test program")]

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqtt_client::session::{
    FileStore, FsyncPolicy, Session, SessionChange, SessionStore, StoreError,
};
use mqtt_client::{Backoff, Client, Options, QoS, Tcp};
use tokio::sync::watch;

const TOPIC: &str = "kill/stream";

/// A [`FileStore`] that reports what it stored to LOG, after it stored it, and the
/// number of outgoing messages left in the session.
struct Logged {
    inner: FileStore,
    log: Arc<Mutex<File>>,
    session: Session,
    outgoing: watch::Sender<usize>,
}

impl SessionStore for Logged {
    fn load(&mut self) -> Result<Session, StoreError> {
        self.inner.load()
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        self.inner.apply(changes)?;
        let mut lines = String::new();
        for change in changes {
            self.session.apply(change);
            match change {
                SessionChange::OutgoingAdded(p) => {
                    lines.push_str(&format!("stored {}\n", String::from_utf8_lossy(&p.payload)));
                }
                SessionChange::IncomingReceived(id) => {
                    lines.push_str(&format!("rec {}\n", id.get()));
                }
                _ => {}
            }
        }
        if !lines.is_empty() {
            log(&self.log, &lines);
        }
        self.outgoing.send_replace(self.session.outgoing.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush()
    }
}

/// One `write` per call: a kill never leaves half a line.
fn log(file: &Mutex<File>, lines: &str) {
    let mut file = file.lock().unwrap();
    file.write_all(lines.as_bytes()).unwrap();
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, addr, store_path, log_path, qos, count, policy] = args.as_slice() else {
        eprintln!("usage: kill_peer publish|subscribe ADDR STORE LOG QOS COUNT POLICY");
        std::process::exit(2);
    };
    let qos = match qos.as_str() {
        "1" => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    };
    let count: u64 = count.parse().unwrap();
    let policy = match policy.as_str() {
        "always" => FsyncPolicy::Always,
        "batch" => FsyncPolicy::Batch {
            changes: 64,
            interval: Duration::from_millis(20),
        },
        _ => FsyncPolicy::Never,
    };
    let inner = match FileStore::open(store_path, policy) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot open the session store: {e}");
            std::process::exit(3);
        }
    };
    let log_file = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap(),
    ));
    log(&log_file, "start\n");
    let mut inner = inner;
    let session = inner.load().unwrap();
    let (outgoing, outgoing_left) = watch::channel(session.outgoing.len());
    let store = Logged {
        inner,
        log: log_file.clone(),
        session: session.clone(),
        outgoing,
    };
    let mut options = Options::new(format!("kill-{mode}"))
        .with_clean_start(false)
        .with_session_expiry(3600)
        .with_receive_maximum(20)
        .with_max_inflight(20)
        .with_request_queue(20)
        .with_reconnect(
            Backoff::default()
                .with_initial(Duration::from_millis(20))
                .with_max(Duration::from_millis(200)),
        );
    // mosquitto 2.0.11 overruns the Receive Maximum when it holds a backlog for a
    // resumed session (see the README).
    options = options.with_strict_receive_maximum(false);
    let (client, mut incoming) = Client::builder(options)
        .session_store(store)
        .connect(Tcp::new(addr.clone()))
        .await
        .unwrap();

    match mode.as_str() {
        "publish" => {
            // Stored is what counts: the log can lag the store by the last batch,
            // which the loaded session holds.
            let logged = std::fs::read_to_string(log_path).unwrap();
            let highest = logged
                .lines()
                .filter_map(|l| l.strip_prefix("stored "))
                .chain(
                    session
                        .outgoing
                        .iter()
                        .map(|m| std::str::from_utf8(&m.publish.payload).unwrap()),
                )
                .filter_map(|n| n.parse::<u64>().ok())
                .max();
            let next = highest.map_or(0, |n| n + 1);
            let mut done = Vec::new();
            for n in next..count {
                let handle = client
                    .publish(TOPIC, qos, false, n.to_string())
                    .await
                    .unwrap();
                done.push(tokio::spawn(async move {
                    handle.await.unwrap();
                    say(&format!("acked {n}"));
                }));
            }
            for d in done {
                d.await.unwrap();
            }
            // The messages restored from the store complete too.
            let mut left = outgoing_left;
            left.wait_for(|n| *n == 0).await.unwrap();
            client
                .publish(TOPIC, qos, false, "end")
                .await
                .unwrap()
                .await
                .unwrap();
            client.disconnect().await.unwrap();
        }
        _ => {
            let logged = std::fs::read_to_string(log_path).unwrap();
            let mut seen: BTreeSet<u64> = logged
                .lines()
                .filter_map(|l| l.strip_prefix("got "))
                .filter_map(|l| l.split(' ').next()?.parse().ok())
                .collect();
            let reader_client = client.clone();
            // Read concurrently with `subscribe`: a backlog larger than `Incoming`
            // must not wait behind the SUBACK. True once every message was seen.
            let reader = tokio::spawn(async move {
                while (seen.len() as u64) < count {
                    let Some(mut message) = incoming.recv().await else {
                        return false;
                    };
                    let n: u64 = std::str::from_utf8(message.payload())
                        .unwrap()
                        .parse()
                        .unwrap();
                    let id = message.take_ack_token().map(|t| (t.packet_id().get(), t));
                    let pid = id.as_ref().map_or(0, |(p, _)| *p);
                    log(&log_file, &format!("got {n} {pid}\n"));
                    if let Some((_, token)) = id {
                        // Stale after a reconnection: the broker sends it again.
                        let _ = token.ack();
                    }
                    say(&format!("acked {n}"));
                    seen.insert(n);
                }
                reader_client.disconnect().await.unwrap();
                true
            });
            let subscribed = client.subscribe(TOPIC, qos).await;
            say("subscribed");
            let complete = reader.await.unwrap();
            // The subscription may end with the client when the last messages came
            // before the SUBACK (the session had them queued).
            if let Err(e) = subscribed {
                assert!(
                    complete,
                    "subscribe: {e}; closed: {:?}",
                    client.closed_reason()
                );
            }
            assert!(
                complete,
                "closed before every message came: {:?}",
                client.closed_reason()
            );
        }
    }
}
