//! A consumer source (and a sink) for data pipelines on [`mqtt_client`]: each
//! message is acknowledged to the broker only when the pipeline says it is done.
//!
//! # Consuming as a stream
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use mqtt_source::{QoS, Source, SourceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SourceConfig::new(["mqtt://127.0.0.1:1883"])
//!     .with_client_id("ingest")
//!     .with_topic("plant/+/telemetry", QoS::AtLeastOnce);
//! let mut source = Source::connect(config).await?;
//! while let Some(message) = source.next().await {
//!     // ... write message.payload() somewhere durable ...
//!     let _ = message.ack(); // only now does the broker forget it
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # In batches
//!
//! ```no_run
//! use std::time::Duration;
//! use mqtt_source::{QoS, Source, SourceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SourceConfig::new(["mqtt://127.0.0.1:1883"])
//!     .with_client_id("ingest")
//!     .with_topic("plant/#", QoS::ExactlyOnce);
//! let mut source = Source::connect(config).await?;
//! loop {
//!     let batch = source.next_batch(100, Duration::from_millis(50)).await;
//!     if batch.is_empty() {
//!         break; // shut down
//!     }
//!     // ... insert the batch in one transaction ...
//!     for message in batch {
//!         let _ = message.ack();
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # With a handler, concurrently, until SIGTERM
//!
//! ```no_run
//! use mqtt_source::{QoS, Source, SourceConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SourceConfig::from_file("ingest.toml")?.with_signal_handling(true);
//! let source = Source::connect(config).await?;
//! let totals = source
//!     .run(16, |message| async move {
//!         // Ok acks it; Err nacks it (on_failure decides: redeliver, dead-letter, ack).
//!         if message.payload().is_empty() {
//!             return Err("empty payload");
//!         }
//!         Ok(())
//!     })
//!     .await;
//! println!("{}", serde_json::to_string(&totals)?);
//! # Ok(())
//! # }
//! ```
//!
//! # Decoded into typed records
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use mqtt_source::decode::Json;
//! use mqtt_source::{QoS, Source, SourceConfig};
//!
//! #[derive(serde::Deserialize)]
//! struct Reading { device: String, celsius: f64 }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SourceConfig::new(["mqtt://127.0.0.1:1883"])
//!     .with_client_id("ingest")
//!     .with_topic("sensors/#", QoS::AtLeastOnce)
//!     .with_dead_letter_topic("dlq/sensors");
//! let mut records = Source::connect(config).await?.decoded(Json::<Reading>::new());
//! while let Some(record) = records.next().await {
//!     println!("{}: {}", record.value.device, record.value.celsius);
//!     let _ = record.message.ack();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What it guarantees
//!
//! - **Acked after processing, in order.** `ack()` sends PUBACK (QoS 1) or
//!   PUBREC (QoS 2) only then, and acks reach the broker in the order the
//!   messages arrived on their connection, whatever order the pipeline finishes
//!   them in [MQTT-4.6.0-2]. A consumer killed before acking loses nothing: the
//!   broker sends every unacked message again on the resumed session (clean start
//!   is off and the session expiry a week by default).
//! - **QoS 2 completed once.** PUBREC is a QoS 2 message's ack, sent only by
//!   `ack()`, and a message whose PUBREC was sent is not handed over again (with
//!   a session store, [`SourceConfig::with_session_store`], not even after a
//!   crash). A message whose connection drops before its ack comes again on the
//!   next one, and only one of the copies can be acked.
//! - **Backpressure in the protocol.** At most `max_in_flight` QoS 1/2 messages
//!   are outstanding per connection (the Receive Maximum we advertise); a consumer
//!   that stops taking messages stops the broker, keep-alive goes on, and memory
//!   stays bounded.
//! - **Redelivery is real.** A nacked message is handed over again by the source
//!   itself, after `redelivery_delay` (doubling), still unacked at the broker, so
//!   a crash meanwhile loses nothing. After `max_deliveries` it is poison: it goes
//!   to the dead-letter topic (QoS 1, acked once the broker has it) or is acked,
//!   and the window moves on. See the crate README for why the source retries
//!   itself rather than reconnecting to make the broker resend.
//! - **Scaling out** is MQTT's shared subscriptions: `concurrency` connections
//!   `{client_id}_{i}` on `$share/{group}/{filter}`, and the same configuration
//!   on other machines with another [`Instance`].

/// The crate README's example, compiled as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The workspace README's examples (codec, client, source), compiled as doc
/// tests here, where the three crates are in scope.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadmeDoctests;

mod config;
pub mod decode;
mod load;
mod message;
pub mod metrics;
pub mod sink;
mod source;

pub use config::{
    AuthConfig, ConfigError, Instance, OnFailure, OnSuccess, Secret, SourceConfig, TlsConfig,
    Topic, WillConfig, DEFAULT_SESSION_EXPIRY,
};
pub use load::Format;
pub use message::{Completion, Failure, Message};
pub use metrics::{Metrics, MetricsSnapshot};
pub use mqtt_client as client;
pub use mqtt_client::{ProtocolVersion, QoS, RetainHandling};
pub use sink::{Outgoing, Sink, SinkError, SinkOptions, SinkReport};
pub use source::{check, Health, Source, SourceError, SourceHandle};
