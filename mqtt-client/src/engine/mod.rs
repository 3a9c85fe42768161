//! The sans-IO protocol engine: the whole MQTT session state, no sockets, no clock.
//!
//! [`Engine`] takes bytes, commands and the current time, and gives back bytes to
//! write, events and the next deadline. It never blocks, never reads a clock and
//! never draws randomness (the jitter of reconnection delays comes from a seeded
//! generator in [`crate::Options::jitter_seed`]). Its tests drive it with a scripted
//! broker and virtual time.
//!
//! # How a driver calls it
//!
//! ```text
//!   loop {
//!     1. no transport and engine.wants_transport(now)?  open one:
//!          ok  -> engine.handle_transport_open(now)        (writes CONNECT)
//!          err -> engine.handle_transport_closed(now, Some(error))
//!     2. inputs, in any order, each with the current time:
//!          bytes read          -> engine.handle_read(now, &mut buffer)
//!          a deadline passed   -> engine.handle_timeout(now)
//!          application acks    -> engine.ack(now, ticket, reason, properties)
//!          commands            -> engine.publish / subscribe / unsubscribe / disconnect,
//!                                 each only when can_publish / can_request say so
//!     3. outputs, after every input:
//!          engine.poll_transmit()  -> write all of it to the transport
//!          engine.poll_event()     -> hand to the application
//!          engine.transport_done() -> flush, close the transport, then
//!                                     engine.handle_transport_closed(now, None)
//!        the transport failed (I/O error, EOF)
//!                                  -> engine.handle_transport_closed(now, Some(error))
//!     4. sleep until engine.poll_timeout(), input, or a command
//!   } until engine.is_closed()
//! ```
//!
//! Acks come before commands in step 2 so that an application's acknowledgement
//! never waits behind outgoing flow control. While the application does not take
//! messages, the driver stops reading the transport and says so with
//! [`Engine::set_reading_paused`]: PINGREQs are still sent, and the PINGRESP
//! deadline is suspended (the answer is unread, not missing).
//!
//! # Connection lifecycle
//!
//! ```text
//!             wants_transport            CONNACK 0x00
//!   Idle ------------------------> Connecting ---------> Connected
//!    ^   handle_transport_open        |                      |
//!    |                                | refused, timeout,    | DISCONNECT, keep-alive
//!    | backoff delay                  | violation            | timeout, violation,
//!    |                                v                      v I/O error
//!    +--------------------------- Closing <------------------+
//!    |   handle_transport_closed      |
//!    |                                | fatal refusal, attempts exhausted,
//!    |                                | application disconnect
//!    |                                v
//!    |                              Closed (terminal)
//! ```
//!
//! # QoS flows
//!
//! ```text
//!   outgoing QoS 1:  PUBLISH ->            <- PUBACK     handle completes
//!   outgoing QoS 2:  PUBLISH ->  <- PUBREC  PUBREL ->  <- PUBCOMP  handle completes
//!   incoming QoS 1:  <- PUBLISH  (application)  ack() -> PUBACK, in arrival order
//!   incoming QoS 2:  <- PUBLISH  (application)  ack() -> PUBREC  <- PUBREL  PUBCOMP ->
//! ```

mod ids;
mod inbound;
mod outbound;
mod timer;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_codec::packet::{Connect, Decoder, Packet, Publish, SubscriptionOptions};
use mqtt_codec::property::{
    AckProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, SubscribeProperties,
};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::{PacketId, ProtocolVersion, QoS};

use crate::error::{ConnectionError, PublishError, RequestError};
use crate::options::Options;

use ids::{IdMap, IdSet, PacketIds};
pub use timer::Timer;
use timer::Timers;

/// Where the engine stands in the connection lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No transport. One may be opened when [`Engine::wants_transport`] says so.
    Idle,
    /// Transport open, CONNECT written, CONNACK awaited.
    Connecting,
    /// CONNACK accepted: the session is live.
    Connected,
    /// The engine has ended the connection: the driver flushes what is left to
    /// transmit, closes the transport and calls [`Engine::handle_transport_closed`].
    Closing,
    /// Terminal: no further connection will be made.
    Closed,
}

