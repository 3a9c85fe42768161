//! The connection lifecycle: opening and losing transports, the reconnection
//! schedule, and the end of the session.

use std::time::{Duration, Instant};

use mqtt_codec::packet::{Decoder, Packet};
use mqtt_codec::property::DisconnectProperties;
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::ProtocolVersion;

use super::connect::disconnect_packet;
use super::{Engine, Event, State, Timer};
use crate::error::{ConnectionError, PublishError, RequestError};

/// Server References followed in a row (without an accepted CONNACK between).
const MAX_REDIRECTS: u32 = 5;

impl<T> Engine<T> {
    // ----- transport lifecycle -------------------------------------------------

    /// A transport is open: writes CONNECT and starts the connect timeout.
    pub fn handle_transport_open(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.epoch += 1;
        self.state = State::Connecting;
        self.ending = None;
        self.tx.clear();
        self.ping_outstanding = false;
        self.reading_paused = false;
        self.decoder =
            Decoder::new(self.version).with_max_packet_size(self.opts.maximum_packet_size);
        self.aliases.clear();
        self.out_aliases.clear();
        self.timers.stop_all();
        self.timers
            .set(Timer::ConnectTimeout, now + self.opts.connect_timeout);
        match self.build_connect() {
            Ok(connect) => self.write(now, &Packet::Connect(Box::new(connect))),
            Err(error) => {
                // Nothing to send: the options cannot make a CONNECT. Fatal.
                self.ending = Some(error);
                self.closing_for_good = true;
                self.state = State::Closing;
                self.timers.stop_all();
            }
        }
    }

