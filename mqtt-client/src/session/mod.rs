//! The MQTT session as a value, the changes the engine reports to it, and where it
//! is kept between processes.
//!
//! # Model
//!
//! An MQTT session outlives its connections, and with [`SessionStore`] it
//! outlives the process too. What the client must remember of it is small
//! [MQTT-4.1.0-1]:
//!
//! - outgoing QoS 1/2 messages the server has not completed, with their packet
//!   identifiers, payloads and stage (PUBLISH sent, or PUBREC received and PUBREL
//!   sent);
//! - incoming QoS 2 packet identifiers acknowledged with PUBREC whose PUBREL has
//!   not arrived (so that a resent PUBLISH is not handed over twice);
//! - the subscriptions, to restore them when the server lost the session;
//! - the client identifier, when the server assigned it.
//!
//! The engine holds this [`Session`] in memory. Built with
//! [`Engine::resume`](crate::engine::Engine::resume), it also reports every change
//! as a [`SessionChange`], and the driver applies the changes to its store
//! **before** it writes the bytes that depend on them: a PUBLISH is stored before
//! it is sent, the PUBREC stage of an outgoing QoS 2 message before its PUBREL
//! leaves, an incoming QoS 2 identifier before its PUBREC leaves, and its release
//! before PUBCOMP. A process killed at any point therefore restarts from a session
//! at least as new as anything the server heard from it:
//!
//! ```text
//!   engine ──changes──> store.apply()  ──Ok──>  bytes written to the transport
//!            (same step)    (fsync per policy)
//! ```
//!
//! Stores: [`MemoryStore`] keeps the session in the process (to hand it from one
//! client to the next); [`FileStore`] keeps it in a crash-safe file. Without a
//! store (the default), the session lives in the engine alone and nothing is
//! recorded.

mod file;

use mqtt_codec::packet::{Publish, SubscriptionOptions};
use mqtt_codec::property::SubscribeProperties;
use mqtt_codec::string::MqttString;
use mqtt_codec::PacketId;

pub use file::{FileStore, FsyncPolicy};

/// An outgoing QoS 1/2 message the server has not completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The PUBLISH as first sent: packet identifier set, DUP 0.
    pub publish: Publish,
    /// QoS 2 only: PUBREC arrived and PUBREL was sent, so PUBREL is what is sent
    /// again on a resumed session (the payload is kept for a session the server lost).
    pub released: bool,
}

/// A subscription granted by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscription {
    /// The topic filter.
    pub filter: MqttString,
    /// Its options (QoS, No Local, Retain As Published, Retain Handling).
    pub options: SubscriptionOptions,
    /// The SUBSCRIBE properties it was granted with (Subscription Identifier,
    /// User Properties).
    pub properties: SubscribeProperties,
}

/// The client's half of an MQTT session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The client identifier the session belongs to; `None` until known (a client
    /// that asks the server to assign one learns it at the first CONNACK).
    pub client_id: Option<String>,
    /// Outgoing QoS 1/2 messages not completed, in the order they were first sent
    /// (the order they are sent again in).
    pub outgoing: Vec<OutgoingMessage>,
    /// Incoming QoS 2 packet identifiers acknowledged with PUBREC, PUBREL awaited.
    pub awaiting_release: Vec<PacketId>,
    /// Subscriptions, in the order they were first granted.
    pub subscriptions: Vec<SessionSubscription>,
}

/// One change to a [`Session`], as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionChange {
    /// The client identifier (the configured one, or the one the server assigned).
    ClientId(String),
    /// A QoS 1/2 PUBLISH is about to be sent for the first time.
    OutgoingAdded(Publish),
    /// PUBREC arrived for this outgoing QoS 2 message; PUBREL is about to be sent.
    OutgoingReleased(PacketId),
    /// This outgoing message's flow ended (acknowledged, refused by the server, or
    /// given up): it is not sent again.
    OutgoingCompleted(PacketId),
    /// An incoming QoS 2 message is about to be acknowledged with PUBREC.
    IncomingReceived(PacketId),
    /// PUBREL arrived for this incoming identifier; PUBCOMP is about to be sent.
    IncomingReleased(PacketId),
    /// The server granted this subscription (or changed its options).
    Subscribed(SessionSubscription),
    /// This subscription is gone (unsubscribed, or refused when restored).
    Unsubscribed(MqttString),
    /// The server kept no session (CONNACK Session Present 0): incoming
    /// identifiers awaiting release are forgotten, and released outgoing messages
    /// are sent again from PUBLISH as new messages.
    ServerSessionLost,
}