/// What the engine tells the driver and the application.
#[derive(Debug)]
pub enum Event<T> {
    /// A CONNACK accepted the connection.
    Connected {
        /// Whether the server resumed an existing session.
        session_present: bool,
    },
    /// The connection ended; a reconnection follows unless [`Event::Closed`] does.
    ConnectionLost(ConnectionError),
    /// The next connection attempt will start after `delay`.
    Reconnecting {
        /// Attempts since the last established connection (see
        /// [`crate::Backoff::stable_after`]), this one included.
        attempt: u32,
        /// The delay before it.
        delay: Duration,
    },
    /// The client is closed for good: the error says why.
    Closed(ConnectionError),
    /// A message from the server.
    Message(Received),
    /// An outgoing PUBLISH finished its flow.
    PublishDone {
        /// The token given to [`Engine::publish`].
        token: T,
        /// The outcome.
        result: Result<PublishOutcome, PublishError>,
    },
    /// A SUBSCRIBE was answered.
    SubscribeDone {
        /// The token given to [`Engine::subscribe`].
        token: T,
        /// The SUBACK, per filter.
        result: Result<SubscribeOutcome, RequestError>,
    },
    /// An UNSUBSCRIBE was answered.
    UnsubscribeDone {
        /// The token given to [`Engine::unsubscribe`].
        token: T,
        /// The UNSUBACK, per filter.
        result: Result<UnsubscribeOutcome, RequestError>,
    },
    /// A subscription restored after a session was lost was refused by the server.
    ResubscribeFailed {
        /// The filter.
        filter: MqttString,
        /// The SUBACK reason code.
        reason: ReasonCode,
    },
}

/// A message received from the server, and how to acknowledge it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The PUBLISH (its topic resolved if it came with a Topic Alias).
    pub publish: Publish,
    /// For QoS 1/2: what to give [`Engine::ack`]. `None` for QoS 0 and in auto-ack mode.
    pub ack: Option<AckTicket>,
}

/// Identifies one received QoS 1/2 message on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckTicket {
    epoch: u64,
    seq: u64,
    packet_id: PacketId,
    qos: QoS,
}

impl AckTicket {
    /// The message's packet identifier.
    pub fn packet_id(&self) -> PacketId {
        self.packet_id
    }

    /// The message's QoS (1: PUBACK acknowledges it; 2: PUBREC).
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// The connection the message came on (counting from 1).
    pub fn connection(&self) -> u64 {
        self.epoch
    }
}

/// The end of a successful PUBLISH flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// The packet identifier (`None` for QoS 0).
    pub packet_id: Option<PacketId>,
    /// The reason code of PUBACK (QoS 1) or PUBCOMP (QoS 2); SUCCESS for QoS 0 and
    /// 3.1.1. May be 0x10 No matching subscribers.
    pub reason: ReasonCode,
    /// The properties of that ack.
    pub properties: AckProperties,
}

/// A SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The packet identifier used.
    pub packet_id: PacketId,
    /// Per filter, in request order: the granted QoS, or the failure reason code.
    pub results: Vec<Result<QoS, ReasonCode>>,
    /// The SUBACK's properties.
    pub properties: AckProperties,
}

/// An UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeOutcome {
    /// The packet identifier used.
    pub packet_id: PacketId,
    /// Per filter, in request order (MQTT 5); empty in 3.1.1, which has none.
    pub results: Vec<ReasonCode>,
    /// The UNSUBACK's properties.
    pub properties: AckProperties,
}

/// A command the engine could not take; the token comes back.
#[derive(Debug)]
pub struct Refused<T, E> {
    /// Why.
    pub error: E,
    /// The token given with the command.
    pub token: T,
}

