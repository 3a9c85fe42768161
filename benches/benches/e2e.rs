//! End-to-end throughput of MQTT clients: publisher → local mosquitto → subscriber,
//! rumqttc and our `mqtt-client` side by side in the same run.
//!
//! For each QoS (0, 1, 2), each client library and each repetition:
//!
//! - a fresh mosquitto is started ([`mqtt_tests::broker::Mosquitto`], 127.0.0.1,
//!   ephemeral port, no queue or in-flight limits, logging off); it is stopped after
//!   the run, so no run sees another run's sessions or memory;
//! - a subscriber (clean session, one topic unique to the run, subscribed at the QoS
//!   under test, acknowledging automatically) and a publisher (its own connection) of
//!   the same library run as tasks of one tokio multi-thread runtime with 2 worker
//!   threads, built once in `main` and shared by both libraries;
//! - the publisher sends N messages of 100 bytes, the first 8 bytes being the sequence
//!   number (big endian), the rest a fixed filler; the in-flight window W is the same
//!   for both libraries (rumqttc: `set_inflight(W)` and a request channel of W);
//! - the window measured runs from just before the first publish to the subscriber
//!   receiving the N-th distinct message (or the timeout): wall time gives msgs/s, the
//!   user+system CPU time of this process (`/proc/self/stat`) and of the broker
//!   ([`Mosquitto::cpu_time`]) over the same window, per message received, give µs/msg;
//! - the subscriber checks every sequence number: missing, duplicated, out of order
//!   or malformed messages are reported.
//!
//! Runs are interleaved (rumqttc, ours, rumqttc, ours, ...) so that noise hits both;
//! the report gives medians, every run's msgs/s and the ours/rumqttc ratios, on stdout
//! and in `benches/E2E.md`.
//!
//! Run: `cargo bench -p mqtt-benches --bench e2e`. Environment:
//!
//! - `E2E_MESSAGES`: N for every QoS (default 100 000 at QoS 0 and 1, 50 000 at QoS 2);
//! - `E2E_WINDOW`: W, 1..=65535 (default 100);
//! - `E2E_REPEAT`: R, runs per (client, QoS) (default 3);
//! - `E2E_CLIENTS`: `ours` or `rumqttc` to run one side only (for profiling);
//! - `E2E_QOS`: QoS levels to run, e.g. `1` or `0,2` (default `0,1,2`);
//! - `E2E_TIMEOUT_SECS`: limit of one measured window (default 60).
//!
//! Our client plugs in at [`run_ours`], the one function to fill in.

// A bench binary reports on stdout by design.
#![allow(clippy::print_stdout, reason = "the report goes to stdout")]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_benches::{
    clock_ticks, env_parse, fmt_rate, fmt_us, median, mosquitto_version, process_cpu,
    rumqttc_version, Delivery, SeqTracker, SEQ_LEN, SEQ_PAYLOAD_LEN as PAYLOAD_LEN,
};
use mqtt_tests::broker::Mosquitto;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout};

/// Byte filling the payload after the sequence number.
const FILLER: u8 = b'x';
/// Limit of each setup step (connect, subscribe) of a run.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// After the N-th message: limit of the wait for the publisher's last acknowledgements,
/// so that late duplicates still reach the subscriber's count (outside the window).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after the drain, before the subscriber stops counting.
const SETTLE: Duration = Duration::from_millis(50);
/// Limit of the wait for a stopped task.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Protocol rumqttc speaks here (its main API, `rumqttc::AsyncClient`).
const RUMQTTC_PROTOCOL: &str = "MQTT 3.1.1";

// ---------------------------------------------------------------------------------
// Plug-in point of our client.

/// One run of **our client** (`mqtt-client`): to be written once its API exists.
///
/// Contract, the same as [`run_rumqttc`]'s (read it as the reference):
///
/// 1. connect a subscriber (client id `format!("{}-sub", cfg.client_id)`, clean
///    session) to `addr`, subscribe to `cfg.topic` at `cfg.qos`, wait for the SUBACK
///    (bound each step with [`SETUP_TIMEOUT`]);
/// 2. connect a publisher (`format!("{}-pub", cfg.client_id)`) on its own connection;
///    in-flight window `cfg.window` (QoS 1/2), request queue of `cfg.window` if the
///    API has one;
/// 3. `let (tracker, completion) = Tracker::new(cfg.messages);` move `tracker` into
///    the subscriber's receive task and call `tracker.record(&payload)` for every
///    PUBLISH received (on a fatal error: `faults.send(..)`, `tracker.abandon()`);
/// 4. `let start = cfg.snapshot();` then spawn the publish task: sequence numbers
///    `0..cfg.messages`, payload [`RunConfig::payload`], QoS `cfg.qos`, not retained;
/// 5. `let finish = completion.wait(cfg, &start).await;` (never waits past
///    `cfg.timeout`);
/// 6. optionally wait (bounded) for the publisher's last acknowledgements, stop the
///    tasks (bounded, see [`join_bounded`]), get the tracker back and return
///    `Some(RunResult::finished(PROTOCOL, &start, finish, tracker.delivery()))`,
///    or `Some(RunResult::failed(cfg, PROTOCOL, reason))` on a setup error.
///
/// Everything runs as tasks of the current runtime (2 worker threads); this future
/// itself is driven by `block_on` on the main thread and should only wait.
///
/// Returns `None` while our client is not plugged in: the report shows "n/a".
async fn run_ours(cfg: &RunConfig, addr: SocketAddr) -> Option<RunResult> {
    Some(match ours_run(cfg, addr).await {
        Ok(result) => result,
        Err(error) => RunResult::failed(cfg, OURS_PROTOCOL, error),
    })
}

