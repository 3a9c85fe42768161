//! The harness of the driver tests: a scripted server in the same process.
//!
//! [`Scripted`] is a [`Connector`] whose every `connect()` creates a
//! `tokio::io::duplex(capacity)` pair, gives the client one end and sends the
//! other to the test's [`Server`]; [`Server::fail_connects`] makes `connect()`
//! fail instead (a broker that is down), [`Server::hang_connects`] never
//! complete (a host that drops the SYN). Each accepted end is a [`Conn`]: the
//! test reads the client's packets from it, decoded with the codec's
//! [`Decoder`], and writes packets (encoded with the codec) or raw bytes.
//!
//! The server reads only when the test asks it to ([`Conn::recv`],
//! [`Conn::next`], ...): a test that stops asking is a server that stopped
//! reading, and with a small `capacity` the client's writes then block, as on a
//! TCP connection whose peer's window is closed. Dropping a [`Conn`] closes the
//! connection: the client's next read sees EOF and its next write an error.
//!
//! Every wait is bounded: helpers that wait panic after [`WAIT`], and
//! [`within`] bounds the tests' own waits.
//!
//! The tests run on tokio's paused clock (`#[tokio::test(start_paused = true)]`),
//! which the driver reads too: every duration here is virtual time. The clock
//! moves only when every task is blocked, and then jumps to the next timer, so a
//! bound such as [`WAIT`] that is reached means that nothing could happen any
//! more: a hang fails at once and the same way on every run, and waits for
//! something that must *not* happen ([`Conn::assert_silent`], [`pass`]) cost no
//! real time. Nothing here synchronises by sleeping: the tests wait for a
//! signal (a packet, an event, a handle, [`Server::wait_attempts`]), or for
//! every task to be blocked ([`settle`]).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqtt_client::transport::{Attempt, TransportError};
use mqtt_client::{
    Backoff, Client, ConnectionEvent, Connector, Incoming, Options, PacketId, ProtocolVersion, QoS,
};
use mqtt_codec::packet::{ConnAck, Connect, Decoder, Packet, PubAck, Publish};
use mqtt_codec::string::MqttString;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

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

/// The longest any single step may take before a test fails (virtual time).
pub(crate) const WAIT: Duration = Duration::from_secs(2);

/// How long a test watches for something that must not happen (virtual time).
pub(crate) const QUIET: Duration = Duration::from_millis(150);

/// Fails the test unless tokio's clock is paused: the waits of [`settle`] and
/// [`pass`] mean what they say only in virtual time.
async fn assert_paused() {
    // `advance` panics ("time is not frozen") when the clock runs; by zero it
    // changes nothing (and yields once).
    tokio::time::advance(Duration::ZERO).await;
}

/// Lets every task run until all of them are blocked (the driver has taken what
/// it can take, written what the pipes hold, read what they bring): under the
/// paused clock, a 1 ms timer fires only once nothing else can run. For the
/// rare step that has no signal to wait for. Virtual time moves by 1 ms (a
/// timer of the driver's due within it fires on the way).
pub(crate) async fn settle() {
    pass(Duration::from_millis(1)).await;
}

/// Lets `span` of virtual time pass, every task running meanwhile: for checks
/// that something does *not* happen within `span` (instant under the paused
/// clock: the clock jumps from one timer to the next once all tasks are blocked).
pub(crate) async fn pass(span: Duration) {
    assert_paused().await;
    tokio::time::sleep(span).await;
}

/// Runs `future`, failing the test if it takes longer than `limit`.
pub(crate) async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: not within {limit:?}"),
    }
}

/// A fast reconnection schedule: 20 ms, doubling up to 200 ms, with jitter, the
/// attempt count starting again after every accepted CONNACK.
pub(crate) fn fast_backoff() -> Backoff {
    Backoff::default()
        .with_initial(Duration::from_millis(20))
        .with_max(Duration::from_millis(200))
        .with_stable_after(Duration::ZERO)
}

/// The next connection event, within [`WAIT`].
pub(crate) async fn next_event(
    events: &mut broadcast::Receiver<ConnectionEvent>,
) -> ConnectionEvent {
    within(WAIT, "connection event", events.recv())
        .await
        .expect("the event channel is open and not lagging")
}

/// Waits (within `limit`) for the first event `pick` accepts, and returns what
/// it made of it; the events skipped on the way are returned too, in order (and
/// shown if the awaited one does not come).
pub(crate) async fn wait_event<T>(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    limit: Duration,
    mut pick: impl FnMut(&ConnectionEvent) -> Option<T>,
) -> (T, Vec<ConnectionEvent>) {
    let deadline = Instant::now() + limit;
    let mut skipped = Vec::new();
    loop {
        // `broadcast::Receiver::recv` is cancellation safe.
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => match pick(&event) {
                Some(found) => return (found, skipped),
                None => skipped.push(event),
            },
            Ok(Err(e)) => panic!("event channel: {e}"),
            Err(_) => panic!(
                "the awaited connection event did not come within {limit:?}; \
                 events on the way: {skipped:#?}"
            ),
        }
    }
}

