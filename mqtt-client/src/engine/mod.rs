//! The sans-IO protocol engine: the whole MQTT session state, no sockets, no clock.
//!
//! [`Engine`] takes bytes, commands and the current time, and gives back bytes to
//! write, events and the next deadline. It never blocks, never reads a clock and
//! never draws randomness (the jitter of reconnection delays comes from a seeded
//! generator in [`crate::Options::with_jitter_seed`]). Its tests drive it with a scripted
//! broker and virtual time.
//!
//! # How a driver calls it
//!
//! ```text
//!   loop {
//!     1. no transport and engine.wants_transport(now)?  open one:
//!          ok  -> engine.handle_transport_open(now)        (writes CONNECT)
//!          err -> engine.handle_transport_error(now, error)
//!     2. inputs, in any order, each with the current time:
//!          bytes read          -> engine.handle_read(now, &mut buffer)
//!          a deadline passed   -> engine.handle_timeout(now)
//!          application acks    -> engine.ack(now, ack_id, reason, properties)
//!          commands            -> engine.publish / subscribe / unsubscribe / disconnect,
//!                                 each only when can_publish / can_request say so
//!     3. outputs, after every input:
//!          engine.poll_transmit()  -> write all of it to the transport
//!          engine.poll_event()     -> hand to the application
//!          engine.should_close_transport()
//!                                  -> flush, close the transport, then
//!                                     engine.handle_transport_closed(now)
//!        the transport failed (I/O error, EOF)
//!                                  -> engine.handle_transport_error(now, error)
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

mod alias;
mod auth;
mod connect;
mod ids;
mod inbound;
mod keepalive;
mod lifecycle;
mod outbound;
mod output;
mod session;
mod subids;
mod timer;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_codec::packet::{Decoder, Packet, Publish};
use mqtt_codec::property::AckProperties;
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::{PacketId, ProtocolVersion, QoS};

use crate::error::ConnectionError;
use crate::options::Options;
use crate::session::{SessionChange, SessionSubscription};

pub use auth::{AuthError, Authenticator};
pub(crate) use connect::disconnect_packet;
use ids::{IdMap, IdSet, PacketIds};
pub use output::{
    AckId, Event, PublishOutcome, Received, Refusal, Refused, ServerInfo, State, SubscribeOutcome,
    UnsubscribeOutcome,
};
pub use timer::Timer;
use timer::Timers;

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
    /// `None` for a message restored from a stored session: nobody in this
    /// process waits for it.
    token: Option<T>,
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
    /// How many servers the driver can dial, and which one the next (or current)
    /// connection uses: a failed attempt moves to the next at once, and the
    /// backoff applies once the round is back at `round_start`.
    servers: usize,
    server_index: usize,
    round_start: usize,
    /// The last refusal asked for the MQTT 3.1.1 fallback.
    fallback: bool,
    /// A Server Reference to follow on the next attempt, and how many were
    /// followed since the last accepted CONNACK (bounded: a loop of redirects
    /// falls back to the backoff).
    redirect: Option<String>,
    redirects: u32,
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
    /// Active subscriptions, kept to restore them when a session is lost.
    subscriptions: Vec<SessionSubscription>,
    /// Their Subscription Identifiers, indexed (`None`: to rebuild).
    sub_index: subids::SubscriptionIndex,
    /// The last Subscription Identifier the engine assigned itself.
    last_sub_id: u32,
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
    /// Topic aliases we set on this connection.
    out_aliases: alias::OutgoingAliases,
    // Session store.
    /// Whether session changes are recorded ([`Engine::resume`]).
    recording: bool,
    /// Changes not yet taken by [`Engine::poll_session_changes`].
    changes: Vec<SessionChange>,
    // Enhanced authentication.
    auth: Option<auth::AuthSlot>,
    exchange: auth::Exchange,
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
            servers: 1,
            server_index: 0,
            round_start: 0,
            fallback: false,
            redirect: None,
            redirects: 0,
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
            sub_index: None,
            last_sub_id: 0,
            incoming: VecDeque::new(),
            incoming_head: 0,
            incoming_ids: IdSet::new(),
            repeats: 0,
            awaiting_release: IdSet::new(),
            aliases: Vec::new(),
            out_aliases: alias::OutgoingAliases::default(),
            recording: false,
            changes: Vec::new(),
            auth: None,
            exchange: auth::Exchange::Idle,
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

    /// Tells the engine how many servers the driver can dial (1 by default;
    /// clamped to at least 1). Attempts go through them in turn: a connection
    /// attempt that fails before CONNACK is accepted moves to the next server at
    /// once, and the reconnect backoff applies between rounds. A round starts at
    /// the server that served last, so a client that lost its connection tries the
    /// same server first. `max_attempts` of [`crate::Backoff`] counts rounds.
    pub fn set_server_count(&mut self, servers: usize) {
        self.servers = servers.max(1);
        self.server_index %= self.servers;
        self.round_start %= self.servers;
    }

    /// The server the next connection attempt goes to (or the current connection
    /// uses): an index below [`Engine::set_server_count`]'s count.
    pub fn server_index(&self) -> usize {
        self.server_index
    }

    /// The Server Reference the next attempt should go to, when
    /// [`crate::Options::with_follow_redirects`] is on and the last connection
    /// ended with one. The driver maps it to a server it can dial and reports
    /// that with [`Engine::redirected`]; if it cannot, the attempt goes to
    /// [`Engine::server_index`] as usual.
    pub fn take_redirect(&mut self) -> Option<String> {
        self.redirect.take()
    }

    /// The driver follows a redirect to server `server` of a list that now holds
    /// `count` servers: that server serves the next attempt and starts its round.
    pub fn redirected(&mut self, server: usize, count: usize) {
        self.servers = count.max(1);
        self.server_index = server % self.servers;
        self.round_start = self.server_index;
    }

    /// True while a round of attempts over the servers is under way and the next
    /// attempt is due at once (another server of the list is left to try).
    pub fn round_in_progress(&self) -> bool {
        self.state == State::Idle && self.server_index != self.round_start
    }

    /// The connection counter (1 for the first transport).
    pub fn connection_number(&self) -> u64 {
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
    /// taken because [`Options::with_strict_receive_maximum`] is off.
    pub fn receive_maximum_overruns(&self) -> u64 {
        self.overruns
    }

    /// Packet identifiers in use.
    pub fn packet_ids_in_use(&self) -> u32 {
        self.ids.in_use()
    }

    /// Filters of the active subscriptions, in the order they were first granted.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.subscriptions.iter().map(|s| s.filter.as_str())
    }

    /// True when a transport should be opened now.
    pub fn wants_transport(&self, now: Instant) -> bool {
        self.state == State::Idle && self.timers.get(Timer::Reconnect).is_none_or(|at| at <= now)
    }

    /// True when the driver must flush and close the transport.
    pub fn should_close_transport(&self) -> bool {
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
}
