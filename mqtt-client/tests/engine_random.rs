//! Engine: a state-driving property test. A seeded generator (no dependency)
//! applies random operations to the engine and a model broker: publishes of every
//! QoS, subscribes, application acks in any order, broker acks reordered,
//! duplicated or lost, dropped connections, resumed and lost sessions, changing
//! Receive Maximum, in both protocol versions. After every step it checks the
//! invariants; at the end a calm broker lets everything finish and every command
//! must have completed once.
//!
//! Invariants:
//! - a packet identifier is never handed out while another command holds it;
//! - the engine never has more unacknowledged QoS 1/2 PUBLISHes (or PUBRELs) on a
//!   connection than the server's Receive Maximum of that connection;
//! - acks of delivered messages reach the wire in the order of receipt;
//! - the engine never sees a protocol violation from this (correct) broker, and
//!   the broker never exceeds our Receive Maximum;
//! - every publish, subscribe and unsubscribe completes exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use engine_common::*;
use mqtt_client::engine::{AckId, Event, State};
use mqtt_client::session::Session;
use mqtt_client::{ProtocolVersion, QoS};
use mqtt_codec::packet::{Packet, PubAck, Publish};
use mqtt_codec::property::{AckProperties, ConnAckProperties};
use mqtt_codec::reason::ReasonCode;

/// xorshift64*: deterministic from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn qos(&mut self) -> QoS {
        [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][self.below(3)]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStage {
    /// PUBLISH sent to the client, PUBACK/PUBREC awaited.
    Ack,
    /// PUBREL sent, PUBCOMP awaited.
    Comp,
}

/// What the test knows and checks.
struct Model {
    rng: Rng,
    v5: bool,
    /// Our Receive Maximum, which the broker respects.
    our_receive_max: usize,
    /// The server's Receive Maximum on this connection.
    server_receive_max: usize,
    /// Broker responses not yet delivered (reorderable; lost with the connection).
    responses: Vec<Packet>,
    /// Client flows open at the broker on this connection (for Receive Maximum).
    window: HashSet<u16>,
    /// Client QoS 2 flows the broker knows (session state): PUBLISH received,
    /// PUBCOMP not yet delivered.
    known_qos2: HashSet<u16>,
    /// Server-to-client flows, by identifier, in sending order.
    server_flows: BTreeMap<u16, (Publish, ServerStage)>,
    next_server_id: u16,
    /// Identifiers held by commands not yet completed, and by which token.
    held: HashMap<u16, u32>,
    /// Tokens of commands not yet completed.
    open_tokens: HashSet<u32>,
    /// Tokens completed.
    done_tokens: HashSet<u32>,
    /// Tickets of messages delivered on this connection, not yet acked.
    tickets: Vec<AckId>,
    /// Identifiers of messages delivered with a ticket on this connection, in
    /// receipt order, whose ack has not reached the wire yet.
    expected_acks: VecDeque<u16>,
}

impl Model {
    fn new(seed: u64, version: ProtocolVersion) -> Self {
        Self {
            rng: Rng(seed | 1),
            v5: version == ProtocolVersion::V5,
            our_receive_max: 3,
            server_receive_max: 3,
            responses: Vec::new(),
            window: HashSet::new(),
            known_qos2: HashSet::new(),
            server_flows: BTreeMap::new(),
            next_server_id: 1,
            held: HashMap::new(),
            open_tokens: HashSet::new(),
            done_tokens: HashSet::new(),
            tickets: Vec::new(),
            expected_acks: VecDeque::new(),
        }
    }

    fn hold(&mut self, id: u16, token: u32) {
        if let Some(other) = self.held.insert(id, token) {
            panic!("identifier {id} handed to {token} while {other} holds it");
        }
        self.open_tokens.insert(token);
    }

    fn complete(&mut self, token: u32) {
        assert!(
            self.done_tokens.insert(token),
            "token {token} completed twice"
        );
        self.open_tokens.remove(&token);
        self.held.retain(|_, t| *t != token);
    }