/// What [`Scripted`] and [`Server`] share.
#[derive(Debug)]
struct Switches {
    failing: AtomicBool,
    hanging: AtomicBool,
    /// How many times `connect()` was called; [`Server::wait_attempts`] waits on it.
    attempts: watch::Sender<usize>,
}

/// The client's side of the scripted server: a [`Connector`] over in-memory pipes.
#[derive(Debug, Clone)]
pub(crate) struct Scripted {
    capacity: usize,
    streams: mpsc::UnboundedSender<DuplexStream>,
    switches: Arc<Switches>,
}

impl Connector for Scripted {
    type Stream = DuplexStream;

    async fn connect(&self, _: Attempt) -> Result<DuplexStream, TransportError> {
        self.switches.attempts.send_modify(|n| *n += 1);
        if self.switches.hanging.load(Ordering::SeqCst) {
            // A server that drops the SYN: only the driver's connect timeout ends it.
            std::future::pending::<()>().await;
        }
        if self.switches.failing.load(Ordering::SeqCst) {
            return Err(
                io::Error::new(io::ErrorKind::ConnectionRefused, "scripted server down").into(),
            );
        }
        let (client, server) = tokio::io::duplex(self.capacity);
        self.streams
            .send(server)
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "test over"))?;
        Ok(client)
    }
}

/// The test's side: accepts the connections the client opens.
#[derive(Debug)]
pub(crate) struct Server {
    streams: mpsc::UnboundedReceiver<DuplexStream>,
    switches: Arc<Switches>,
}

impl Server {
    /// A server whose connections buffer `capacity` bytes each way, and the
    /// connector that reaches it.
    pub(crate) fn new(capacity: usize) -> (Scripted, Server) {
        let (streams, rx) = mpsc::unbounded_channel();
        let switches = Arc::new(Switches {
            failing: AtomicBool::new(false),
            hanging: AtomicBool::new(false),
            attempts: watch::Sender::new(0),
        });
        let connector = Scripted {
            capacity,
            streams,
            switches: switches.clone(),
        };
        (
            connector,
            Server {
                streams: rx,
                switches,
            },
        )
    }

