//! The harness of the deterministic engine tests, in the manner of quinn-proto's
//! `Pair`: an [`Engine`] with `u32` tokens (so that tests tell completions apart),
//! a scripted broker, and virtual time. No sockets, no sleeps, no real clock beyond
//! the one `Instant` taken as the origin.
//!
//! - What the engine writes is decoded by the broker side into [`Harness::sent`],
//!   in order. Loss is discarding from it (or never answering); duplication is
//!   delivering the same packet twice.
//! - What the broker says is encoded with the codec and fed to
//!   [`Engine::handle_read`] ([`Harness::deliver`]), or fed as raw bytes
//!   ([`Harness::deliver_bytes`]) to test malformed input.
//! - Time moves only through [`Harness::advance`], which stops at every deadline
//!   the engine asks for, in order, and calls [`Engine::handle_timeout`] there.
//! - The transport is opened, dropped and closed explicitly, as a driver would
//!   ([`Harness::open`], [`Harness::drop_transport`], [`Harness::close_if_done`]).
//!
//! Every input is followed by a flush of the engine's output into `sent`, as the
//! driver writes everything after every input.

// Each test binary uses its own part of the harness.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::{HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqtt_client::engine::{
    AckId, Engine, Event, PublishOutcome, Received, Refused, State, SubscribeOutcome,
    UnsubscribeOutcome,
};
use mqtt_client::session::Session;
use mqtt_client::{
    AckError, Backoff, ConnectionError, Options, PacketId, ProtocolVersion, PublishError, QoS,
    RequestError,
};
use mqtt_codec::packet::{
    ConnAck, Connect, Decoder, Disconnect, Packet, PubAck, Publish, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
use mqtt_codec::property::{
    AckProperties, ConnAckProperties, DisconnectProperties, PublishProperties, SubscribeProperties,
    UnsubscribeProperties,
};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;

/// `assert!(matches!(..))` that prints the value when it does not match.
macro_rules! assert_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $value {
            $pattern $(if $guard)? => {}
            ref other => panic!(
                "expected {}, got {:#?}",
                stringify!($pattern $(if $guard)?),
                other
            ),
        }
    };
}
pub(crate) use assert_matches;

/// One second.
pub(crate) const SEC: Duration = Duration::from_secs(1);
/// One millisecond.
pub(crate) const MS: Duration = Duration::from_millis(1);

/// Options for tests: the given version, client id `client-1`, and a reconnection
/// schedule without jitter (1 s, doubling, at most 60 s) so delays are exact.
pub(crate) fn options(version: ProtocolVersion) -> Options {
    Options::new("client-1")
        .with_version(version)
        .with_reconnect(
            Backoff::default()
                .with_initial(SEC)
                .with_max(Duration::from_secs(60))
                .with_multiplier(2.0)
                .with_max_attempts(None)
                .with_jitter(false)
                .with_enabled(true)
                // Every accepted CONNACK starts the count again (tests of
                // `stable_after` set it themselves).
                .with_stable_after(Duration::ZERO),
        )
}

/// The engine, the scripted broker's view of the wire, and the virtual clock.
pub(crate) struct Harness {
    /// The engine under test.
    pub(crate) engine: Engine<u32>,
    /// The protocol version, for encoding and decoding on the broker side.
    pub(crate) version: ProtocolVersion,
    /// The origin of virtual time.
    pub(crate) start: Instant,
    /// The current virtual time.
    pub(crate) now: Instant,
    /// Everything the engine wrote on the current transport, decoded, oldest first.
    pub(crate) sent: VecDeque<Packet>,
    /// The broker's decoder of the client's bytes (one per transport).
    broker: Decoder,
    /// Bytes given to the engine that it has not consumed (an incomplete packet).
    rx: BytesMut,
    next_token: u32,
    /// For an engine built with [`Engine::resume`]: the store, as a driver keeps it
    /// (every change applied before the bytes of the same step are taken).
    pub(crate) store: Option<Session>,
}

impl Harness {
    /// An idle engine with these options.
    pub(crate) fn new(opts: Options) -> Self {
        let version = opts.version();
        let start = Instant::now();
        Self {
            engine: Engine::new(opts),
            version,
            start,
            now: start,
            sent: VecDeque::new(),
            broker: Decoder::new(version),
            rx: BytesMut::new(),
            next_token: 1,
            store: None,
        }
    }

