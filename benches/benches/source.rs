//! Consuming with an ack after processing, through a local mosquitto: rumqttc
//! (manual acks), our bare `mqtt-client` (manual acks) and `mqtt-source` (one
//! message at a time, and in batches of 100), side by side in one run.
//!
//! For each QoS (1, 2), each contender and each repetition:
//!
//! - a fresh mosquitto is started ([`mqtt_tests::broker::Mosquitto`], 127.0.0.1,
//!   ephemeral port, `max_queued_messages 0` (no limit), `max_inflight_messages 100`
//!   (the broker's window towards a 3.1.1 client, the same for every contender),
//!   `set_tcp_nodelay true`, `log_dest none`); it is stopped after the run;
//! - the consumer's persistent session is made first, by the contender's own
//!   library: connect with a fixed client id and clean session / clean start off
//!   (MQTT 5: session expiry a week), subscribe at the QoS under test, disconnect;
//! - a separate publisher (our `mqtt-client`, MQTT 3.1.1, the QoS under test,
//!   window 100) sends N messages of 100 bytes, the first 8 bytes being the
//!   sequence number (big endian), and waits for every completion (PUBACK or
//!   PUBCOMP) before it disconnects: the broker then holds all N for the session;
//! - **the measured window**: the consumer connects (same client id, the session
//!   resumed: checked), takes every message, "processes" it (reads and checks its
//!   sequence number) and only then acks it, and the window ends when the N-th
//!   distinct message has been processed and acked. msgs/s is N over the window;
//!   the user+system CPU of this process (`/proc/self/stat`; the publisher is gone
//!   by then, so it is the consumer's alone), its threads' context switches
//!   (`/proc/self/task/*/status`) and the broker's CPU ([`Mosquitto::cpu_time`])
//!   over the same window, per message, and how busy the broker was (its CPU over
//!   the window's wall time: mosquitto is single-threaded, so near 100 % it is the
//!   broker that sets the pace);
//! - after the window the consumer goes on for [`SETTLE`], counting whatever else
//!   arrives (duplicates), then disconnects (`mqtt-source`: `shutdown()`, whose
//!   metrics are checked against the count).
//!
//! Missing, malformed and (at QoS 2) duplicated messages fail a run; duplicates at
//! QoS 1 and reordering are reported. Runs are interleaved (every contender once,
//! then again, ...) so that the machine's noise hits all of them; the report
//! (Markdown, on stdout) gives medians, every run's msgs/s and the ratios.
//!
//! The contenders, each in its own idiom, with an in-flight window of 100:
//!
//! - `rumqttc` 0.25, MQTT 3.1.1 (`AsyncClient`; its v5 is a separate module):
//!   `set_manual_acks(true)`, one task polls the event loop and, for each
//!   `Publish`, processes it then `try_ack`s it (request channel of 100; acks that
//!   do not fit wait in order in a local queue, retried after each poll: see
//!   [`AckBacklog`]); `set_inflight(100)` (its outgoing side only) and
//!   `TCP_NODELAY` as our client sets it;
//! - `mqtt-client`, MQTT 3.1.1: `Options::with_auto_ack(false)` (the default),
//!   `with_strict_receive_maximum(false)`, Receive Maximum 100; `incoming.recv()`,
//!   process, `message.ack()`;
//! - `mqtt-source`, MQTT 3.1.1: `source.recv()`, process, `message.ack()`;
//! - `mqtt-source` in batches, MQTT 3.1.1: `source.next_batch(100, 10 ms)`,
//!   process the batch, then `ack()` each;
//! - `mqtt-source`, MQTT 5 (one at a time): the same as the third, for context.
//!
//! mosquitto 2.0.11 does not keep to its window while it drains the backlog of a
//! resumed session: each ack can release up to a window of queued messages, so
//! far more than 100 are unacknowledged (a v5 client's Receive Maximum is overrun
//! the same way). It is the same broker for every contender; ours are lenient
//! (`with_strict_receive_maximum(false)`, the source's default), and rumqttc's
//! acks beyond its request channel wait in [`AckBacklog`], whose peak the report
//! gives as the evidence.
//!
//! Run: `cargo bench -p mqtt-benches --bench source`. Environment:
//!
//! - `SOURCE_MESSAGES`: N for every QoS (default 50 000 at QoS 1, 10 000 at QoS 2: past about 10 000 backlogged QoS 2 messages mosquitto 2.0.11 itself slows down several times, for every consumer, and the rows would compare the broker);
//! - `SOURCE_REPEAT`: R, runs per (QoS, contender) (default 5);
//! - `SOURCE_QOS`: QoS levels to run, e.g. `1` (default `1,2`);
//! - `SOURCE_CONTENDERS`: a comma-separated subset of `rumqttc`, `client`,
//!   `source`, `batch`, `v5` (default all), for profiling;
//! - `SOURCE_TIMEOUT_SECS`: limit of one measured window (default 60).
//!
//! Run by `cargo test --all-targets` (without `--bench`), it makes a quick smoke
//! run (300 messages per QoS and contender, once) that fails unless every run
//! delivers every message, and prints its report marked as a smoke run.

// A bench binary reports on stdout by design.
#![allow(clippy::print_stdout, reason = "the report goes to stdout")]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_benches::{
    clock_ticks, env_parse, fmt_rate, fmt_us, median, mosquitto_version, process_cpu,
    rumqttc_version, Delivery, SeqTracker as Tracker, SEQ_LEN, SEQ_PAYLOAD_LEN as PAYLOAD_LEN,
};
use mqtt_client::{Client, Options, ProtocolVersion, QoS, Tcp};
use mqtt_source::{MetricsSnapshot, Source, SourceConfig};
use mqtt_tests::broker::Mosquitto;
use tokio::time::{timeout, timeout_at};