/// What the server said about itself in CONNACK, with the protocol defaults
/// applied where a property was absent.
#[derive(Debug, Clone, Default)]
pub struct ServerInfo {
    /// Session Present of the last CONNACK.
    pub session_present: bool,
    /// The CONNACK properties as received (MQTT 5; empty in 3.1.1).
    pub properties: ConnAckProperties,
}

impl ServerInfo {
    /// Receive Maximum (65,535 when absent).
    pub fn receive_maximum(&self) -> u16 {
        self.properties.receive_maximum.unwrap_or(u16::MAX)
    }

    /// Maximum QoS (2 when absent).
    pub fn maximum_qos(&self) -> QoS {
        self.properties.maximum_qos.unwrap_or(QoS::ExactlyOnce)
    }

    /// Retain Available (true when absent).
    pub fn retain_available(&self) -> bool {
        self.properties.retain_available.unwrap_or(true)
    }

    /// Maximum Packet Size (`None`: only the protocol's limit).
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.properties.maximum_packet_size
    }

    /// Topic Alias Maximum (0 when absent).
    pub fn topic_alias_maximum(&self) -> u16 {
        self.properties.topic_alias_maximum.unwrap_or(0)
    }

    /// Wildcard Subscription Available (true when absent).
    pub fn wildcard_subscription_available(&self) -> bool {
        self.properties
            .wildcard_subscription_available
            .unwrap_or(true)
    }

    /// Subscription Identifiers Available (true when absent).
    pub fn subscription_identifiers_available(&self) -> bool {
        self.properties
            .subscription_identifiers_available
            .unwrap_or(true)
    }

    /// Shared Subscription Available (true when absent).
    pub fn shared_subscription_available(&self) -> bool {
        self.properties
            .shared_subscription_available
            .unwrap_or(true)
    }

    /// Server Keep Alive, if the server imposed one.
    pub fn server_keep_alive(&self) -> Option<u16> {
        self.properties.server_keep_alive
    }

    /// Assigned Client Identifier, if the server assigned one.
    pub fn assigned_client_identifier(&self) -> Option<&str> {
        self.properties
            .assigned_client_identifier
            .as_ref()
            .map(MqttString::as_str)
    }
}

/// Where an outgoing QoS 1/2 PUBLISH stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// PUBLISH sent (or to send): PUBACK or PUBREC awaited.
    Publish,
    /// PUBREC received, PUBREL sent (or to send): PUBCOMP awaited.
    Release,
}

#[derive(Debug)]
struct OutEntry<T> {
    /// Order of acceptance: resends follow it.
    seq: u64,
    publish: Publish,
    stage: Stage,
    /// The PUBREL was sent again on a resumed session.
    release_resent: bool,
    token: T,
}

/// A SUBSCRIBE or UNSUBSCRIBE awaiting its ack. `token` is `None` for the
/// subscriptions the engine restores by itself.
#[derive(Debug)]
struct Request<T> {
    seq: u64,
    /// The SUBSCRIBE or UNSUBSCRIBE, kept to send again after a reconnection.
    packet: Packet,
    token: Option<T>,
}

/// A received QoS 1/2 PUBLISH whose ack has not been written yet.
#[derive(Debug)]
struct InEntry {
    packet_id: PacketId,
    qos: QoS,
    ack: Option<(ReasonCode, AckProperties)>,
    /// A resent QoS 2 PUBLISH already PUBREC'd: its PUBREC again, in its place in
    /// the order, and nothing else (it is not a new message).
    repeat: bool,
}

/// An active subscription, kept to restore it when a session is lost.
#[derive(Debug, Clone)]
struct ActiveSubscription {
    options: SubscriptionOptions,
    properties: SubscribeProperties,
}