    /// An idle engine resuming `session`, its changes applied to [`Harness::store`]
    /// (which starts as `session`) at every flush, and checked there: the store
    /// always equals [`Engine::session`], and every packet that depends on the
    /// session is sent only once the store has what it depends on.
    pub(crate) fn resumed(opts: Options, session: Session) -> Self {
        let mut h = Self::new(opts.clone());
        h.engine = Engine::resume(opts, session.clone());
        h.store = Some(session);
        h.flush();
        h
    }

    /// An engine with [`options`] for `version`, connected (clean session, empty
    /// CONNACK), its `Connected` event drained.
    pub(crate) fn connected(version: ProtocolVersion) -> Self {
        Self::connected_with(options(version), ConnAckProperties::EMPTY)
    }

    /// An engine with these options, connected with a CONNACK carrying `props`
    /// (session not present), its `Connected` event drained.
    pub(crate) fn connected_with(opts: Options, props: ConnAckProperties) -> Self {
        let mut h = Self::new(opts);
        h.open();
        h.connack(false, props);
        let events = h.events();
        assert_matches!(
            events.as_slice(),
            [Event::Connected {
                session_present: false
            }]
        );
        h.assert_nothing_sent();
        h
    }

    /// Virtual time elapsed since the origin.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// A fresh completion token.
    pub(crate) fn token(&mut self) -> u32 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    // ----- time ------------------------------------------------------------------

