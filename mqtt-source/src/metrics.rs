//! What a source counts: lock-free counters and gauges (atomics, from
//! `prometheus-client`), a processing-latency and a batch-size histogram, a
//! [`MetricsSnapshot`] that serializes to JSON, and Prometheus text exposition
//! ([`Metrics::prometheus`]).
//!
//! On the path of a message: two relaxed atomic adds when it arrives, one when it
//! is handed over, two and a histogram observation when it is acked. Everything
//! else (encoding, snapshots) happens only when asked for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

/// The metrics of one source (all its connections). Cloning shares them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Metrics").field(&self.snapshot()).finish()
    }
}

struct Inner {
    registry: Registry,
    received: Counter,
    received_bytes: Counter,
    acked: Counter,
    nacked: Counter,
    redelivered: Counter,
    dead_lettered: Counter,
    poison_acked: Counter,
    dropped_unacked: Counter,
    stale_acks: Counter,
    decode_failures: Counter,
    errors: Counter,
    connects: Counter,
    disconnections: Counter,
    subscription_failures: Counter,
    subscription_downgrades: Counter,
    in_flight: Gauge,
    connections: Gauge,
    processing: Histogram,
    batch_size: Histogram,
    // For the snapshot: prometheus-client does not give a histogram's sum back.
    processing_count: AtomicU64,
    processing_micros: AtomicU64,
    processing_max_micros: AtomicU64,
    batches: AtomicU64,
    batched: AtomicU64,
}