/// Protocol our client speaks in [`run_ours`]: the same as rumqttc's for a fair run.
const OURS_PROTOCOL: &str = "MQTT 3.1.1";

fn ours_options(cfg: &RunConfig, role: &str) -> mqtt_client::Options {
    mqtt_client::Options::new(format!("{}-{role}", cfg.client_id))
        .with_version(mqtt_client::ProtocolVersion::V311)
        .with_keep_alive(60)
        .with_receive_maximum(cfg.window)
        .with_max_inflight(cfg.window)
        .with_request_queue(usize::from(cfg.window))
        // rumqttc acknowledges by itself: the same here.
        .with_auto_ack(true)
        // rumqttc stops reading while its application is behind (TCP pushes back on
        // the broker) and loses no QoS 0 message: the same here, instead of the
        // default of dropping QoS 0 past `qos0_backlog`.
        .with_qos0_overflow(mqtt_client::Qos0Overflow::PauseReading)
}

async fn ours_run(cfg: &RunConfig, addr: SocketAddr) -> Result<RunResult, String> {
    use mqtt_client::{Client, QoS, Tcp};

    let qos = match cfg.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        other => return Err(format!("no QoS {other}")),
    };
    let connector = Tcp::new(addr.to_string());
    let (subscriber, mut incoming) = timeout(
        SETUP_TIMEOUT,
        Client::connect(ours_options(cfg, "sub"), connector.clone()),
    )
    .await
    .map_err(|_| "subscriber: no CONNACK".to_owned())?
    .map_err(|e| format!("subscriber: {e}"))?;
    let granted = timeout(SETUP_TIMEOUT, subscriber.subscribe(&cfg.topic, qos))
        .await
        .map_err(|_| "subscribe: no SUBACK".to_owned())?
        .map_err(|e| format!("subscribe: {e}"))?;
    if granted.results != [Ok(qos)] {
        return Err(format!("SUBACK {:?}, wanted {qos:?}", granted.results));
    }
    let (publisher, _publisher_incoming) = timeout(
        SETUP_TIMEOUT,
        Client::connect(ours_options(cfg, "pub"), connector),
    )
    .await
    .map_err(|_| "publisher: no CONNACK".to_owned())?
    .map_err(|e| format!("publisher: {e}"))?;

    let (mut tracker, completion) = Tracker::new(cfg.messages);
    let faults = completion.faults();
    let (stop_tx, stop_rx) = watch::channel(false);

    let sub_task = tokio::spawn({
        let mut stop = stop_rx.clone();
        let faults = faults.clone();
        async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    message = incoming.recv() => match message {
                        Some(message) => tracker.record(message.payload()),
                        None => {
                            let _ = faults.send("subscriber: client closed".to_owned());
                            tracker.abandon();
                            break;
                        }
                    },
                }
            }
            tracker
        }
    });

    let (acked_tx, acked_rx) = oneshot::channel::<()>();
    let start = cfg.snapshot();
    let feed_task = tokio::spawn({
        let publisher = publisher.clone();
        let topic = cfg.topic.clone();
        let n = cfg.messages;
        async move {
            let mut last = None;
            for seq in 0..n {
                match publisher
                    .publish(&topic, qos, false, RunConfig::payload(seq))
                    .await
                {
                    // Completion of the flow is awaited only for the last message;
                    // the window bounds how many are in flight.
                    Ok(handle) => last = Some(handle),
                    Err(error) => {
                        let _ = faults.send(format!("publish {seq}: {error}"));
                        return;
                    }
                }
            }
            if let Some(handle) = last {
                if handle.await.is_ok() {
                    let _ = acked_tx.send(());
                }
            }
        }
    });
    let finish = completion.wait(cfg, &start).await;

    if finish.error.is_none() && !finish.timed_out {
        let _ = timeout(DRAIN_TIMEOUT, acked_rx).await;
        sleep(SETTLE).await;
    }
    let _ = stop_tx.send(true);
    let tracker = join_bounded(sub_task).await;
    let _ = join_bounded(feed_task).await;
    let _ = timeout(STOP_TIMEOUT, publisher.disconnect()).await;
    let _ = timeout(STOP_TIMEOUT, subscriber.disconnect()).await;

    let Some(tracker) = tracker else {
        return Err("subscriber task did not stop: count lost".to_owned());
    };
    Ok(RunResult::finished(
        OURS_PROTOCOL,
        &start,
        finish,
        tracker.delivery(),
    ))
}