    /// From now on, `connect()` fails with `ConnectionRefused` (or works again).
    pub(crate) fn fail_connects(&self, failing: bool) {
        self.switches.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on, `connect()` never completes (or behaves again).
    pub(crate) fn hang_connects(&self, hanging: bool) {
        self.switches.hanging.store(hanging, Ordering::SeqCst);
    }

    /// Waits (within [`WAIT`]) until the client has called `connect()` `n` times:
    /// woken by the connector at each call.
    pub(crate) async fn wait_attempts(&self, n: usize) {
        let mut attempts = self.switches.attempts.subscribe();
        let reached = within(WAIT, "connection attempts", attempts.wait_for(|&a| a >= n))
            .await
            .is_ok();
        // The sender lives in `self.switches`: the wait cannot fail.
        assert!(reached, "the attempt counter is gone");
    }

    /// How many times the client called `connect()`, failed calls included.
    pub(crate) fn attempts(&self) -> usize {
        *self.switches.attempts.borrow()
    }

    /// The next connection the client opens, within [`WAIT`].
    pub(crate) async fn accept(&mut self) -> Conn {
        let stream = within(WAIT, "the client to connect", self.streams.recv())
            .await
            .expect("the connector is alive");
        Conn::new(stream)
    }

    /// A connection already opened and not yet accepted, if any.
    pub(crate) fn try_accept(&mut self) -> Option<Conn> {
        self.streams.try_recv().ok().map(Conn::new)
    }

    /// Accepts the next connection and reads its CONNECT.
    pub(crate) async fn accept_connect(&mut self) -> (Conn, Connect) {
        let mut conn = self.accept().await;
        match conn.recv().await {
            Packet::Connect(connect) => (conn, *connect),
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    /// Accepts the next connection, reads its CONNECT and accepts it (CONNACK
    /// success, no session, no properties).
    pub(crate) async fn accept_connack(&mut self) -> Conn {
        let (mut conn, _) = self.accept_connect().await;
        conn.send(ConnAck::default()).await;
        conn
    }
}

/// A client connected to a new scripted server whose connections buffer
/// `capacity` bytes each way: `Client::connect` returned, the server has read
/// CONNECT and sent CONNACK (success, no session).
pub(crate) async fn connected(
    options: Options,
    capacity: usize,
) -> (Client, Incoming, Server, Conn) {
    let (connector, mut server) = Server::new(capacity);
    let (client, conn) = tokio::join!(
        within(WAIT, "Client::connect", Client::connect(options, connector)),
        server.accept_connack(),
    );
    let (client, incoming) = client.expect("the client connects");
    (client, incoming, server, conn)
}

/// What the server read next.
#[derive(Debug)]
pub(crate) enum Next {
    /// A whole packet.
    Packet(Packet),
    /// The client closed the connection (EOF, or a transport error).
    Closed,
    /// Nothing within the time given.
    Nothing,
}

/// One connection, as the server sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: DuplexStream,
    decoder: Decoder,
    version: ProtocolVersion,
    rx: BytesMut,
}

impl Conn {
    fn new(stream: DuplexStream) -> Self {
        // The version is learnt from CONNECT (which decodes alike in both).
        Self {
            stream,
            decoder: Decoder::new(ProtocolVersion::V5),
            version: ProtocolVersion::V5,
            rx: BytesMut::new(),
        }
    }

    /// The protocol version of the connection (known once CONNECT was read).
    pub(crate) fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The next packet the client wrote, or EOF, or nothing within `limit`.
    /// Bytes that do not decode fail the test.
    pub(crate) async fn next(&mut self, limit: Duration) -> Next {
        let deadline = Instant::now() + limit;
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(packet)) => {
                    if let Packet::Connect(connect) = &packet {
                        self.version = connect.protocol_version;
                        self.decoder.set_version(self.version);
                    }
                    return Next::Packet(packet);
                }
                Ok(None) => {}
                Err(e) => panic!("the client wrote bytes that do not decode: {e}"),
            }
            // `read_buf` is cancellation safe: a timeout loses no byte.
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rx)).await {
                Err(_) => return Next::Nothing,
                Ok(Ok(0) | Err(_)) => {
                    assert!(
                        self.rx.is_empty(),
                        "the connection ended inside a packet: {:02x?}",
                        &self.rx[..]
                    );
                    return Next::Closed;
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet, within [`WAIT`]; EOF fails the test.
    pub(crate) async fn recv(&mut self) -> Packet {
        match self.next(WAIT).await {
            Next::Packet(packet) => packet,
            Next::Closed => panic!("the client closed the connection; a packet was expected"),
            Next::Nothing => panic!("no packet from the client within {WAIT:?}"),
        }
    }

    /// Checks that the client writes nothing (and keeps the connection) for `for_`.
    pub(crate) async fn assert_silent(&mut self, for_: Duration) {
        match self.next(for_).await {
            Next::Nothing => {}
            other => panic!("expected silence from the client, got {other:?}"),
        }
    }

    /// Reads until the client closes the connection (within [`WAIT`]) and returns
    /// the packets read on the way.
    pub(crate) async fn until_closed(&mut self) -> Vec<Packet> {
        let mut packets = Vec::new();
        loop {
            match self.next(WAIT).await {
                Next::Packet(packet) => packets.push(packet),
                Next::Closed => return packets,
                Next::Nothing => panic!(
                    "the client did not close the connection within {WAIT:?} (read {packets:?})"
                ),
            }
        }
    }

    /// Reads and discards bytes until EOF (within [`WAIT`]), without decoding:
    /// for connections whose last packet the client may have cut short. Returns
    /// the number of bytes read.
    pub(crate) async fn drain_to_eof(&mut self) -> usize {
        let mut total = self.rx.len();
        self.rx.clear();
        let mut sink = vec![0u8; 64 * 1024];
        within(WAIT, "the client to close the connection", async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        })
        .await
    }

    /// Writes a packet, encoded for the connection's version, within [`WAIT`].
    pub(crate) async fn send(&mut self, packet: impl Into<Packet>) {
        let bytes = packet
            .into()
            .to_bytes(self.version)
            .expect("the test's packet encodes");
        self.send_bytes(&bytes).await;
    }

    /// Writes raw bytes, within [`WAIT`].
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        within(WAIT, "the client to take the server's bytes", async {
            self.stream
                .write_all(bytes)
                .await
                .expect("the client end is open");
        })
        .await;
    }

    /// Writes raw bytes if the client takes them within `limit`; false when it
    /// does not (it stopped reading). After false, part of `bytes` may have been
    /// written: the connection is only good for dropping.
    pub(crate) async fn try_send_bytes(&mut self, bytes: &[u8], limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.stream.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }
}

/// A packet identifier.
pub(crate) fn pid(id: u16) -> PacketId {
    PacketId::new(id).expect("packet identifiers are not 0")
}

/// A PUBLISH from the server: identifier `id` for QoS 1/2 (ignored for QoS 0).
pub(crate) fn publish(qos: QoS, id: u16, topic: &str, payload: impl Into<Bytes>) -> Publish {
    Publish {
        qos,
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(id)),
        topic: MqttString::try_from(topic).expect("a valid topic"),
        payload: payload.into(),
        ..Publish::default()
    }
}

/// A successful PUBACK, PUBREC, PUBREL or PUBCOMP body.
pub(crate) fn ack(id: u16) -> PubAck {
    PubAck::new(pid(id))
}

/// `(type, packet identifier, reason code)` of an acknowledgement the client
/// wrote, for comparing sequences of them; `None` for other packets.
pub(crate) fn ack_of(packet: &Packet) -> Option<(&'static str, u16, u8)> {
    let (kind, ack) = match packet {
        Packet::PubAck(a) => ("PUBACK", a),
        Packet::PubRec(a) => ("PUBREC", a),
        Packet::PubRel(a) => ("PUBREL", a),
        Packet::PubComp(a) => ("PUBCOMP", a),
        _ => return None,
    };
    Some((kind, ack.packet_id.get(), ack.reason_code.0))
}