    /// Moves time forward by `by`, stopping at every deadline on the way (in
    /// order) to call `handle_timeout` there and flush.
    pub(crate) fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        self.advance_until(until);
    }

    /// Moves time forward to `until` (see [`Harness::advance`]).
    pub(crate) fn advance_until(&mut self, until: Instant) {
        assert!(until >= self.now, "virtual time never goes back");
        for _ in 0..100_000 {
            match self.engine.poll_timeout() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    self.engine.handle_timeout(self.now);
                    self.flush();
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
        panic!("a deadline at or before now keeps being armed again");
    }

    /// Moves time to the next deadline (which must exist) and handles it.
    pub(crate) fn advance_to_next_deadline(&mut self) -> Duration {
        let at = self.engine.poll_timeout().expect("a deadline is armed");
        let waited = at.saturating_duration_since(self.now);
        self.advance_until(at);
        waited
    }

    /// Moves time to the reconnection deadline, checking that the engine does not
    /// want a transport a moment before it and does at it. Returns the wait.
    pub(crate) fn advance_to_reconnect(&mut self) -> Duration {
        assert_eq!(self.engine.state(), State::Idle);
        let at = self.engine.poll_timeout().expect("a reconnection deadline");
        if at > self.now {
            assert!(
                !self.engine.wants_transport(at - Duration::from_nanos(1)),
                "wants a transport before its deadline"
            );
        }
        let waited = at.saturating_duration_since(self.now);
        self.advance_until(at);
        assert!(self.engine.wants_transport(self.now));
        waited
    }

    // ----- transport -------------------------------------------------------------

    /// Opens a transport (the engine must want one) and returns the CONNECT the
    /// engine wrote on it, which must be all it wrote. What the previous transport
    /// carried and was not taken is gone with it.
    pub(crate) fn open(&mut self) -> Connect {
        assert!(
            self.engine.wants_transport(self.now),
            "the engine does not want a transport now (state {:?})",
            self.engine.state()
        );
        self.sent.clear();
        self.rx.clear();
        self.broker = Decoder::new(self.version);
        self.engine.handle_transport_open(self.now);
        self.flush();
        assert_eq!(self.engine.state(), State::Connecting);
        let connect = match self.sent.pop_front() {
            Some(Packet::Connect(connect)) => *connect,
            other => panic!("expected CONNECT, got {other:?}"),
        };
        self.assert_nothing_sent();
        connect
    }

    /// The broker accepts the connection.
    pub(crate) fn connack(&mut self, session_present: bool, properties: ConnAckProperties) {
        self.deliver(ConnAck {
            session_present,
            reason_code: ReasonCode::SUCCESS,
            properties,
        });
    }

    /// Waits for the reconnection deadline, opens a transport and accepts it;
    /// returns the CONNECT. Events are left for the test.
    pub(crate) fn reconnect(
        &mut self,
        session_present: bool,
        properties: ConnAckProperties,
    ) -> Connect {
        self.advance_to_reconnect();
        let connect = self.open();
        self.connack(session_present, properties);
        connect
    }

    /// The transport fails underneath (EOF, I/O error): what was written on it and
    /// not taken from `sent` stays there for the test to inspect or discard.
    pub(crate) fn drop_transport(&mut self, error: ConnectionError) {
        self.engine.handle_transport_error(self.now, error);
        self.flush();
    }

    /// Drops the transport with a connection reset and drains the events, checking
    /// they are `ConnectionLost` then `Reconnecting`.
    pub(crate) fn lose_connection(&mut self) {
        self.drop_transport(reset());
        let events = self.events();
        assert_matches!(
            events.as_slice(),
            [
                Event::ConnectionLost(ConnectionError::Io(_)),
                Event::Reconnecting { .. }
            ]
        );
    }

    /// What a driver does once `should_close_transport()`: it has flushed everything (the
    /// harness always has), closes the transport and tells the engine. Returns
    /// whether it did.
    pub(crate) fn close_if_done(&mut self) -> bool {
        if self.engine.state() != State::Closing {
            return false;
        }
        assert!(self.engine.should_close_transport());
        self.engine.handle_transport_closed(self.now);
        self.flush();
        true
    }

    // ----- broker to client ------------------------------------------------------

    /// The broker sends a packet: encoded with the codec, read by the engine.
    pub(crate) fn deliver(&mut self, packet: impl Into<Packet>) {
        let packet = packet.into();
        let mut buf = BytesMut::new();
        packet
            .encode(self.version, &mut buf)
            .unwrap_or_else(|e| panic!("the test's packet does not encode: {e} ({packet:?})"));
        self.deliver_bytes(&buf);
    }

    /// The broker sends raw bytes (which may hold part of a packet, several, or
    /// garbage).
    pub(crate) fn deliver_bytes(&mut self, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
        self.engine.handle_read(self.now, &mut self.rx);
        self.flush();
    }

    // ----- outputs ---------------------------------------------------------------

    /// Takes what the engine has to transmit and decodes it into `sent`.
    pub(crate) fn flush(&mut self) {
        if let Some(store) = self.store.as_mut() {
            for change in self.engine.poll_session_changes() {
                store.apply(&change);
            }
        } else {
            assert!(
                !self.engine.has_session_changes(),
                "an engine built with `new` records nothing"
            );
        }
        while let Some(bytes) = self.engine.poll_transmit() {
            let mut buf = BytesMut::from(&bytes[..]);
            loop {
                match self.broker.decode(&mut buf) {
                    Ok(Some(packet)) => {
                        if let Some(store) = &self.store {
                            check_stored_before_sent(store, &packet, self.version);
                        }
                        self.sent.push_back(packet);
                    }
                    Ok(None) => break,
                    Err(e) => panic!("the engine wrote an undecodable packet: {e}"),
                }
            }
            assert!(buf.is_empty(), "the engine wrote part of a packet");
        }
        if let Some(store) = &self.store {
            assert_eq!(
                store,
                &self.engine.session(),
                "the store differs from the engine's session"
            );
        }
    }

    /// The engine "crashes": what a store had is all that is left, and a new engine
    /// resumes from it (with the same options), idle. What was sent and the
    /// events are discarded.
    pub(crate) fn crash_and_resume(&mut self, opts: Options) {
        let store = self.store.clone().expect("a harness built with `resumed`");
        let now = self.now;
        *self = Self::resumed(opts, store);
        self.start = now;
        self.now = now;
    }

    /// Takes everything written so far.
    pub(crate) fn take_sent(&mut self) -> Vec<Packet> {
        self.sent.drain(..).collect()
    }

    /// Takes the oldest packet written; there must be one.
    pub(crate) fn next_sent(&mut self) -> Packet {
        self.sent.pop_front().expect("the engine wrote nothing")
    }

    /// Discards what was written (the packets are lost on the way).
    pub(crate) fn lose_sent(&mut self) {
        self.sent.clear();
    }

    /// Asserts the engine wrote nothing.
    pub(crate) fn assert_nothing_sent(&mut self) {
        assert!(
            self.sent.is_empty(),
            "expected nothing written, got {:#?}",
            self.sent
        );
    }

    /// Drains the events.
    pub(crate) fn events(&mut self) -> Vec<Event<u32>> {
        std::iter::from_fn(|| self.engine.poll_event()).collect()
    }

    /// Asserts there is no event.
    pub(crate) fn assert_no_events(&mut self) {
        let events = self.events();
        assert!(events.is_empty(), "expected no event, got {events:#?}");
    }

    /// Drains the events, which must all be `PublishDone`.
    pub(crate) fn publish_done(&mut self) -> Vec<(u32, Result<PublishOutcome, PublishError>)> {
        self.events()
            .into_iter()
            .map(|e| match e {
                Event::PublishDone { token, result } => (token, result),
                other => panic!("expected PublishDone, got {other:#?}"),
            })
            .collect()
    }

    /// Drains the events, which must all be messages.
    pub(crate) fn messages(&mut self) -> Vec<Received> {
        self.events()
            .into_iter()
            .map(|e| match e {
                Event::Message(m) => m,
                other => panic!("expected Message, got {other:#?}"),
            })
            .collect()
    }

    /// Drains the events, which must be exactly one message, and returns its ticket
    /// (which must exist).
    pub(crate) fn ticket(&mut self) -> AckId {
        let mut messages = self.messages();
        assert_eq!(messages.len(), 1, "expected one message, got {messages:#?}");
        messages
            .remove(0)
            .ack
            .expect("the message has an ack ticket")
    }

    /// Drains the events, which must be exactly one `SubscribeDone`.
    pub(crate) fn subscribe_done(&mut self) -> (u32, Result<SubscribeOutcome, RequestError>) {
        let mut events = self.events();
        assert_eq!(events.len(), 1, "expected one event, got {events:#?}");
        match events.remove(0) {
            Event::SubscribeDone { token, result } => (token, result),
            other => panic!("expected SubscribeDone, got {other:#?}"),
        }
    }

    /// Drains the events, which must be exactly one `UnsubscribeDone`.
    pub(crate) fn unsubscribe_done(&mut self) -> (u32, Result<UnsubscribeOutcome, RequestError>) {
        let mut events = self.events();
        assert_eq!(events.len(), 1, "expected one event, got {events:#?}");
        match events.remove(0) {
            Event::UnsubscribeDone { token, result } => (token, result),
            other => panic!("expected UnsubscribeDone, got {other:#?}"),
        }
    }

    /// Closes the transport the engine is ending and returns the error of the
    /// `ConnectionLost` event, checking a `Reconnecting` event follows.
    pub(crate) fn close_and_expect_reconnect(&mut self) -> ConnectionError {
        assert!(
            self.close_if_done(),
            "the engine is not ending the connection"
        );
        let mut events = self.events();
        assert_eq!(
            events.len(),
            2,
            "expected ConnectionLost, Reconnecting: {events:#?}"
        );
        assert_matches!(events[1], Event::Reconnecting { .. });
        match events.remove(0) {
            Event::ConnectionLost(e) => e,
            other => panic!("expected ConnectionLost, got {other:#?}"),
        }
    }

    // ----- commands --------------------------------------------------------------

    /// Publishes; the engine must take it. Returns the token and the identifier.
    pub(crate) fn publish(&mut self, publish: Publish) -> (u32, Option<PacketId>) {
        let token = self.token();
        let qos = publish.qos;
        assert!(
            self.engine.can_publish(qos),
            "can_publish({qos:?}) is false"
        );
        let id = match self.engine.publish(self.now, publish, token) {
            Ok(id) => id,
            Err(r) => panic!("publish refused: {:?}", r.error),
        };
        self.flush();
        (token, id)
    }

    /// Publishes at QoS 1/2 and returns the token and the (numeric) identifier.
    pub(crate) fn publish_id(&mut self, publish: Publish) -> (u32, u16) {
        let (token, id) = self.publish(publish);
        (
            token,
            id.expect("a QoS 1/2 publish has an identifier").get(),
        )
    }

    /// Offers a publish, whatever `can_publish` says.
    pub(crate) fn try_publish(
        &mut self,
        publish: Publish,
    ) -> Result<Option<PacketId>, Refused<u32, PublishError>> {
        let token = self.token();
        let result = self.engine.publish(self.now, publish, token);
        self.flush();
        result
    }

    /// Subscribes to filters, each with only a QoS, no properties; must be taken.
    pub(crate) fn subscribe(&mut self, filters: &[(&str, QoS)]) -> (u32, u16) {
        self.subscribe_with(filters, SubscribeProperties::EMPTY)
    }

    /// Subscribes with properties; must be taken.
    pub(crate) fn subscribe_with(
        &mut self,
        filters: &[(&str, QoS)],
        properties: SubscribeProperties,
    ) -> (u32, u16) {
        let token = self.token();
        match self
            .engine
            .subscribe(self.now, sub_filters(filters), properties, token)
        {
            Ok(id) => {
                self.flush();
                (token, id.get())
            }
            Err(r) => panic!("subscribe refused: {:?}", r.error),
        }
    }

    /// Unsubscribes; must be taken.
    pub(crate) fn unsubscribe(&mut self, filters: &[&str]) -> (u32, u16) {
        let token = self.token();
        let filters = filters.iter().map(|f| topic(f)).collect();
        match self
            .engine
            .unsubscribe(self.now, filters, UnsubscribeProperties::EMPTY, token)
        {
            Ok(id) => {
                self.flush();
                (token, id.get())
            }
            Err(r) => panic!("unsubscribe refused: {:?}", r.error),
        }
    }

    /// Acknowledges a message with success.
    pub(crate) fn ack(&mut self, ticket: AckId) -> Result<(), AckError> {
        self.ack_with(ticket, ReasonCode::SUCCESS, AckProperties::EMPTY)
    }

    /// Acknowledges a message with a reason code and properties.
    pub(crate) fn ack_with(
        &mut self,
        ticket: AckId,
        reason: ReasonCode,
        properties: AckProperties,
    ) -> Result<(), AckError> {
        let result = self.engine.ack(self.now, ticket, reason, properties);
        self.flush();
        result
    }

    /// The application disconnects.
    pub(crate) fn disconnect(&mut self, reason: ReasonCode, properties: DisconnectProperties) {
        self.engine
            .disconnect(self.now, reason, properties)
            .expect("a valid DISCONNECT");
        self.flush();
    }

    /// The identifiers of the QoS 1/2 PUBLISHes, SUBSCRIBEs and UNSUBSCRIBEs in
    /// `packets`.
    pub(crate) fn ids_of(packets: &[Packet]) -> HashSet<u16> {
        packets
            .iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => p.packet_id.map(PacketId::get),
                Packet::Subscribe(s) => Some(s.packet_id.get()),
                Packet::Unsubscribe(u) => Some(u.packet_id.get()),
                _ => None,
            })
            .collect()
    }
}