// ---------------------------------------------------------------------------------
// Framework: configuration, meters, tracking, results.

/// Everything one run needs: what to send, the limits, and the meters.
struct RunConfig {
    /// QoS of the subscription and of every publish: 0, 1 or 2.
    qos: u8,
    /// N: messages to publish, sequence numbers `0..N`.
    messages: u64,
    /// W: in-flight window (unacknowledged QoS 1/2 publishes) and request queue length.
    window: u16,
    /// Limit of the measured window (first publish → N-th distinct message).
    timeout: Duration,
    /// Topic unique to this run.
    topic: String,
    /// Client-id prefix unique to this run: `{client_id}-pub`, `{client_id}-sub`.
    client_id: String,
    /// Process and broker CPU meters.
    meter: Meter,
}

impl RunConfig {
    /// Wall clock, process CPU and broker CPU, now.
    fn snapshot(&self) -> Snapshot {
        self.meter.snapshot()
    }

    /// The payload of message `seq`: `seq` as u64 big endian, then filler, 100 bytes.
    fn payload(seq: u64) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&seq.to_be_bytes());
        payload.resize(PAYLOAD_LEN, FILLER);
        payload
    }
}

/// Reads the CPU time of this process and of the broker.
struct Meter {
    /// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`).
    clk_tck: u64,
    broker: Arc<Mosquitto>,
}

impl Meter {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            cpu: process_cpu(self.clk_tck),
            syscalls: process_syscalls(),
            broker_cpu: self.broker.cpu_time(),
        }
    }
}

/// Wall clock and CPU times at one instant.
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    at: Instant,
    /// User + system CPU of this process; `None` if `/proc/self/stat` was unreadable.
    cpu: Option<Duration>,
    /// Read and write system calls of this process so far (`/proc/self/io`).
    syscalls: Option<u64>,
    /// CPU of the broker process.
    broker_cpu: Duration,
}

/// Read-like plus write-like system calls of this process (`syscr` + `syscw` of
/// `/proc/self/io`): both clients' socket reads and writes, with little else.
fn process_syscalls() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("syscr:")? + field("syscw:")?)
}

/// The subscriber's count of what arrived; signals its [`Completion`] once all N
/// distinct messages have.
#[derive(Debug)]
struct Tracker {
    seq: SeqTracker,
    done: Option<oneshot::Sender<Instant>>,
}

impl Tracker {
    /// A tracker expecting sequence numbers `0..expected`, and the completion it fires.
    fn new(expected: u64) -> (Self, Completion) {
        let (done_tx, done_rx) = oneshot::channel();
        let (fault_tx, fault_rx) = mpsc::unbounded_channel();
        let tracker = Self {
            seq: SeqTracker::new(expected),
            done: Some(done_tx),
        };
        let completion = Completion {
            done: done_rx,
            faults: fault_rx,
            fault_tx,
        };
        (tracker, completion)
    }

    /// Counts one received payload.
    fn record(&mut self, payload: &[u8]) {
        if self.seq.record(payload) {
            if let Some(done) = self.done.take() {
                let _ = done.send(Instant::now());
            }
        }
    }

    /// Gives up (fatal receive error): the completion resolves at once, as failed.
    fn abandon(&mut self) {
        self.done = None;
    }

    fn delivery(&self) -> Delivery {
        self.seq.delivery()
    }
}

/// The driving future's side of a run: the subscriber's "all arrived" signal and the
/// fault reports of every task.
#[derive(Debug)]
struct Completion {
    done: oneshot::Receiver<Instant>,
    faults: mpsc::UnboundedReceiver<String>,
    fault_tx: mpsc::UnboundedSender<String>,
}

/// How the measured window ended.
#[derive(Debug)]
struct Finish {
    /// CPU snapshot at the end of the window.
    end: Snapshot,
    /// When the N-th distinct message arrived (or when the window was cut short).
    done_at: Instant,
    timed_out: bool,
    error: Option<String>,
}

impl Completion {
    /// A sender for fatal errors of the run's tasks: the first one ends the window.
    fn faults(&self) -> mpsc::UnboundedSender<String> {
        self.fault_tx.clone()
    }

