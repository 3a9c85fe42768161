//! The sink: publishes items to MQTT, at least once. An item is done only when
//! its flow is complete (PUBACK for QoS 1, PUBCOMP for QoS 2; written for QoS 0);
//! a failure is retried with backoff, and an item whose retries are exhausted is
//! handed back to the caller with the error, never dropped silently.
//!
//! In flight: at most `max_in_flight` items at once per sink, and the client's own
//! window (the broker's Receive Maximum) below that. The client resends
//! unacknowledged messages itself across reconnects (a resumed session), so a
//! cut connection delays an item rather than failing it; a retry happens when
//! the flow itself fails (the client closed, the session lost, the broker
//! answering 0x97 Quota exceeded). A refusal on purpose (0x87 Not authorized, ...)
//! and a message that cannot be sent as it is come back at once.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use mqtt_client::codec::packet::Publish;
use mqtt_client::codec::property::PublishProperties;
use mqtt_client::codec::string::MqttString;
use mqtt_client::codec::ReasonCode;
use mqtt_client::{Client, ErrorKind, PublishError, PublishOutcome, QoS};

/// One message to publish, as an item maps to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The topic name.
    pub topic: String,
    /// The QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// The payload.
    pub payload: Bytes,
    /// MQTT 5 properties (content type, user properties, expiry, ...).
    pub properties: Option<PublishProperties>,
}

impl Outgoing {
    /// A message at QoS 1, not retained, without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            payload: payload.into(),
            properties: None,
        }
    }

    /// At this QoS.
    pub fn with_qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Retained.
    pub fn with_retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// With MQTT 5 properties.
    pub fn with_properties(mut self, properties: PublishProperties) -> Self {
        self.properties = Some(properties);
        self
    }
}

/// How a sink publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkOptions {
    max_in_flight: usize,
    retries: u32,
    retry_initial: Duration,
    retry_max: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 100,
            retries: 5,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

impl SinkOptions {
    /// Items in flight at once (100 by default).
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Retries of a failed item before it is handed back (5 by default).
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Backoff between retries: first delay, doubled each time up to `max`
    /// (100 ms, 10 s by default).
    pub fn with_retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max.max(initial);
        self
    }
}

/// An item the sink could not publish: the item, and the last error.
#[derive(Debug)]
pub struct SinkError<T> {
    /// The item, handed back.
    pub item: T,
    /// Why its last attempt failed.
    pub error: PublishError,
    /// Attempts made.
    pub attempts: u32,
}

impl<T> fmt::Display for SinkError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not published after {} attempts: {}",
            self.attempts, self.error
        )
    }
}

impl<T: fmt::Debug> std::error::Error for SinkError<T> {}

/// What [`Sink::send_all`] did.
#[derive(Debug)]
pub struct SinkReport<T> {
    /// Items whose flow completed.
    pub published: u64,
    /// Items handed back, with why.
    pub failed: Vec<SinkError<T>>,
}

/// Publishes items mapped to MQTT messages, at least once.
pub struct Sink<T, F> {
    client: Client,
    map: F,
    options: SinkOptions,
    _item: std::marker::PhantomData<fn(T)>,
}

impl<T, F> fmt::Debug for Sink<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<T, F: Fn(&T) -> Outgoing> Sink<T, F> {
    /// A sink publishing through `client`, `map` saying what each item becomes.
    pub fn new(client: Client, options: SinkOptions, map: F) -> Self {
        Self {
            client,
            map,
            options,
            _item: std::marker::PhantomData,
        }
    }

    /// Publishes one item and waits for the end of its flow, retrying failures
    /// that may pass; the item comes back in the error when they do not.
    pub async fn send(&self, item: T) -> Result<PublishOutcome, SinkError<T>> {
        let mut attempts = 0;
        let mut delay = self.options.retry_initial;
        loop {
            attempts += 1;
            let outgoing = (self.map)(&item);
            let error = match self.publish_once(outgoing).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) => error,
            };
            // Worth another attempt: a lost connection or session, or a broker
            // over its quota. Not: a refusal on purpose (not authorised, ...), a
            // message that cannot be sent as it is, a closed client.
            let retryable = match &error {
                PublishError::Rejected { reason, .. } => *reason == ReasonCode::QUOTA_EXCEEDED,
                PublishError::Closed => false,
                other => other.kind() == ErrorKind::Transient,
            };
            if !retryable || attempts > self.options.retries {
                tracing::warn!(target: "mqtt_source", event = "sink.failed", attempts, error = %error);
                return Err(SinkError {
                    item,
                    error,
                    attempts,
                });
            }
            tracing::debug!(target: "mqtt_source", event = "sink.retry", attempts, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %error);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.options.retry_max);
        }
    }

    async fn publish_once(&self, outgoing: Outgoing) -> Result<PublishOutcome, PublishError> {
        let topic = MqttString::try_from(outgoing.topic.as_str()).map_err(|reason| {
            PublishError::InvalidTopic {
                topic: outgoing.topic.clone(),
                reason,
            }
        })?;
        mqtt_client::codec::topic::check_topic_name(&outgoing.topic).map_err(|reason| {
            PublishError::InvalidTopic {
                topic: outgoing.topic.clone(),
                reason,
            }
        })?;
        let publish = Publish {
            dup: false,
            qos: outgoing.qos,
            retain: outgoing.retain,
            topic,
            packet_id: None,
            properties: outgoing.properties.map(Box::new),
            payload: outgoing.payload,
        };
        self.client.publish_with(publish).await?.await
    }

    /// Publishes every item of `items`, at most `max_in_flight` at once, and
    /// returns when each is published or handed back.
    pub async fn send_all<S>(&self, items: S) -> SinkReport<T>
    where
        S: Stream<Item = T>,
    {
        let mut items = std::pin::pin!(items);
        let mut running = FuturesUnordered::new();
        let mut report = SinkReport {
            published: 0,
            failed: Vec::new(),
        };
        let mut exhausted = false;
        loop {
            tokio::select! {
                item = items.next(), if !exhausted && running.len() < self.options.max_in_flight => match item {
                    Some(item) => running.push(self.send(item)),
                    None => exhausted = true,
                },
                Some(result) = running.next(), if !running.is_empty() => match result {
                    Ok(_) => report.published += 1,
                    Err(e) => report.failed.push(e),
                },
                else => break,
            }
        }
        report
    }
}
