//! A message handed to the pipeline, and its completion.

use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use mqtt_client::codec::packet::Publish;
use mqtt_client::codec::property::PublishProperties;
use mqtt_client::{AckError, AckToken, PacketId, QoS};

use crate::config::OnSuccess;
use crate::source::Conn;

/// Why a message failed, as the pipeline (or the source) says it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// [`Message::nack`].
    Nack,
    /// [`Message::nack_with`]: the pipeline's reason.
    Reason(String),
    /// Dropped without `ack()` or `nack()`.
    Dropped,
    /// The decoder refused it.
    Decode(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Nack => f.write_str("nacked"),
            Failure::Reason(r) => write!(f, "nacked: {r}"),
            Failure::Dropped => f.write_str("dropped without ack or nack"),
            Failure::Decode(e) => write!(f, "decode failed: {e}"),
        }
    }
}

/// A message as the source holds it, before and between hand-overs.
pub(crate) struct Envelope {
    pub(crate) publish: Publish,
    pub(crate) token: Option<AckToken>,
    pub(crate) received_at: SystemTime,
    /// Deliveries to the pipeline so far, this one included once handed over.
    pub(crate) attempt: u32,
    pub(crate) conn: Arc<Conn>,
    pub(crate) failure: Option<Failure>,
    /// Holds one of its connection's `max_in_flight` slots (a QoS 1/2 message),
    /// given back when the envelope is dropped: acked, poison handled, or left for
    /// the broker.
    pub(crate) slot: bool,
}

impl Drop for Envelope {
    fn drop(&mut self) {
        if self.slot {
            self.conn.release_slot();
        }
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("topic", &self.publish.topic.as_str())
            .field("packet_id", &self.publish.packet_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// One message from the broker, handed to the pipeline: its data, and the duty to
/// say when it is done.
///
/// [`ack`](Message::ack) once the pipeline has finished with it (stored it,
/// forwarded it): only then is the broker told (PUBACK for QoS 1, PUBREC for
/// QoS 2), in the order the messages arrived whatever order they are acked in.
/// [`nack`](Message::nack) when it failed: the source's `on_failure` decides
/// (hand it over again, dead-letter it, or ack it). Dropping a message without
/// either is a nack, logged as a warning and counted (`dropped_unacked`).
pub struct Message {
    env: Option<Envelope>,
    handed_at: Instant,
    /// The completion was taken ([`Message::take_completion`]).
    detached: bool,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic())
            .field("qos", &self.qos())
            .field("packet_id", &self.packet_id())
            .field("dup", &self.dup())
            .field("retain", &self.retain())
            .field("payload_len", &self.payload().len())
            .field("delivery_attempt", &self.delivery_attempt())
            .field("connection_index", &self.connection_index())
            .finish()
    }
}

static EMPTY_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

impl Message {
    pub(crate) fn new(mut env: Envelope) -> Self {
        env.attempt += 1;
        env.conn.handed_over();
        Self {
            env: Some(env),
            handed_at: Instant::now(),
            detached: false,
        }
    }

    fn env(&self) -> &Envelope {
        // Present until ack/nack, which take `self` by value; Drop is the only
        // other reader, and it checks.
        match &self.env {
            Some(env) => env,
            None => unreachable_envelope(),
        }
    }

    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        self.env().publish.topic.as_str()
    }

    /// The payload: a slice of the received packet, not a copy.
    pub fn payload(&self) -> &Bytes {
        &self.env().publish.payload
    }

    /// The QoS it was delivered at.
    pub fn qos(&self) -> QoS {
        self.env().publish.qos
    }

    /// The RETAIN flag: a retained message sent at subscription time.
    pub fn retain(&self) -> bool {
        self.env().publish.retain
    }

    /// The DUP flag: the broker sent it before (on an earlier connection).
    pub fn dup(&self) -> bool {
        self.env().publish.dup
    }

