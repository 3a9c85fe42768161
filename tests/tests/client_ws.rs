//! WebSocket and WebSocket over TLS: against mosquitto's `protocol websockets`
//! listeners (QoS 0/1/2, MQTT 5 and 3.1.1 with `mqttv3.1`, through the CONNECT
//! proxy), and against an in-test tokio-tungstenite server that controls the
//! frames: a packet split across messages and several packets in one message
//! decode; a text message or one over the maximum packet size closes the
//! connection with 1003 / 1009 and a typed error; an upgrade refused with 401 is
//! fatal; the subprotocol and custom headers reach the server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::result_large_err,
    reason = "tests (tungstenite's handshake callback returns an HTTP response as its error)"
)]

mod client_common;

use std::time::Duration;

use client_common::{fast_backoff, recv, round_trip, within, WAIT};
use futures_util::{SinkExt, StreamExt};
use mqtt_client::transport::{
    Proxy, Servers, TlsError, TlsOptions, TransportError, WsError, WsOptions,
};
use mqtt_client::{Client, ConnectionError, Incoming, Options, ProtocolVersion, QoS};
use mqtt_tests::broker::Mosquitto;
use mqtt_tests::pki::{KeyFormat, Pki, Validity};
use mqtt_tests::proxy::ConnectProxy;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// A mosquitto with a WebSocket listener (0), a secure one (1) and a secure one
/// that requires a client certificate of the test CA (2).
struct WsBroker {
    broker: Mosquitto,
    pki: Pki,
}

impl WsBroker {
    fn start() -> Self {
        let pki = Pki::new("ws CA");
        let server = pki.server("server", &["localhost", "127.0.0.1"], Validity::Current);
        let broker = Mosquitto::builder()
            .listener(["protocol websockets"])
            .listener([
                "protocol websockets".to_owned(),
                format!("certfile {}", server.cert.display()),
                format!("keyfile {}", server.key.display()),
            ])
            .listener([
                "protocol websockets".to_owned(),
                format!("certfile {}", server.cert.display()),
                format!("keyfile {}", server.key.display()),
                format!("cafile {}", pki.ca_file().display()),
                "require_certificate true".to_owned(),
            ])
            .start();
        Self { broker, pki }
    }

    fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.broker.listener_port(0))
    }

    fn wss(&self) -> String {
        format!("wss://localhost:{}/mqtt", self.broker.listener_port(1))
    }

    fn wss_mutual(&self) -> String {
        format!("wss://localhost:{}/mqtt", self.broker.listener_port(2))
    }

    fn servers(&self, url: &str) -> Servers {
        Servers::parse(url)
            .unwrap()
            .with_tls(TlsOptions::new().with_ca_file(self.pki.ca_file()))
    }
}

async fn connect(options: Options, servers: Servers) -> (Client, Incoming) {
    within(WAIT, "connect", Client::connect(options, servers))
        .await
        .unwrap_or_else(|e| panic!("could not connect: {e}"))
}