/// The counts at one moment; serializes to JSON with serde.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Messages received from the broker (redeliveries by the broker included,
    /// local redeliveries not).
    pub received: u64,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// Messages acknowledged after processing (`ack()`; with `on_success = noop`,
    /// finished).
    pub acked: u64,
    /// Failures reported by the pipeline (`nack()`, a dropped message, a decode failure).
    pub nacked: u64,
    /// Messages handed to the pipeline again after a failure.
    pub redelivered: u64,
    /// Poison messages published to the dead-letter topic, then acknowledged.
    pub dead_lettered: u64,
    /// Failed messages acknowledged without processing (`on_failure = ack`, or
    /// poison without a dead-letter topic).
    pub poison_acked: u64,
    /// Messages dropped by the pipeline without `ack()` or `nack()` (each also a nack).
    pub dropped_unacked: u64,
    /// Acks that came after the message's connection ended (the broker sends
    /// the message again): not sent.
    pub stale_acks: u64,
    /// Messages the decoder refused (each also a nack).
    pub decode_failures: u64,
    /// Errors: connections lost abnormally, dead-letter publishes that failed.
    pub errors: u64,
    /// Connections established (CONNACK accepted), first ones and reconnects.
    pub connects: u64,
    /// Connections lost or closed.
    pub disconnections: u64,
    /// Subscriptions the broker refused.
    pub subscription_failures: u64,
    /// Subscriptions granted at a lower QoS than asked.
    pub subscription_downgrades: u64,
    /// Messages handed to the pipeline and not finished yet.
    pub in_flight: i64,
    /// Connections up now.
    pub connections: i64,
    /// Messages whose processing time (hand-over to ack) was observed.
    pub processed: u64,
    /// Mean processing time, milliseconds.
    pub mean_processing_ms: f64,
    /// Longest processing time, milliseconds.
    pub max_processing_ms: f64,
    /// Batches handed over by `next_batch`.
    pub batches: u64,
    /// Mean size of those batches.
    pub mean_batch_size: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, registered under the prefix `mqtt_source`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mqtt_source");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let received = counter(
            &mut registry,
            "received",
            "Messages received from the broker",
        );
        let received_bytes = Counter::default();
        registry.register_with_unit(
            "received_payload",
            "Payload bytes received",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let acked = counter(
            &mut registry,
            "acked",
            "Messages acknowledged after processing",
        );
        let nacked = counter(&mut registry, "nacked", "Messages failed by the pipeline");
        let redelivered = counter(
            &mut registry,
            "redelivered",
            "Messages handed to the pipeline again",
        );
        let dead_lettered = counter(
            &mut registry,
            "dead_lettered",
            "Poison messages sent to the dead-letter topic",
        );
        let poison_acked = counter(
            &mut registry,
            "failed_acked",
            "Failed messages acknowledged without processing",
        );
        let dropped_unacked = counter(
            &mut registry,
            "dropped_unacked",
            "Messages dropped without ack or nack",
        );
        let stale_acks = counter(
            &mut registry,
            "stale_acks",
            "Acks after their connection ended",
        );
        let decode_failures = counter(
            &mut registry,
            "decode_failures",
            "Messages the decoder refused",
        );
        let errors = counter(&mut registry, "errors", "Errors");
        let connects = counter(&mut registry, "connects", "Connections established");
        let disconnections = counter(
            &mut registry,
            "disconnections",
            "Connections lost or closed",
        );
        let subscription_failures = counter(
            &mut registry,
            "subscription_failures",
            "Subscriptions refused",
        );
        let subscription_downgrades = counter(
            &mut registry,
            "subscription_downgrades",
            "Subscriptions granted at a lower QoS",
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "Messages handed over and not finished",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register("connections", "Connections up", connections.clone());
        let processing = Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        registry.register_with_unit(
            "processing",
            "Time from hand-over to ack",
            Unit::Seconds,
            processing.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register("batch_size", "Messages per batch", batch_size.clone());
        Self {
            inner: Arc::new(Inner {
                registry,
                received,
                received_bytes,
                acked,
                nacked,
                redelivered,
                dead_lettered,
                poison_acked,
                dropped_unacked,
                stale_acks,
                decode_failures,
                errors,
                connects,
                disconnections,
                subscription_failures,
                subscription_downgrades,
                in_flight,
                connections,
                processing,
                batch_size,
                processing_count: AtomicU64::new(0),
                processing_micros: AtomicU64::new(0),
                processing_max_micros: AtomicU64::new(0),
                batches: AtomicU64::new(0),
                batched: AtomicU64::new(0),
            }),
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let i = &self.inner;
        let processed = i.processing_count.load(Ordering::Relaxed);
        let micros = i.processing_micros.load(Ordering::Relaxed);
        let batches = i.batches.load(Ordering::Relaxed);
        let batched = i.batched.load(Ordering::Relaxed);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        MetricsSnapshot {
            received: i.received.get(),
            received_bytes: i.received_bytes.get(),
            acked: i.acked.get(),
            nacked: i.nacked.get(),
            redelivered: i.redelivered.get(),
            dead_lettered: i.dead_lettered.get(),
            poison_acked: i.poison_acked.get(),
            dropped_unacked: i.dropped_unacked.get(),
            stale_acks: i.stale_acks.get(),
            decode_failures: i.decode_failures.get(),
            errors: i.errors.get(),
            connects: i.connects.get(),
            disconnections: i.disconnections.get(),
            subscription_failures: i.subscription_failures.get(),
            subscription_downgrades: i.subscription_downgrades.get(),
            in_flight: i.in_flight.get(),
            connections: i.connections.get(),
            processed,
            mean_processing_ms: ratio(micros, processed) / 1000.0,
            max_processing_ms: i.processing_max_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            batches,
            mean_batch_size: ratio(batched, batches),
        }
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.snapshot()).unwrap_or_default()
    }

    /// Prometheus text exposition (OpenMetrics), every metric prefixed `mqtt_source_`.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// The registry, to serve it with others.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.inner.received.inc();
        self.inner.received_bytes.inc_by(bytes as u64);
    }
    pub(crate) fn handed_over(&self) {
        self.inner.in_flight.inc();
    }
    pub(crate) fn finished(&self) {
        self.inner.in_flight.dec();
    }
    pub(crate) fn acked(&self, processing: Duration) {
        self.inner.acked.inc();
        let micros = u64::try_from(processing.as_micros()).unwrap_or(u64::MAX);
        self.inner.processing.observe(processing.as_secs_f64());
        self.inner.processing_count.fetch_add(1, Ordering::Relaxed);
        self.inner
            .processing_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.inner
            .processing_max_micros
            .fetch_max(micros, Ordering::Relaxed);
    }
    pub(crate) fn nacked(&self) {
        self.inner.nacked.inc();
    }
    pub(crate) fn redelivered(&self) {
        self.inner.redelivered.inc();
    }
    pub(crate) fn dead_lettered(&self) {
        self.inner.dead_lettered.inc();
    }
    pub(crate) fn poison_acked(&self) {
        self.inner.poison_acked.inc();
    }
    pub(crate) fn dropped_unacked(&self) {
        self.inner.dropped_unacked.inc();
    }
    pub(crate) fn stale_ack(&self) {
        self.inner.stale_acks.inc();
    }
    pub(crate) fn decode_failure(&self) {
        self.inner.decode_failures.inc();
    }
    pub(crate) fn error(&self) {
        self.inner.errors.inc();
    }
    pub(crate) fn connected(&self) {
        self.inner.connects.inc();
        self.inner.connections.inc();
    }
    pub(crate) fn disconnected(&self) {
        self.inner.disconnections.inc();
        self.inner.connections.dec();
    }
    pub(crate) fn subscription_failure(&self) {
        self.inner.subscription_failures.inc();
    }
    pub(crate) fn subscription_downgrade(&self) {
        self.inner.subscription_downgrades.inc();
    }
    pub(crate) fn batch(&self, size: usize) {
        self.inner.batch_size.observe(size as f64);
        self.inner.batches.fetch_add(1, Ordering::Relaxed);
        self.inner.batched.fetch_add(size as u64, Ordering::Relaxed);
    }
}