    /// Waits for the N-th distinct message, a fault, or `cfg.timeout` after `start`.
    async fn wait(mut self, cfg: &RunConfig, start: &Snapshot) -> Finish {
        let deadline = tokio::time::Instant::from_std(start.at + cfg.timeout);
        let outcome = tokio::select! {
            done = &mut self.done => match done {
                Ok(at) => Ok(at),
                Err(_) => Err(Some("subscriber stopped before all messages arrived".to_owned())),
            },
            Some(fault) = self.faults.recv() => Err(Some(fault)),
            () = tokio::time::sleep_until(deadline) => Err(None),
        };
        let end = cfg.snapshot();
        match outcome {
            Ok(done_at) => Finish {
                end,
                done_at,
                timed_out: false,
                error: None,
            },
            Err(error) => Finish {
                end,
                done_at: end.at,
                timed_out: error.is_none(),
                error,
            },
        }
    }
}

/// Waits at most [`STOP_TIMEOUT`] for a task to end (after it was told to stop),
/// aborting it otherwise.
async fn join_bounded<T>(mut task: JoinHandle<T>) -> Option<T> {
    match timeout(STOP_TIMEOUT, &mut task).await {
        Ok(joined) => joined.ok(),
        Err(_) => {
            task.abort();
            None
        }
    }
}

/// The outcome of one run of one client.
#[derive(Debug)]
struct RunResult {
    /// Protocol spoken, e.g. "MQTT 3.1.1".
    protocol: &'static str,
    /// Snapshot just before the first publish.
    start: Snapshot,
    /// See [`Finish`].
    end: Snapshot,
    done_at: Instant,
    delivery: Delivery,
    timed_out: bool,
    /// A setup error, a task's fatal error, or a lost subscriber count.
    error: Option<String>,
}

impl RunResult {
    /// A run whose window ended (completed, timed out or faulted).
    fn finished(
        protocol: &'static str,
        start: &Snapshot,
        finish: Finish,
        delivery: Delivery,
    ) -> Self {
        Self {
            protocol,
            start: *start,
            end: finish.end,
            done_at: finish.done_at,
            delivery,
            timed_out: finish.timed_out,
            error: finish.error,
        }
    }

    /// A run that failed before or outside its window.
    fn failed(cfg: &RunConfig, protocol: &'static str, error: String) -> Self {
        let now = cfg.snapshot();
        Self {
            protocol,
            start: now,
            end: now,
            done_at: now.at,
            delivery: Delivery::none(cfg.messages),
            timed_out: false,
            error: Some(error),
        }
    }

    /// Completed: every message arrived within the window, no error.
    fn completed(&self) -> bool {
        self.error.is_none() && !self.timed_out && self.delivery.missing == 0
    }

    fn elapsed(&self) -> Duration {
        self.done_at.saturating_duration_since(self.start.at)
    }

    /// Distinct messages received per second of the window.
    fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.delivery.unique as f64 / secs
        } else {
            0.0
        }
    }

    fn per_message_us(&self, cpu: Duration) -> Option<f64> {
        (self.delivery.unique > 0).then(|| cpu.as_secs_f64() * 1e6 / self.delivery.unique as f64)
    }

    /// Read and write system calls of this process per distinct message received.
    fn syscalls_per_message(&self) -> Option<f64> {
        let calls = self.end.syscalls?.checked_sub(self.start.syscalls?)?;
        (self.delivery.unique > 0).then(|| calls as f64 / self.delivery.unique as f64)
    }

    /// CPU of this process per distinct message received, µs.
    fn client_cpu_us(&self) -> Option<f64> {
        let cpu = self.end.cpu?.checked_sub(self.start.cpu?)?;
        self.per_message_us(cpu)
    }

    /// CPU of the broker per distinct message received, µs.
    fn broker_cpu_us(&self) -> Option<f64> {
        let cpu = self.end.broker_cpu.checked_sub(self.start.broker_cpu)?;
        self.per_message_us(cpu)
    }

    /// Anything not clean, for the report's delivery column; empty if clean.
    fn anomalies(&self) -> String {
        let d = &self.delivery;
        let mut notes = Vec::new();
        if let Some(error) = &self.error {
            notes.push(format!("error: {error}"));
        }
        if self.timed_out {
            notes.push(format!("TIMEOUT, {}/{} received", d.unique, d.expected));
        }
        if d.missing > 0 {
            notes.push(format!("{} missing", d.missing));
        }
        if d.duplicates > 0 {
            notes.push(format!("{} duplicates", d.duplicates));
        }
        if d.invalid > 0 {
            notes.push(format!("{} invalid", d.invalid));
        }
        if d.reordered > 0 {
            notes.push(format!("{} out of order", d.reordered));
        }
        notes.join(", ")
    }
}

// ---------------------------------------------------------------------------------
// rumqttc.

/// One run of rumqttc 0.25 (`AsyncClient`, MQTT 3.1.1): the reference for [`run_ours`].
async fn run_rumqttc(cfg: &RunConfig, addr: SocketAddr) -> RunResult {
    match rumqttc_run(cfg, addr).await {
        Ok(result) => result,
        Err(error) => RunResult::failed(cfg, RUMQTTC_PROTOCOL, error),
    }
}