    /// Drains the engine's events.
    fn events(&mut self, h: &mut Harness) {
        for event in h.events() {
            match event {
                Event::PublishDone { token, .. }
                | Event::SubscribeDone { token, .. }
                | Event::UnsubscribeDone { token, .. } => self.complete(token),
                Event::Message(m) => {
                    if let Some(ticket) = m.ack {
                        self.expected_acks.push_back(ticket.packet_id().get());
                        self.tickets.push(ticket);
                    }
                }
                // Acked by the engine itself (0x99), in its place.
                Event::MessageRefused {
                    packet_id: Some(id),
                    ..
                } => self.expected_acks.push_back(id.get()),
                Event::MessageRefused {
                    packet_id: None, ..
                } => {}
                Event::ConnectionLost(e) => {
                    assert_matches!(e, mqtt_client::ConnectionError::Io(_));
                }
                Event::Closed(e) => panic!("closed: {e:?}"),
                Event::Connected { .. }
                | Event::Reconnecting { .. }
                | Event::Reauthenticated
                | Event::ResubscribeFailed { .. } => {}
            }
        }
    }

    /// The broker reads the next packet the client wrote (or loses it).
    fn broker_reads(&mut self, h: &mut Harness, lossy: bool) {
        let Some(packet) = h.sent.pop_front() else {
            return;
        };
        if let Packet::PubAck(a) | Packet::PubRec(a) = &packet {
            let id = a.packet_id.get();
            if self.expected_acks.front() == Some(&id) {
                self.expected_acks.pop_front();
            } else {
                assert!(
                    !self.expected_acks.contains(&id),
                    "ack of {id} overtook {:?}",
                    self.expected_acks
                );
            }
        }
        if lossy && self.rng.chance(5) {
            return;
        }
        match packet {
            Packet::Publish(p) => {
                if let Some(id) = p.packet_id {
                    let id = id.get();
                    self.window.insert(id);
                    assert!(
                        self.window.len() <= self.server_receive_max,
                        "{} in flight, server Receive Maximum {}",
                        self.window.len(),
                        self.server_receive_max
                    );
                    if p.qos == QoS::ExactlyOnce {
                        self.known_qos2.insert(id);
                    }
                    let reason = if self.v5 && lossy && self.rng.chance(5) {
                        ReasonCode::QUOTA_EXCEEDED
                    } else {
                        ReasonCode::SUCCESS
                    };
                    let ack = PubAck {
                        packet_id: pid(id),
                        reason_code: reason,
                        properties: AckProperties::EMPTY,
                    };
                    self.responses.push(match p.qos {
                        QoS::AtLeastOnce => Packet::PubAck(ack),
                        _ => Packet::PubRec(ack),
                    });
                }
            }
            Packet::PubRel(a) => {
                let id = a.packet_id.get();
                // A PUBREL for a flow the broker finished (a duplicate, or the
                // client's 0x92 answer to a duplicate PUBREC) occupies no slot.
                if self.known_qos2.contains(&id) && a.reason_code.is_success() {
                    self.window.insert(id);
                    assert!(self.window.len() <= self.server_receive_max);
                    self.responses.push(pubcomp(id));
                } else if self.v5 {
                    self.responses.push(pubcomp_rc(
                        id,
                        ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                        AckProperties::EMPTY,
                    ));
                }
            }
            Packet::Subscribe(s) => {
                let codes: Vec<ReasonCode> = s
                    .filters
                    .iter()
                    .map(|(_, o)| ReasonCode(o.qos as u8))
                    .collect();
                self.responses
                    .push(suback(s.packet_id.get(), &codes).into());
            }
            Packet::Unsubscribe(u) => {
                let n = if self.v5 { u.filters.len() } else { 0 };
                let codes = vec![ReasonCode::SUCCESS; n];
                self.responses
                    .push(unsuback(u.packet_id.get(), &codes).into());
            }
            Packet::PubAck(a) => {
                let id = a.packet_id.get();
                if matches!(self.server_flows.get(&id), Some((p, ServerStage::Ack)) if p.qos == QoS::AtLeastOnce)
                {
                    self.server_flows.remove(&id);
                }
            }
            Packet::PubRec(a) => {
                let id = a.packet_id.get();
                if let Some((_, stage)) = self.server_flows.get_mut(&id) {
                    if a.reason_code.is_success() {
                        *stage = ServerStage::Comp;
                        self.responses.push(pubrel(id));
                    } else {
                        self.server_flows.remove(&id);
                    }
                }
            }
            Packet::PubComp(a) => {
                let id = a.packet_id.get();
                if matches!(self.server_flows.get(&id), Some((_, ServerStage::Comp))) {
                    self.server_flows.remove(&id);
                }
            }
            Packet::PingReq => self.responses.push(Packet::PingResp),
            other => panic!("the client wrote {other:?} to a correct broker"),
        }
    }

