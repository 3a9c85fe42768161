//! What each transport of `mqtt-client` costs against plain TCP, per connection
//! and per message, in one run against one local mosquitto.
//!
//! - One mosquitto (127.0.0.1, `log_dest none`, `set_tcp_nodelay true`, no queue
//!   or in-flight limits) with
//!   a listener per transport: TCP, TLS, WebSocket, WebSocket over TLS. The
//!   certificates are made at the start of the run (ECDSA P-256, a test CA the
//!   client trusts: [`mqtt_tests::pki::Pki`]); TLS 1.3 is negotiated.
//! - **Per connection**: `Client::connect` (TCP connect, TLS handshake, WebSocket
//!   upgrade, CONNECT/CONNACK) and `disconnect`, `TRANSPORT_CONNECTS` times one
//!   after another per transport and round for the wall time; the same number of
//!   connects taken apart by hand (the crate's `TlsConnector` and `ws::upgrade`,
//!   then a raw CONNECT) for the time of each phase; and `TRANSPORT_CPU_CONNECTS`
//!   connects, 20 at a time, for the process CPU (`/proc/self/stat`, 10 ms ticks)
//!   per connection (client and the handshake's crypto; the broker's CPU is not
//!   counted).
//! - **Per message**: a subscriber and a publisher, both over the transport under
//!   test, `MESSAGES` messages of 100 bytes at QoS 0 and at QoS 1 (window 100,
//!   automatic acks); msgs/s from the first publish to the last distinct message
//!   received, client CPU per message over the same window.
//! - Rounds interleave the transports (TCP, TLS, WS, WSS, TCP, ...) so that the
//!   machine's noise hits all of them; the report gives medians over the rounds
//!   and each transport's ratio to TCP in the same run.
//!
//! No peer crate runs here: rumqttc's TLS feature pulls in rustls-pemfile, which
//! is unmaintained and kept out of this tree, and the end-to-end TCP comparison
//! with rumqttc is `benches/E2E.md`.
//!
//! Run: `cargo bench -p mqtt-benches --bench transports > benches/TRANSPORTS.md`.
//! Environment: `TRANSPORT_ROUNDS` (default 5), `TRANSPORT_CONNECTS` (per round
//! and transport, default 20), `TRANSPORT_CPU_CONNECTS` (default 1000),
//! `TRANSPORT_MESSAGES` (default 50 000 at QoS 0,
//! 20 000 at QoS 1). Run by `cargo test --all-targets` (without `--bench`), it
//! makes a quick smoke run that fails if a message is lost and prints no report.

#![allow(
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "benchmark: a failed setup must stop the run; it prints its table"
)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt_benches::{clock_ticks, median, process_cpu};
use mqtt_client::transport::{ws, Servers, TlsConnector, TlsOptions, WsOptions};
use mqtt_client::{Client, Options, ProtocolVersion, QoS, Qos0Overflow};
use mqtt_tests::broker::Mosquitto;
use mqtt_tests::pki::{Pki, Validity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const PAYLOAD_LEN: usize = 100;
const WINDOW: u16 = 100;
const LIMIT: Duration = Duration::from_secs(60);
/// Connects run side by side when measuring CPU per connect.
const CPU_BATCH: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    const ALL: [Transport; 4] = [Self::Tcp, Self::Tls, Self::Ws, Self::Wss];

    fn label(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WebSocket",
            Self::Wss => "WebSocket over TLS",
        }
    }
}

struct Setup {
    broker: Mosquitto,
    pki: Pki,
    tls: TlsConnector,
    clk_tck: u64,
}

impl Setup {
    fn start() -> Self {
        let pki = Pki::new("transports bench CA");
        let server = pki.server("server", &["localhost", "127.0.0.1"], Validity::Current);
        let tls = [
            format!("certfile {}", server.cert.display()),
            format!("keyfile {}", server.key.display()),
        ];
        let ws = ["protocol websockets".to_owned()];
        let wss: Vec<String> = ws.iter().chain(tls.iter()).cloned().collect();
        let broker = Mosquitto::builder()
            // Every packet logged to a file would be measured as broker work.
            .config_line("log_dest none")
            // mosquitto leaves Nagle on by default: a TLS handshake's last flight
            // would then wait ~40 ms for the client's delayed ACK, a cost of the
            // broker's configuration, not of the transport.
            .config_line("set_tcp_nodelay true")
            .listener(tls)
            .listener(ws)
            .listener(wss)
            .start();
        let tls = TlsOptions::new()
            .with_ca_file(pki.ca_file())
            .build()
            .unwrap_or_else(|e| panic!("TLS options: {e}"));
        Self {
            broker,
            pki,
            tls,
            clk_tck: clock_ticks(),
        }
    }

