//! The protocol engine alone against a null peer: the client's own ceiling.
//!
//! No sockets, no runtime, no broker: [`Engine`] (sans-IO) is driven the way its
//! driver drives it, and the "peer" is a set of pre-encoded server packets. Side by
//! side, in the same run, rumqttc 0.25's protocol state machine, `MqttState`, is
//! driven the way its event loop drives it: its `Packet::read` on the bytes read,
//! `handle_incoming_packet` / `handle_outgoing_packet`, and `Packet::write` of every
//! packet it returns into the write buffer of its framed writer. Both do the same
//! work per message: the same PUBLISH bytes out (checked once, in setup, before
//! anything is measured), the same acks in, the same acks out.
//!
//! One iteration is a batch of [`N`] = 100 messages of [`PAYLOAD_LEN`] = 100 bytes
//! on topic [`TOPIC`], with a window of 100 (our `with_receive_maximum(100).with_max_inflight(100)`, rumqttc's
//! `MqttState::new(100, _)`); throughput is `Elements(100)`, so criterion reports
//! messages per second. The cases (criterion groups):
//!
//! 1. `1_out_qos1_*`: 100 QoS 1 PUBLISHes taken and encoded, the bytes taken (what
//!    a driver writes), 100 PUBACKs read, 100 completions drained.
//! 2. `2_out_qos2_*`: likewise, then 100 PUBRECs read and the 100 PUBRELs they
//!    cause taken, then 100 PUBCOMPs read and 100 completions drained.
//! 3. `3_in_qos1_*`: 100 QoS 1 PUBLISHes read, 100 messages drained, 100 PUBACKs
//!    taken: ours with auto-ack and with one `ack` call per message (manual);
//!    rumqttc with `manual_acks = false` (the PUBACK comes out of
//!    `handle_incoming_packet`) and with `manual_acks = true` (one
//!    `Request::PubAck` per message, as `Client::ack` sends).
//! 4. `4_in_qos0_*`: 100 QoS 0 PUBLISHes read, 100 messages drained.
//!
//! The state machines live across iterations (steady state, as on a long-lived
//! connection); every iteration ends with nothing in flight, which is asserted.
//! Each application request is a clone of a template PUBLISH (for rumqttc that
//! clones the `String` topic: its API takes one). Events are drained one by one,
//! as an application takes them. `_v311` groups compare both libraries on MQTT
//! 3.1.1; `_v5` groups measure ours alone on MQTT 5 (rumqttc's v5 state machine is
//! another crate module and not compared here).
//!
//! Run: `cargo bench -p mqtt-benches --bench engine`; results in `benches/ENGINE.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "benchmark: a failed check must stop the run, and the fixtures are small"
)]
#![allow(
    missing_docs,
    reason = "benchmark: criterion_group!/criterion_main! generate undocumented items"
)]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mqtt_client::engine::{Engine, Event, State};
use mqtt_client::Options;
use mqtt_codec::{
    AckProperties, MqttString, Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode,
};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::{MqttState, Request};

/// Messages per iteration, and the window (in-flight limit) of both libraries.
const N: usize = 100;
/// Payload size of every PUBLISH.
const PAYLOAD_LEN: usize = 100;
/// Topic of every PUBLISH.
const TOPIC: &str = "bench/topic";
/// Maximum packet size given to rumqttc's reader and writer.
const MAX_PACKET: usize = 1024 * 1024;

/// First bytes of the four two-byte acks (3.1.1 layout; MQTT 5's short form of a
/// Success ack with no properties is the same).
const PUBACK: u8 = 0x40;
const PUBREC: u8 = 0x50;
const PUBREL: u8 = 0x62;
const PUBCOMP: u8 = 0x70;

// ---------------------------------------------------------------------------------
// Fixtures.

fn payload() -> Bytes {
    Bytes::from((0..PAYLOAD_LEN).map(|i| i as u8).collect::<Vec<u8>>())
}

fn qos_r4(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::QoS::ExactlyOnce,
    }
}

/// Our application's request: identifier and DUP are the engine's to set.
fn our_publish(qos: QoS) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: MqttString::from_static(TOPIC).unwrap(),
        packet_id: None,
        properties: None,
        payload: payload(),
    }
}