    /// The packet identifier (QoS 1/2).
    pub fn packet_id(&self) -> Option<PacketId> {
        self.env().publish.packet_id
    }

    /// Every MQTT 5 property (empty for 3.1.1).
    pub fn properties(&self) -> &PublishProperties {
        match &self.env().publish.properties {
            Some(p) => p,
            None => &EMPTY_PROPERTIES,
        }
    }

    /// User properties (name, value), in order; names may repeat.
    pub fn user_properties(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.properties()
            .user_properties
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
    }

    /// Content Type (MQTT 5).
    pub fn content_type(&self) -> Option<&str> {
        self.properties().content_type.as_ref().map(|s| s.as_str())
    }

    /// Correlation Data (MQTT 5).
    pub fn correlation_data(&self) -> Option<&Bytes> {
        self.properties().correlation_data.as_ref()
    }

    /// Response Topic (MQTT 5).
    pub fn response_topic(&self) -> Option<&str> {
        self.properties()
            .response_topic
            .as_ref()
            .map(|s| s.as_str())
    }

    /// Message Expiry Interval in seconds, as the broker forwarded it (MQTT 5).
    pub fn message_expiry(&self) -> Option<u32> {
        self.properties().message_expiry_interval
    }

    /// Payload Format Indicator (MQTT 5): `Some(1)` for UTF-8 text.
    pub fn payload_format(&self) -> Option<u8> {
        self.properties().payload_format_indicator
    }

    /// Subscription Identifiers of the subscriptions it matched (MQTT 5).
    pub fn subscription_identifiers(&self) -> &[u32] {
        &self.properties().subscription_identifiers
    }

    /// When it arrived from the broker (the first time, for a local redelivery).
    pub fn received_at(&self) -> SystemTime {
        self.env().received_at
    }

    /// Which delivery to the pipeline this is: 1 the first time, more after
    /// failures (local redeliveries, and broker redeliveries within this process).
    pub fn delivery_attempt(&self) -> u32 {
        self.env().attempt
    }

    /// The index of the connection it came on (`{client_id}_{index}`).
    pub fn connection_index(&self) -> u32 {
        self.env().conn.index
    }

    /// The client id of the connection it came on.
    pub fn client_id(&self) -> &str {
        &self.env().conn.client_id
    }

    /// The PUBLISH as received.
    pub fn publish(&self) -> &Publish {
        &self.env().publish
    }

    /// Done: acknowledge it to the broker (per `on_success`). The ack is written
    /// after the acks of every message received before it on its connection.
    ///
    /// [`AckError::StaleConnection`] when the connection it came on has ended
    /// meanwhile: nothing is sent, and the broker sends the message again on the
    /// resumed session (counted as `stale_acks`). QoS 0 messages have nothing to
    /// acknowledge: `Ok`. After [`Message::take_completion`], the completion
    /// acknowledges and this does nothing.
    pub fn ack(mut self) -> Result<(), AckError> {
        match self.env.take() {
            Some(env) if !self.detached => complete_ack(env, self.handed_at),
            _ => Ok(()),
        }
    }

    /// Failed: `on_failure` decides what happens (see [`crate::OnFailure`]).
    pub fn nack(mut self) {
        self.fail(Failure::Nack);
    }

    /// Failed, with a reason (logged, and put on a dead-letter message as the
    /// user property `failure`).
    pub fn nack_with(mut self, reason: impl Into<String>) {
        self.fail(Failure::Reason(reason.into()));
    }

    /// Detaches the duty to complete the message, for code that hands the data
    /// to one place and completes it in another (as [`crate::Source::run`] does).
    /// The message keeps its data; dropping it then is silent, and its `ack` and
    /// `nack` do nothing. `None` when already taken. Costs a copy of the
    /// message's handles (reference counts, not the payload).
    pub fn take_completion(&mut self) -> Option<Completion> {
        if self.detached {
            return None;
        }
        let env = self.env.as_mut()?;
        self.detached = true;
        Some(Completion {
            env: Some(Envelope {
                publish: env.publish.clone(),
                token: env.token.take(),
                received_at: env.received_at,
                attempt: env.attempt,
                conn: Arc::clone(&env.conn),
                failure: None,
                slot: std::mem::take(&mut env.slot),
            }),
            handed_at: self.handed_at,
        })
    }