fn rumqttc_qos(qos: u8) -> Result<rumqttc::QoS, String> {
    match qos {
        0 => Ok(rumqttc::QoS::AtMostOnce),
        1 => Ok(rumqttc::QoS::AtLeastOnce),
        2 => Ok(rumqttc::QoS::ExactlyOnce),
        other => Err(format!("no QoS {other}")),
    }
}

fn rumqttc_options(cfg: &RunConfig, addr: SocketAddr, role: &str) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(
        format!("{}-{role}", cfg.client_id),
        addr.ip().to_string(),
        addr.port(),
    );
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(60))
        .set_inflight(cfg.window)
        .set_request_channel_capacity(usize::from(cfg.window));
    options
}

/// Polls `event_loop` until `wanted` accepts an incoming packet, within [`SETUP_TIMEOUT`].
async fn rumqttc_await(
    event_loop: &mut rumqttc::EventLoop,
    what: &str,
    mut wanted: impl FnMut(&rumqttc::Packet) -> Option<Result<(), String>>,
) -> Result<(), String> {
    let waited = timeout(SETUP_TIMEOUT, async {
        loop {
            match event_loop.poll().await {
                Ok(rumqttc::Event::Incoming(packet)) => {
                    if let Some(verdict) = wanted(&packet) {
                        return verdict;
                    }
                }
                Ok(rumqttc::Event::Outgoing(_)) => {}
                Err(error) => return Err(format!("{what}: {error}")),
            }
        }
    })
    .await;
    waited.unwrap_or_else(|_| Err(format!("{what}: nothing within {SETUP_TIMEOUT:?}")))
}

async fn rumqttc_run(cfg: &RunConfig, addr: SocketAddr) -> Result<RunResult, String> {
    use rumqttc::{AsyncClient, Event, Outgoing, Packet, SubscribeReasonCode};

    let qos = rumqttc_qos(cfg.qos)?;
    let capacity = usize::from(cfg.window);

    // Subscriber: connect, subscribe, wait for the SUBACK.
    let (subscriber, mut sub_loop) = AsyncClient::new(rumqttc_options(cfg, addr, "sub"), capacity);
    subscriber
        .subscribe(cfg.topic.clone(), qos)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    rumqttc_await(&mut sub_loop, "subscriber", |packet| match packet {
        Packet::SubAck(ack) => Some(match ack.return_codes.as_slice() {
            [SubscribeReasonCode::Success(granted)] if *granted == qos => Ok(()),
            codes => Err(format!("SUBACK {codes:?}, wanted {qos:?}")),
        }),
        _ => None,
    })
    .await?;

    // Publisher: connect.
    let (publisher, mut pub_loop) = AsyncClient::new(rumqttc_options(cfg, addr, "pub"), capacity);
    rumqttc_await(&mut pub_loop, "publisher", |packet| {
        matches!(packet, Packet::ConnAck(_)).then_some(Ok(()))
    })
    .await?;

    let (mut tracker, completion) = Tracker::new(cfg.messages);
    let faults = completion.faults();
    let (stop_tx, stop_rx) = watch::channel(false);

    // Subscriber task: counts every PUBLISH (rumqttc acknowledges by itself).
    let sub_task = tokio::spawn({
        let mut stop = stop_rx.clone();
        let faults = faults.clone();
        async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    event = sub_loop.poll() => match event {
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            tracker.record(&publish.payload);
                        }
                        Ok(_) => {}
                        Err(error) => {
                            let _ = faults.send(format!("subscriber: {error}"));
                            tracker.abandon();
                            break;
                        }
                    },
                }
            }
            tracker
        }
    });

    // Publisher event loop task: drives the connection, tells when the last message is
    // acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP) or written (QoS 0).
    let (acked_tx, acked_rx) = oneshot::channel::<()>();
    let pub_task = tokio::spawn({
        let mut stop = stop_rx.clone();
        let faults = faults.clone();
        let n = cfg.messages;
        let qos_level = cfg.qos;
        async move {
            let mut acked_tx = Some(acked_tx);
            let mut count = 0_u64;
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    event = pub_loop.poll() => {
                        let counted = match event {
                            Ok(Event::Outgoing(Outgoing::Publish(_))) => qos_level == 0,
                            Ok(Event::Incoming(Packet::PubAck(_))) => qos_level == 1,
                            Ok(Event::Incoming(Packet::PubComp(_))) => qos_level == 2,
                            Ok(_) => false,
                            Err(error) => {
                                let _ = faults.send(format!("publisher: {error}"));
                                break;
                            }
                        };
                        if counted {
                            count += 1;
                            if count == n {
                                if let Some(tx) = acked_tx.take() {
                                    let _ = tx.send(());
                                }
                            }
                        }
                    }
                }
            }
        }
    });

    // The window: from just before the first publish.
    let start = cfg.snapshot();
    let feed_task = tokio::spawn({
        let publisher = publisher.clone();
        let topic = cfg.topic.clone();
        let n = cfg.messages;
        async move {
            for seq in 0..n {
                let sent = publisher
                    .publish(topic.clone(), qos, false, RunConfig::payload(seq))
                    .await;
                if let Err(error) = sent {
                    let _ = faults.send(format!("publish {seq}: {error}"));
                    return;
                }
            }
        }
    });
    let finish = completion.wait(cfg, &start).await;

    // Outside the window: let the last acknowledgements (and any duplicate) through.
    if finish.error.is_none() && !finish.timed_out {
        let _ = timeout(DRAIN_TIMEOUT, acked_rx).await;
        sleep(SETTLE).await;
    }
    let _ = stop_tx.send(true);
    feed_task.abort();
    let tracker = join_bounded(sub_task).await;
    let _ = join_bounded(pub_task).await;
    let _ = join_bounded(feed_task).await;
    drop((subscriber, publisher));

    let Some(tracker) = tracker else {
        return Err("subscriber task did not stop: count lost".to_owned());
    };
    Ok(RunResult::finished(
        RUMQTTC_PROTOCOL,
        &start,
        finish,
        tracker.delivery(),
    ))
}

