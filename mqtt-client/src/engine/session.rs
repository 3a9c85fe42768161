//! The engine's session as a value: built from a stored [`Session`], reported to a
//! store as [`SessionChange`]s.
//!
//! The changes are recorded where the QoS flows make them (`outbound.rs`,
//! `inbound.rs`), always before the bytes that depend on them are written to
//! `tx`: a driver that applies [`Engine::poll_session_changes`] to its store before
//! it writes [`Engine::poll_transmit`] never lets the server hear of a state the
//! store does not have.

use mqtt_codec::QoS;

use super::{Engine, OutEntry, Stage};
use crate::options::Options;
use crate::session::{OutgoingMessage, Session, SessionChange};

impl<T> Engine<T> {
    /// An engine that resumes `session` (from a [`crate::session::SessionStore`])
    /// and records every later change of it for [`Engine::poll_session_changes`].
    ///
    /// Its outgoing messages are sent again after the first CONNACK, in their
    /// order, before anything new: with DUP = 1 (or PUBREL for released ones) if the
    /// server resumed the session, else as [`crate::SessionLostPolicy`] says. Its
    /// incoming identifiers awaiting release keep a resent QoS 2 PUBLISH from being
    /// handed over twice. Its client identifier replaces an empty configured one
    /// (a server-assigned identifier is reused, so that the session can resume).
    ///
    /// The first change recorded is the client identifier when the session had none.
    pub fn resume(opts: Options, session: Session) -> Self {
        let mut engine = Self::new(opts);
        engine.recording = true;
        let Session {
            client_id,
            outgoing,
            awaiting_release,
            subscriptions,
        } = session;
        match client_id {
            Some(id) if engine.client_id.is_empty() => engine.client_id = id,
            Some(_) => {}
            None if !engine.client_id.is_empty() => {
                let id = engine.client_id.clone();
                engine.record(|| SessionChange::ClientId(id));
            }
            None => {}
        }
        for message in outgoing {
            let OutgoingMessage { publish, released } = message;
            let Some(id) = publish.packet_id else {
                continue;
            };
            if publish.qos == QoS::AtMostOnce || !engine.ids.reserve(id) {
                // Not a flow (a damaged store), or the identifier twice: the first wins.
                continue;
            }
            let seq = engine.next_seq();
            let stage = if released && publish.qos == QoS::ExactlyOnce {
                Stage::Release
            } else {
                Stage::Publish
            };
            engine.out.insert(
                id.get(),
                OutEntry {
                    seq,
                    publish,
                    stage,
                    release_resent: false,
                    token: None,
                },
            );
        }
        for id in awaiting_release {
            engine.awaiting_release.insert(id);
        }
        engine.subscriptions = subscriptions;
        engine.subscriptions_changed();
        engine
    }

    /// The session as it stands: what a store that applied every change so far holds.
    pub fn session(&self) -> Session {
        let mut outgoing: Vec<_> = self.out.values().collect();
        outgoing.sort_by_key(|e| e.seq);
        let mut publishes = Vec::with_capacity(outgoing.len());
        for entry in outgoing {
            let mut publish = entry.publish.clone();
            publish.dup = false;
            publishes.push(OutgoingMessage {
                publish,
                released: entry.stage == Stage::Release,
            });
        }
        Session {
            client_id: (!self.client_id.is_empty()).then(|| self.client_id.clone()),
            outgoing: publishes,
            awaiting_release: self.awaiting_release.iter().collect(),
            subscriptions: self.subscriptions.clone(),
        }
    }

    /// Changes to the session since the last call, oldest first (only for an engine
    /// built with [`Engine::resume`]). Apply them to the store before writing what
    /// [`Engine::poll_transmit`] returns.
    pub fn poll_session_changes(&mut self) -> std::vec::Drain<'_, SessionChange> {
        self.changes.drain(..)
    }

    /// True when changes wait for [`Engine::poll_session_changes`].
    pub fn has_session_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Records a change if this engine records them; `change` is built only then.
    pub(super) fn record(&mut self, change: impl FnOnce() -> SessionChange) {
        if self.recording {
            self.changes.push(change());
        }
    }
}