    /// The broker delivers one of its responses (any of them), maybe twice.
    fn broker_answers(&mut self, h: &mut Harness, chaotic: bool) {
        if self.responses.is_empty() {
            return;
        }
        let i = if chaotic {
            self.rng.below(self.responses.len())
        } else {
            0
        };
        let packet = self.responses.remove(i);
        let twice = chaotic && self.rng.chance(10);
        self.deliver_response(h, &packet);
        if twice && h.engine.state() == State::Connected {
            self.deliver_response(h, &packet);
        }
    }

    fn deliver_response(&mut self, h: &mut Harness, packet: &Packet) {
        // The client counts a flow until it receives its final ack.
        match packet {
            Packet::PubAck(a) => {
                self.window.remove(&a.packet_id.get());
            }
            // The 0x92 answer to a duplicate PUBREL completes nothing.
            Packet::PubComp(a) if a.reason_code.is_success() => {
                self.window.remove(&a.packet_id.get());
                self.known_qos2.remove(&a.packet_id.get());
            }
            Packet::PubRec(a) if !a.reason_code.is_success() => {
                self.window.remove(&a.packet_id.get());
                self.known_qos2.remove(&a.packet_id.get());
            }
            _ => {}
        }
        h.deliver(packet.clone());
        assert_eq!(
            h.engine.state(),
            State::Connected,
            "the engine refused {packet:?}: {:?}",
            h.sent
        );
    }

    /// The broker sends a new message, if our Receive Maximum allows.
    fn broker_publishes(&mut self, h: &mut Harness) {
        let qos = self.rng.qos();
        if qos == QoS::AtMostOnce {
            h.deliver(message("in", qos, b"m"));
            return;
        }
        if self.server_flows.len() >= self.our_receive_max {
            return;
        }
        let id = self.next_server_id;
        self.next_server_id += 1;
        let p = publish(id, "in", qos, b"m");
        self.server_flows.insert(id, (p.clone(), ServerStage::Ack));
        h.deliver(p);
    }

    /// The application acks one message it holds, any of them.
    fn app_acks(&mut self, h: &mut Harness) {
        if self.tickets.is_empty() {
            return;
        }
        let ticket = self.tickets.remove(self.rng.below(self.tickets.len()));
        h.ack(ticket).unwrap();
    }

    fn app_publishes(&mut self, h: &mut Harness) {
        let qos = self.rng.qos();
        if !h.engine.can_publish(qos) {
            return;
        }
        let (token, id) = h.publish(message("out", qos, b"p"));
        match id {
            Some(id) => self.hold(id.get(), token),
            // Completes when its bytes are taken, which the harness did.
            None => {
                self.open_tokens.insert(token);
            }
        }
    }

    fn app_subscribes(&mut self, h: &mut Harness) {
        if !h.engine.can_request() {
            return;
        }
        let filter = ["a", "b", "c/+"][self.rng.below(3)];
        let (token, id) = if self.rng.chance(70) {
            h.subscribe(&[(filter, self.rng.qos())])
        } else {
            h.unsubscribe(&[filter])
        };
        self.hold(id, token);
    }

    /// The connection drops; the next one resumes the session or not.
    fn reconnect(&mut self, h: &mut Harness, session_present: bool) {
        if h.engine.state() == State::Connected {
            h.drop_transport(reset());
        }
        self.events(h);
        h.sent.clear();
        self.responses.clear();
        self.window.clear();
        self.tickets.clear();
        self.expected_acks.clear();
        if self.v5 {
            self.server_receive_max = 1 + self.rng.below(4);
            let rm = u16::try_from(self.server_receive_max).unwrap();
            h.reconnect(session_present, receive_maximum(rm));
        } else {
            h.reconnect(session_present, ConnAckProperties::EMPTY);
        }
        self.events(h);
        if session_present {
            // A resuming broker sends its unfinished flows again, in order.
            for (id, (p, stage)) in &self.server_flows {
                let again = match stage {
                    ServerStage::Ack => Packet::Publish(dup(p.clone())),
                    ServerStage::Comp => pubrel(*id),
                };
                h.deliver(again);
            }
            self.events(h);
        } else {
            self.server_flows.clear();
            self.known_qos2.clear();
        }
    }