    /// The driver closed the transport, as [`Engine::should_close_transport`]
    /// asked: the connection ends with the reason the engine had for it.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        self.transport_gone(now, None);
    }

    /// The transport failed under the engine (an I/O error, EOF), or could not be
    /// opened: the connection ends with `error`.
    pub fn handle_transport_error(&mut self, now: Instant, error: ConnectionError) {
        self.transport_gone(now, Some(error));
    }

    fn transport_gone(&mut self, now: Instant, error: Option<ConnectionError>) {
        match self.state {
            // Idle: opening the transport failed.
            State::Idle | State::Connecting | State::Connected => {
                self.after_connection(now, error.unwrap_or(ConnectionError::TransportClosed));
            }
            State::Closing => {
                // The engine's own reason first: the transport closing is its effect.
                let error = self
                    .ending
                    .take()
                    .or(error)
                    .unwrap_or(ConnectionError::TransportClosed);
                self.after_connection(now, error);
            }
            State::Closed => {}
        }
    }

    /// The connection ended: clears what belonged to it and schedules the next
    /// attempt, or closes for good.
    pub(super) fn after_connection(&mut self, now: Instant, error: ConnectionError) {
        let was_up = self.state != State::Idle;
        self.tx.clear();
        self.timers.stop_all();
        self.ping_outstanding = false;
        // Unacked incoming messages of this connection: the server sends them again
        // on a resumed session; their tickets are now stale.
        self.incoming.clear();
        self.incoming_ids.clear();
        self.repeats = 0;
        self.aliases.clear();
        self.out_aliases.clear();
        for token in self.qos0_pending.drain(..) {
            self.events.push_back(Event::PublishDone {
                token,
                result: Err(PublishError::ConnectionLost),
            });
        }
        // A refusal of MQTT 5 with the fallback on, or a Server Reference to follow
        // (a bounded number of times), makes the next attempt at once.
        let fallback = std::mem::take(&mut self.fallback) && self.version == ProtocolVersion::V5;
        let redirect = error
            .server_reference()
            .filter(|_| self.opts.follow_redirects && self.redirects < MAX_REDIRECTS)
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned);
        let retry_now = fallback || redirect.is_some();
        let fatal = self.closing_for_good
            || (error.is_fatal() && !retry_now)
            || !self.opts.reconnect.enabled;
        if was_up {
            self.events.push_back(Event::ConnectionLost(error.clone()));
        }
        if retry_now && !fatal {
            if fallback {
                self.version = ProtocolVersion::V311;
                self.opts.version = ProtocolVersion::V311;
            }
            if redirect.is_some() {
                self.redirects += 1;
            }
            self.redirect = redirect;
            self.connected_at = None;
            self.state = State::Idle;
            self.timers.set(Timer::Reconnect, now);
            self.events.push_back(Event::Reconnecting {
                attempt: self.attempt,
                delay: Duration::ZERO,
                server: self.server_index,
            });
            return;
        }
        // A connection that reached CONNACK starts a new round at its server; an
        // attempt that did not moves on to the next server, at once unless the
        // round is over.
        let reached = self.connected_at.is_some();
        if let Some(at) = self.connected_at.take() {
            if now.saturating_duration_since(at) >= self.opts.reconnect.stable_after {
                self.attempt = 0;
            }
        }
        if reached {
            self.round_start = self.server_index;
        } else {
            self.server_index = (self.server_index + 1) % self.servers;
        }
        let round_over = reached || self.server_index == self.round_start;
        if round_over {
            self.attempt = self.attempt.saturating_add(1);
        }
        let exhausted = round_over
            && self
                .opts
                .reconnect
                .max_attempts
                .is_some_and(|max| self.attempt > max);
        if fatal || exhausted {
            self.close_for_good(error);
            return;
        }
        let delay = if round_over {
            self.backoff_delay(self.attempt)
        } else {
            Duration::ZERO
        };
        self.state = State::Idle;
        self.timers.set(Timer::Reconnect, now + delay);
        self.events.push_back(Event::Reconnecting {
            attempt: self.attempt,
            delay,
            server: self.server_index,
        });
    }

    /// Terminal: fails every unfinished command.
    fn close_for_good(&mut self, error: ConnectionError) {
        self.state = State::Closed;
        self.timers.stop_all();
        // The messages stay in the session (a store keeps them for the next client
        // that resumes it); only the waiting handles end.
        let mut out: Vec<_> = self
            .out
            .values_mut()
            .filter_map(|e| e.token.take().map(|t| (e.seq, t)))
            .collect();
        out.sort_by_key(|(seq, _)| *seq);
        for (_, token) in out {
            self.events.push_back(Event::PublishDone {
                token,
                result: Err(PublishError::Closed),
            });
        }
        self.resend.clear();
        let mut requests: Vec<_> = self.requests.drain().map(|(_, r)| r).collect();
        requests.sort_by_key(|r| r.seq);
        for r in requests {
            if let Some(token) = r.token {
                self.events.push_back(match r.packet {
                    Packet::Subscribe(_) => Event::SubscribeDone {
                        token,
                        result: Err(RequestError::Closed),
                    },
                    _ => Event::UnsubscribeDone {
                        token,
                        result: Err(RequestError::Closed),
                    },
                });
            }
        }
        self.events.push_back(Event::Closed(error));
    }

    /// The session store could not record the latest changes: the bytes written
    /// since the last [`Engine::poll_transmit`] may depend on them and are dropped
    /// unsent; the connection ends (MQTT 5: DISCONNECT 0x80) and the engine closes
    /// for good with `error`.
    pub fn handle_store_failure(&mut self, now: Instant, error: ConnectionError) {
        self.tx.clear();
        // The QoS 0 publishes in the dropped bytes were never sent.
        for token in self.qos0_pending.drain(..) {
            self.events.push_back(Event::PublishDone {
                token,
                result: Err(PublishError::ConnectionLost),
            });
        }
        self.changes.clear();
        self.recording = false;
        self.closing_for_good = true;
        match self.state {
            State::Connecting | State::Connected => {
                self.end_connection(now, error, Some(ReasonCode::UNSPECIFIED_ERROR));
            }
            State::Idle => self.close_for_good(error),
            State::Closing => self.ending = Some(error),
            State::Closed => {}
        }
    }

    /// The delay before attempt `attempt`, with jitter drawn from `[d/2, d]`.
    fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let nominal = self.opts.reconnect.nominal_delay(attempt);
        if !self.opts.reconnect.jitter {
            return nominal;
        }
        // xorshift64*: deterministic from the seed, good enough to spread a fleet.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64(0.5 + 0.5 * unit)
    }

    /// The engine ends the connection: `reason` is sent in a DISCONNECT (MQTT 5
    /// only: a 3.1.1 client just closes, as DISCONNECT there means a normal end).
    pub(super) fn end_connection(
        &mut self,
        now: Instant,
        error: ConnectionError,
        reason: Option<ReasonCode>,
    ) {
        if !matches!(self.state, State::Connecting | State::Connected) {
            return;
        }
        if let (Some(reason), ProtocolVersion::V5) = (reason, self.version) {
            let disconnect = mqtt_codec::packet::Disconnect {
                reason_code: reason,
                properties: DisconnectProperties::EMPTY,
            };
            self.write(now, &Packet::Disconnect(Box::new(disconnect)));
        }
        self.ending = Some(error);
        self.state = State::Closing;
        self.timers.stop_all();
    }

    // ----- application: disconnect ---------------------------------------------

    /// Ends the session on purpose: writes DISCONNECT (with `reason` and
    /// `properties` in MQTT 5) after everything already queued, then closes for
    /// good. Unfinished publishes and requests complete with `Closed`. A reason
    /// code that DISCONNECT cannot carry, or properties that do not encode, are
    /// refused and nothing changes.
    pub fn disconnect(
        &mut self,
        now: Instant,
        reason: ReasonCode,
        properties: DisconnectProperties,
    ) -> Result<(), RequestError> {
        // Refused before anything changes.
        let disconnect = disconnect_packet(self.version, reason, properties)?;
        self.closing_for_good = true;
        match self.state {
            State::Connected | State::Connecting => {
                self.write(now, &disconnect);
                self.ending = Some(ConnectionError::LocalDisconnect);
                self.state = State::Closing;
                self.timers.stop_all();
            }
            State::Idle => self.close_for_good(ConnectionError::LocalDisconnect),
            State::Closing | State::Closed => {}
        }
        Ok(())
    }
}
