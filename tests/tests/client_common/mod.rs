//! Helpers shared by the `client_*` integration tests (each includes this module
//! with `mod client_common;`): bounded waits, connection events, blocking broker
//! operations from async tests, and a packet-aware TCP proxy that can withhold,
//! drop or cut traffic between a client and mosquitto.
#![allow(dead_code, reason = "each test file uses a subset of the helpers")]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use mqtt_client::{Backoff, Client, ConnectionEvent, Incoming, Message, QoS};
use mqtt_tests::broker::Mosquitto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};

/// How long any single expected thing may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// How long "nothing else arrives" is observed.
pub(crate) const QUIET: Duration = Duration::from_millis(400);

/// Milliseconds.
pub(crate) const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Quick reconnections for tests: 50 ms doubling up to 500 ms, with jitter.
pub(crate) fn fast_backoff() -> Backoff {
    Backoff::default()
        .with_initial(ms(50))
        .with_max(ms(500))
        // Tests restart brokers seconds apart: every accepted CONNACK starts the
        // count again, so attempts number from 1 after each loss.
        .with_stable_after(Duration::ZERO)
}

/// Runs `fut` with a deadline; panics with `what` when it passes.
pub(crate) async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// The next message, within [`WAIT`].
pub(crate) async fn recv(incoming: &mut Incoming) -> Message {
    within(WAIT, "waiting for a message", incoming.recv())
        .await
        .expect("client closed while a message was expected")
}

/// Subscribes to `topic`, publishes one QoS 1 message to it and receives it back.
pub(crate) async fn round_trip(client: &Client, incoming: &mut Incoming, topic: &str) {
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let payload = format!("round trip on {topic}");
    let done = client
        .publish(topic, QoS::AtLeastOnce, false, payload.clone())
        .await
        .unwrap();
    within(WAIT, "PUBACK", done).await.unwrap();
    let mut message = recv(incoming).await;
    assert_eq!(
        (message.topic(), &message.payload()[..]),
        (topic, payload.as_bytes())
    );
    message.ack().unwrap();
}

/// A message if one arrives within `limit`.
pub(crate) async fn recv_within(incoming: &mut Incoming, limit: Duration) -> Option<Message> {
    tokio::time::timeout(limit, incoming.recv())
        .await
        .ok()
        .flatten()
}

/// Asserts that no message arrives for `limit`.
pub(crate) async fn assert_no_message(incoming: &mut Incoming, limit: Duration, context: &str) {
    if let Some(m) = recv_within(incoming, limit).await {
        panic!(
            "{context}: unexpected message topic={} payload={:?} qos={:?} dup={} retain={}",
            m.topic(),
            m.payload(),
            m.qos(),
            m.dup(),
            m.retain()
        );
    }
}

/// The next event matching `pred`, within `limit`; the others are returned too, in
/// order, so that callers can assert on what came before.
pub(crate) async fn wait_event(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    limit: Duration,
    what: &str,
    mut pred: impl FnMut(&ConnectionEvent) -> bool,
) -> (ConnectionEvent, Vec<ConnectionEvent>) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(e) => seen.push(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    panic!("{what}: event receiver lagged by {n}")
                }
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("{what}: events closed; before: {seen:?}")
                }
            }
        }
    })
    .await;
    match found {
        Ok(e) => (e, seen),
        Err(_) => panic!("timed out after {limit:?} waiting for {what}; events seen: {seen:?}"),
    }
}

/// Waits for the connection to be lost (`Disconnected`) and made again
/// (`Connected`); returns `session_present` of the new one.
///
/// `Client::connect` may return before the first `Connected` event is broadcast,
/// so a receiver made just after it can still see that first event: waiting for a
/// `Disconnected` first skips it.
pub(crate) async fn wait_reconnected(events: &mut broadcast::Receiver<ConnectionEvent>) -> bool {
    wait_event(events, WAIT, "Disconnected", |e| {
        matches!(e, ConnectionEvent::Disconnected(_))
    })
    .await;
    match wait_event(events, WAIT, "Connected", |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await
    .0
    {
        ConnectionEvent::Connected {
            session_present, ..
        } => session_present,
        _ => unreachable!(),
    }
}

/// Every event already queued, without waiting.
pub(crate) fn drain_events(
    events: &mut broadcast::Receiver<ConnectionEvent>,
) -> Vec<ConnectionEvent> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) => out.push(e),
            // The oldest were dropped; what remains follows.
            Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return out,
        }
    }
}

/// Stops (SIGTERM, the database is saved) and starts the broker again, from an
/// async test on a multi-threaded runtime.
pub(crate) fn restart(broker: &mut Mosquitto) {
    tokio::task::block_in_place(|| broker.restart());
}

/// SIGKILL, from an async test on a multi-threaded runtime.
pub(crate) fn kill(broker: &mut Mosquitto) {
    tokio::task::block_in_place(|| broker.kill());
}