/// A subscriber on `servers`, a publisher over plain TCP: every QoS arrives.
async fn every_qos(b: &WsBroker, servers: Servers, version: ProtocolVersion, tag: &str) {
    let (client, mut incoming) = connect(
        Options::new(format!("{tag}-sub")).with_version(version),
        servers,
    )
    .await;
    let topic = format!("ws/{tag}");
    client.subscribe(&topic, QoS::ExactlyOnce).await.unwrap();
    let tcp = Servers::parse(&format!("mqtt://127.0.0.1:{}", b.broker.port())).unwrap();
    let (publisher, _p) = connect(Options::new(format!("{tag}-pub")), tcp).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("{tag} {qos:?}");
        let done = publisher
            .publish(&topic, qos, false, payload.clone())
            .await
            .unwrap();
        within(WAIT, "publish", done).await.unwrap();
        let mut message = recv(&mut incoming).await;
        assert_eq!(
            (&message.payload()[..], message.qos()),
            (payload.as_bytes(), qos)
        );
        message.ack().unwrap();
    }
    // And the other way: published over the WebSocket.
    let done = client
        .publish(&topic, QoS::ExactlyOnce, false, "back")
        .await
        .unwrap();
    within(WAIT, "publish over ws", done).await.unwrap();
    let mut message = recv(&mut incoming).await;
    assert_eq!(&message.payload()[..], b"back");
    message.ack().unwrap();
    client.disconnect().await.unwrap();
    publisher.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_to_mosquitto_at_every_qos() {
    let b = WsBroker::start();
    every_qos(&b, b.servers(&b.ws()), ProtocolVersion::V5, "ws5").await;
    // MQTT 3.1.1 with the old subprotocol name.
    let servers = b
        .servers(&b.ws())
        .with_websocket(WsOptions::new().with_subprotocol("mqttv3.1"));
    every_qos(&b, servers, ProtocolVersion::V311, "ws311").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_to_mosquitto_at_every_qos() {
    let b = WsBroker::start();
    every_qos(&b, b.servers(&b.wss()), ProtocolVersion::V5, "wss").await;
    // The certificate is verified as for mqtts://.
    let untrusted = Servers::parse(&b.wss()).unwrap();
    match within(
        WAIT,
        "wss untrusted",
        Client::connect(Options::new("wss-bad"), untrusted),
    )
    .await
    {
        Err(ConnectionError::Transport { error, .. }) => {
            assert!(matches!(*error, TransportError::Tls(_)), "{error:?}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// Mutual TLS under a WebSocket: with a client certificate the upgrade and the
/// session work; without one the server's refusal (a TLS 1.3 alert read during
/// the upgrade) is the TLS error it is, fatal, not a WebSocket I/O error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_with_mutual_tls() {
    let b = WsBroker::start();
    let files = b.pki.client("wss-mtls", KeyFormat::Pkcs8);
    let tls = TlsOptions::new()
        .with_ca_file(b.pki.ca_file())
        .with_client_cert_files(&files.cert, &files.key);
    let servers = Servers::parse(&b.wss_mutual()).unwrap().with_tls(tls);
    let (client, mut incoming) = connect(Options::new("wss-mtls"), servers).await;
    round_trip(&client, &mut incoming, "wss/mtls").await;
    client.disconnect().await.unwrap();

    let without = b.servers(&b.wss_mutual());
    match within(
        WAIT,
        "wss without a client certificate",
        Client::connect(Options::new("wss-no-cert"), without),
    )
    .await
    {
        Err(ConnectionError::Transport { error, .. }) => {
            assert!(
                matches!(
                    *error,
                    TransportError::Tls(TlsError::ClientCertificateRefused(_))
                ),
                "{error:?}"
            );
            assert!(error.is_fatal(), "{error:?}");
        }
        other => panic!("expected the client certificate refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_secure_websocket_through_a_connect_proxy() {
    let b = WsBroker::start();
    let proxy = ConnectProxy::start().await;
    for url in [b.ws(), b.wss()] {
        let servers = b
            .servers(&url)
            .with_proxy(Proxy::http(&proxy.url()).unwrap());
        let (client, mut incoming) = connect(Options::new("ws-proxy"), servers).await;
        client
            .subscribe("ws/proxy", QoS::AtLeastOnce)
            .await
            .unwrap();
        let done = client
            .publish("ws/proxy", QoS::AtLeastOnce, false, "via proxy")
            .await
            .unwrap();
        within(WAIT, "PUBACK", done).await.unwrap();
        let mut message = recv(&mut incoming).await;
        assert_eq!(&message.payload()[..], b"via proxy");
        message.ack().unwrap();
        client.disconnect().await.unwrap();
    }
    assert_eq!(
        proxy.tunnels(),
        vec![
            format!("127.0.0.1:{}", b.broker.listener_port(0)),
            format!("localhost:{}", b.broker.listener_port(1)),
        ]
    );
}

// ----- an in-test WebSocket server ---------------------------------------------------

/// What the in-test server saw.
#[derive(Debug)]
struct Seen {
    path: String,
    subprotocol: Option<String>,
    authorization: Option<String>,
    /// The close code the client sent, if it closed with one.
    close: Option<CloseCode>,
}

/// How the in-test server behaves after the upgrade.
#[derive(Debug, Clone)]
enum Script {
    /// The CONNACK split across two messages, then a PUBLISH and a PINGRESP-free
    /// second PUBLISH in one message.
    SplitAndJoined,
    /// CONNACK, then a text message.
    Text,
    /// CONNACK, then a binary message of this many bytes.
    Oversize(usize),
}

/// CONNACK (MQTT 5, success, no properties).
const CONNACK: [u8; 5] = [0x20, 0x03, 0x00, 0x00, 0x00];

/// A QoS 0 PUBLISH (MQTT 5) of `payload` to `t`.
fn publish(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x30,
        u8::try_from(4 + payload.len()).unwrap(),
        0x00,
        0x01,
        b't',
        0x00,
    ];
    p.extend_from_slice(payload);
    p
}

/// Accepts one connection: answers the upgrade (or refuses it with `refuse`),
/// reads the CONNECT, plays `script`, and reports what it saw.
async fn ws_server(
    script: Script,
    refuse: Option<StatusCode>,
) -> (u16, oneshot::Receiver<Seen>, mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = oneshot::channel();
    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = accepted_tx.send(());
            let (head_tx, head_rx) = std::sync::mpsc::channel();
            let callback = move |request: &Request, mut response: Response| {
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let subprotocol = header("Sec-WebSocket-Protocol");
                let _ = head_tx.send((
                    request.uri().to_string(),
                    subprotocol.clone(),
                    header("Authorization"),
                ));
                if let Some(status) = refuse {
                    let mut refusal =
                        tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(None);
                    *refusal.status_mut() = status;
                    return Err(refusal);
                }
                if let Some(p) = subprotocol {
                    response
                        .headers_mut()
                        .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
                }
                Ok(response)
            };
            let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                // Refused: the client must not come back (fatal), but keep
                // accepting so that a retry would be counted.
                continue;
            };
            let (path, subprotocol, authorization) = head_rx.recv().unwrap();
            // The CONNECT, in one message.
            let connect = ws.next().await.unwrap().unwrap();
            assert!(
                matches!(&connect, Message::Binary(b) if b[0] == 0x10),
                "{connect:?}"
            );
            match &script {
                Script::SplitAndJoined => {
                    ws.send(Message::binary(CONNACK[..2].to_vec()))
                        .await
                        .unwrap();
                    ws.send(Message::binary(CONNACK[2..].to_vec()))
                        .await
                        .unwrap();
                    let mut both = publish(b"one");
                    both.extend(publish(b"two"));
                    // The second packet's tail goes in a third message.
                    let tail = both.split_off(both.len() - 2);
                    ws.send(Message::binary(both)).await.unwrap();
                    ws.send(Message::binary(tail)).await.unwrap();
                }
                Script::Text => {
                    ws.send(Message::binary(CONNACK.to_vec())).await.unwrap();
                    ws.send(Message::text("not MQTT")).await.unwrap();
                }
                Script::Oversize(n) => {
                    ws.send(Message::binary(CONNACK.to_vec())).await.unwrap();
                    ws.send(Message::binary(vec![0u8; *n])).await.unwrap();
                }
            }
            // Until the client closes: its close code, if any.
            let mut close = None;
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Close(frame) = message {
                    close = frame.map(|f| f.code);
                    break;
                }
            }
            let _ = seen_tx.send(Seen {
                path,
                subprotocol,
                authorization,
                close,
            });
            return;
        }
    });
    (port, seen_rx, accepted_rx)
}