/// The MQTT session and connection state machine. See the [module](self) doc for
/// the order in which a driver calls it.
///
/// `T` is the driver's completion token for a publish, subscribe or unsubscribe
/// (a oneshot sender, say); the engine hands it back in the matching event.
///
/// Methods are grouped as: getters; `handle_*` inputs; application commands
/// (`publish`, `subscribe`, `unsubscribe`, `ack`, `disconnect`); `poll_*` outputs.
#[derive(Debug)]
pub struct Engine<T> {
    opts: Options,
    version: ProtocolVersion,
    state: State,
    /// Connection counter: incremented when a transport opens.
    epoch: u64,
    /// The error that ended (or is ending) the current connection.
    ending: Option<ConnectionError>,
    /// A local disconnect: once the transport is closed, the engine is Closed.
    closing_for_good: bool,
    /// Whether the last CONNECT asked for a clean start.
    sent_clean_start: bool,
    /// At least one CONNACK was accepted (the server may hold our session).
    had_session: bool,
    client_id: String,
    server: ServerInfo,
    decoder: Decoder,
    tx: BytesMut,
    last_tx: Option<Instant>,
    timers: Timers,
    ping_outstanding: bool,
    reading_paused: bool,
    /// Time the outstanding PINGRESP had left when reading was paused.
    ping_left: Option<Duration>,
    attempt: u32,
    /// When the current connection's CONNACK was accepted.
    connected_at: Option<Instant>,
    /// QoS 1/2 messages taken beyond our Receive Maximum (lenient mode).
    overruns: u64,
    rng: u64,
    events: VecDeque<Event<T>>,
    // Outgoing.
    ids: PacketIds,
    seq: u64,
    out: IdMap<OutEntry<T>>,
    /// Identifiers of `out` entries to (re)send once the window allows, in order.
    resend: VecDeque<u16>,
    requests: IdMap<Request<T>>,
    /// QoS 0 PUBLISHes in `tx`: complete when `tx` is handed to the driver.
    qos0_pending: Vec<T>,
    subscriptions: Vec<(MqttString, ActiveSubscription)>,
    // Incoming.
    incoming: VecDeque<InEntry>,
    /// Sequence number of `incoming`'s front.
    incoming_head: u64,
    /// Identifiers in `incoming` (repeats excepted).
    incoming_ids: IdSet,
    /// Entries of `incoming` that are repeats.
    repeats: usize,
    /// QoS 2 identifiers PUBREC'd and awaiting PUBREL (session state).
    awaiting_release: IdSet,
    /// Topic aliases the server set on this connection (index alias - 1).
    aliases: Vec<Option<MqttString>>,
}

impl<T> Engine<T> {
    /// An engine in state [`State::Idle`], wanting a transport.
    pub fn new(opts: Options) -> Self {
        let version = opts.version;
        let decoder = Decoder::new(version).with_max_packet_size(opts.maximum_packet_size);
        let client_id = opts.client_id.clone();
        // xorshift needs a non-zero state; every seed gives its own sequence.
        let rng = match opts.jitter_seed ^ 0x9E37_79B9_7F4A_7C15 {
            0 => 1,
            x => x,
        };
        Self {
            version,
            state: State::Idle,
            epoch: 0,
            ending: None,
            closing_for_good: false,
            sent_clean_start: opts.clean_start,
            had_session: false,
            client_id,
            server: ServerInfo::default(),
            decoder,
            tx: BytesMut::with_capacity(4096),
            last_tx: None,
            timers: Timers::default(),
            ping_outstanding: false,
            reading_paused: false,
            ping_left: None,
            attempt: 0,
            connected_at: None,
            overruns: 0,
            rng,
            events: VecDeque::new(),
            ids: PacketIds::new(),
            seq: 0,
            out: IdMap::default(),
            resend: VecDeque::new(),
            requests: IdMap::default(),
            qos0_pending: Vec::new(),
            subscriptions: Vec::new(),
            incoming: VecDeque::new(),
            incoming_head: 0,
            incoming_ids: IdSet::new(),
            repeats: 0,
            awaiting_release: IdSet::new(),
            aliases: Vec::new(),
            opts,
        }
    }

    // ----- getters -------------------------------------------------------------

    /// The lifecycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once the engine is [`State::Closed`].
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client identifier in use (the assigned one, once a server assigned it).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// What the server said in the last accepted CONNACK.
    pub fn server(&self) -> &ServerInfo {
        &self.server
    }