    pub(crate) fn conn_metrics_decode_failure(&self) {
        if let Some(env) = &self.env {
            env.conn.metrics.decode_failure();
        }
    }

    pub(crate) fn fail(&mut self, failure: Failure) {
        if let Some(env) = self.env.take() {
            if !self.detached {
                complete_fail(env, failure);
            }
        }
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        if let Some(env) = self.env.take() {
            if !self.detached {
                dropped(env);
            }
        }
    }
}

/// The duty to complete one message, apart from its data
/// ([`Message::take_completion`]): the same `ack`, `nack` and drop rules.
pub struct Completion {
    env: Option<Envelope>,
    handed_at: Instant,
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("message", &self.env)
            .finish()
    }
}

impl Completion {
    /// As [`Message::ack`].
    pub fn ack(mut self) -> Result<(), AckError> {
        match self.env.take() {
            Some(env) => complete_ack(env, self.handed_at),
            None => Ok(()),
        }
    }

    /// As [`Message::nack`].
    pub fn nack(mut self) {
        if let Some(env) = self.env.take() {
            complete_fail(env, Failure::Nack);
        }
    }

    /// As [`Message::nack_with`], or with any [`Failure`].
    pub fn fail(mut self, failure: Failure) {
        if let Some(env) = self.env.take() {
            complete_fail(env, failure);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(env) = self.env.take() {
            dropped(env);
        }
    }
}

fn complete_ack(mut env: Envelope, handed_at: Instant) -> Result<(), AckError> {
    let conn = Arc::clone(&env.conn);
    tracing::trace!(
        target: "mqtt_source",
        event = "receive_message.ack",
        topic = env.publish.topic.as_str(),
        qos = env.publish.qos as u8,
        status = "on_success",
    );
    let result = match (conn.on_success, env.token.is_some()) {
        (OnSuccess::Ack, true) => env.token.take().map_or(Ok(()), AckToken::ack),
        (OnSuccess::Noop, true) => {
            // Kept, with its slot, until the connection ends.
            conn.metrics.acked(handed_at.elapsed());
            conn.finished();
            conn.hold(env);
            return Ok(());
        }
        (_, false) => Ok(()),
    };
    match &result {
        Ok(()) => conn.metrics.acked(handed_at.elapsed()),
        Err(AckError::StaleConnection) => conn.metrics.stale_ack(),
        Err(_) => conn.metrics.error(),
    }
    conn.finished();
    result
}

pub(crate) fn complete_fail(mut env: Envelope, failure: Failure) {
    let conn = Arc::clone(&env.conn);
    conn.metrics.nacked();
    tracing::trace!(
        target: "mqtt_source",
        event = "receive_message.ack",
        topic = env.publish.topic.as_str(),
        qos = env.publish.qos as u8,
        status = "on_failure",
    );
    env.failure = Some(failure);
    conn.finished();
    conn.failed(env);
}

fn dropped(env: Envelope) {
    env.conn.metrics.dropped_unacked();
    tracing::warn!(
        target: "mqtt_source",
        event = "message.dropped",
        client_id = env.conn.client_id.as_str(),
        producer_index = env.conn.index,
        topic = env.publish.topic.as_str(),
        packet_id = env.publish.packet_id.map(|p| p.get()),
        "message dropped without ack() or nack(): treated as a nack"
    );
    complete_fail(env, Failure::Dropped);
}

#[cold]
fn unreachable_envelope() -> ! {
    // A `Message` loses its envelope only in `ack`/`nack`/`Drop`, which consume it.
    #[allow(clippy::panic)]
    {
        panic!("mqtt-source: message used after completion")
    }
}