/// Byte filling the payload after the sequence number.
const FILLER: u8 = b'x';
/// In-flight window of every contender and of the publisher; the broker's
/// `max_inflight_messages`; our Receive Maximum in MQTT 5.
const WINDOW: u16 = 100;
/// Batch size of the batch contender.
const BATCH: usize = 100;
/// Longest wait of `next_batch` for a batch to fill, after its first message.
const BATCH_TIMEOUT: Duration = Duration::from_millis(10);
/// Limit of each setup step (priming the session, connecting the publisher).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit of the publisher's whole run (N messages and their completions).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(120);
/// After the N-th message: how long the consumer goes on counting (duplicates).
const SETTLE: Duration = Duration::from_millis(100);
/// Limit of a disconnect or shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// N of the smoke run (`cargo test`).
const SMOKE_MESSAGES: u64 = 300;
/// Session Expiry Interval of the MQTT 5 sessions: a week, as the source's default.
const SESSION_EXPIRY: u32 = 7 * 24 * 3600;

// ---------------------------------------------------------------------------------
// Contenders.

/// What consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Rumqttc,
    Client,
    Source,
    SourceBatch,
    SourceV5,
}

impl Contender {
    const ALL: [Self; 5] = [
        Self::Rumqttc,
        Self::Client,
        Self::Source,
        Self::SourceBatch,
        Self::SourceV5,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Rumqttc => "rumqttc (manual acks)",
            Self::Client => "mqtt-client (manual acks)",
            Self::Source => "mqtt-source, recv() + ack()",
            Self::SourceBatch => "mqtt-source, next_batch(100, 10 ms) + ack()",
            Self::SourceV5 => "mqtt-source, recv() + ack(), MQTT 5",
        }
    }

    /// Its name in `SOURCE_CONTENDERS`.
    fn key(self) -> &'static str {
        match self {
            Self::Rumqttc => "rumqttc",
            Self::Client => "client",
            Self::Source => "source",
            Self::SourceBatch => "batch",
            Self::SourceV5 => "v5",
        }
    }

    fn version(self) -> ProtocolVersion {
        match self {
            Self::SourceV5 => ProtocolVersion::V5,
            _ => ProtocolVersion::V311,
        }
    }

    fn protocol(self) -> &'static str {
        match self.version() {
            ProtocolVersion::V5 => "MQTT 5",
            _ => "MQTT 3.1.1",
        }
    }
}

/// Everything one run needs.
struct Run {
    qos: u8,
    messages: u64,
    /// Limit of the measured window.
    timeout: Duration,
    addr: SocketAddr,
    /// Topic unique to the run.
    topic: String,
    /// The consumer's fixed client id (the publisher's is `{client_id}-pub`).
    client_id: String,
    meter: Meter,
}

impl Run {
    fn qos(&self) -> QoS {
        mqtt_benches::qos(self.qos)
    }

    /// The payload of message `seq`: `seq` as u64 big endian, then filler.
    fn payload(seq: u64) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&seq.to_be_bytes());
        payload.resize(PAYLOAD_LEN, FILLER);
        payload
    }
}

/// One run of `contender`: prime the session, publish, measure the consumer.
async fn run_contender(contender: Contender, run: Arc<Run>) -> RunResult {
    let primed = timeout(SETUP_TIMEOUT, prime(contender, &run)).await;
    match primed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return RunResult::failed(&run, format!("priming the session: {error}")),
        Err(_) => {
            return RunResult::failed(&run, format!("priming the session: over {SETUP_TIMEOUT:?}"))
        }
    }
    match timeout(PUBLISH_TIMEOUT, publish_all(&run)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return RunResult::failed(&run, format!("publisher: {error}")),
        Err(_) => return RunResult::failed(&run, format!("publisher: over {PUBLISH_TIMEOUT:?}")),
    }
    match contender {
        Contender::Rumqttc => consume_rumqttc(&run).await,
        Contender::Client => consume_client(&run).await,
        Contender::Source => consume_source(&run, ProtocolVersion::V311, false).await,
        Contender::SourceBatch => consume_source(&run, ProtocolVersion::V311, true).await,
        Contender::SourceV5 => consume_source(&run, ProtocolVersion::V5, false).await,
    }
}

/// Makes the consumer's persistent session, subscribed, with its own library.
async fn prime(contender: Contender, run: &Run) -> Result<(), String> {
    match contender {
        Contender::Rumqttc => prime_rumqttc(run).await,
        Contender::Client => prime_client(run).await,
        Contender::Source | Contender::SourceBatch | Contender::SourceV5 => {
            let source = Source::connect(source_config(run, contender.version()))
                .await
                .map_err(|e| e.to_string())?;
            let _ = source.shutdown().await;
            Ok(())
        }
    }
}

/// The N messages, by our client, every completion awaited.
async fn publish_all(run: &Run) -> Result<(), String> {
    let options = Options::new(format!("{}-pub", run.client_id))
        .with_version(ProtocolVersion::V311)
        .with_keep_alive(60)
        .with_max_inflight(WINDOW)
        .with_request_queue(usize::from(WINDOW));
    let (publisher, _incoming) = timeout(
        SETUP_TIMEOUT,
        Client::connect(options, Tcp::new(run.addr.to_string())),
    )
    .await
    .map_err(|_| "no CONNACK".to_owned())?
    .map_err(|e| e.to_string())?;
    let qos = run.qos();
    let mut pending = VecDeque::with_capacity(usize::from(WINDOW) * 2 + 1);
    for seq in 0..run.messages {
        let handle = publisher
            .publish(&run.topic, qos, false, Run::payload(seq))
            .await
            .map_err(|e| format!("publish {seq}: {e}"))?;
        pending.push_back((seq, handle));
        if pending.len() > usize::from(WINDOW) * 2 {
            if let Some((seq, handle)) = pending.pop_front() {
                handle.await.map_err(|e| format!("publish {seq}: {e}"))?;
            }
        }
    }
    for (seq, handle) in pending {
        handle.await.map_err(|e| format!("publish {seq}: {e}"))?;
    }
    let _ = timeout(STOP_TIMEOUT, publisher.disconnect()).await;
    Ok(())
}

