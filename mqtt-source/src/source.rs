//! The source: its connections, the stream of messages, batches, `run`, and
//! shutdown.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_core::Stream as _;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mqtt_client::codec::packet::Publish;
use mqtt_client::codec::property::{PublishProperties, UserProperty};
use mqtt_client::codec::string::MqttString;
use mqtt_client::codec::ReasonCode;
use mqtt_client::session::{FileStore, FsyncPolicy, SessionStore};
use mqtt_client::{
    AckToken, Client, ConnectionError, ConnectionEvent, Incoming, PacketId, ProtocolVersion,
    PublishError, QoS, RequestError, SubscribeRequest, UnsubscribeRequest,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{shared_filter, ConfigError, OnFailure, OnSuccess, SourceConfig, Topic};
use crate::message::{Envelope, Failure, Message};
use crate::metrics::{Metrics, MetricsSnapshot};

/// Why a source could not start, or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// A connection could not be established: the client's typed error (a refused
    /// CONNACK, a TLS failure, an unreachable broker, ...).
    Connect {
        /// The connection's client id.
        client_id: String,
        /// Why.
        error: ConnectionError,
    },
    /// The session store of a connection could not be opened or read.
    Store {
        /// The connection's client id.
        client_id: String,
        /// Why.
        error: mqtt_client::session::StoreError,
    },
    /// A subscribe or unsubscribe could not be made.
    Request {
        /// The connection's client id.
        client_id: String,
        /// Why.
        error: RequestError,
    },
    /// The broker refused every filter of a connection: it would never receive
    /// anything.
    SubscriptionsRefused {
        /// The connection's client id.
        client_id: String,
        /// Each filter and the SUBACK reason code.
        refused: Vec<(String, ReasonCode)>,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Config(e) => e.fmt(f),
            SourceError::Connect { client_id, error } => write!(f, "{client_id}: {error}"),
            SourceError::Store { client_id, error } => {
                write!(f, "{client_id}: session store: {error}")
            }
            SourceError::Request { client_id, error } => write!(f, "{client_id}: {error}"),
            SourceError::SubscriptionsRefused { client_id, refused } => {
                write!(f, "{client_id}: every subscription was refused:")?;
                for (filter, code) in refused {
                    write!(f, " {filter} ({code:?})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::Config(e) => Some(e),
            SourceError::Connect { error, .. } => Some(error),
            SourceError::Store { error, .. } => Some(error),
            SourceError::Request { error, .. } => Some(error),
            SourceError::SubscriptionsRefused { .. } => None,
        }
    }
}

impl From<ConfigError> for SourceError {
    fn from(e: ConfigError) -> Self {
        SourceError::Config(e)
    }
}

/// State of the whole source, shared by its connections and handles.
pub(crate) struct SourceShared {
    config: SourceConfig,
    metrics: Metrics,
    /// The topics consumed now (configured, plus or minus runtime changes).
    topics: Mutex<Vec<Topic>>,
    /// True once intake stops (shutdown); `stopping` is the same, read on the
    /// path of every message without a lock.
    stop: watch::Sender<bool>,
    stopping: std::sync::atomic::AtomicBool,
    /// Messages handed over and not finished.
    in_flight: AtomicI64,
    drained: Notify,
}

/// One connection of the source.
pub(crate) struct Conn {
    pub(crate) index: u32,
    pub(crate) client_id: String,
    pub(crate) client: Client,
    pub(crate) metrics: Metrics,
    pub(crate) on_success: OnSuccess,
    shared: Arc<SourceShared>,
    failures: mpsc::UnboundedSender<Envelope>,
    /// Messages finished with `on_success = noop`: kept unacknowledged, with
    /// their slots, until the connection ends.
    held: Mutex<Vec<Envelope>>,
    /// Up: counted in the `connections` gauge.
    up: std::sync::atomic::AtomicBool,
    /// QoS 1/2 messages taken from the client and not finished: at most
    /// `max_in_flight`, whatever the broker sends (mosquitto overruns the Receive
    /// Maximum; a 3.1.1 broker knows no limit of ours).
    outstanding: std::sync::atomic::AtomicUsize,
    /// The consumer waiting for a slot of this connection.
    window: futures_util::task::AtomicWaker,
    /// Redeliveries, to the consumer.
    redeliver: mpsc::UnboundedSender<Envelope>,
    max_in_flight: usize,
    /// Deliveries so far of failed messages left for the broker to send again,
    /// by packet identifier: a DUP resend continues their count.
    attempts: Mutex<HashMap<PacketId, u32>>,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("index", &self.index)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl SourceShared {
    fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        self.drained.notify_waiters();
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

impl Conn {
    pub(crate) fn handed_over(&self) {
        self.metrics.handed_over();
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn finished(&self) {
        self.metrics.finished();
        // Only a shutdown waits for the pipeline to drain.
        if self.shared.in_flight.fetch_sub(1, Ordering::AcqRel) <= 1 && self.shared.is_stopping() {
            self.shared.drained.notify_waiters();
        }
    }

    pub(crate) fn failed(&self, env: Envelope) {
        // When the connection task is gone the message stays unacked: the
        // broker sends it again.
        let _ = self.failures.send(env);
    }

    pub(crate) fn release_slot(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) >= self.max_in_flight {
            // The window was full: the consumer may be waiting for this lane.
            self.window.wake();
        }
    }

    fn window_full(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) >= self.max_in_flight
    }

    pub(crate) fn hold(&self, env: Envelope) {
        lock(&self.held).push(env);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A consumer of MQTT messages for a pipeline: a [`futures_core::Stream`] of
/// [`Message`]s from every connection, acknowledged to the broker only when the
/// pipeline says so.
pub struct Source {
    /// Each connection's messages, read by the consumer itself (no task between).
    lanes: Vec<Lane>,
    /// Where the next poll starts, for fairness between connections.
    next_lane: usize,
    /// Messages handed over again after a failure.
    redeliveries: mpsc::UnboundedReceiver<Envelope>,
    /// The batch `next_batch` is building (kept if its future is dropped).
    filling: Vec<Message>,
    shared: Arc<SourceShared>,
    conns: Vec<Arc<Conn>>,
    tasks: Vec<JoinHandle<()>>,
    /// Ready once intake stops: wakes a consumer waiting for a message.
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
    signals: Option<JoinHandle<()>>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("connections", &self.conns)
            .field("metrics", &self.shared.metrics.snapshot())
            .finish_non_exhaustive()
    }
}

/// One connection's incoming messages.
struct Lane {
    conn: Arc<Conn>,
    incoming: Incoming,
    /// Taken from the client while the connection was being set up (a resumed
    /// session's messages arrive before the SUBACK, which waits behind them).
    early: std::collections::VecDeque<Envelope>,
    closed: bool,
}

/// A handle on a running source, for other tasks: shut it down, change its
/// topics, read its metrics.
#[derive(Clone)]
pub struct SourceHandle {
    shared: Arc<SourceShared>,
    conns: Vec<Arc<Conn>>,
}

impl fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceHandle")
            .field("connections", &self.conns.len())
            .finish()
    }
}

/// The health of a running source ([`SourceHandle::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Connections of this process.
    pub connections: usize,
    /// Of those, connected now.
    pub connected: usize,
    /// Closed for good (a fatal error, or reconnection given up), with why.
    pub closed: Vec<(String, String)>,
}

impl Health {
    /// Every connection is up.
    pub fn is_healthy(&self) -> bool {
        self.connected == self.connections
    }
}

impl Source {
    /// Validates the configuration, opens every connection (waiting for each
    /// CONNACK), subscribes, and starts consuming.
    ///
    /// Fails with the first connection's typed error (a wrong password is
    /// [`ConnectionError::Refused`], a certificate problem a TLS error, ...), or
    /// when the broker refuses every filter. Filters refused one by one, and
    /// granted at a lower QoS, are reported as `tracing` events and counted.
    pub async fn connect(config: SourceConfig) -> Result<Self, SourceError> {
        config.validate()?;
        let instance = config.instance_index()?;
        let servers = config.servers()?;
        let (redeliver, redeliveries) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(SourceShared {
            topics: Mutex::new(config.topics.clone()),
            metrics: Metrics::new(),
            config,
            stop,
            stopping: std::sync::atomic::AtomicBool::new(false),
            in_flight: AtomicI64::new(0),
            drained: Notify::new(),
        });
        let config = &shared.config;
        let mut conns = Vec::new();
        let mut lanes = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..u32::from(config.concurrency) {
            let index = instance * u32::from(config.concurrency) + i;
            let client_id = config.connection_client_id(index);
            let span = tracing::info_span!(target: "mqtt_source", "connection", client_id = client_id.as_str(), producer_index = index);
            tracing::info!(target: "mqtt_source", event = "producer.init", producer_index = index, client_id = client_id.as_str());
            let result = open(
                &shared,
                index,
                client_id.clone(),
                servers.clone(),
                redeliver.clone(),
            )
            .instrument(span)
            .await;
            match result {
                Ok((conn, incoming, early, task)) => {
                    lanes.push(Lane {
                        conn: Arc::clone(&conn),
                        incoming,
                        early,
                        closed: false,
                    });
                    conns.push(conn);
                    tasks.push(task);
                }
                Err(e) => {
                    tracing::warn!(target: "mqtt_source", event = "connection.down", client_id = client_id.as_str(), producer_index = index, reason = %e);
                    for conn in &conns {
                        let _ = conn.client.disconnect().await;
                    }
                    return Err(e);
                }
            }
        }
        let signals = shared
            .config
            .handle_signals
            .then(|| spawn_signal_handler(Arc::clone(&shared)));
        let mut wait = stop_rx.clone();
        let stopped = Box::pin(async move {
            while !*wait.borrow_and_update() {
                if wait.changed().await.is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            lanes,
            next_lane: 0,
            redeliveries,
            filling: Vec::new(),
            shared,
            conns,
            tasks,
            stopped,
            signals,
        })
    }

    /// The stream of records `decoder` makes of the messages; a message it
    /// refuses is failed (`on_failure` decides) and counted.
    pub fn decoded<D: crate::decode::Decoder>(self, decoder: D) -> crate::decode::Decoded<D> {
        crate::decode::Decoded::new(self, decoder)
    }

    /// A handle for other tasks.
    pub fn handle(&self) -> SourceHandle {
        SourceHandle {
            shared: Arc::clone(&self.shared),
            conns: self.conns.clone(),
        }
    }

    /// The metrics (shared: they go on counting).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The clients of the connections, in index order (for what the source does
    /// not wrap, such as publishing replies).
    pub fn clients(&self) -> impl Iterator<Item = &Client> + '_ {
        self.conns.iter().map(|c| &c.client)
    }

    /// The next message; `None` once the source is shut down (or every
    /// connection closed for good).
    pub async fn recv(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        if self.shared.is_stopping() {
            return Poll::Ready(None);
        }
        // Redeliveries first: they are older than anything still in the lanes.
        if let Poll::Ready(Some(env)) = self.redeliveries.poll_recv(cx) {
            return Poll::Ready(Some(deliver(env)));
        }
        let n = self.lanes.len();
        let mut open = 0;
        for k in 0..n {
            let i = (self.next_lane + k) % n;
            let Some(lane) = self.lanes.get_mut(i) else {
                continue;
            };
            if let Some(env) = lane.early.pop_front() {
                self.next_lane = (i + 1) % n;
                return Poll::Ready(Some(deliver(env)));
            }
            if lane.closed {
                continue;
            }
            open += 1;
            if lane.conn.window_full() {
                // Woken when a slot is given back; checked again in case it just was.
                lane.conn.window.register(cx.waker());
                if lane.conn.window_full() {
                    continue;
                }
            }
            match Pin::new(&mut lane.incoming).poll_next(cx) {
                Poll::Ready(Some(message)) => {
                    self.next_lane = (i + 1) % n;
                    let env = receive(&lane.conn, message);
                    return Poll::Ready(Some(deliver(env)));
                }
                Poll::Ready(None) => {
                    lane.closed = true;
                    open -= 1;
                }
                Poll::Pending => {}
            }
        }
        if open == 0 {
            // Every client closed for good: redeliveries of theirs are stale.
            return Poll::Ready(None);
        }
        // Wake up on shutdown too.
        match self.stopped.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// A batch, as Broadway's batchers make them: waits for a first message, then
    /// takes more until there are `max` or `timeout` has passed since the first.
    /// Empty once the source is shut down. Cancel-safe: when the call is
    /// dropped, the messages it collected are kept for the next call (whose
    /// timeout then starts afresh).
    pub async fn next_batch(&mut self, max: usize, timeout: Duration) -> Vec<Message> {
        // The batch is built in `self.filling`: a call dropped while it waits
        // (a `select!` that chose another branch) loses nothing, and the next
        // call goes on with what it had collected.
        let max = max.max(1);
        if self.filling.is_empty() {
            let Some(first) = self.recv().await else {
                return Vec::new();
            };
            self.filling.push(first);
        }
        // No deadline for a timeout too large to add (`Duration::MAX`).
        let deadline = Instant::now().checked_add(timeout);
        while self.filling.len() < max {
            // What is already there, without a timer.
            let mut batch = std::mem::take(&mut self.filling);
            let ended = self.take_ready(&mut batch, max);
            self.filling = batch;
            if ended || self.filling.len() >= max {
                break;
            }
            let next = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.recv())
                    .await
                    .ok()
                    .flatten(),
                None => self.recv().await,
            };
            match next {
                Some(m) => self.filling.push(m),
                None => break,
            }
        }
        let batch = std::mem::take(&mut self.filling);
        self.shared.metrics.batch(batch.len());
        batch
    }

    /// Moves what is ready into `batch`, up to `max`, without waiting; true
    /// once the source has ended.
    fn take_ready(&mut self, batch: &mut Vec<Message>, max: usize) -> bool {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while batch.len() < max {
            match self.poll_message(&mut cx) {
                Poll::Ready(Some(m)) => batch.push(m),
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        }
        false
    }

    /// Processes every message with `handler`, up to `concurrency` at once, and
    /// acks each whose future returns `Ok` (a `Err` is a nack, logged with its
    /// error), until the source is shut down ([`SourceHandle::shutdown`], or a
    /// signal with [`SourceConfig::with_signal_handling`]); then drains and shuts
    /// down, and returns the final metrics.
    pub async fn run<F, Fut, E>(mut self, concurrency: usize, mut handler: F) -> MetricsSnapshot
    where
        F: FnMut(Message) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: fmt::Display,
    {
        let concurrency = concurrency.max(1);
        let mut running = FuturesUnordered::new();
        let mut stop = self.shared.stop.subscribe();
        loop {
            tokio::select! {
                // Also while every handler slot is busy.
                _ = stop.wait_for(|stopped| *stopped) => break,
                message = self.recv(), if running.len() < concurrency => {
                    let Some(mut message) = message else { break };
                    let Some(completion) = message.take_completion() else { continue };
                    let work = handler(message);
                    running.push(async move {
                        match work.await {
                            Ok(()) => {
                                let _ = completion.ack();
                            }
                            Err(e) => {
                                tracing::debug!(target: "mqtt_source", event = "handler.error", error = %e);
                                completion.fail(Failure::Reason(e.to_string()));
                            }
                        }
                    });
                }
                Some(()) = running.next(), if !running.is_empty() => {}
            }
        }
        // Intake stopped: let what runs finish, bounded by the shutdown timeout.
        let timeout = self.shared.config.shutdown_timeout;
        let _ =
            tokio::time::timeout(timeout, async { while running.next().await.is_some() {} }).await;
        drop(running);
        self.shutdown().await
    }

    /// Graceful shutdown: stops taking messages from the broker, waits for the
    /// messages handed over to finish (at most the configured shutdown timeout),
    /// writes their acks, disconnects every connection, and returns the final
    /// metrics. Messages not finished in time stay unacknowledged: the broker
    /// sends them again on the next session.
    pub async fn shutdown(mut self) -> MetricsSnapshot {
        self.shared.begin_stop();
        // A batch being built and never returned: left for the broker.
        drop(std::mem::take(&mut self.filling));
        // Messages received but not handed over (in the lanes, waiting for
        // redelivery) stay unacknowledged: the broker sends them again.
        self.redeliveries.close();
        while let Ok(env) = self.redeliveries.try_recv() {
            forget(env);
        }
        let timeout = self.shared.config.shutdown_timeout;
        let shared = Arc::clone(&self.shared);
        let _ = tokio::time::timeout(timeout, async move {
            loop {
                let notified = shared.drained.notified();
                if shared.in_flight.load(Ordering::Acquire) <= 0 {
                    break;
                }
                notified.await;
            }
        })
        .await;
        let left = self.shared.in_flight.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(target: "mqtt_source", event = "shutdown.timeout", in_flight = left, "messages not finished in time stay unacknowledged");
        }
        for conn in &self.conns {
            let _ = conn.client.disconnect().await;
            tracing::info!(target: "mqtt_source", event = "producer.terminate", producer_index = conn.index, client_id = conn.client_id.as_str(), reason = "shutdown");
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(signals) = self.signals.take() {
            signals.abort();
        }
        self.shared.metrics.snapshot()
    }
}

impl futures_core::Stream for Source {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.get_mut().poll_message(cx)
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.shared.begin_stop();
        for task in &self.tasks {
            task.abort();
        }
        if let Some(signals) = &self.signals {
            signals.abort();
        }
    }
}