/// rumqttc's application request (`pkid` 0: `MqttState` assigns one).
fn peer_publish(qos: QoS) -> r4::Publish {
    r4::Publish {
        dup: false,
        qos: qos_r4(qos),
        retain: false,
        topic: TOPIC.to_owned(),
        pkid: 0,
        payload: payload(),
    }
}

/// Acks of one kind for `ids`, back to back, as the server sends them.
fn acks(kind: u8, ids: impl Iterator<Item = u16>) -> BytesMut {
    let mut buf = BytesMut::new();
    for id in ids {
        let [hi, lo] = id.to_be_bytes();
        buf.extend_from_slice(&[kind, 2, hi, lo]);
    }
    buf
}

/// The acks of one kind for every identifier our engine can hand out, in the order
/// it hands them out (1..=65535, then wrapping to 1): a batch of `N` consecutive
/// identifiers starting at any `first` is the window `ring[(first - 1) * 4..][..N * 4]`.
/// Our engine allocates identifiers round-robin over the whole space (a freed one is
/// reused as late as possible), so a steady-state batch does not start at 1; rumqttc
/// cycles through 1..=max_inflight, so its batch is always 1..=100.
struct AckRing(BytesMut);

impl AckRing {
    fn new(kind: u8) -> Self {
        let ids = (1..=u16::MAX).chain(1..=N as u16);
        Self(acks(kind, ids))
    }

    /// The `N` acks from identifier `first` on: one 400-byte copy, the same cost as
    /// cloning rumqttc's fixed 400-byte buffer.
    fn window(&self, first: PacketId) -> BytesMut {
        let start = (usize::from(first.get()) - 1) * 4;
        BytesMut::from(&self.0[start..start + N * 4])
    }
}

/// A connected engine, its CONNECT and CONNACK exchanged and everything drained.
fn connected_engine(version: ProtocolVersion, auto_ack: bool) -> Engine<u32> {
    let opts = Options::new("bench-engine")
        .with_version(version)
        .with_receive_maximum(N as u16)
        .with_max_inflight(N as u16)
        .with_request_queue(usize::from(N as u16))
        .with_auto_ack(auto_ack);
    let now = Instant::now();
    let mut engine = Engine::new(opts);
    assert!(engine.wants_transport(now));
    engine.handle_transport_open(now);
    let connack: &[u8] = match version {
        ProtocolVersion::V311 => &[0x20, 2, 0, 0],
        ProtocolVersion::V5 => &[0x20, 3, 0, 0, 0],
    };
    engine.handle_read(now, &mut BytesMut::from(connack));
    assert_eq!(engine.state(), State::Connected);
    assert_eq!(engine.send_quota(), N);
    while engine.poll_transmit().is_some() {}
    while let Some(event) = engine.poll_event() {
        assert!(matches!(event, Event::Connected { .. }), "{event:?}");
    }
    engine
}

/// `N` PUBLISHes with identifiers 1..=N (none for QoS 0), encoded by us, checked
/// against rumqttc's encoding when `version` is 3.1.1.
fn incoming_stream(version: ProtocolVersion, qos: QoS) -> BytesMut {
    let mut ours = BytesMut::new();
    let mut peer = BytesMut::new();
    for id in 1..=N as u16 {
        let mut publish = our_publish(qos);
        let mut r = peer_publish(qos);
        if qos != QoS::AtMostOnce {
            publish.packet_id = PacketId::new(id);
            r.pkid = id;
        }
        Packet::Publish(publish).encode(version, &mut ours).unwrap();
        r4::Packet::Publish(r).write(&mut peer, MAX_PACKET).unwrap();
    }
    if version == ProtocolVersion::V311 {
        assert_eq!(ours, peer, "the incoming PUBLISH streams differ");
    }
    ours
}

// ---------------------------------------------------------------------------------
// One batch of each case, for each library. Each returns what it checks.

/// Ours, outgoing QoS 1 or 2: publish N, take the PUBLISH bytes, read the acks
/// (and for QoS 2 take the PUBRELs, read the PUBCOMPs), drain the completions.
struct OurOutgoing {
    engine: Engine<u32>,
    template: Publish,
    first_acks: AckRing,
    pubcomps: Option<AckRing>,
}