    fn port(&self, transport: Transport) -> u16 {
        match transport {
            Transport::Tcp => self.broker.port(),
            Transport::Tls => self.broker.listener_port(0),
            Transport::Ws => self.broker.listener_port(1),
            Transport::Wss => self.broker.listener_port(2),
        }
    }

    fn servers(&self, transport: Transport) -> Servers {
        let url = match transport {
            Transport::Tcp => format!("mqtt://127.0.0.1:{}", self.port(transport)),
            Transport::Tls => format!("mqtts://localhost:{}", self.port(transport)),
            Transport::Ws => format!("ws://127.0.0.1:{}/mqtt", self.port(transport)),
            Transport::Wss => format!("wss://localhost:{}/mqtt", self.port(transport)),
        };
        Servers::parse(&url)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .with_tls(TlsOptions::new().with_ca_file(self.pki.ca_file()))
    }

    fn cpu(&self) -> Duration {
        process_cpu(self.clk_tck).unwrap_or_default()
    }
}

fn options(id: &str) -> Options {
    Options::new(id)
        .with_version(ProtocolVersion::V5)
        .with_receive_maximum(WINDOW)
        .with_max_inflight(WINDOW)
        .with_request_queue(usize::from(WINDOW))
        .with_auto_ack(true)
        .with_qos0_overflow(Qos0Overflow::PauseReading)
        // mosquitto 2.0.11 overruns a Receive Maximum while it holds a backlog for
        // the subscriber (one PUBACK releases up to 20 queued messages); a strict
        // subscriber would be disconnected with 0x93 mid-stream.
        .with_strict_receive_maximum(false)
}

/// Sequential connects: the wall time of each, µs.
async fn connect_walls(setup: &Setup, transport: Transport, n: usize) -> Result<Vec<f64>, String> {
    let servers = setup.servers(transport);
    let mut walls = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let client = connect_once(&servers, transport, &format!("bench-conn-{i}")).await?;
        walls.push(start.elapsed().as_secs_f64() * 1e6);
        disconnect(client, transport).await?;
    }
    Ok(walls)
}