// ----- packets -----------------------------------------------------------------------

/// A packet identifier.
pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("identifiers start at 1")
}

/// A topic name or filter.
pub(crate) fn topic(s: &str) -> MqttString {
    MqttString::try_from(s).expect("a valid MQTT string")
}

/// A PUBLISH as the application gives it to the engine (no identifier).
pub(crate) fn message(topic_name: &str, qos: QoS, payload: &'static [u8]) -> Publish {
    Publish {
        qos,
        topic: topic(topic_name),
        payload: Bytes::from_static(payload),
        ..Publish::default()
    }
}

/// A PUBLISH with an identifier (as the broker sends it, or as the engine writes it).
pub(crate) fn publish(id: u16, topic_name: &str, qos: QoS, payload: &'static [u8]) -> Publish {
    Publish {
        packet_id: Some(pid(id)),
        ..message(topic_name, qos, payload)
    }
}

/// The same PUBLISH with DUP set.
pub(crate) fn dup(publish: Publish) -> Publish {
    Publish {
        dup: true,
        ..publish
    }
}

/// A PUBLISH with these properties.
pub(crate) fn with_properties(publish: Publish, properties: PublishProperties) -> Publish {
    Publish {
        properties: Some(Box::new(properties)),
        ..publish
    }
}

fn ack_packet(id: u16, reason_code: ReasonCode, properties: AckProperties) -> PubAck {
    PubAck {
        packet_id: pid(id),
        reason_code,
        properties,
    }
}