fn deliver(env: Envelope) -> Message {
    let message = Message::new(env);
    tracing::trace!(
        target: "mqtt_source",
        event = "receive_message.start",
        client_id = message.client_id(),
        producer_index = message.connection_index(),
        topic = message.topic(),
        qos = message.qos() as u8,
    );
    message
}

/// A message not handed over: its token is dropped quietly (the broker sends it
/// again on the next session).
fn forget(env: Envelope) {
    drop(env);
}

impl SourceHandle {
    /// Starts a graceful shutdown: the stream ends, and [`Source::run`] drains
    /// and returns. (With the stream, call [`Source::shutdown`] to drain.)
    pub fn shutdown(&self) {
        self.shared.begin_stop();
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Connections up, and those closed for good.
    pub fn health(&self) -> Health {
        let closed: Vec<_> = self
            .conns
            .iter()
            .filter_map(|c| {
                c.client
                    .closed_reason()
                    .map(|e| (c.client_id.clone(), e.to_string()))
            })
            .collect();
        let connected =
            usize::try_from(self.shared.metrics.snapshot().connections.max(0)).unwrap_or(0);
        Health {
            connections: self.conns.len(),
            connected,
            closed,
        }
    }

    /// The topics consumed now.
    pub fn topics(&self) -> Vec<Topic> {
        lock(&self.shared.topics).clone()
    }

    /// Adds a topic on every connection; returns the QoS granted (the lowest over
    /// the connections). Refused on any connection: an error, and the topic is
    /// not added.
    pub async fn subscribe(&self, topic: Topic) -> Result<QoS, SourceError> {
        let group = self.shared.config.shared_group.clone();
        let filter = shared_filter(group.as_deref(), topic.filter());
        let existed = lock(&self.shared.topics)
            .iter()
            .any(|t| t.filter() == topic.filter());
        let mut granted = topic.qos();
        for (k, conn) in self.conns.iter().enumerate() {
            let result = match conn
                .client
                .subscribe_with(topic.subscription(group.as_deref()))
                .await
            {
                Err(error) => Err(SourceError::Request {
                    client_id: conn.client_id.clone(),
                    error,
                }),
                Ok(outcome) => {
                    let mut refused =
                        report_suback(conn, std::slice::from_ref(&topic), &outcome.results);
                    match refused.pop() {
                        Some((f, code)) => Err(SourceError::SubscriptionsRefused {
                            client_id: conn.client_id.clone(),
                            refused: vec![(f, code)],
                        }),
                        None => {
                            if let Some(Ok(q)) = outcome.results.first() {
                                granted = granted.min(*q);
                            }
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                // Not added anywhere: undo it on the connections that took it.
                if !existed {
                    for done in self.conns.iter().take(k) {
                        let _ = done.client.unsubscribe(filter.clone()).await;
                    }
                }
                return Err(e);
            }
        }
        let mut topics = lock(&self.shared.topics);
        topics.retain(|t| t.filter() != topic.filter());
        topics.push(topic);
        Ok(granted)
    }

    /// Removes a topic from every connection.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), SourceError> {
        let group = self.shared.config.shared_group.clone();
        for conn in &self.conns {
            conn.client
                .unsubscribe(shared_filter(group.as_deref(), filter))
                .await
                .map_err(|error| SourceError::Request {
                    client_id: conn.client_id.clone(),
                    error,
                })?;
            tracing::info!(target: "mqtt_source", event = "subscription.removed", client_id = conn.client_id.as_str(), producer_index = conn.index, topic = filter);
        }
        lock(&self.shared.topics).retain(|t| t.filter() != filter);
        Ok(())
    }
}

/// Reports each filter of a SUBACK; returns the refused ones.
fn report_suback(
    conn: &Conn,
    topics: &[Topic],
    results: &[Result<QoS, ReasonCode>],
) -> Vec<(String, ReasonCode)> {
    let mut refused = Vec::new();
    for (topic, result) in topics.iter().zip(results) {
        match result {
            Ok(granted) => {
                tracing::info!(target: "mqtt_source", event = "subscription.success", client_id = conn.client_id.as_str(), producer_index = conn.index, topic = topic.filter(), granted_qos = *granted as u8);
                if *granted < topic.qos() {
                    conn.metrics.subscription_downgrade();
                    tracing::warn!(target: "mqtt_source", event = "subscription.downgraded", client_id = conn.client_id.as_str(), producer_index = conn.index, topic = topic.filter(), qos = topic.qos() as u8, granted_qos = *granted as u8, "the broker granted a lower QoS than asked");
                }
            }
            Err(code) => {
                conn.metrics.subscription_failure();
                tracing::error!(target: "mqtt_source", event = "subscription.error", client_id = conn.client_id.as_str(), producer_index = conn.index, topic = topic.filter(), reason = ?code);
                refused.push((topic.filter().to_owned(), *code));
            }
        }
    }
    refused
}

/// A connection opened: its shared part, its messages, those taken during the
/// setup, and its task.
type Opened = (
    Arc<Conn>,
    Incoming,
    std::collections::VecDeque<Envelope>,
    JoinHandle<()>,
);

/// Opens connection `index`: client, session store, subscriptions, reconciliation.
async fn open(
    shared: &Arc<SourceShared>,
    index: u32,
    client_id: String,
    servers: mqtt_client::transport::Servers,
    redeliver: mpsc::UnboundedSender<Envelope>,
) -> Result<Opened, SourceError> {
    let config = &shared.config;
    let options = config.client_options(client_id.clone())?;
    let mut builder = Client::builder(options);
    let mut stored_filters = Vec::new();
    if let Some(dir) = &config.session_store {
        let store_error = |error| SourceError::Store {
            client_id: client_id.clone(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(|source| {
            store_error(mqtt_client::session::StoreError::Io {
                context: format!("creating {}", dir.display()),
                source,
            })
        })?;
        let name = if client_id.is_empty() {
            "source".to_owned()
        } else {
            client_id.clone()
        };
        let mut store = FileStore::open(dir.join(format!("{name}.session")), FsyncPolicy::Always)
            .map_err(store_error)?;
        let session = store.load().map_err(store_error)?;
        stored_filters = session
            .subscriptions
            .iter()
            .map(|s| s.filter.as_str().to_owned())
            .collect();
        builder = builder.session_store(store);
    }
    let (client, mut incoming) =
        builder
            .connect(servers)
            .await
            .map_err(|error| SourceError::Connect {
                client_id: client_id.clone(),
                error,
            })?;
    let events = client.events();
    let (failures, failures_rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn {
        index,
        client_id: client.client_id(),
        client,
        metrics: shared.metrics.clone(),
        on_success: config.on_success,
        shared: Arc::clone(shared),
        failures,
        held: Mutex::new(Vec::new()),
        up: std::sync::atomic::AtomicBool::new(true),
        outstanding: std::sync::atomic::AtomicUsize::new(0),
        window: futures_util::task::AtomicWaker::new(),
        redeliver,
        max_in_flight: usize::from(config.max_in_flight),
        attempts: Mutex::new(HashMap::new()),
    });
    let server = conn.client.server();
    conn.metrics.connected();
    tracing::info!(target: "mqtt_source", event = "connection.up", client_id = conn.client_id.as_str(), producer_index = index, session_present = server.session_present);

    let topics = lock(&shared.topics).clone();
    let group = config.shared_group.as_deref();
    let mut request = SubscribeRequest::new();
    for topic in &topics {
        request = request.subscription(topic.subscription(group));
    }
    // A resumed session's messages come before the SUBACK, and the client
    // stops reading once its buffer is full: take them meanwhile.
    let mut early = std::collections::VecDeque::new();
    let subscribing = conn.client.subscribe_with(request);
    let outcome = read_while(&conn, &mut incoming, &mut early, subscribing)
        .await
        .map_err(|error| SourceError::Request {
            client_id: conn.client_id.clone(),
            error,
        })?;
    let refused = report_suback(&conn, &topics, &outcome.results);
    if !refused.is_empty() && refused.len() == topics.len() {
        let _ = conn.client.disconnect().await;
        return Err(SourceError::SubscriptionsRefused {
            client_id: conn.client_id.clone(),
            refused,
        });
    }
    // A resumed session keeps the filters of an earlier configuration: drop them.
    if server.session_present && !stored_filters.is_empty() {
        let wanted: HashSet<String> = topics
            .iter()
            .map(|t| shared_filter(group, t.filter()))
            .collect();
        let stale: Vec<String> = stored_filters
            .into_iter()
            .filter(|f| !wanted.contains(f))
            .collect();
        if !stale.is_empty() {
            let mut request = UnsubscribeRequest::new();
            for filter in &stale {
                request = request.filter(filter.clone());
            }
            let unsubscribing = conn.client.unsubscribe_with(request);
            read_while(&conn, &mut incoming, &mut early, unsubscribing)
                .await
                .map_err(|error| SourceError::Request {
                    client_id: conn.client_id.clone(),
                    error,
                })?;
            for filter in &stale {
                tracing::info!(target: "mqtt_source", event = "subscription.removed", client_id = conn.client_id.as_str(), producer_index = index, topic = filter.as_str(), reason = "not in the configuration (resumed session)");
            }
        }
    }
    let span = tracing::info_span!(target: "mqtt_source", "connection", client_id = conn.client_id.as_str(), producer_index = index);
    let task =
        tokio::spawn(connection_task(Arc::clone(&conn), failures_rx, events).instrument(span));
    Ok((conn, incoming, early, task))
}

/// Awaits `fut` while taking the connection's messages into `early`.
async fn read_while<F: Future>(
    conn: &Arc<Conn>,
    incoming: &mut Incoming,
    early: &mut std::collections::VecDeque<Envelope>,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return out,
            message = incoming.recv() => match message {
                Some(message) => early.push_back(receive(conn, message)),
                // Closed: the request fails by itself.
                None => return fut.await,
            },
        }
    }
}

/// Handles one connection's failed messages and reports its events. (The
/// consumer reads the connection's messages itself, from its [`Lane`].)
async fn connection_task(
    conn: Arc<Conn>,
    mut failures: mpsc::UnboundedReceiver<Envelope>,
    mut events: tokio::sync::broadcast::Receiver<ConnectionEvent>,
) {
    let mut stop = conn.shared.stop.subscribe();
    let mut stopping = *stop.borrow();
    loop {
        tokio::select! {
            biased;
            changed = stop.changed(), if !stopping => {
                stopping = changed.is_err() || *stop.borrow();
            }
            Some(env) = failures.recv() => handle_failure(&conn, env, stopping),
            event = events.recv() => match event {
                Ok(event) => {
                    if report_event(&conn, event, stopping) {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "mqtt_source", event = "events.lagged", client_id = conn.client_id.as_str(), skipped = n);
                }
                Err(_) => break,
            },
        }
    }
    // The client is closed: failed messages still queued stay unacked.
    while let Ok(env) = failures.try_recv() {
        forget(env);
    }
}

/// A message from the broker, as the source holds it.
fn receive(conn: &Arc<Conn>, message: mqtt_client::Message) -> Envelope {
    let (publish, token) = message.into_parts();
    conn.metrics.received(publish.payload.len());
    let slot = publish.qos != QoS::AtMostOnce;
    if slot {
        conn.outstanding.fetch_add(1, Ordering::AcqRel);
    }
    let mut attempt = 0;
    if publish.dup {
        if let Some(id) = publish.packet_id {
            attempt = lock(&conn.attempts).remove(&id).unwrap_or(0);
        }
    }
    Envelope {
        publish,
        token,
        received_at: SystemTime::now(),
        attempt,
        conn: Arc::clone(conn),
        failure: None,
        slot,
    }
}

/// A failed message: deliver again, dead-letter, or ack, per `on_failure`.
fn handle_failure(conn: &Arc<Conn>, mut env: Envelope, stopping: bool) {
    let config = &conn.shared.config;
    // A message whose connection ended cannot be acked (the broker sends it
    // again), and one failed during a shutdown (cut off by its timeout, say) is
    // left for the next session: neither is poison, neither is acked.
    let stale = env.token.as_ref().is_some_and(|t| !t.is_current());
    if stopping || stale {
        leave_for_broker(conn, env);
        return;
    }
    let poison = match config.on_failure {
        OnFailure::Ack | OnFailure::DeadLetter => true,
        OnFailure::Redeliver => env.attempt >= config.max_deliveries,
    };
    let failure = env.failure.clone().unwrap_or(Failure::Nack);
    if poison {
        tracing::warn!(target: "mqtt_source", event = "message.poison", client_id = conn.client_id.as_str(), producer_index = conn.index, topic = env.publish.topic.as_str(), attempts = env.attempt, failure = %failure);
        match (&config.dead_letter_topic, config.on_failure) {
            (Some(topic), OnFailure::DeadLetter | OnFailure::Redeliver) => {
                let topic = topic.clone();
                tokio::spawn(dead_letter(Arc::clone(conn), env, topic, failure));
            }
            _ => {
                if let Some(token) = env.token.take() {
                    let _ = token.ack();
                }
                conn.metrics.poison_acked();
            }
        }
        return;
    }
    let exponent = env.attempt.saturating_sub(1).min(6);
    let delay = config.redelivery_delay.saturating_mul(1u32 << exponent);
    let conn = Arc::clone(conn);
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let stale = env.token.as_ref().is_some_and(|t| !t.is_current());
        if stale || conn.shared.is_stopping() {
            leave_for_broker(&conn, env);
            return;
        }
        conn.metrics.redelivered();
        tracing::debug!(target: "mqtt_source", event = "message.redeliver", client_id = conn.client_id.as_str(), topic = env.publish.topic.as_str(), attempt = env.attempt + 1);
        if let Err(e) = conn.redeliver.send(env) {
            leave_for_broker(&conn, e.0);
        }
    });
}

/// Drops a failed message unacknowledged: the broker sends it again on the
/// resumed session, and its delivery count goes on there.
fn leave_for_broker(conn: &Conn, env: Envelope) {
    if let Some(id) = env.publish.packet_id {
        lock(&conn.attempts).insert(id, env.attempt);
    }
    forget(env);
}

/// Publishes a poison message to the dead-letter topic at QoS 1; acks the
/// original once the broker has it.
async fn dead_letter(conn: Arc<Conn>, mut env: Envelope, topic: String, failure: Failure) {
    let Ok(topic_name) = MqttString::try_from(topic.as_str()) else {
        // Validated with the configuration: cannot happen; never hold the window.
        if let Some(token) = env.token.take() {
            let _ = token.ack();
        }
        conn.metrics.poison_acked();
        return;
    };
    let properties = if conn.shared.config.version == ProtocolVersion::V5 {
        let mut props: PublishProperties = env.publish.properties().clone();
        props.topic_alias = None;
        props.subscription_identifiers.clear();
        let mut add = |name: &str, value: &str| {
            if let Ok(p) = UserProperty::new(name, value) {
                props.user_properties.push(p);
            }
        };
        add("original_topic", env.publish.topic.as_str());
        add("delivery_attempts", &env.attempt.to_string());
        add("failure", &failure.to_string());
        Some(Box::new(props))
    } else {
        None
    };
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: topic_name,
        packet_id: None,
        properties,
        payload: env.publish.payload.clone(),
    };
    let mut delay = conn
        .shared
        .config
        .redelivery_delay
        .max(Duration::from_millis(10));
    loop {
        let outcome = match conn.client.publish_with(publish.clone()).await {
            Ok(handle) => handle.await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(()) => {
                if let Some(token) = env.token.take() {
                    let _ = token.ack();
                }
                conn.metrics.dead_lettered();
                tracing::info!(target: "mqtt_source", event = "message.dead_lettered", client_id = conn.client_id.as_str(), topic = topic.as_str(), original_topic = env.publish.topic.as_str());
                return;
            }
            Err(error) => error,
        };
        conn.metrics.error();
        let current = env.token.as_ref().is_none_or(AckToken::is_current);
        if !current || conn.shared.is_stopping() || matches!(error, PublishError::Closed) {
            // Its connection ended: the broker sends the original again.
            tracing::warn!(target: "mqtt_source", event = "dead_letter.error", client_id = conn.client_id.as_str(), topic = topic.as_str(), error = %error, "left unacknowledged for the broker to send again");
            leave_for_broker(&conn, env);
            return;
        }
        let passing = match &error {
            PublishError::Rejected { reason, .. } => *reason == ReasonCode::QUOTA_EXCEEDED,
            other => other.kind() == mqtt_client::ErrorKind::Transient,
        };
        if !passing {
            // The dead letter can never be sent (refused, too large, ...), and an
            // original held unacked would hold every later ack of the connection
            // for good: it is acked, loudly.
            tracing::error!(target: "mqtt_source", event = "dead_letter.refused", client_id = conn.client_id.as_str(), topic = topic.as_str(), original_topic = env.publish.topic.as_str(), error = %error, "the dead letter was refused: the poison message is acked and dropped");
            if let Some(token) = env.token.take() {
                let _ = token.ack();
            }
            conn.metrics.poison_acked();
            return;
        }
        tracing::warn!(target: "mqtt_source", event = "dead_letter.retry", client_id = conn.client_id.as_str(), topic = topic.as_str(), error = %error, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        tokio::time::sleep(delay).await;
        delay = delay.saturating_mul(2).min(Duration::from_secs(30));
    }
}

/// Reports a connection event; true when the client is closed for good.
fn report_event(conn: &Conn, event: ConnectionEvent, stopping: bool) -> bool {
    let id = conn.client_id.as_str();
    match event {
        ConnectionEvent::Connected {
            session_present,
            server,
        } => {
            if !conn.up.swap(true, Ordering::AcqRel) {
                conn.metrics.connected();
            }
            // Held (on_success = noop) messages of the old connection: stale.
            lock(&conn.held).clear();
            tracing::info!(target: "mqtt_source", event = "connection.up", client_id = id, producer_index = conn.index, session_present, server = server.as_str());
        }
        ConnectionEvent::Disconnected(error) => {
            // Also sent for an attempt that never got its CONNACK: only a
            // connection that was up goes down.
            if conn.up.swap(false, Ordering::AcqRel) {
                conn.metrics.disconnected();
            }
            if matches!(error, ConnectionError::LocalDisconnect) {
                tracing::info!(target: "mqtt_source", event = "connection.down", client_id = id, producer_index = conn.index, reason = %error);
            } else {
                conn.metrics.error();
                tracing::warn!(target: "mqtt_source", event = "connection.down", client_id = id, producer_index = conn.index, reason = %error);
            }
        }
        ConnectionEvent::Reconnecting {
            attempt,
            delay,
            server,
        } => {
            tracing::debug!(target: "mqtt_source", event = "connection.reconnecting", client_id = id, producer_index = conn.index, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), server = server.as_str());
        }
        ConnectionEvent::ResubscribeFailed { filter, reason } => {
            conn.metrics.subscription_failure();
            tracing::error!(target: "mqtt_source", event = "subscription.error", client_id = id, producer_index = conn.index, topic = filter.as_str(), reason = ?reason);
        }
        ConnectionEvent::Closed(error) => {
            // A shutdown reports its own terminate events.
            if !stopping {
                conn.metrics.error();
                tracing::error!(target: "mqtt_source", event = "producer.terminate", client_id = id, producer_index = conn.index, reason = %error);
            }
            return true;
        }
        ConnectionEvent::MessageRefused { topic, reason, .. } => {
            conn.metrics.error();
            tracing::warn!(target: "mqtt_source", event = "message.refused", client_id = id, topic = topic.as_str(), reason = ?reason);
        }
        other => {
            tracing::debug!(target: "mqtt_source", event = "connection.event", client_id = id, detail = ?other);
        }
    }
    false
}