/// SIGTERM, from an async test on a multi-threaded runtime.
pub(crate) fn stop(broker: &mut Mosquitto) {
    tokio::task::block_in_place(|| broker.stop());
}

/// A fresh temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mqtt-client-tests-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A password file with one user, made by `mosquitto_passwd` (package
/// `mosquitto`) in `dir`.
pub(crate) fn password_file(dir: &TempDir, user: &str, password: &str) -> PathBuf {
    let path = dir.0.join("passwords");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&path)
        .args([user, password])
        .status()
        .expect("run mosquitto_passwd (package mosquitto)");
    assert!(status.success(), "mosquitto_passwd failed: {status}");
    path
}

/// A small seeded generator (xorshift) for kill points and the like.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ----- proxy ---------------------------------------------------------------------

/// Which way a packet goes through the [`Proxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Client to broker.
    ToBroker,
    /// Broker to client.
    ToClient,
}

/// What the proxy does with one direction's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward every packet.
    Pass,
    /// Stop reading: packets stay in the kernel buffers (and are lost on a cut).
    Hold,
    /// Drop the packets whose type (1..=15) has its bit set in the mask; forward
    /// the others.
    Drop(u16),
}

/// Packet types, for [`Mode::Drop`] masks and [`Frame`]s.
pub(crate) mod packet_type {
    pub(crate) const PUBLISH: u8 = 3;
    pub(crate) const PUBACK: u8 = 4;
    pub(crate) const PUBREC: u8 = 5;
    pub(crate) const PUBREL: u8 = 6;
    pub(crate) const PUBCOMP: u8 = 7;
}

/// A mask for [`Mode::Drop`].
pub(crate) const fn mask(packet_type: u8) -> u16 {
    1 << packet_type
}

/// One packet the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The proxied connection's number, from 1.
    pub(crate) connection: u64,
    pub(crate) dir: Dir,
    /// The first byte: packet type and flags.
    pub(crate) header: u8,
    /// The first two bytes after the fixed header (the packet identifier of acks).
    pub(crate) head: Vec<u8>,
    /// The whole packet's size, fixed header included.
    pub(crate) len: usize,
    /// The packet identifier of a QoS 1/2 PUBLISH or of an ack.
    pub(crate) packet_id: Option<u16>,
    pub(crate) dropped: bool,
}

impl Frame {
    pub(crate) fn packet_type(&self) -> u8 {
        self.header >> 4
    }

    /// DUP of a PUBLISH.
    pub(crate) fn dup(&self) -> bool {
        self.packet_type() == packet_type::PUBLISH && self.header & 0b1000 != 0
    }
}

#[derive(Debug)]
struct ProxyShared {
    upstream: SocketAddr,
    to_broker: watch::Sender<Mode>,
    to_client: watch::Sender<Mode>,
    cut: watch::Sender<u64>,
    connections: AtomicU64,
    frames: Mutex<Vec<Frame>>,
}

/// A TCP proxy in front of a broker that understands MQTT framing (fixed header
/// and remaining length), so that a test can withhold or drop chosen packets in
/// either direction, and cut every connection at an exact step.
#[derive(Debug)]
pub(crate) struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on an ephemeral loopback port, forwarding to `upstream`.
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            upstream,
            to_broker: watch::channel(Mode::Pass).0,
            to_client: watch::channel(Mode::Pass).0,
            cut: watch::channel(0).0,
            connections: AtomicU64::new(0),
            frames: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Proxy { addr, shared, task }
    }

    /// `127.0.0.1:port` of the proxy.
    pub(crate) fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Sets what happens to one direction's packets from now on.
    pub(crate) fn set(&self, dir: Dir, mode: Mode) {
        match dir {
            Dir::ToBroker => self.shared.to_broker.send_replace(mode),
            Dir::ToClient => self.shared.to_client.send_replace(mode),
        };
    }

    /// Both directions back to [`Mode::Pass`].
    pub(crate) fn pass(&self) {
        self.set(Dir::ToBroker, Mode::Pass);
        self.set(Dir::ToClient, Mode::Pass);
    }

    /// Closes every proxied connection at once (both sockets), dropping what is
    /// buffered. The client sees the transport close without DISCONNECT.
    pub(crate) fn cut(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Every packet seen so far.
    pub(crate) fn frames(&self) -> Vec<Frame> {
        self.shared.frames.lock().expect("frames").clone()
    }

    /// Waits until a packet matching `pred` has been seen.
    pub(crate) async fn wait_frame(&self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        within(WAIT, what, async {
            loop {
                if let Some(f) = self.frames().into_iter().find(|f| pred(f)) {
                    return f;
                }
                tokio::time::sleep(ms(5)).await;
            }
        })
        .await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<ProxyShared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let connection = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut cut = shared.cut.subscribe();
            let Ok(broker) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = broker.set_nodelay(true);
            let (client_r, client_w) = client.into_split();
            let (broker_r, broker_w) = broker.into_split();
            let up = pump(
                client_r,
                broker_w,
                shared.to_broker.subscribe(),
                Dir::ToBroker,
                connection,
                shared.clone(),
            );
            let down = pump(
                broker_r,
                client_w,
                shared.to_client.subscribe(),
                Dir::ToClient,
                connection,
                shared.clone(),
            );
            // Whichever ends first (EOF, error, cut) ends the whole connection:
            // both sockets are dropped here.
            tokio::select! {
                () = up => {}
                () = down => {}
                _ = cut.changed() => {}
            }
        });
    }
}