/// PUBACK, success.
pub(crate) fn puback(id: u16) -> Packet {
    Packet::PubAck(PubAck::new(pid(id)))
}

/// PUBACK with a reason code and properties.
pub(crate) fn puback_rc(id: u16, reason: ReasonCode, properties: AckProperties) -> Packet {
    Packet::PubAck(ack_packet(id, reason, properties))
}

/// PUBREC, success.
pub(crate) fn pubrec(id: u16) -> Packet {
    Packet::PubRec(PubAck::new(pid(id)))
}

/// PUBREC with a reason code and properties.
pub(crate) fn pubrec_rc(id: u16, reason: ReasonCode, properties: AckProperties) -> Packet {
    Packet::PubRec(ack_packet(id, reason, properties))
}

/// PUBREL, success.
pub(crate) fn pubrel(id: u16) -> Packet {
    Packet::PubRel(PubAck::new(pid(id)))
}

/// PUBREL with a reason code.
pub(crate) fn pubrel_rc(id: u16, reason: ReasonCode) -> Packet {
    Packet::PubRel(ack_packet(id, reason, AckProperties::EMPTY))
}

/// PUBCOMP, success.
pub(crate) fn pubcomp(id: u16) -> Packet {
    Packet::PubComp(PubAck::new(pid(id)))
}