impl OurOutgoing {
    fn new(version: ProtocolVersion, qos: QoS) -> Self {
        let (first, second) = match qos {
            QoS::AtLeastOnce => (PUBACK, None),
            _ => (PUBREC, Some(PUBCOMP)),
        };
        Self {
            engine: connected_engine(version, false),
            template: our_publish(qos),
            first_acks: AckRing::new(first),
            pubcomps: second.map(AckRing::new),
        }
    }

    /// One batch; `write` gets the bytes to write (PUBLISHes, then PUBRELs).
    #[inline]
    fn batch(&mut self, write: &mut impl FnMut(&[u8])) {
        let now = Instant::now();
        let engine = &mut self.engine;
        let mut first = None;
        for token in 0..N as u32 {
            match engine.publish(now, self.template.clone(), token) {
                Ok(Some(id)) => {
                    first.get_or_insert(id);
                }
                other => panic!("publish refused: {other:?}"),
            }
        }
        let first = first.unwrap();
        write(&engine.poll_transmit().unwrap());
        let mut buf = self.first_acks.window(first);
        engine.handle_read(now, &mut buf);
        if let Some(pubcomps) = &self.pubcomps {
            write(&engine.poll_transmit().unwrap());
            let mut buf = pubcomps.window(first);
            engine.handle_read(now, &mut buf);
        }
        let mut done = 0;
        while let Some(event) = engine.poll_event() {
            match event {
                Event::PublishDone { result: Ok(_), .. } => done += 1,
                other => panic!("unexpected event {other:?}"),
            }
        }
        // Short of N: the acks missed identifiers, i.e. the engine no longer hands out
        // consecutive ones and `AckRing` must follow its new allocation order.
        assert_eq!(done, N, "acks not matching the engine's packet identifiers");
        assert_eq!(engine.inflight(), 0);
        assert!(engine.poll_transmit().is_none());
    }
}

/// rumqttc, outgoing QoS 1 or 2, the same work.
struct PeerOutgoing {
    state: MqttState,
    template: r4::Publish,
    first_acks: BytesMut,
    pubcomps: Option<BytesMut>,
    /// The write buffer of rumqttc's framed writer (cleared once flushed).
    buf: BytesMut,
}