// ---------------------------------------------------------------------------------
// Driver: settings, runs, report.

/// The client libraries compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Rumqttc,
    Ours,
}

impl Client {
    const ALL: [Self; 2] = [Self::Rumqttc, Self::Ours];

    fn label(self) -> &'static str {
        match self {
            Self::Rumqttc => "rumqttc",
            Self::Ours => "mqtt-client",
        }
    }
}

/// Settings from the environment.
#[derive(Debug)]
struct Settings {
    /// `E2E_MESSAGES`: N for every QoS, if set.
    messages_override: Option<u64>,
    window: u16,
    repeat: usize,
    qos_levels: Vec<u8>,
    timeout: Duration,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let messages = env_parse::<u64>("E2E_MESSAGES")?;
        if messages == Some(0) {
            return Err("E2E_MESSAGES must be at least 1".to_owned());
        }
        let window = env_parse::<u16>("E2E_WINDOW")?.unwrap_or(100);
        if window == 0 {
            return Err("E2E_WINDOW must be in 1..=65535".to_owned());
        }
        let repeat = env_parse::<usize>("E2E_REPEAT")?.unwrap_or(3).max(1);
        let qos_levels = match std::env::var("E2E_QOS") {
            Ok(list) => list
                .split(',')
                .map(|q| match q.trim().parse::<u8>() {
                    Ok(q @ 0..=2) => Ok(q),
                    _ => Err(format!("E2E_QOS: {q:?} is not 0, 1 or 2")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Err(_) => vec![0, 1, 2],
        };
        let timeout_secs = env_parse::<u64>("E2E_TIMEOUT_SECS")?.unwrap_or(60).max(1);
        Ok(Self {
            messages_override: messages,
            window,
            repeat,
            qos_levels,
            timeout: Duration::from_secs(timeout_secs),
        })
    }

    /// N at `qos`.
    fn messages(&self, qos: u8) -> u64 {
        self.messages_override
            .unwrap_or(if qos == 2 { 50_000 } else { 100_000 })
    }
}

/// The runs of one (QoS, client).
#[derive(Debug)]
struct Series {
    qos: u8,
    client: Client,
    messages: u64,
    /// One entry per run; `None`: the client is not plugged in.
    runs: Vec<Option<RunResult>>,
}

impl Series {
    fn done(&self) -> impl Iterator<Item = &RunResult> {
        self.runs.iter().flatten()
    }

    fn completed(&self) -> impl Iterator<Item = &RunResult> {
        self.done().filter(|r| r.completed())
    }

    fn protocol(&self) -> Option<&'static str> {
        self.done().next().map(|r| r.protocol)
    }

    fn median_rate(&self) -> Option<f64> {
        median(self.completed().map(RunResult::msgs_per_sec).collect())
    }

    fn median_client_cpu(&self) -> Option<f64> {
        median(
            self.completed()
                .filter_map(RunResult::client_cpu_us)
                .collect(),
        )
    }

    fn median_syscalls(&self) -> Option<f64> {
        median(
            self.completed()
                .filter_map(RunResult::syscalls_per_message)
                .collect(),
        )
    }

    fn median_broker_cpu(&self) -> Option<f64> {
        median(
            self.completed()
                .filter_map(RunResult::broker_cpu_us)
                .collect(),
        )
    }
}

/// One run of `client` on a fresh broker.
fn run_once(
    rt: &tokio::runtime::Runtime,
    settings: &Settings,
    clk_tck: u64,
    qos: u8,
    client: Client,
    index: usize,
) -> Option<RunResult> {
    // The default config logs every packet (`log_type all`) to a file: that would
    // be measured as broker CPU. `log_dest none` (which resets the destinations)
    // turns logging off; the launcher then waits 1 s more to call the broker ready.
    let broker = Arc::new(Mosquitto::builder().config_line("log_dest none").start());
    let addr = broker.addr();
    let tag = format!("{}-q{qos}-{}-{index}", std::process::id(), client.label());
    let cfg = RunConfig {
        qos,
        messages: settings.messages(qos),
        window: settings.window,
        timeout: settings.timeout,
        topic: format!("e2e/{tag}"),
        client_id: format!("e2e-{tag}"),
        meter: Meter {
            clk_tck,
            broker: Arc::clone(&broker),
        },
    };
    // The run's own limits bound it; this outer one only guards against a runner
    // that forgets them.
    let limit = cfg.timeout + SETUP_TIMEOUT * 3 + DRAIN_TIMEOUT + STOP_TIMEOUT * 4;
    let result = rt.block_on(async {
        let run = async {
            match client {
                Client::Rumqttc => Some(run_rumqttc(&cfg, addr).await),
                Client::Ours => run_ours(&cfg, addr).await,
            }
        };
        match timeout(limit, run).await {
            Ok(result) => result,
            Err(_) => Some(RunResult::failed(
                &cfg,
                "?",
                format!("run exceeded {limit:?}"),
            )),
        }
    });
    drop(cfg);
    // The only other owner was `cfg`; were it not, dropping the last one kills it.
    if let Ok(mut broker) = Arc::try_unwrap(broker) {
        broker.stop();
    }
    result
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("e2e: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
    // without it: then a quick smoke run (500 messages per QoS and client, once)
    // that fails unless every message arrives, and leaves E2E.md alone.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let mut settings = Settings::from_env()?;
    if smoke {
        settings.messages_override = Some(settings.messages_override.unwrap_or(500).min(500));
        settings.repeat = 1;
    }
    let clk_tck = clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;

    let mut all = Vec::new();
    for &qos in &settings.qos_levels {
        // `E2E_CLIENTS=ours` or `=rumqttc` runs one side only (profiling).
        let only = std::env::var("E2E_CLIENTS").ok();
        let mut series: Vec<Series> = Client::ALL
            .iter()
            .filter(|c| {
                only.as_deref()
                    .is_none_or(|o| c.label().contains(o) || (o == "ours" && **c == Client::Ours))
            })
            .map(|&client| Series {
                qos,
                client,
                messages: settings.messages(qos),
                runs: Vec::new(),
            })
            .collect();
        for index in 1..=settings.repeat {
            for s in &mut series {
                // A client that is not plugged in is not retried.
                if s.runs.first().is_some_and(Option::is_none) {
                    s.runs.push(None);
                    continue;
                }
                let result = run_once(&rt, &settings, clk_tck, qos, s.client, index);
                eprintln!(
                    "e2e: QoS {qos} {} run {index}/{}: {}",
                    s.client.label(),
                    settings.repeat,
                    describe(result.as_ref()),
                );
                s.runs.push(result);
            }
        }
        all.extend(series);
    }
    rt.shutdown_timeout(STOP_TIMEOUT);

    let report = report(&settings, clk_tck, &all);
    print!("{report}");
    if smoke {
        let incomplete: Vec<String> = all
            .iter()
            .filter(|s| s.completed().count() < s.runs.len())
            .map(|s| format!("QoS {} {}", s.qos, s.client.label()))
            .collect();
        if !incomplete.is_empty() {
            return Err(format!("smoke run incomplete: {}", incomplete.join(", ")));
        }
        eprintln!("e2e: smoke run complete (E2E.md untouched; `cargo bench` measures)");
        return Ok(());
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/E2E.md");
    std::fs::write(path, &report).map_err(|e| format!("writing {path}: {e}"))?;
    eprintln!("e2e: report written to {path}");
    Ok(())
}

/// One line about a run, for progress on stderr.
fn describe(result: Option<&RunResult>) -> String {
    let Some(r) = result else {
        return "n/a (not plugged in)".to_owned();
    };
    let anomalies = r.anomalies();
    format!(
        "{} msgs/s, client CPU {} µs/msg, {} syscalls/msg, broker CPU {} µs/msg, {:.3} s, {} PUBLISH received, {}",
        fmt_rate(Some(r.msgs_per_sec())),
        fmt_us(r.client_cpu_us()),
        fmt_us(r.syscalls_per_message()),
        fmt_us(r.broker_cpu_us()),
        r.elapsed().as_secs_f64(),
        r.delivery.received,
        if anomalies.is_empty() {
            "ok"
        } else {
            &anomalies
        },
    )
}

fn fmt_ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".to_owned(),
    }
}

/// The Markdown report.
fn report(settings: &Settings, clk_tck: u64, all: &[Series]) -> String {
    let mut md = String::new();
    let command = command_line();
    let ns: Vec<String> = settings
        .qos_levels
        .iter()
        .map(|&q| format!("{} at QoS {q}", settings.messages(q)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(
        md,
        "# End-to-end throughput: publisher → mosquitto → subscriber"
    );
    let _ = writeln!(md);
    let _ = writeln!(md, "Produced by `{command}` at {}.", mqtt_benches::stamp());
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- N messages of {PAYLOAD_LEN} bytes (sequence number in the first {SEQ_LEN}): {}; \
         in-flight window W = {}; R = {} runs per (QoS, client), clients interleaved; \
         timeout {:?} per run.",
        ns.join(", "),
        settings.window,
        settings.repeat,
        settings.timeout,
    );
    let _ = writeln!(
        md,
        "- Broker: {}, a fresh instance per run (127.0.0.1, ephemeral port, \
         `max_queued_messages 0`, `max_inflight_messages 0`, `log_dest none`).",
        mosquitto_version(),
    );
    let _ = writeln!(
        md,
        "- Clients: rumqttc {} (`AsyncClient`, no TLS) and mqtt-client; per run a \
         subscriber (clean session, subscribed at the QoS under test, auto-ack) and a \
         publisher on separate connections, tasks of one tokio multi-thread runtime \
         with 2 worker threads.",
        rumqttc_version(),
    );
    let _ = writeln!(
        md,
        "- Window: first publish → N-th distinct message received. msgs/s = distinct \
         messages / window; client CPU = user+system CPU of the bench process (both \
         connections, `/proc/self/stat`, CLK_TCK = {clk_tck}, so ±{} ms per run) over \
         the window per message; broker CPU likewise for mosquitto. Medians over the \
         completed runs.",
        1000 / clk_tck.max(1),
    );
    let _ = writeln!(
        md,
        "- Machine: {cores} cores, shared, noisy: quote ratios and medians."
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| QoS | client | protocol | msgs/s (median) | client CPU µs/msg (median) \
         | client syscalls/msg (median) | broker CPU µs/msg (median) | all runs msgs/s | delivery |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---|---|");
    for &qos in &settings.qos_levels {
        let of = |client: Client| all.iter().find(|s| s.qos == qos && s.client == client);
        for s in all.iter().filter(|s| s.qos == qos) {
            let runs: Vec<String> = s
                .runs
                .iter()
                .map(|r| match r {
                    None => "n/a".to_owned(),
                    Some(r) if r.completed() => fmt_rate(Some(r.msgs_per_sec())),
                    Some(r) if r.error.is_some() => "error".to_owned(),
                    Some(r) => format!("{} (incomplete)", fmt_rate(Some(r.msgs_per_sec()))),
                })
                .collect();
            let _ = writeln!(
                md,
                "| {qos} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.client.label(),
                s.protocol().unwrap_or("n/a"),
                fmt_rate(s.median_rate()),
                fmt_us(s.median_client_cpu()),
                fmt_us(s.median_syscalls()),
                fmt_us(s.median_broker_cpu()),
                runs.join(", "),
                delivery_note(s),
            );
        }
        if let (Some(ours), Some(theirs)) = (of(Client::Ours), of(Client::Rumqttc)) {
            if ours.median_rate().is_some() && theirs.median_rate().is_some() {
                let _ = writeln!(
                    md,
                    "| {qos} | **ours/rumqttc** | | {} | {} | {} | {} | | |",
                    fmt_ratio(ours.median_rate(), theirs.median_rate()),
                    fmt_ratio(ours.median_client_cpu(), theirs.median_client_cpu()),
                    fmt_ratio(ours.median_syscalls(), theirs.median_syscalls()),
                    fmt_ratio(ours.median_broker_cpu(), theirs.median_broker_cpu()),
                );
            }
        }
    }
    md
}

/// The delivery column: "ok", or every run's anomalies.
fn delivery_note(series: &Series) -> String {
    if series.runs.iter().all(Option::is_none) {
        return "n/a".to_owned();
    }
    let notes: Vec<String> = series
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let anomalies = r.as_ref()?.anomalies();
            (!anomalies.is_empty()).then(|| format!("run {}: {anomalies}", i + 1))
        })
        .collect();
    if notes.is_empty() {
        format!("ok ({} × {})", series.runs.len(), series.messages)
    } else {
        notes.join("; ").replace('|', "/")
    }
}

/// The command that produced the report, with the `E2E_*` settings in effect.
fn command_line() -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("E2E_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    vars.push("cargo bench -p mqtt-benches --bench e2e".to_owned());
    vars.join(" ")
}