/// PUBCOMP with a reason code and properties.
pub(crate) fn pubcomp_rc(id: u16, reason: ReasonCode, properties: AckProperties) -> Packet {
    Packet::PubComp(ack_packet(id, reason, properties))
}

/// Ack properties with only a Reason String.
pub(crate) fn reason_string(s: &str) -> AckProperties {
    AckProperties {
        reason_string: Some(topic(s)),
        ..AckProperties::EMPTY
    }
}

/// Subscription filters with only a QoS.
pub(crate) fn sub_filters(filters: &[(&str, QoS)]) -> Vec<(MqttString, SubscriptionOptions)> {
    filters
        .iter()
        .map(|(f, q)| (topic(f), SubscriptionOptions::qos(*q)))
        .collect()
}

/// A SUBSCRIBE as the engine writes it.
pub(crate) fn subscribe(
    id: u16,
    filters: &[(&str, QoS)],
    properties: SubscribeProperties,
) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        properties,
        filters: sub_filters(filters),
    })
}

/// An UNSUBSCRIBE as the engine writes it (no properties).
pub(crate) fn unsubscribe(id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(id),
        properties: UnsubscribeProperties::EMPTY,
        filters: filters.iter().map(|f| topic(f)).collect(),
    })
}

/// A SUBACK.
pub(crate) fn suback(id: u16, codes: &[ReasonCode]) -> SubAck {
    SubAck {
        packet_id: pid(id),
        properties: AckProperties::EMPTY,
        reason_codes: codes.to_vec(),
    }
}

/// An UNSUBACK (pass no code for 3.1.1).
pub(crate) fn unsuback(id: u16, codes: &[ReasonCode]) -> UnsubAck {
    UnsubAck {
        packet_id: pid(id),
        properties: AckProperties::EMPTY,
        reason_codes: codes.to_vec(),
    }
}

/// A DISCONNECT with a reason code and no properties.
pub(crate) fn disconnect(reason: ReasonCode) -> Packet {
    Packet::Disconnect(Box::new(Disconnect {
        reason_code: reason,
        properties: DisconnectProperties::EMPTY,
    }))
}

/// CONNACK properties with only a Receive Maximum.
pub(crate) fn receive_maximum(n: u16) -> ConnAckProperties {
    ConnAckProperties {
        receive_maximum: Some(n),
        ..ConnAckProperties::EMPTY
    }
}

/// A connection reset, as the driver reports it.
pub(crate) fn reset() -> ConnectionError {
    ConnectionError::io(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "connection reset",
    ))
}

/// A packet the client writes that depends on the session must find what it
/// depends on in the store already.
fn check_stored_before_sent(store: &Session, packet: &Packet, version: ProtocolVersion) {
    let outgoing = |id: PacketId| {
        store
            .outgoing
            .iter()
            .find(|m| m.publish.packet_id == Some(id))
    };
    match packet {
        Packet::Publish(p) if p.qos != QoS::AtMostOnce => {
            let id = p.packet_id.expect("QoS 1/2 has an identifier");
            assert!(
                outgoing(id).is_some_and(|m| !m.released),
                "PUBLISH {id:?} sent before it was stored: {store:#?}"
            );
        }
        Packet::PubRel(ack)
            if ack.reason_code == ReasonCode::SUCCESS && version == ProtocolVersion::V5 =>
        {
            assert!(
                outgoing(ack.packet_id).is_some_and(|m| m.released),
                "PUBREL {:?} sent before the release was stored: {store:#?}",
                ack.packet_id
            );
        }
        Packet::PubRec(ack) if ack.reason_code == ReasonCode::SUCCESS => {
            assert!(
                store.awaiting_release.contains(&ack.packet_id),
                "PUBREC {:?} sent before the identifier was stored",
                ack.packet_id
            );
        }
        Packet::PubComp(ack) => {
            assert!(
                !store.awaiting_release.contains(&ack.packet_id),
                "PUBCOMP {:?} sent while the store still awaits its release",
                ack.packet_id
            );
        }
        _ => {}
    }
}