// ---------------------------------------------------------------------------------
// mqtt-client.

/// The bare client's options: MQTT 3.1.1, persistent session, manual acks,
/// lenient about mosquitto's overrun of the window.
fn client_options(run: &Run) -> Options {
    Options::new(run.client_id.clone())
        .with_version(ProtocolVersion::V311)
        .with_clean_start(false)
        .with_keep_alive(60)
        .with_receive_maximum(WINDOW)
        .with_max_inflight(WINDOW)
        .with_auto_ack(false)
        .with_strict_receive_maximum(false)
}

async fn prime_client(run: &Run) -> Result<(), String> {
    let (client, _incoming) = Client::connect(client_options(run), Tcp::new(run.addr.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let granted = client
        .subscribe(&run.topic, run.qos())
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    if granted.results != [Ok(run.qos())] {
        return Err(format!(
            "SUBACK {:?}, wanted {:?}",
            granted.results,
            run.qos()
        ));
    }
    client.disconnect().await.map_err(|e| e.to_string())
}

async fn consume_client(run: &Run) -> RunResult {
    let mut tracker = Tracker::new(run.messages);
    let start = run.meter.snapshot();
    let deadline = tokio::time::Instant::from_std(start.at + run.timeout);
    let connected = timeout_at(
        deadline,
        Client::connect(client_options(run), Tcp::new(run.addr.to_string())),
    )
    .await;
    let (client, mut incoming) = match connected {
        Ok(Ok(connected)) => connected,
        Ok(Err(e)) => return RunResult::failed(run, format!("connect: {e}")),
        Err(_) => return RunResult::failed(run, "connect: timed out".to_owned()),
    };
    let drained = if client.server().session_present {
        timeout_at(deadline, async {
            while let Some(mut message) = incoming.recv().await {
                tracker.record(message.payload());
                message.ack().map_err(|e| format!("ack: {e}"))?;
                if tracker.complete() {
                    return Ok(run.meter.snapshot());
                }
            }
            Err("the client closed".to_owned())
        })
        .await
    } else {
        Ok(Err(
            "the session was not resumed (session present = 0)".to_owned()
        ))
    };
    let window = Window::new(run, start, drained);
    if window.completed() {
        let _ = timeout(SETTLE, async {
            while let Some(mut message) = incoming.recv().await {
                tracker.record(message.payload());
                let _ = message.ack();
            }
        })
        .await;
    }
    let _ = timeout(STOP_TIMEOUT, client.disconnect()).await;
    let mut notes = Vec::new();
    if client.dropped_ack_tokens() > 0 {
        notes.push(format!(
            "{} ack tokens dropped",
            client.dropped_ack_tokens()
        ));
    }
    window.result(&tracker, notes)
}

// ---------------------------------------------------------------------------------
// mqtt-source.

fn source_config(run: &Run, version: ProtocolVersion) -> SourceConfig {
    SourceConfig::new([format!("mqtt://{}", run.addr)])
        .with_client_id(run.client_id.clone())
        .with_topic(run.topic.clone(), run.qos())
        .with_version(version)
        .with_clean_start(false)
        .with_session_expiry(SESSION_EXPIRY)
        .with_keep_alive(60)
        .with_max_in_flight(WINDOW)
        .with_strict_receive_maximum(false)
        .with_shutdown_timeout(STOP_TIMEOUT)
}

async fn consume_source(run: &Run, version: ProtocolVersion, batched: bool) -> RunResult {
    let mut tracker = Tracker::new(run.messages);
    let start = run.meter.snapshot();
    let deadline = tokio::time::Instant::from_std(start.at + run.timeout);
    let connected = timeout_at(deadline, Source::connect(source_config(run, version))).await;
    let mut source = match connected {
        Ok(Ok(source)) => source,
        Ok(Err(e)) => return RunResult::failed(run, format!("connect: {e}")),
        Err(_) => return RunResult::failed(run, "connect: timed out".to_owned()),
    };
    let resumed = source.clients().all(|c| c.server().session_present);
    let drained = if !resumed {
        Ok(Err(
            "the session was not resumed (session present = 0)".to_owned()
        ))
    } else if batched {
        timeout_at(deadline, async {
            loop {
                let batch = source.next_batch(BATCH, BATCH_TIMEOUT).await;
                if batch.is_empty() {
                    return Err("the source ended".to_owned());
                }
                // Process the batch, then ack each message of it.
                for message in &batch {
                    tracker.record(message.payload());
                }
                for message in batch {
                    message.ack().map_err(|e| format!("ack: {e}"))?;
                }
                if tracker.complete() {
                    return Ok(run.meter.snapshot());
                }
            }
        })
        .await
    } else {
        timeout_at(deadline, async {
            while let Some(message) = source.recv().await {
                tracker.record(message.payload());
                message.ack().map_err(|e| format!("ack: {e}"))?;
                if tracker.complete() {
                    return Ok(run.meter.snapshot());
                }
            }
            Err("the source ended".to_owned())
        })
        .await
    };
    let window = Window::new(run, start, drained);
    if window.completed() {
        let _ = timeout(SETTLE, async {
            while let Some(message) = source.recv().await {
                tracker.record(message.payload());
                let _ = message.ack();
            }
        })
        .await;
    }
    let metrics = timeout(STOP_TIMEOUT * 2, source.shutdown()).await.ok();
    let notes = source_notes(metrics.as_ref(), &tracker);
    let mut result = window.result(&tracker, notes);
    if batched {
        result.mean_batch = metrics.map(|m| m.mean_batch_size);
    }
    result
}

/// The source's own counts, checked against the tracker's.
fn source_notes(metrics: Option<&MetricsSnapshot>, tracker: &Tracker) -> Vec<String> {
    let Some(m) = metrics else {
        return vec!["shutdown timed out".to_owned()];
    };
    let mut notes = Vec::new();
    if m.received != tracker.received() || m.acked != tracker.received() {
        notes.push(format!(
            "source metrics: {} received, {} acked, the consumer counted {}",
            m.received,
            m.acked,
            tracker.received()
        ));
    }
    for (count, what) in [
        (m.nacked, "nacked"),
        (m.dropped_unacked, "dropped unacked"),
        (m.stale_acks, "stale acks"),
        (m.errors, "errors"),
        (m.redelivered, "redelivered"),
    ] {
        if count > 0 {
            notes.push(format!("{count} {what}"));
        }
    }
    notes
}

// ---------------------------------------------------------------------------------
// rumqttc.

fn rumqttc_qos(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

/// The consumer's client and event loop: fixed client id, persistent session,
/// manual acks, `TCP_NODELAY` (as our client).
fn rumqttc_consumer(run: &Run) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut options = rumqttc::MqttOptions::new(
        run.client_id.clone(),
        run.addr.ip().to_string(),
        run.addr.port(),
    );
    let capacity = usize::from(WINDOW);
    options
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(60))
        .set_inflight(WINDOW)
        .set_manual_acks(true)
        .set_request_channel_capacity(capacity);
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, capacity);
    let mut network = event_loop.network_options();
    network.set_tcp_nodelay(true);
    event_loop.set_network_options(network);
    (client, event_loop)
}