    /// The connection counter (1 for the first transport).
    pub fn connection(&self) -> u64 {
        self.epoch
    }

    /// Keep Alive in force: the server's if it set one, else ours (seconds).
    pub fn keep_alive(&self) -> u16 {
        self.server
            .server_keep_alive()
            .unwrap_or(self.opts.keep_alive)
    }

    /// The outgoing window: min(server Receive Maximum, our `max_inflight`).
    pub fn send_quota(&self) -> usize {
        usize::from(
            self.server
                .receive_maximum()
                .min(self.opts.max_inflight.max(1)),
        )
    }

    /// Outgoing QoS 1/2 PUBLISHes not yet complete (sent or waiting to be resent).
    pub fn inflight(&self) -> usize {
        self.out.len()
    }

    /// Incoming QoS 1/2 messages not yet acknowledged on the wire, plus QoS 2
    /// messages awaiting PUBREL: what counts against our Receive Maximum.
    pub fn incoming_inflight(&self) -> usize {
        self.incoming.len() - self.repeats + self.awaiting_release.len() as usize
    }

    /// QoS 1/2 messages the server sent beyond our Receive Maximum and that were
    /// taken because [`Options::strict_receive_maximum`] is off.
    pub fn receive_maximum_overruns(&self) -> u64 {
        self.overruns
    }

    /// Packet identifiers in use.
    pub fn packet_ids_in_use(&self) -> u32 {
        self.ids.in_use()
    }