fn quick(id: &str) -> Options {
    Options::new(id)
        .with_reconnect(fast_backoff())
        .with_connect_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_split_across_messages_and_joined_in_one_decode() {
    let (port, seen, _accepted) = ws_server(Script::SplitAndJoined, None).await;
    let ws = WsOptions::new().with_header("Authorization", "Bearer t0ken");
    let servers = Servers::parse(&format!("ws://127.0.0.1:{port}/mqtt?tenant=7"))
        .unwrap()
        .with_websocket(ws);
    let (client, mut incoming) = connect(quick("ws-split"), servers).await;
    let one = recv(&mut incoming).await;
    let two = recv(&mut incoming).await;
    assert_eq!(
        (&one.payload()[..], &two.payload()[..]),
        (&b"one"[..], &b"two"[..])
    );
    client.disconnect().await.unwrap();
    let seen = within(WAIT, "server report", seen).await.unwrap();
    assert_eq!(seen.path, "/mqtt?tenant=7");
    assert_eq!(seen.subprotocol.as_deref(), Some("mqtt"));
    assert_eq!(seen.authorization.as_deref(), Some("Bearer t0ken"));
}

/// The error the client closed with, and the close code the server saw.
async fn closed_with(script: Script, options: Options) -> (ConnectionError, Option<CloseCode>) {
    let (port, seen, _accepted) = ws_server(script, None).await;
    let servers = Servers::parse(&format!("ws://127.0.0.1:{port}/mqtt")).unwrap();
    let (client, _incoming) = connect(options, servers).await;
    let error = within(WAIT, "closed", client.closed()).await;
    let seen = within(WAIT, "server report", seen).await.unwrap();
    (error, seen.close)
}

fn ws_error(error: &ConnectionError) -> &WsError {
    match error {
        ConnectionError::Transport { error, .. } => match &**error {
            TransportError::WebSocket(e) => e,
            other => panic!("expected a WebSocket error, got {other:?}"),
        },
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_closes_with_1003() {
    let (error, close) = closed_with(Script::Text, quick("ws-text")).await;
    assert!(matches!(ws_error(&error), WsError::TextFrame), "{error:?}");
    assert_eq!(close, Some(CloseCode::Unsupported));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_maximum_packet_size_closes_with_1009() {
    let options = quick("ws-big").with_maximum_packet_size(1024);
    let (error, close) = closed_with(Script::Oversize(4096), options).await;
    assert!(
        matches!(
            ws_error(&error),
            WsError::FrameTooLarge { maximum: 1024, .. }
        ),
        "{error:?}"
    );
    assert_eq!(close, Some(CloseCode::Size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_refused_with_401_is_fatal() {
    let (port, _seen, mut accepted) = ws_server(Script::Text, Some(StatusCode::UNAUTHORIZED)).await;
    let servers = Servers::parse(&format!("ws://127.0.0.1:{port}/mqtt")).unwrap();
    match within(WAIT, "refused", Client::connect(quick("ws-401"), servers)).await {
        Err(ConnectionError::Transport { error, .. }) => {
            assert!(error.is_fatal());
            assert!(
                matches!(
                    &*error,
                    TransportError::WebSocket(WsError::Refused { status: 401 })
                ),
                "{error:?}"
            );
        }
        other => panic!("expected a fatal refusal, got {other:?}"),
    }
    // One attempt only.
    assert!(accepted.recv().await.is_some());
    assert!(accepted.try_recv().is_err());
}