async fn prime_rumqttc(run: &Run) -> Result<(), String> {
    use rumqttc::{Event, Outgoing, Packet, SubscribeReasonCode};

    let qos = rumqttc_qos(run.qos);
    let (client, mut event_loop) = rumqttc_consumer(run);
    client
        .subscribe(run.topic.clone(), qos)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    loop {
        match event_loop.poll().await.map_err(|e| e.to_string())? {
            Event::Incoming(Packet::SubAck(ack)) => match ack.return_codes.as_slice() {
                [SubscribeReasonCode::Success(granted)] if *granted == qos => break,
                codes => return Err(format!("SUBACK {codes:?}, wanted {qos:?}")),
            },
            _ => continue,
        }
    }
    client.disconnect().await.map_err(|e| e.to_string())?;
    loop {
        match event_loop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// Acks that did not fit rumqttc's request channel, oldest first: mosquitto 2.0.11
/// overruns the window when it holds a backlog (each PUBACK can release up to a
/// window of queued messages), so more than the channel's capacity can be unacked.
/// `try_ack` never blocks the task that polls the event loop (which would stall
/// it: the channel drains only while it is polled); what does not fit waits here,
/// in order, and is retried after every poll.
#[derive(Default)]
struct AckBacklog {
    waiting: VecDeque<rumqttc::Publish>,
    /// The longest the queue got.
    peak: usize,
}

impl AckBacklog {
    /// Acks `publish`, after every ack waiting before it.
    fn ack(&mut self, client: &rumqttc::AsyncClient, publish: rumqttc::Publish) {
        self.waiting.push_back(publish);
        self.flush(client);
        self.peak = self.peak.max(self.waiting.len());
    }

    /// Queues what fits in the request channel.
    fn flush(&mut self, client: &rumqttc::AsyncClient) {
        while let Some(publish) = self.waiting.front() {
            // Full (or closed: the next poll says so).
            if client.try_ack(publish).is_err() {
                break;
            }
            self.waiting.pop_front();
        }
    }
}

async fn consume_rumqttc(run: &Run) -> RunResult {
    use rumqttc::{Event, Outgoing, Packet};

    let mut tracker = Tracker::new(run.messages);
    let mut acks = AckBacklog::default();
    let start = run.meter.snapshot();
    let deadline = tokio::time::Instant::from_std(start.at + run.timeout);
    let (client, mut event_loop) = rumqttc_consumer(run);
    // The first poll connects (CONNACK), the next ones bring the backlog.
    let drained = timeout_at(deadline, async {
        loop {
            let event = event_loop.poll().await;
            acks.flush(&client);
            match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tracker.record(&publish.payload);
                    acks.ack(&client, publish);
                    if tracker.complete() {
                        return Ok(run.meter.snapshot());
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                    return Err("the session was not resumed (session present = 0)".to_owned());
                }
                Ok(_) => {}
                Err(e) => return Err(format!("event loop: {e}")),
            }
        }
    })
    .await;
    let window = Window::new(run, start, drained);
    if window.completed() {
        // Polling also writes the last acks.
        let _ = timeout(SETTLE, async {
            while let Ok(event) = event_loop.poll().await {
                acks.flush(&client);
                if let Event::Incoming(Packet::Publish(publish)) = event {
                    tracker.record(&publish.payload);
                    acks.ack(&client, publish);
                }
            }
        })
        .await;
    }
    let _ = client.try_disconnect();
    let _ = timeout(STOP_TIMEOUT, async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let mut notes = Vec::new();
    if !acks.waiting.is_empty() {
        notes.push(format!("{} acks never sent", acks.waiting.len()));
    }
    let mut result = window.result(&tracker, notes);
    result.ack_backlog = Some(acks.peak);
    result
}

// ---------------------------------------------------------------------------------
// Meters, tracking, results.

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
            switches: process_context_switches(),
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
    /// Context switches of this process's threads so far.
    switches: Option<u64>,
    /// CPU of the broker process.
    broker_cpu: Duration,
}

/// Context switches (voluntary + involuntary) of the threads of this process so
/// far: `/proc/self/task/*/status`. Each voluntary one is a thread parking (in
/// `epoll_wait` or on a futex) to be woken again: the hand-overs between threads
/// a message costs. (Not `/proc/self/io`'s `syscr`/`syscw`: those count
/// `read`/`write`, not the `recv`/`send` that tokio's sockets use.)
fn process_context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread that ended meanwhile has no status any more: skipped.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += n.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// How a measured window ended.
struct Window {
    qos: u8,
    start: Snapshot,
    end: Snapshot,
    timed_out: bool,
    error: Option<String>,
}

impl Window {
    /// `drained`: the end snapshot at the N-th message, a fault, or the timeout.
    fn new(
        run: &Run,
        start: Snapshot,
        drained: Result<Result<Snapshot, String>, tokio::time::error::Elapsed>,
    ) -> Self {
        let (end, timed_out, error) = match drained {
            Ok(Ok(end)) => (end, false, None),
            Ok(Err(error)) => (run.meter.snapshot(), false, Some(error)),
            Err(_) => (run.meter.snapshot(), true, None),
        };
        Self {
            qos: run.qos,
            start,
            end,
            timed_out,
            error,
        }
    }

    fn completed(&self) -> bool {
        !self.timed_out && self.error.is_none()
    }

    fn result(self, tracker: &Tracker, notes: Vec<String>) -> RunResult {
        RunResult {
            qos: self.qos,
            start: self.start,
            end: self.end,
            delivery: tracker.delivery(),
            timed_out: self.timed_out,
            error: self.error,
            notes,
            ack_backlog: None,
            mean_batch: None,
        }
    }
}

/// The outcome of one run.
#[derive(Debug)]
struct RunResult {
    qos: u8,
    /// Just before the consumer connects.
    start: Snapshot,
    /// At the N-th distinct message (or when the window was cut short).
    end: Snapshot,
    delivery: Delivery,
    timed_out: bool,
    /// A setup error, a fault of the consumer.
    error: Option<String>,
    /// Anything else worth reporting (the source's metrics, dropped tokens).
    notes: Vec<String>,
    /// rumqttc: the most acks that waited in [`AckBacklog`] at once.
    ack_backlog: Option<usize>,
    /// The batch contender: mean batch size (the source's metrics).
    mean_batch: Option<f64>,
}

impl RunResult {
    /// A run that failed before or outside its window.
    fn failed(run: &Run, error: String) -> Self {
        let now = run.meter.snapshot();
        Self {
            qos: run.qos,
            start: now,
            end: now,
            delivery: Delivery::none(run.messages),
            timed_out: false,
            error: Some(error),
            notes: Vec::new(),
            ack_backlog: None,
            mean_batch: None,
        }
    }

    /// Completed: every message, none malformed, no duplicate at QoS 2, no error.
    fn completed(&self) -> bool {
        let d = &self.delivery;
        self.error.is_none()
            && !self.timed_out
            && d.missing == 0
            && d.invalid == 0
            && (self.qos < 2 || d.duplicates == 0)
    }

    fn elapsed(&self) -> Duration {
        self.end.at.saturating_duration_since(self.start.at)
    }

    /// Distinct messages per second of the window.
    fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.delivery.unique as f64 / secs
        } else {
            0.0
        }
    }

    fn per_message(&self, amount: f64) -> Option<f64> {
        (self.delivery.unique > 0).then(|| amount / self.delivery.unique as f64)
    }

    /// CPU of this process per distinct message, µs.
    fn client_cpu_us(&self) -> Option<f64> {
        let cpu = self.end.cpu?.checked_sub(self.start.cpu?)?;
        self.per_message(cpu.as_secs_f64() * 1e6)
    }

    /// Context switches of this process per distinct message.
    fn switches_per_message(&self) -> Option<f64> {
        let switches = self.end.switches?.checked_sub(self.start.switches?)?;
        self.per_message(switches as f64)
    }

    /// CPU of the broker per distinct message, µs.
    fn broker_cpu_us(&self) -> Option<f64> {
        let cpu = self.end.broker_cpu.checked_sub(self.start.broker_cpu)?;
        self.per_message(cpu.as_secs_f64() * 1e6)
    }

    /// The broker's CPU over the window's wall time, %: mosquitto runs on one
    /// thread, so near 100 % the broker, not the consumer, sets the pace.
    fn broker_busy(&self) -> Option<f64> {
        let cpu = self.end.broker_cpu.checked_sub(self.start.broker_cpu)?;
        let secs = self.elapsed().as_secs_f64();
        (secs > 0.0).then(|| cpu.as_secs_f64() * 100.0 / secs)
    }

    /// Anything not clean; empty if clean.
    fn anomalies(&self) -> String {
        let d = &self.delivery;
        let mut notes = Vec::new();
        if let Some(error) = &self.error {
            notes.push(format!("FAILED: {error}"));
        }
        if self.timed_out {
            notes.push(format!(
                "FAILED: timeout, {}/{} received",
                d.unique, d.expected
            ));
        }
        if d.missing > 0 {
            notes.push(format!("{} missing", d.missing));
        }
        if d.duplicates > 0 {
            notes.push(format!("{} duplicates", d.duplicates));
        }
        if d.invalid > 0 {
            notes.push(format!("{} malformed", d.invalid));
        }
        if d.reordered > 0 {
            notes.push(format!("{} out of order", d.reordered));
        }
        notes.join(", ")
    }
}