fn spawn_signal_handler(shared: Arc<SourceShared>) -> JoinHandle<()> {
    // Registered here, before `connect` returns: a signal that comes before the
    // task first runs must not take the default action (ending the process).
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let (Ok(mut term), Ok(mut int)) = signals else {
                tracing::error!(target: "mqtt_source", event = "shutdown.signal_error", "could not install the SIGTERM/SIGINT handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!(target: "mqtt_source", event = "shutdown.signal");
        shared.begin_stop();
    })
}

/// Connects once with `config`'s first connection settings (clean start, the
/// client id with `_check` appended), reads the CONNACK and disconnects: a
/// connectivity and credentials probe that does not disturb a running
/// consumer's session.
pub async fn check(config: &SourceConfig) -> Result<mqtt_client::ServerInfo, SourceError> {
    config.validate()?;
    let id = config
        .client_id
        .clone()
        .map(|id| format!("{id}_check"))
        .unwrap_or_default();
    let options = config
        .client_options(id.clone())?
        .with_clean_start(true)
        .with_session_expiry(0)
        .with_reconnect(mqtt_client::Backoff::default().with_enabled(false));
    let (client, _incoming) =
        Client::connect(options, config.servers()?)
            .await
            .map_err(|error| SourceError::Connect {
                client_id: id,
                error,
            })?;
    let info = client.server();
    let _ = client.disconnect().await;
    Ok(info)
}