impl PeerOutgoing {
    fn new(qos: QoS) -> Self {
        let (first, second) = match qos {
            QoS::AtLeastOnce => (PUBACK, None),
            _ => (PUBREC, Some(PUBCOMP)),
        };
        Self {
            state: MqttState::new(N as u16, false),
            template: peer_publish(qos),
            first_acks: acks(first, 1..=N as u16),
            pubcomps: second.map(|kind| acks(kind, 1..=N as u16)),
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// One batch; `write` gets the bytes to write (PUBLISHes, then PUBRELs).
    #[inline]
    fn batch(&mut self, write: &mut impl FnMut(&[u8])) {
        let state = &mut self.state;
        for _ in 0..N {
            match state.handle_outgoing_packet(Request::Publish(self.template.clone())) {
                Ok(Some(packet)) => {
                    packet.write(&mut self.buf, MAX_PACKET).unwrap();
                }
                other => panic!("publish refused: {other:?}"),
            }
        }
        // Flushed as rumqttc's `Network::flush` does: written out, then cleared.
        write(&self.buf);
        self.buf.clear();
        let mut input = self.first_acks.clone();
        for _ in 0..N {
            let packet = r4::Packet::read(&mut input, MAX_PACKET).unwrap();
            if let Some(out) = state.handle_incoming_packet(packet).unwrap() {
                out.write(&mut self.buf, MAX_PACKET).unwrap();
            }
        }
        if let Some(pubcomps) = &self.pubcomps {
            write(&self.buf);
            self.buf.clear();
            let mut input = pubcomps.clone();
            for _ in 0..N {
                let packet = r4::Packet::read(&mut input, MAX_PACKET).unwrap();
                if let Some(out) = state.handle_incoming_packet(packet).unwrap() {
                    panic!("unexpected {out:?}");
                }
            }
        }
        assert!(self.buf.is_empty());
        let mut done = 0;
        while let Some(event) = state.events.pop_front() {
            match event {
                rumqttc::Event::Incoming(
                    rumqttc::Packet::PubAck(_) | rumqttc::Packet::PubComp(_),
                ) => done += 1,
                other => {
                    black_box(other);
                }
            }
        }
        assert_eq!(done, N);
        assert_eq!(state.inflight(), 0);
    }
}

/// Ours, incoming QoS 0 or 1: read N PUBLISHes, drain the messages (acking each in
/// manual mode), take the PUBACK bytes.
struct OurIncoming {
    engine: Engine<u32>,
    stream: BytesMut,
    auto_ack: bool,
}

impl OurIncoming {
    fn new(version: ProtocolVersion, qos: QoS, auto_ack: bool) -> Self {
        Self {
            engine: connected_engine(version, auto_ack),
            stream: incoming_stream(version, qos),
            auto_ack,
        }
    }

    /// One batch; `write` gets the bytes to write (PUBACKs), if any.
    #[inline]
    fn batch(&mut self, write: &mut impl FnMut(&[u8])) {
        let now = Instant::now();
        let engine = &mut self.engine;
        let mut buf = self.stream.clone();
        engine.handle_read(now, &mut buf);
        let mut received = 0;
        while let Some(event) = engine.poll_event() {
            let Event::Message(message) = event else {
                panic!("unexpected event {event:?}");
            };
            received += 1;
            if let Some(ticket) = message.ack {
                engine
                    .ack(now, ticket, ReasonCode::SUCCESS, AckProperties::EMPTY)
                    .unwrap();
            } else {
                assert!(self.auto_ack || message.publish.qos == QoS::AtMostOnce);
            }
            black_box(message.publish);
        }
        assert_eq!(received, N);
        assert_eq!(engine.incoming_inflight(), 0);
        if let Some(acks) = engine.poll_transmit() {
            write(&acks);
        }
    }
}

/// rumqttc, incoming QoS 0 or 1, the same work.
struct PeerIncoming {
    state: MqttState,
    stream: BytesMut,
    /// The write buffer of rumqttc's framed writer (cleared once flushed).
    buf: BytesMut,
}

impl PeerIncoming {
    fn new(qos: QoS, manual_acks: bool) -> Self {
        Self {
            state: MqttState::new(N as u16, manual_acks),
            stream: incoming_stream(ProtocolVersion::V311, qos),
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// One batch; `write` gets the bytes to write (PUBACKs), if any.
    #[inline]
    fn batch(&mut self, write: &mut impl FnMut(&[u8])) {
        let state = &mut self.state;
        let mut input = self.stream.clone();
        for _ in 0..N {
            let packet = r4::Packet::read(&mut input, MAX_PACKET).unwrap();
            if let Some(out) = state.handle_incoming_packet(packet).unwrap() {
                out.write(&mut self.buf, MAX_PACKET).unwrap();
            }
        }
        let mut received = 0;
        while let Some(event) = state.events.pop_front() {
            match event {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => {
                    received += 1;
                    if state.manual_acks && publish.qos != rumqttc::QoS::AtMostOnce {
                        // What `Client::ack` sends to the event loop.
                        let ack = Request::PubAck(r4::PubAck::new(publish.pkid));
                        if let Some(out) = state.handle_outgoing_packet(ack).unwrap() {
                            out.write(&mut self.buf, MAX_PACKET).unwrap();
                        }
                    }
                    black_box(publish);
                }
                other => {
                    black_box(other);
                }
            }
        }
        assert_eq!(received, N);
        if !self.buf.is_empty() {
            write(&self.buf);
            self.buf.clear();
        }
    }
}

// ---------------------------------------------------------------------------------
// Equivalence checks (setup, not timed).

/// What one batch writes: one `Vec` per flush.
fn written(batch: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    batch(&mut |bytes: &[u8]| out.push(bytes.to_vec()));
    out
}

/// The first batch of both libraries, from fresh state: the same PUBLISH bytes
/// (identifiers 1..=100 on both sides) and the same PUBRELs.
fn check_outgoing(qos: QoS) {
    let mut ours = OurOutgoing::new(ProtocolVersion::V311, qos);
    let mut peer = PeerOutgoing::new(qos);
    let ours = written(|mut w| ours.batch(&mut w));
    let peer = written(|mut w| peer.batch(&mut w));
    assert_eq!(ours, peer, "{qos:?}: the bytes written differ");
    let mut expected = 1;
    if qos == QoS::ExactlyOnce {
        expected += 1;
        assert_eq!(ours[1], acks(PUBREL, 1..=N as u16), "{qos:?}: PUBRELs");
    }
    assert_eq!(ours.len(), expected);
    let mut stream = BytesMut::from(&ours[0][..]);
    for id in 1..=N as u16 {
        let packet = r4::Packet::read(&mut stream, MAX_PACKET).unwrap();
        assert!(
            matches!(packet, r4::Packet::Publish(ref p)
                if p.pkid == id && p.topic == TOPIC && p.payload == payload()),
            "{packet:?}"
        );
    }
    assert!(stream.is_empty());
}

/// Incoming: the same PUBACK bytes (none for QoS 0) in every mode.
fn check_incoming(qos: QoS) {
    let expected: Vec<Vec<u8>> = match qos {
        QoS::AtMostOnce => Vec::new(),
        _ => vec![acks(PUBACK, 1..=N as u16).to_vec()],
    };
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for auto_ack in [true, false] {
            let mut ours = OurIncoming::new(version, qos, auto_ack);
            let ours = written(|mut w| ours.batch(&mut w));
            assert_eq!(ours, expected, "{qos:?} {version:?} auto-ack {auto_ack}");
        }
    }
    for manual_acks in [false, true] {
        let mut peer = PeerIncoming::new(qos, manual_acks);
        let peer = written(|mut w| peer.batch(&mut w));
        assert_eq!(peer, expected, "{qos:?} rumqttc manual_acks {manual_acks}");
    }
}

// ---------------------------------------------------------------------------------
// The benchmarks.

/// The transport of the timed runs: takes the bytes, as a socket write would.
fn sink(bytes: &[u8]) {
    black_box(bytes);
}

fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V311 => "v311",
        ProtocolVersion::V5 => "v5",
    }
}

fn bench_outgoing(c: &mut Criterion, case: &str, qos: QoS) {
    check_outgoing(qos);
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut group = c.benchmark_group(format!("{case}_{}", version_name(version)));
        group.throughput(Throughput::Elements(N as u64));
        let mut ours = OurOutgoing::new(version, qos);
        group.bench_function(BenchmarkId::from_parameter("ours"), |b| {
            b.iter(|| ours.batch(&mut sink));
        });
        if version == ProtocolVersion::V311 {
            let mut peer = PeerOutgoing::new(qos);
            group.bench_function(BenchmarkId::from_parameter("rumqttc"), |b| {
                b.iter(|| peer.batch(&mut sink));
            });
        }
        group.finish();
    }
}