/// `n` connects, [`CPU_BATCH`] at a time: client CPU per connect, µs. The CPU
/// clock ticks every 10 ms, so many connects share one reading; running them
/// side by side keeps the broker's waits (mosquitto's WebSocket listeners answer
/// on a 100 ms service tick) from stretching the run.
async fn connect_cpu(setup: &Setup, transport: Transport, n: usize) -> Result<f64, String> {
    let servers = setup.servers(transport);
    let cpu0 = setup.cpu();
    let mut done = 0;
    while done < n {
        let batch = CPU_BATCH.min(n - done);
        let mut set = tokio::task::JoinSet::new();
        for i in done..done + batch {
            let servers = servers.clone();
            set.spawn(async move {
                let client = connect_once(&servers, transport, &format!("bench-cpu-{i}")).await?;
                disconnect(client, transport).await
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.map_err(|e| format!("{}: connect task: {e}", transport.label()))??;
        }
        done += batch;
    }
    Ok((setup.cpu() - cpu0).as_secs_f64() * 1e6 / n as f64)
}

async fn connect_once(servers: &Servers, transport: Transport, id: &str) -> Result<Client, String> {
    let (client, _incoming) = timeout(LIMIT, Client::connect(options(id), servers.clone()))
        .await
        .map_err(|_| format!("{}: connect timed out", transport.label()))?
        .map_err(|e| format!("{}: {e}", transport.label()))?;
    Ok(client)
}

async fn disconnect(client: Client, transport: Transport) -> Result<(), String> {
    client
        .disconnect()
        .await
        .map_err(|e| format!("{}: disconnect: {e}", transport.label()))
}

/// One connect taken apart by hand with the transport's own pieces: TCP connect,
/// TLS handshake, WebSocket upgrade, then a raw MQTT 3.1.1 CONNECT until its
/// CONNACK; µs for each (0 for a phase the transport does not have).
async fn phases(setup: &Setup, transport: Transport) -> Result<[f64; 4], String> {
    let label = transport.label();
    let us = |t: Instant| t.elapsed().as_secs_f64() * 1e6;
    let port = setup.port(transport);
    let start = Instant::now();
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("{label}: TCP: {e}"))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("{label}: nodelay: {e}"))?;
    let t_tcp = us(start);
    let mut p = [t_tcp, 0.0, 0.0, 0.0];
    match transport {
        Transport::Tcp => p[3] = connack(&mut { tcp }, label).await?,
        Transport::Ws => {
            let (mut s, t_upgrade) = upgrade(tcp, "127.0.0.1", port, false, label).await?;
            p[2] = t_upgrade;
            p[3] = connack(&mut s, label).await?;
        }
        Transport::Tls | Transport::Wss => {
            let t = Instant::now();
            let mut tls = setup
                .tls
                .connect("localhost", tcp)
                .await
                .map_err(|e| format!("{label}: TLS: {e}"))?;
            p[1] = us(t);
            if transport == Transport::Tls {
                p[3] = connack(&mut tls, label).await?;
            } else {
                let (mut s, t_upgrade) = upgrade(tls, "localhost", port, true, label).await?;
                p[2] = t_upgrade;
                p[3] = connack(&mut s, label).await?;
            }
        }
    }
    Ok(p)
}

/// The WebSocket upgrade over `stream` to `/mqtt`, and the µs it took.
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    host: &str,
    port: u16,
    secure: bool,
    label: &str,
) -> Result<(ws::WsStream<S>, f64), String> {
    let t = Instant::now();
    let s = ws::upgrade(
        stream,
        host,
        port,
        secure,
        "/mqtt",
        &WsOptions::new(),
        1 << 20,
    )
    .await
    .map_err(|e| format!("{label}: upgrade: {e}"))?;
    Ok((s, t.elapsed().as_secs_f64() * 1e6))
}