impl Session {
    /// Applies one change. Changes are idempotent where a crash could make a
    /// store see one twice (adding a message whose identifier is present replaces
    /// it; removing what is absent does nothing).
    pub fn apply(&mut self, change: &SessionChange) {
        match change {
            SessionChange::ClientId(id) => self.client_id = Some(id.clone()),
            SessionChange::OutgoingAdded(publish) => {
                let message = OutgoingMessage {
                    publish: publish.clone(),
                    released: false,
                };
                match self.outgoing_index(publish.packet_id) {
                    Some(i) => {
                        if let Some(slot) = self.outgoing.get_mut(i) {
                            *slot = message;
                        }
                    }
                    None => self.outgoing.push(message),
                }
            }
            SessionChange::OutgoingReleased(id) => {
                if let Some(m) = self
                    .outgoing_index(Some(*id))
                    .and_then(|i| self.outgoing.get_mut(i))
                {
                    m.released = true;
                }
            }
            SessionChange::OutgoingCompleted(id) => {
                if let Some(i) = self.outgoing_index(Some(*id)) {
                    self.outgoing.remove(i);
                }
            }
            SessionChange::IncomingReceived(id) => {
                if let Err(i) = self.awaiting_release.binary_search(id) {
                    self.awaiting_release.insert(i, *id);
                }
            }
            SessionChange::IncomingReleased(id) => {
                if let Ok(i) = self.awaiting_release.binary_search(id) {
                    self.awaiting_release.remove(i);
                }
            }
            SessionChange::Subscribed(sub) => {
                match self
                    .subscriptions
                    .iter_mut()
                    .find(|s| s.filter == sub.filter)
                {
                    Some(slot) => *slot = sub.clone(),
                    None => self.subscriptions.push(sub.clone()),
                }
            }
            SessionChange::Unsubscribed(filter) => {
                self.subscriptions.retain(|s| s.filter != *filter);
            }
            SessionChange::ServerSessionLost => {
                self.awaiting_release.clear();
                for m in &mut self.outgoing {
                    m.released = false;
                }
            }
        }
    }

    /// True when there is nothing to resume: no message in either direction and
    /// no subscription.
    pub fn is_empty(&self) -> bool {
        self.outgoing.is_empty()
            && self.awaiting_release.is_empty()
            && self.subscriptions.is_empty()
    }

    fn outgoing_index(&self, id: Option<PacketId>) -> Option<usize> {
        id?;
        self.outgoing.iter().position(|m| m.publish.packet_id == id)
    }
}

/// Why a session store failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the store failed.
    Io {
        /// What was being done, and on which file.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The stored session cannot be read back: the file was damaged (not by a
    /// crash, which the store recovers from by itself) or is not a session file.
    /// Nothing was changed; move the file aside to start a new session.
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// Byte offset of the first record that cannot be read.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The stored session belongs to another client identifier than the one
    /// configured.
    ClientIdMismatch {
        /// The identifier in the store.
        stored: String,
        /// The identifier in the options.
        configured: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io { context, source } => write!(f, "session store: {context}: {source}"),
            Self::Corrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "session store {} is damaged at byte {offset}: {reason}",
                path.display()
            ),
            Self::ClientIdMismatch { stored, configured } => write!(
                f,
                "the session store holds the session of client {stored:?}, not {configured:?}"
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where a session is kept between connections and processes.
///
/// The driver calls it on its own task, synchronously: [`SessionStore::apply`]
/// with the changes of one step before it writes the bytes of that step, so a
/// store's latency is the client's latency per batch (the file store's cost is in
/// `benches/STORE.md`). A store backed by the network can hand the work to a
/// thread of its own and wait for it; it must not return before the changes are
/// as durable as it promises.
///
/// If `apply` fails, the client writes nothing that depends on the changes: it
/// closes the connection and stops, with the error.
pub trait SessionStore: Send + 'static {
    /// The stored session ([`Session::default`] when there is none). Called once,
    /// when the client starts.
    fn load(&mut self) -> Result<Session, StoreError>;

    /// Records `changes`, in order, and returns once they are durable by the
    /// store's own policy.
    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError>;

    /// Makes everything applied so far durable; called when the client stops.
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A session kept in the process: survives the client, not the process.
///
/// Clones share one session, so a clone given to a new client resumes where the
/// last client stopped (its unfinished messages are sent again).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    session: std::sync::Arc<std::sync::Mutex<Session>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the session as it stands.
    pub fn session(&self) -> Session {
        self.session
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

impl SessionStore for MemoryStore {
    fn load(&mut self) -> Result<Session, StoreError> {
        Ok(self.session())
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for change in changes {
            session.apply(change);
        }
        Ok(())
    }
}

impl<S: SessionStore + ?Sized> SessionStore for Box<S> {
    fn load(&mut self) -> Result<Session, StoreError> {
        (**self).load()
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        (**self).apply(changes)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        (**self).flush()
    }
}