fn bench_incoming(c: &mut Criterion, case: &str, qos: QoS) {
    check_incoming(qos);
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut group = c.benchmark_group(format!("{case}_{}", version_name(version)));
        group.throughput(Throughput::Elements(N as u64));
        let modes: &[(bool, &str)] = match qos {
            QoS::AtMostOnce => &[(true, "")],
            _ => &[(true, "-auto"), (false, "-manual")],
        };
        for &(auto, suffix) in modes {
            let mut ours = OurIncoming::new(version, qos, auto);
            group.bench_function(BenchmarkId::from_parameter(format!("ours{suffix}")), |b| {
                b.iter(|| ours.batch(&mut sink));
            });
        }
        if version == ProtocolVersion::V311 {
            for &(auto, suffix) in modes {
                let mut peer = PeerIncoming::new(qos, !auto);
                group.bench_function(
                    BenchmarkId::from_parameter(format!("rumqttc{suffix}")),
                    |b| {
                        b.iter(|| peer.batch(&mut sink));
                    },
                );
            }
        }
        group.finish();
    }
}

fn engine(c: &mut Criterion) {
    bench_outgoing(c, "1_out_qos1", QoS::AtLeastOnce);
    bench_outgoing(c, "2_out_qos2", QoS::ExactlyOnce);
    bench_incoming(c, "3_in_qos1", QoS::AtLeastOnce);
    bench_incoming(c, "4_in_qos0", QoS::AtMostOnce);
}

fn config() -> Criterion {
    // Modest on purpose: 15 benchmarks on a shared 2-core machine in about 2
    // minutes. Command-line options (e.g. --measurement-time) still override these.
    Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .nresamples(20_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = engine
}
criterion_main!(benches);