/// Writes an MQTT 3.1.1 CONNECT (empty client id, clean session), reads the
/// CONNACK, and returns the µs from the write to the CONNACK.
async fn connack<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, label: &str) -> Result<f64, String> {
    let t = Instant::now();
    const CONNECT: [u8; 14] = [
        0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
    ];
    s.write_all(&CONNECT)
        .await
        .map_err(|e| format!("{label}: CONNECT: {e}"))?;
    s.flush()
        .await
        .map_err(|e| format!("{label}: CONNECT: {e}"))?;
    let mut ack = [0; 4];
    timeout(LIMIT, s.read_exact(&mut ack))
        .await
        .map_err(|_| format!("{label}: CONNACK timed out"))?
        .map_err(|e| format!("{label}: CONNACK: {e}"))?;
    if ack != [0x20, 0x02, 0x00, 0x00] {
        return Err(format!("{label}: CONNACK {ack:02x?}"));
    }
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

/// One stream of `n` messages: msgs/s and client CPU µs per message.
async fn stream(
    setup: &Setup,
    transport: Transport,
    qos: QoS,
    n: u64,
    round: usize,
) -> Result<(f64, f64), String> {
    let label = transport.label();
    let topic = format!("bench/transports/{round}/{label}/{qos:?}");
    let servers = setup.servers(transport);
    let (subscriber, mut incoming) = Client::connect(options("bench-sub"), servers.clone())
        .await
        .map_err(|e| format!("{label}: subscriber: {e}"))?;
    subscriber
        .subscribe(&topic, qos)
        .await
        .map_err(|e| format!("{label}: subscribe: {e}"))?;
    let (publisher, _publisher_incoming) = Client::connect(options("bench-pub"), servers)
        .await
        .map_err(|e| format!("{label}: publisher: {e}"))?;
    // A reconnect inside the window would be measured as transport cost.
    let mut events = [subscriber.events(), publisher.events()];

    let progress = Arc::new(AtomicU64::new(0));
    let seen_so_far = progress.clone();
    let receive = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while (seen.len() as u64) < n {
            match incoming.recv().await {
                Some(message) => {
                    let seq = message
                        .payload()
                        .get(..8)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map(u64::from_be_bytes);
                    if let Some(seq) = seq {
                        seen.insert(seq);
                        seen_so_far.store(seen.len() as u64, Ordering::Relaxed);
                    }
                }
                None => break,
            }
        }
        seen.len() as u64
    });
    let cpu0 = setup.cpu();
    let start = Instant::now();
    let feed = {
        let publisher = publisher.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for seq in 0..n {
                let mut payload = vec![b'x'; PAYLOAD_LEN];
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                if let Err(e) = publisher.publish(&topic, qos, false, payload).await {
                    return Err(format!("publish {seq}: {e}"));
                }
            }
            Ok(())
        })
    };
    let received = timeout(LIMIT, receive)
        .await
        .map_err(|_| {
            let got = progress.load(Ordering::Relaxed);
            format!("{label} {qos:?}: timed out, {got} of {n} messages received")
        })?
        .map_err(|e| format!("{label}: receiver: {e}"))?;
    let elapsed = start.elapsed();
    let cpu = setup.cpu() - cpu0;
    feed.await
        .map_err(|e| format!("{label}: feeder: {e}"))?
        .map_err(|e| format!("{label}: {e}"))?;
    for (who, events) in ["subscriber", "publisher"].iter().zip(&mut events) {
        if let Ok(event) = events.try_recv() {
            return Err(format!("{label} {qos:?}: {who} mid-stream: {event:?}"));
        }
    }
    let _ = publisher.disconnect().await;
    let _ = subscriber.disconnect().await;
    if received != n {
        return Err(format!("{label}: {received} of {n} messages arrived"));
    }
    Ok((
        n as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
    ))
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transports: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Per transport: connect wall times and phases (all rounds), CPU per connect
/// (per round), and per QoS msgs/s and CPU per message (per round).
#[derive(Default)]
struct Series {
    connect_wall: Vec<f64>,
    phases: [Vec<f64>; 4],
    connect_cpu: Vec<f64>,
    rate: [Vec<f64>; 2],
    cpu: [Vec<f64>; 2],
}