/// The length of the first complete packet in `buf`, if it is all there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let byte = *buf.get(1 + i)?;
        remaining |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            let total = 1 + (i + 1) + remaining;
            return (buf.len() >= total).then_some(total);
        }
    }
    None
}

/// Offset of the variable header: after the type byte and the remaining length.
fn header_len(buf: &[u8]) -> usize {
    1 + buf
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .map_or(4, |p| p + 1)
}

/// The packet identifier of a QoS 1/2 PUBLISH (after the topic) or of a
/// PUBACK, PUBREC, PUBREL or PUBCOMP (first in the variable header).
fn packet_id_of(frame: &[u8], start: usize) -> Option<u16> {
    let two = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
    };
    let header = *frame.first()?;
    match header >> 4 {
        packet_type::PUBLISH if header & 0b0110 != 0 => {
            let topic_len = usize::from(two(start)?);
            two(start + 2 + topic_len)
        }
        packet_type::PUBACK..=packet_type::PUBCOMP => two(start),
        _ => None,
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    dir: Dir,
    connection: u64,
    shared: Arc<ProxyShared>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        // Hold: neither forward what is buffered nor read more.
        while *mode.borrow_and_update() == Mode::Hold {
            if mode.changed().await.is_err() {
                return;
            }
        }
        let current = *mode.borrow();
        while let Some(len) = frame_len(&buf) {
            let frame = buf.split_to(len);
            let header = frame[0];
            let start = header_len(&frame);
            let head = frame
                .get(start..(start + 2).min(len))
                .unwrap_or(&[])
                .to_vec();
            let dropped = matches!(current, Mode::Drop(m) if m & mask(header >> 4) != 0);
            let packet_id = packet_id_of(&frame, start);
            shared.frames.lock().expect("frames").push(Frame {
                connection,
                dir,
                header,
                head,
                len,
                packet_id,
                dropped,
            });
            if !dropped && to.write_all(&frame).await.is_err() {
                return;
            }
        }
        tokio::select! {
            read = from.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits until the broker's log holds `needle` at least `count` times: for what
/// only the broker can tell (it processed a PUBACK, a DISCONNECT...).
pub(crate) async fn wait_log(broker: &Mosquitto, needle: &str, count: usize) {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if broker.log().matches(needle).count() >= count {
                return;
            }
            tokio::time::sleep(ms(10)).await;
        }
    })
    .await;
    if found.is_err() {
        panic!(
            "timed out waiting for {count}× {needle:?} in the broker log:\n{}",
            broker.log()
        );
    }
}

/// Asserts that the client is still on its first connection and that no
/// `Disconnected` event was broadcast.
pub(crate) fn assert_one_connection(
    client: &Client,
    events: &mut broadcast::Receiver<ConnectionEvent>,
) {
    let events = drain_events(events);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ConnectionEvent::Disconnected(_))),
        "the connection was lost: {events:?}"
    );
    assert_eq!(client.connection_number(), 1, "events: {events:?}");
}

/// QoS 2 PUBLISHes sent again (DUP=1) in direction `dir` after their sender had
/// already sent PUBREL for that packet identifier, with no new PUBLISH (DUP=0)
/// of that identifier in between: the sender broke "MUST NOT re-send the
/// PUBLISH once it has sent the corresponding PUBREL" [MQTT-4.3.3-?, 4.3.3 in
/// 3.1.1]. Returns (connection, packet identifier) of each.
pub(crate) fn qos2_replays_after_pubrel(frames: &[Frame], dir: Dir) -> Vec<(u64, u16)> {
    let mut released = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in frames.iter().filter(|f| f.dir == dir && !f.dropped) {
        let Some(id) = f.packet_id else { continue };
        match f.packet_type() {
            packet_type::PUBLISH if (f.header >> 1) & 0b11 == 2 => {
                if !f.dup() {
                    released.remove(&id);
                } else if released.contains(&id) {
                    out.push((f.connection, id));
                }
            }
            packet_type::PUBREL => {
                released.insert(id);
            }
            _ => {}
        }
    }
    out
}
