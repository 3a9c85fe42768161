//! An MQTT 3.1.1 / 5.0 client built on [`mqtt_codec`]: a sans-IO protocol engine
//! and a tokio driver.
//!
//! # Example
//!
//! ```no_run
//! use mqtt_client::session::{FileStore, FsyncPolicy};
//! use mqtt_client::{Client, Options, QoS, Tcp};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = Options::new("line-1-ingest")
//!     .with_clean_start(false)
//!     .with_session_expiry(3600) // the broker keeps the session for an hour
//!     .with_receive_maximum(64) // at most 64 unacked messages in ...
//!     .with_max_inflight(64); // ... and out
//! // The client's half of the session survives a crash of this process.
//! let store = FileStore::open("line-1-ingest.session", FsyncPolicy::Always)?;
//! let (client, mut incoming) = Client::builder(options)
//!     .session_store(store)
//!     .connect(Tcp::new("127.0.0.1:1883"))
//!     .await?;
//!
//! client.subscribe("plant/+/temperature", QoS::AtLeastOnce).await?;
//! let done = client.publish("plant/line1/status", QoS::AtLeastOnce, false, "up").await?;
//! done.await?; // PUBACK received
//!
//! while let Some(mut message) = incoming.recv().await {
//!     // ... store message.payload() durably ...
//!     // Only now may the broker forget it. (An error means the message came
//!     // on a connection since lost: the broker sends it again.)
//!     let _ = message.ack();
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Runnable programs for the common tasks are in `examples/`: `publish` (with
//! completion), `subscribe` (manual acks), `tls_client_cert`, `websocket`,
//! `request_response`, `connect` (any URL) and `pubsub`; `tests/tests/examples_client.rs`
//! runs them against a real mosquitto, and the other tests in `tests/` run the client
//! against mosquitto too.
//!
//! # Model
//!
//! ```text
//!   Client (cloneable) ──publish, subscribe (bounded)──┐
//!   Client ──────────────disconnect (own path)─────────┤
//!   AckToken ────────────acks (own path)───────────────┤
//!                                                      v
//!                              driver task: transport + one timer
//!                                                      │  bytes, now, commands
//!                                                      v
//!                              engine::Engine (sans-IO session state)
//!                                                      │  bytes, events, deadline
//!   Incoming <──messages (bounded)─────────────────────┘
//! ```
//!
//! - [`engine::Engine`] holds the whole session: packet identifiers, the outgoing
//!   and incoming in-flight tables, acks in arrival order, keep-alive, the
//!   reconnection schedule. It does no I/O, reads no clock and can be driven by
//!   any runtime; its tests use a scripted broker and virtual time.
//! - [`Client`] and [`Incoming`] are the application's side; a driver task spawned
//!   by [`Client::connect`] or [`Client::start`] runs the transport ([`Tcp`] here;
//!   or [`transport::Servers`] for URLs over TCP, TLS (feature `tls`) and
//!   WebSocket (feature `websocket`); anything else through the same [`Connector`] seam).
//!
//! What it guarantees:
//! - **Nothing queues without bound.** `publish` waits while the window — the
//!   minimum of the server's Receive Maximum and [`Options::with_max_inflight`] — and
//!   the request queue behind it are full. Incoming QoS 1/2 messages stop at the
//!   Receive Maximum we advertise while the application does not ack them; QoS 0
//!   messages beyond [`Options::with_qos0_backlog`] are dropped and counted (or stop the
//!   reading: [`Qos0Overflow`]). Reading goes on meanwhile, so acks behind a burst
//!   of messages are read, and so does keep-alive.
//! - **Acks are the application's.** Every QoS 1/2 message carries an [`AckToken`]
//!   (or is acked on arrival with [`Options::with_auto_ack`]). Acks travel on their own
//!   channel, are written in the order the messages arrived [MQTT-4.6.0-2/3]
//!   whatever order the application acks in, and a token from an earlier
//!   connection is never sent on a later one.
//! - **QoS 2 is exactly once to the application once acked** within a session:
//!   the message is handed over before PUBREC (the ack), and a resent PUBLISH
//!   awaiting PUBREL is acknowledged again, never handed over again
//!   [MQTT-4.3.3-10]. A message handed over but not acked when the connection
//!   drops comes again (its token is stale): the application had not taken it.
//! - **Reconnection keeps the session.** Exponential backoff with jitter
//!   ([`Backoff`]); on a resumed session, unacknowledged PUBLISHes are resent with
//!   DUP=1 and PUBRELs resent, in their original order, before anything new; on a
//!   lost session, active subscriptions are restored and unfinished messages
//!   follow [`SessionLostPolicy`]. Topic aliases never outlive their connection.
//! - **The session can outlive the process.** With a [`session::SessionStore`]
//!   ([`session::FileStore`]: a crash-safe file), every change of the session is
//!   stored before the packet that depends on it is sent; a client started again
//!   on the same store resumes: unfinished outgoing messages are sent again, and an
//!   incoming QoS 2 message acknowledged before the crash is not handed over again.
//! - **The peer cannot crash the client.** Malformed or forbidden input ends the
//!   connection with DISCONNECT and the matching reason code (0x81, 0x82, 0x93,
//!   0x94, 0x95), and the application gets a typed [`ConnectionError`] saying who
//!   closed the connection ([`Initiator`]) and why.
//!
//! # Connection lifecycle and QoS flows
//!
//! See [`engine`] for the state diagram, the QoS flows and the order in which a
//! driver calls the engine.

mod base64;
mod client;
mod driver;
pub mod engine;
mod error;
mod options;
#[cfg(feature = "scram")]
pub mod scram;
pub mod session;
mod subscription;
pub mod transport;

pub use client::{
    AckFailed, AckToken, Client, ClientBuilder, ConnectionEvent, Incoming, Message, PublishHandle,
};
pub use engine::{PublishOutcome, ServerInfo, SubscribeOutcome, UnsubscribeOutcome};
pub use error::{
    AckError, ConnectRefusal, ConnectionError, ErrorKind, Initiator, PublishError, RefusalKind,
    RequestError, ResponseError, Violation,
};
pub use mqtt_codec as codec;
pub use mqtt_codec::packet::RetainHandling;
pub use mqtt_codec::{PacketId, ProtocolVersion, QoS};
pub use options::{Backoff, Options, Qos0Overflow, SessionLostPolicy};
pub use subscription::{SubscribeRequest, Subscription, UnsubscribeRequest};
pub use transport::{Connector, Tcp};