fn run() -> Result<(), String> {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (rounds, connects_n, cpu_connects, messages) = if smoke {
        (1, 3, 3, [300, 300])
    } else {
        (
            env("TRANSPORT_ROUNDS", 5) as usize,
            env("TRANSPORT_CONNECTS", 20) as usize,
            env("TRANSPORT_CPU_CONNECTS", 1000) as usize,
            [
                env("TRANSPORT_MESSAGES", 50_000),
                env("TRANSPORT_MESSAGES", 20_000),
            ],
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let setup = Setup::start();
    let mut series: Vec<Series> = Transport::ALL.iter().map(|_| Series::default()).collect();
    for round in 0..rounds {
        for (t, transport) in Transport::ALL.iter().enumerate() {
            let walls = rt.block_on(connect_walls(&setup, *transport, connects_n))?;
            series[t].connect_wall.extend(walls);
            for _ in 0..connects_n {
                let p = rt.block_on(phases(&setup, *transport))?;
                for (all, one) in series[t].phases.iter_mut().zip(p) {
                    all.push(one);
                }
            }
            let cpu = rt.block_on(connect_cpu(&setup, *transport, cpu_connects))?;
            series[t].connect_cpu.push(cpu);
            for (q, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce].into_iter().enumerate() {
                let (rate, cpu) =
                    rt.block_on(stream(&setup, *transport, qos, messages[q], round))?;
                series[t].rate[q].push(rate);
                series[t].cpu[q].push(cpu);
            }
            eprintln!(
                "transports: round {}/{rounds}: {} done",
                round + 1,
                transport.label()
            );
        }
    }
    if smoke {
        eprintln!("transports: smoke run passed (no report without --bench)");
        return Ok(());
    }
    print!(
        "{}",
        report(&series, rounds, connects_n, cpu_connects, messages)
    );
    Ok(())
}

fn report(
    series: &[Series],
    rounds: usize,
    connects_n: usize,
    cpu_connects: usize,
    messages: [u64; 2],
) -> String {
    let m = |v: &[f64]| median(v.to_vec()).unwrap_or(f64::NAN);
    let version = std::process::Command::new("mosquitto")
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "# What each transport costs against TCP\n");
    let _ = writeln!(
        md,
        "Produced by `cargo bench -p mqtt-benches --bench transports > benches/TRANSPORTS.md` at {}.\n",
        mqtt_benches::stamp()
    );
    let _ = writeln!(
        md,
        "- {rounds} rounds, transports interleaved within each; broker: {version} on 127.0.0.1 \
         (one instance, a listener per transport, `log_dest none`, `set_tcp_nodelay true`); MQTT 5; TLS with an \
         ECDSA P-256 certificate of a test CA, rustls on ring.\n\
         - Per connection: {connects_n} connects one after another per round and \
         transport with `Client::connect` (TCP + TLS + WebSocket upgrade + CONNECT/CONNACK, \
         then DISCONNECT), wall time median over all of them; the same number taken apart \
         by hand (TCP connect, TLS handshake, WebSocket upgrade, a raw CONNECT until its \
         CONNACK), medians per phase; client CPU per connect over {cpu_connects} connects \
         per round ({CPU_BATCH} at a time), median over the rounds.\n\
         - Per message: {} messages at QoS 0 and {} at QoS 1, 100 bytes, window 100 \
         (the subscriber tolerates Receive Maximum overruns: mosquitto 2.0.11 commits them \
         under backlog), publisher and subscriber both on the transport; msgs/s and client CPU (both \
         clients, `/proc/self/stat`, 10 ms ticks) per message, medians over the rounds.\n\
         - Machine: 2 cores, shared, noisy: read the ratios.\n",
        messages[0], messages[1]
    );
    let _ = writeln!(
        md,
        "| transport | connect µs (median) | × TCP | client CPU µs/connect | × TCP | QoS 0 msgs/s | × TCP | QoS 0 CPU µs/msg | × TCP | QoS 1 msgs/s | × TCP | QoS 1 CPU µs/msg | × TCP |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let Some(tcp) = series.first() else {
        return md;
    };
    for (transport, s) in Transport::ALL.iter().zip(series) {
        let ratio = |a: f64, b: f64| format!("{:.2}×", a / b);
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {:.0} | {} | {:.0} | {} | {:.2} | {} | {:.0} | {} | {:.2} | {} |",
            transport.label(),
            m(&s.connect_wall),
            ratio(m(&s.connect_wall), m(&tcp.connect_wall)),
            m(&s.connect_cpu),
            ratio(m(&s.connect_cpu), m(&tcp.connect_cpu)),
            m(&s.rate[0]),
            ratio(m(&s.rate[0]), m(&tcp.rate[0])),
            m(&s.cpu[0]),
            ratio(m(&s.cpu[0]), m(&tcp.cpu[0])),
            m(&s.rate[1]),
            ratio(m(&s.rate[1]), m(&tcp.rate[1])),
            m(&s.cpu[1]),
            ratio(m(&s.cpu[1]), m(&tcp.cpu[1])),
        );
    }
    let _ = writeln!(
        md,
        "\nOne connect by phase (µs, medians over {} connects each; `-`: no such phase):\n",
        rounds * connects_n
    );
    let _ = writeln!(
        md,
        "| transport | TCP connect | TLS handshake | WebSocket upgrade | CONNECT → CONNACK | sum |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for (transport, s) in Transport::ALL.iter().zip(series) {
        let p: Vec<f64> = s.phases.iter().map(|v| m(v)).collect();
        let cell = |x: f64| {
            if x > 0.0 {
                format!("{x:.0}")
            } else {
                "-".to_owned()
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} |",
            transport.label(),
            cell(p[0]),
            cell(p[1]),
            cell(p[2]),
            cell(p[3]),
            p.iter().sum::<f64>()
        );
    }
    let _ = writeln!(md, "\nEvery round, msgs/s at QoS 0 and QoS 1:\n");
    for (transport, s) in Transport::ALL.iter().zip(series) {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "- {}: QoS 0 {}; QoS 1 {}",
            transport.label(),
            list(&s.rate[0]),
            list(&s.rate[1])
        );
    }
    md
}