    /// Filters of the active subscriptions, in the order they were first granted.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.subscriptions.iter().map(|(f, _)| f.as_str())
    }

    /// True when a transport should be opened now.
    pub fn wants_transport(&self, now: Instant) -> bool {
        self.state == State::Idle && self.timers.get(Timer::Reconnect).is_none_or(|at| at <= now)
    }

    /// True when the driver must flush and close the transport.
    pub fn transport_done(&self) -> bool {
        matches!(self.state, State::Closing | State::Closed)
    }

    /// True when `publish` with this QoS would be taken now: connected, nothing
    /// left to resend, and (QoS 1/2) a slot in the window and a free identifier.
    pub fn can_publish(&self, qos: QoS) -> bool {
        self.state == State::Connected
            && self.resend.is_empty()
            && (qos == QoS::AtMostOnce
                || (self.out.len() < self.send_quota() && self.ids.available()))
    }

    /// True when `subscribe`/`unsubscribe` would be taken now.
    pub fn can_request(&self) -> bool {
        self.state == State::Connected && self.ids.available()
    }

    // ----- outputs -------------------------------------------------------------

    /// Bytes written since the last [`Engine::poll_transmit`].
    pub fn pending_transmit(&self) -> usize {
        self.tx.len()
    }

    /// Bytes to write to the transport, if any. QoS 0 publishes in them complete.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.tx.is_empty() {
            return None;
        }
        for token in self.qos0_pending.drain(..) {
            self.events.push_back(Event::PublishDone {
                token,
                result: Ok(PublishOutcome {
                    packet_id: None,
                    reason: ReasonCode::SUCCESS,
                    properties: AckProperties::EMPTY,
                }),
            });
        }
        Some(self.tx.split().freeze())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// The earliest deadline: call [`Engine::handle_timeout`] when it has passed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

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

    /// The transport is gone. `error` is `None` when the engine asked for it
    /// ([`Engine::transport_done`]), else the I/O error or EOF that ended it (or
    /// the failure to open it).
    pub fn handle_transport_closed(&mut self, now: Instant, error: Option<ConnectionError>) {
        match self.state {
            State::Idle => {
                // Opening the transport failed.
                self.after_connection(now, error.unwrap_or(ConnectionError::TransportClosed));
            }
            State::Connecting | State::Connected => {
                self.after_connection(now, error.unwrap_or(ConnectionError::TransportClosed));
            }
            State::Closing => {
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
    fn after_connection(&mut self, now: Instant, error: ConnectionError) {
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
        for token in self.qos0_pending.drain(..) {
            self.events.push_back(Event::PublishDone {
                token,
                result: Err(PublishError::ConnectionLost),
            });
        }
        let fatal = self.closing_for_good || error.is_fatal() || !self.opts.reconnect.enabled;
        if was_up {
            self.events.push_back(Event::ConnectionLost(error.clone()));
        }
        if let Some(at) = self.connected_at.take() {
            if now.saturating_duration_since(at) >= self.opts.reconnect.stable_after {
                self.attempt = 0;
            }
        }
        self.attempt = self.attempt.saturating_add(1);
        let exhausted = self
            .opts
            .reconnect
            .max_attempts
            .is_some_and(|max| self.attempt > max);
        if fatal || exhausted {
            self.close_for_good(error);
            return;
        }
        let delay = self.backoff_delay(self.attempt);
        self.state = State::Idle;
        self.timers.set(Timer::Reconnect, now + delay);
        self.events.push_back(Event::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }

    /// Terminal: fails every unfinished command.
    fn close_for_good(&mut self, error: ConnectionError) {
        self.state = State::Closed;
        self.timers.stop_all();
        let mut out: Vec<_> = self.out.drain().map(|(_, e)| e).collect();
        out.sort_by_key(|e| e.seq);
        for e in out {
            self.events.push_back(Event::PublishDone {
                token: e.token,
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
    fn end_connection(&mut self, now: Instant, error: ConnectionError, reason: Option<ReasonCode>) {
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

    // ----- timers --------------------------------------------------------------

    /// Handles every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let fired: Vec<Timer> = self.timers.expired(now).collect();
        for timer in fired {
            match timer {
                Timer::ConnectTimeout => {
                    self.end_connection(now, ConnectionError::ConnectTimeout, None);
                }
                Timer::PingResponse => {
                    self.end_connection(now, ConnectionError::KeepAliveTimeout, None);
                }
                Timer::KeepAlive => self.keep_alive_due(now),
                Timer::Reconnect => {}
            }
        }
    }

    fn keep_alive_due(&mut self, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        let interval = Duration::from_secs(u64::from(self.keep_alive()));
        let due = self.last_tx.map_or(now, |t| t + interval);
        if due > now {
            self.timers.set(Timer::KeepAlive, due);
            return;
        }
        if !self.ping_outstanding {
            self.ping_outstanding = true;
            if self.reading_paused {
                self.ping_left = Some(self.opts.ping_timeout);
            } else {
                self.timers
                    .set(Timer::PingResponse, now + self.opts.ping_timeout);
            }
        }
        self.write(now, &Packet::PingReq);
    }

    /// The driver stopped (or resumed) reading the transport because the
    /// application is not taking messages. While paused, the PINGRESP deadline is
    /// suspended; on resume it starts again from `now`.
    pub fn set_reading_paused(&mut self, now: Instant, paused: bool) {
        if self.reading_paused == paused {
            return;
        }
        self.reading_paused = paused;
        if paused {
            // The time the PINGRESP had left is kept, not restarted: a server that
            // never answers is still found, after `ping_timeout` of reading time.
            self.ping_left = self
                .timers
                .get(Timer::PingResponse)
                .map(|at| at.saturating_duration_since(now));
            self.timers.stop(Timer::PingResponse);
        } else if let Some(left) = self.ping_left.take() {
            if self.ping_outstanding && self.state == State::Connected {
                self.timers.set(Timer::PingResponse, now + left);
            }
        }
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

    // ----- helpers -------------------------------------------------------------

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Encodes a packet the engine built itself into `tx`.
    fn write(&mut self, now: Instant, packet: &Packet) {
        // The engine only builds packets it has validated; an encode error here is
        // a bug in the engine, reported rather than panicking.
        if let Err(e) = packet.encode(self.version, &mut self.tx) {
            debug_assert!(false, "engine built an unencodable packet: {e}");
            return;
        }
        self.wrote(now);
    }

    /// Something was written: the keep-alive interval starts again.
    fn wrote(&mut self, now: Instant) {
        self.last_tx = Some(now);
        if self.state == State::Connected && self.keep_alive() > 0 {
            self.timers.set(
                Timer::KeepAlive,
                now + Duration::from_secs(u64::from(self.keep_alive())),
            );
        }
    }

    fn build_connect(&mut self) -> Result<Connect, ConnectionError> {
        // Reconnections resume the session (MQTT 5); a 3.1.1 client keeps its
        // configured Clean Session, since 0 there makes the session outlive the
        // connection, which the application did not ask for.
        let clean_start = match (self.version, self.had_session) {
            (ProtocolVersion::V5, true) => false,
            _ => self.opts.clean_start,
        };
        self.sent_clean_start = clean_start;
        connect_packet(&self.opts, &self.client_id, clean_start)
    }

    /// Checks that `options` make a CONNECT that encodes (identifiers and user
    /// name without U+0000 and within 65,535 bytes, a will and properties that
    /// fit), so that a misconfiguration is an error at start, not a silent loop.
    pub fn check_options(options: &Options) -> Result<(), ConnectionError> {
        connect_packet(options, &options.client_id, options.clean_start).map(|_| ())
    }
}

/// The DISCONNECT an application asks for, refused when the reason code is not
/// valid in DISCONNECT or the properties do not encode. 3.1.1's DISCONNECT has
/// neither: they are left out.
pub(crate) fn disconnect_packet(
    version: ProtocolVersion,
    reason: ReasonCode,
    properties: DisconnectProperties,
) -> Result<Packet, RequestError> {
    let (reason, properties) = match version {
        ProtocolVersion::V5 => (reason, properties),
        ProtocolVersion::V311 => (
            ReasonCode::NORMAL_DISCONNECTION,
            DisconnectProperties::EMPTY,
        ),
    };
    let packet = Packet::Disconnect(Box::new(mqtt_codec::packet::Disconnect {
        reason_code: reason,
        properties,
    }));
    packet.encoded_len(version).map_err(RequestError::Encode)?;
    Ok(packet)
}

/// The CONNECT `opts` ask for, validated by encoding it.
fn connect_packet(
    opts: &Options,
    client_id: &str,
    clean_start: bool,
) -> Result<Connect, ConnectionError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        ConnectionError::InvalidOptions(format!("{what}: {e}"))
    };
    let mut properties = ConnectProperties::EMPTY;
    if opts.version == ProtocolVersion::V5 {
        properties.session_expiry_interval = opts.session_expiry_interval;
        if opts.receive_maximum != u16::MAX {
            properties.receive_maximum = Some(opts.receive_maximum.max(1));
        }
        if opts.maximum_packet_size < mqtt_codec::MAX_PACKET_SIZE {
            properties.maximum_packet_size = Some(opts.maximum_packet_size.max(1));
        }
        if opts.topic_alias_maximum > 0 {
            properties.topic_alias_maximum = Some(opts.topic_alias_maximum);
        }
        if opts.request_response_information {
            properties.request_response_information = Some(true);
        }
        properties.request_problem_information = opts.request_problem_information;
        properties.user_properties.clone_from(&opts.user_properties);
    }
    let client_id = MqttString::try_from(client_id).map_err(|e| invalid("client id", &e))?;
    let username = match opts.username.as_deref() {
        Some(u) => Some(MqttString::try_from(u).map_err(|e| invalid("user name", &e))?),
        None => None,
    };
    let connect = Connect {
        protocol_version: opts.version,
        client_id,
        clean_start,
        keep_alive: opts.keep_alive,
        username,
        password: opts.password.clone(),
        will: opts.will.clone(),
        properties,
    };
    let packet = Packet::Connect(Box::new(connect));
    packet
        .encoded_len(opts.version)
        .map_err(|e| invalid("CONNECT", &e))?;
    match packet {
        Packet::Connect(connect) => Ok(*connect),
        _ => Err(ConnectionError::InvalidOptions("CONNECT".to_owned())),
    }
}