// ---------------------------------------------------------------------------------
// Driver: settings, runs, report.

/// Settings from the environment.
#[derive(Debug)]
struct Settings {
    /// `SOURCE_MESSAGES`: N for every QoS, if set.
    messages_override: Option<u64>,
    repeat: usize,
    qos_levels: Vec<u8>,
    contenders: Vec<Contender>,
    timeout: Duration,
}

impl Settings {
    fn from_env() -> Result<Self, String> {
        let messages = env_parse::<u64>("SOURCE_MESSAGES")?;
        if messages == Some(0) {
            return Err("SOURCE_MESSAGES must be at least 1".to_owned());
        }
        let repeat = env_parse::<usize>("SOURCE_REPEAT")?.unwrap_or(5).max(1);
        let qos_levels = match std::env::var("SOURCE_QOS") {
            Ok(list) => list
                .split(',')
                .map(|q| match q.trim().parse::<u8>() {
                    Ok(q @ 1..=2) => Ok(q),
                    _ => Err(format!("SOURCE_QOS: {q:?} is not 1 or 2")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Err(_) => vec![1, 2],
        };
        let contenders = match std::env::var("SOURCE_CONTENDERS") {
            Ok(list) => list
                .split(',')
                .map(|name| {
                    let name = name.trim();
                    Contender::ALL
                        .into_iter()
                        .find(|c| c.key() == name)
                        .ok_or_else(|| {
                            format!(
                                "SOURCE_CONTENDERS: {name:?} is not one of rumqttc, client, source, batch, v5"
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Err(_) => Contender::ALL.to_vec(),
        };
        let timeout_secs = env_parse::<u64>("SOURCE_TIMEOUT_SECS")?
            .unwrap_or(60)
            .max(1);
        Ok(Self {
            messages_override: messages,
            repeat,
            qos_levels,
            contenders,
            timeout: Duration::from_secs(timeout_secs),
        })
    }

    /// N at `qos`.
    fn messages(&self, qos: u8) -> u64 {
        self.messages_override
            .unwrap_or(if qos == 2 { 10_000 } else { 50_000 })
    }
}

/// The runs of one (QoS, contender).
#[derive(Debug)]
struct Series {
    qos: u8,
    contender: Contender,
    messages: u64,
    runs: Vec<RunResult>,
}

impl Series {
    fn completed(&self) -> impl Iterator<Item = &RunResult> {
        self.runs.iter().filter(|r| r.completed())
    }

    /// Medians are only given when every run completed: a failed run is not
    /// averaged away.
    fn all_completed(&self) -> bool {
        !self.runs.is_empty() && self.completed().count() == self.runs.len()
    }

    fn median_of(&self, f: impl Fn(&RunResult) -> Option<f64>) -> Option<f64> {
        if !self.all_completed() {
            return None;
        }
        median(self.completed().filter_map(f).collect())
    }

    fn median_rate(&self) -> Option<f64> {
        self.median_of(|r| Some(r.msgs_per_sec()))
    }

    fn median_client_cpu(&self) -> Option<f64> {
        self.median_of(RunResult::client_cpu_us)
    }

    fn median_switches(&self) -> Option<f64> {
        self.median_of(RunResult::switches_per_message)
    }

    fn median_broker_cpu(&self) -> Option<f64> {
        self.median_of(RunResult::broker_cpu_us)
    }

    fn median_broker_busy(&self) -> Option<f64> {
        self.median_of(RunResult::broker_busy)
    }
}

/// One run of `contender` on a fresh broker.
fn run_once(
    rt: &tokio::runtime::Runtime,
    settings: &Settings,
    clk_tck: u64,
    qos: u8,
    contender: Contender,
    index: usize,
) -> RunResult {
    // `log_dest none`: no per-packet logging measured as broker CPU (the launcher
    // then waits 1 s more to call the broker ready). `max_inflight_messages 100`
    // (after the launcher's 0, so it wins): the broker's window towards a 3.1.1
    // client, the same for every contender.
    let broker = Arc::new(
        Mosquitto::builder()
            .config_line("log_dest none")
            .config_line(format!("max_inflight_messages {WINDOW}"))
            .config_line("set_tcp_nodelay true")
            .start(),
    );
    let tag = format!("{}-q{qos}-{}-{index}", std::process::id(), contender.key());
    let run = Arc::new(Run {
        qos,
        messages: settings.messages(qos),
        timeout: settings.timeout,
        addr: broker.addr(),
        topic: format!("source-bench/{tag}"),
        client_id: format!("source-bench-{tag}"),
        meter: Meter {
            clk_tck,
            broker: Arc::clone(&broker),
        },
    });
    // Every step has its own limit; this outer one only guards against a step
    // that forgets it.
    let limit = SETUP_TIMEOUT + PUBLISH_TIMEOUT + settings.timeout + SETTLE + STOP_TIMEOUT * 4;
    let result = rt.block_on(async {
        let mut task = tokio::spawn(run_contender(contender, Arc::clone(&run)));
        match timeout(limit, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => RunResult::failed(&run, format!("run task: {e}")),
            Err(_) => {
                task.abort();
                RunResult::failed(&run, format!("run exceeded {limit:?}"))
            }
        }
    });
    drop(run);
    // The run task is over, so the only other owner (`run`) is gone; were it not,
    // dropping the last one kills the broker.
    if let Ok(mut broker) = Arc::try_unwrap(broker) {
        broker.stop();
    }
    result
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("source: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
    // without it: then a quick smoke run that fails unless every run completes.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let mut settings = Settings::from_env()?;
    if smoke {
        settings.messages_override = Some(
            settings
                .messages_override
                .unwrap_or(SMOKE_MESSAGES)
                .min(SMOKE_MESSAGES),
        );
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
        let mut series: Vec<Series> = settings
            .contenders
            .iter()
            .map(|&contender| Series {
                qos,
                contender,
                messages: settings.messages(qos),
                runs: Vec::new(),
            })
            .collect();
        for index in 1..=settings.repeat {
            for s in &mut series {
                let result = run_once(&rt, &settings, clk_tck, qos, s.contender, index);
                eprintln!(
                    "source: QoS {qos} {} run {index}/{}: {}",
                    s.contender.label(),
                    settings.repeat,
                    describe(&result),
                );
                s.runs.push(result);
            }
        }
        all.extend(series);
    }
    rt.shutdown_timeout(STOP_TIMEOUT);

    print!("{}", report(&settings, clk_tck, &all, smoke));
    let failed: Vec<String> = all
        .iter()
        .filter(|s| !s.all_completed())
        .map(|s| format!("QoS {} {}", s.qos, s.contender.label()))
        .collect();
    if !failed.is_empty() {
        return Err(format!("runs failed: {}", failed.join("; ")));
    }
    if smoke {
        eprintln!("source: smoke run complete (`cargo bench` measures)");
    }
    Ok(())
}

/// One line about a run, for progress on stderr.
fn describe(r: &RunResult) -> String {
    let anomalies = r.anomalies();
    let mut line = format!(
        "{} msgs/s, client CPU {} µs/msg, {} context switches/msg, broker CPU {} µs/msg (busy {}), {:.3} s, {} received, {}",
        fmt_rate(Some(r.msgs_per_sec())),
        fmt_us(r.client_cpu_us()),
        fmt_us(r.switches_per_message()),
        fmt_us(r.broker_cpu_us()),
        r.broker_busy()
            .map_or_else(|| "n/a".to_owned(), |b| format!("{b:.0} %")),
        r.elapsed().as_secs_f64(),
        r.delivery.received,
        if anomalies.is_empty() { "ok" } else { &anomalies },
    );
    if let Some(peak) = r.ack_backlog {
        let _ = write!(line, "; up to {peak} acks waited for the request channel");
    }
    if let Some(mean) = r.mean_batch {
        let _ = write!(line, "; mean batch {mean:.1}");
    }
    for note in &r.notes {
        let _ = write!(line, "; {note}");
    }
    line
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}×"))
}

/// The Markdown report.
fn report(settings: &Settings, clk_tck: u64, all: &[Series], smoke: bool) -> String {
    let mut md = String::new();
    let ns: Vec<String> = settings
        .qos_levels
        .iter()
        .map(|&q| format!("{} at QoS {q}", settings.messages(q)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(
        md,
        "# Consuming with ack after processing: rumqttc, mqtt-client, mqtt-source{}",
        if smoke {
            " (smoke run: not a measurement)"
        } else {
            ""
        }
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Produced by `{}` at {}, broker {}.",
        command_line(smoke),
        mqtt_benches::stamp(),
        mosquitto_version(),
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "- Per run a fresh mosquitto (127.0.0.1, `max_queued_messages 0` (no limit), \
         `max_inflight_messages {WINDOW}`, `set_tcp_nodelay true`, `log_dest none`). The \
         consumer's persistent session is made first by its own library (fixed client \
         id, clean session off; MQTT 5: session expiry a week; subscribed at the QoS), \
         then a separate publisher (mqtt-client, MQTT 3.1.1, window {WINDOW}) sends N \
         messages of {PAYLOAD_LEN} bytes ({}) and waits for every completion.",
        ns.join(", "),
    );
    let _ = writeln!(
        md,
        "- Measured window: the consumer connects (session resumed, checked), takes each \
         message, processes it (reads its sequence number, first {SEQ_LEN} bytes big \
         endian, and checks it) and only then acks it; the window ends at the N-th \
         distinct message processed and acked. msgs/s = N / window; client CPU = \
         user+system CPU of this process over the window per message (the consumer \
         alone; `/proc/self/stat`, CLK_TCK = {clk_tck}, so ±{} ms per run); context \
         switches = voluntary + involuntary ones of this process's threads \
         (`/proc/self/task/*/status`: threads parking and woken, per message); broker \
         CPU likewise for mosquitto, and broker busy = its CPU over the window's wall \
         time (mosquitto is single-threaded: near 100 % the broker sets the pace, and \
         msgs/s compares the broker more than the consumers; client CPU µs/msg still \
         compares the consumers).",
        1000 / clk_tck.max(1),
    );
    let _ = writeln!(
        md,
        "- Contenders, in-flight window {WINDOW} each: rumqttc {} `AsyncClient` \
         (`set_manual_acks(true)`, `try_ack` after processing, in the task that polls \
         the event loop, request channel of {WINDOW}, acks that do not fit waiting in \
         order in a local queue retried after each poll; `TCP_NODELAY` as ours); \
         mqtt-client (`with_auto_ack(false)`, `with_strict_receive_maximum(false)`, \
         `message.ack()`); mqtt-source \
         (`recv()` then `ack()`; `next_batch({BATCH}, {} ms)`, the batch processed, \
         then `ack()` each). All at MQTT 3.1.1 (rumqttc's main API); the last row, \
         mqtt-source at MQTT 5 (Receive Maximum {WINDOW}), is for context.",
        rumqttc_version(),
        BATCH_TIMEOUT.as_millis(),
    );
    for &qos in &settings.qos_levels {
        let peak = all
            .iter()
            .filter(|s| s.qos == qos)
            .flat_map(|s| &s.runs)
            .filter_map(|r| r.ack_backlog)
            .max();
        if let Some(peak) = peak.filter(|&p| p > 0) {
            let _ = writeln!(
                md,
                "- QoS {qos}: mosquitto does not keep to `max_inflight_messages {WINDOW}` while \
                 it drains a resumed session's backlog (3.1.1 as well as MQTT 5): in this run \
                 up to {peak} of rumqttc's acks waited in its local queue behind a full \
                 request channel of {WINDOW}, so the broker had more than {} messages \
                 unacknowledged. Every contender faces the same broker; ours take the excess \
                 (`with_strict_receive_maximum(false)`).",
                peak + usize::from(WINDOW),
            );
        }
    }
    let _ = writeln!(
        md,
        "- R = {} runs per (QoS, contender), contenders interleaved; one tokio \
         multi-thread runtime with 2 worker threads; timeout {:?} per window. A run with \
         a missing or malformed message (or a duplicate at QoS 2) fails, and its series \
         gets no median. Machine: {cores} cores, shared: quote ratios and medians.",
        settings.repeat, settings.timeout,
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| QoS | contender | protocol | msgs/s (median) | client CPU µs/msg (median) \
         | client context switches/msg (median) | broker CPU µs/msg (median) \
         | broker busy (median) | all runs msgs/s | delivery / targets |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|---|---|");
    for &qos in &settings.qos_levels {
        let of = |c: Contender| all.iter().find(|s| s.qos == qos && s.contender == c);
        for s in all.iter().filter(|s| s.qos == qos) {
            let runs: Vec<String> = s
                .runs
                .iter()
                .map(|r| {
                    if r.completed() {
                        fmt_rate(Some(r.msgs_per_sec()))
                    } else {
                        "FAILED".to_owned()
                    }
                })
                .collect();
            let _ = writeln!(
                md,
                "| {qos} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.contender.label(),
                s.contender.protocol(),
                fmt_rate(s.median_rate()),
                fmt_us(s.median_client_cpu()),
                fmt_us(s.median_switches()),
                fmt_us(s.median_broker_cpu()),
                s.median_broker_busy()
                    .map_or_else(|| "n/a".to_owned(), |b| format!("{b:.0} %")),
                runs.join(", "),
                delivery_note(s),
            );
        }
        let ratios = [
            (
                Contender::Source,
                Contender::Rumqttc,
                "source/rumqttc",
                true,
            ),
            (
                Contender::SourceBatch,
                Contender::Rumqttc,
                "source batch-100/rumqttc",
                true,
            ),
            (
                Contender::Source,
                Contender::Client,
                "source/bare client (overhead)",
                false,
            ),
            (
                Contender::SourceBatch,
                Contender::Client,
                "source batch-100/bare client",
                false,
            ),
            (
                Contender::SourceBatch,
                Contender::Source,
                "batch-100/single",
                false,
            ),
            (
                Contender::SourceV5,
                Contender::Source,
                "source MQTT 5/MQTT 3.1.1",
                false,
            ),
        ];
        for (a, b, name, targets) in ratios {
            let (Some(a), Some(b)) = (of(a), of(b)) else {
                continue;
            };
            let rate = ratio(a.median_rate(), b.median_rate());
            let cpu = ratio(a.median_client_cpu(), b.median_client_cpu());
            let verdict = if targets && smoke {
                "targets: not judged on a smoke run".to_owned()
            } else if targets {
                format!(
                    "targets: throughput ≥ 1.00×: {}; client CPU ≤ 0.60×: {}",
                    verdict(rate, |r| r >= 1.0),
                    verdict(cpu, |r| r <= 0.6),
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {qos} | **{name}** | | {} | {} | {} | {} | | | {verdict} |",
                fmt_ratio(rate),
                fmt_ratio(cpu),
                fmt_ratio(ratio(a.median_switches(), b.median_switches())),
                fmt_ratio(ratio(a.median_broker_cpu(), b.median_broker_cpu())),
            );
        }
    }
    md
}

fn verdict(value: Option<f64>, met: impl Fn(f64) -> bool) -> &'static str {
    match value {
        Some(v) if met(v) => "met",
        Some(_) => "**not met**",
        None => "n/a",
    }
}

/// The delivery column: "ok", or every run's anomalies and notes.
fn delivery_note(series: &Series) -> String {
    let notes: Vec<String> = series
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let mut parts = Vec::new();
            let anomalies = r.anomalies();
            if !anomalies.is_empty() {
                parts.push(anomalies);
            }
            parts.extend(r.notes.iter().cloned());
            (!parts.is_empty()).then(|| format!("run {}: {}", i + 1, parts.join(", ")))
        })
        .collect();
    let mut head = if series.all_completed() {
        format!("ok ({} × {})", series.runs.len(), series.messages)
    } else {
        "**FAILED**".to_owned()
    };
    if let Some(mean) = median(series.runs.iter().filter_map(|r| r.mean_batch).collect()) {
        let _ = write!(head, "; mean batch size {mean:.1} (median)");
    }
    if notes.is_empty() {
        head
    } else {
        format!("{head}; {}", notes.join("; ")).replace('|', "/")
    }
}

/// The command that produced the report, with the `SOURCE_*` settings in effect.
fn command_line(smoke: bool) -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SOURCE_"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    vars.push(if smoke {
        "cargo test -p mqtt-benches --bench source".to_owned()
    } else {
        "cargo bench -p mqtt-benches --bench source".to_owned()
    });
    vars.join(" ")
}