    fn step(&mut self, h: &mut Harness) {
        match self.rng.below(100) {
            0..=19 => self.app_publishes(h),
            20..=24 => self.app_subscribes(h),
            25..=44 => self.broker_reads(h, true),
            45..=64 => self.broker_answers(h, true),
            65..=77 => self.broker_publishes(h),
            78..=94 => self.app_acks(h),
            95..=96 => h.advance(SEC),
            _ => {
                let session_present = self.rng.chance(70);
                self.reconnect(h, session_present);
            }
        }
        self.events(h);
        assert!(
            h.engine.incoming_inflight() <= self.our_receive_max,
            "the broker model exceeded our Receive Maximum"
        );
    }

    /// A calm broker and application: everything finishes.
    fn settle(&mut self, h: &mut Harness) {
        // Packets lost on this connection are sent again only on the next one.
        self.reconnect(h, true);
        for _ in 0..10_000 {
            self.events(h);
            if !h.sent.is_empty() {
                self.broker_reads(h, false);
            } else if !self.responses.is_empty() {
                self.broker_answers(h, false);
            } else if !self.tickets.is_empty() {
                let ticket = self.tickets.remove(0);
                h.ack(ticket).unwrap();
            } else {
                return;
            }
        }
        panic!("never settled");
    }
}

fn run(version: ProtocolVersion, seed: u64, steps: usize) {
    run_with(version, seed, steps, false);
}

fn run_with(version: ProtocolVersion, seed: u64, steps: usize, stored: bool) {
    // 3.1.1 resumes sessions only with Clean Session 0; it has no Receive
    // Maximum, so the window is `max_inflight` alone.
    let mut opts = options(version)
        .with_keep_alive(0)
        .with_clean_start(version == ProtocolVersion::V5);
    opts = opts.with_receive_maximum(3);
    opts = opts.with_max_inflight(3);
    let connack = match version {
        ProtocolVersion::V5 => receive_maximum(3),
        ProtocolVersion::V311 => ConnAckProperties::EMPTY,
    };
    let mut h = if stored {
        let mut h = Harness::resumed(opts, Session::default());
        h.open();
        h.connack(false, connack);
        h.events();
        h
    } else {
        Harness::connected_with(opts, connack)
    };
    let mut model = Model::new(seed, version);

    for _ in 0..steps {
        model.step(&mut h);
    }
    model.settle(&mut h);

    assert!(
        model.open_tokens.is_empty(),
        "seed {seed}: unfinished {:?}",
        model.open_tokens
    );
    assert_eq!(h.engine.inflight(), 0, "seed {seed}");
    assert_eq!(h.engine.incoming_inflight(), 0, "seed {seed}");
    assert_eq!(h.engine.packet_ids_in_use(), 0, "seed {seed}");
    assert!(model.server_flows.is_empty(), "seed {seed}");
}

#[test]
fn random_operations_keep_every_invariant() {
    for seed in 1..=300 {
        run(ProtocolVersion::V5, seed, 400);
        run(ProtocolVersion::V311, seed, 400);
    }
}

#[test]
fn long_random_runs_keep_every_invariant() {
    for seed in [0xDEAD_BEEF, 0x5EED, 7_777_777] {
        run(ProtocolVersion::V5, seed, 20_000);
        run(ProtocolVersion::V311, seed, 20_000);
    }
}

/// The same random runs with an engine that records its session: after every
/// step, the store built from the changes equals the engine's session, and no
/// PUBLISH, PUBREL, PUBREC or PUBCOMP leaves before the change it depends on
/// (checked by the harness at every flush).
#[test]
fn random_operations_with_a_session_store_keep_it_equal_to_the_engine() {
    for seed in 1..=100 {
        run_with(ProtocolVersion::V5, seed, 400, true);
        run_with(ProtocolVersion::V311, seed, 400, true);
    }
}
