//! TLS against real mosquitto brokers, with a CA, server and client certificates
//! made at test time ([`mqtt_tests::pki`]): verification against a custom CA (by
//! name and by IP address), mutual TLS with keys in PKCS#8, SEC1 and PKCS#1, and
//! each failure with its own typed, fatal error: unknown CA, hostname mismatch
//! (and the server-name override that fixes it), expired certificate, missing or
//! untrusted client certificate, encrypted and mismatched keys. An in-test rustls
//! server checks what the client offers (SNI, ALPN).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod client_common;

use std::sync::Arc;

use client_common::{fast_backoff, round_trip, within, WAIT};
use mqtt_client::transport::{KeyProblem, Servers, TlsError, TlsOptions, TransportError};
use mqtt_client::{Client, ConnectionError, Incoming, Options};
use mqtt_tests::broker::Mosquitto;
use mqtt_tests::pki::{CertFiles, KeyFormat, Pki, Validity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// A broker with four TLS listeners, by index: 0 a certificate for `localhost`
/// and `127.0.0.1`; 1 the same, requiring a client certificate of the CA; 2 an
/// expired certificate; 3 a certificate naming only `device-17.example`.
struct TlsBroker {
    broker: Mosquitto,
    pki: Pki,
}

const PLAIN: usize = 0;
const MUTUAL: usize = 1;
const EXPIRED: usize = 2;
const DEVICE: usize = 3;

impl TlsBroker {
    fn start() -> Self {
        let pki = Pki::new("mqtt-tests CA");
        let good = pki.server("server", &["localhost", "127.0.0.1"], Validity::Current);
        let expired = pki.server("expired", &["localhost", "127.0.0.1"], Validity::Expired);
        let device = pki.server("device", &["device-17.example"], Validity::Current);
        let tls = |files: &CertFiles| {
            vec![
                format!("certfile {}", files.cert.display()),
                format!("keyfile {}", files.key.display()),
            ]
        };
        let mut mutual = tls(&good);
        mutual.push(format!("cafile {}", pki.ca_file().display()));
        mutual.push("require_certificate true".to_owned());
        let broker = Mosquitto::builder()
            .listener(tls(&good))
            .listener(mutual)
            .listener(tls(&expired))
            .listener(tls(&device))
            .start();
        Self { broker, pki }
    }

    fn url(&self, host: &str, listener: usize) -> String {
        format!("mqtts://{host}:{}", self.broker.listener_port(listener))
    }

    fn trusting(&self) -> TlsOptions {
        TlsOptions::new().with_ca_file(self.pki.ca_file())
    }
}

async fn connect(
    id: &str,
    url: &str,
    tls: TlsOptions,
) -> Result<(Client, Incoming), ConnectionError> {
    let servers = Servers::parse(url).unwrap().with_tls(tls);
    within(
        WAIT,
        "TLS connect",
        Client::connect(Options::new(id).with_reconnect(fast_backoff()), servers),
    )
    .await
}

async fn connects(id: &str, url: &str, tls: TlsOptions) {
    let (client, mut incoming) = connect(id, url, tls)
        .await
        .unwrap_or_else(|e| panic!("{id}: could not connect to {url}: {e}"));
    round_trip(&client, &mut incoming, &format!("tls/{id}")).await;
    client.disconnect().await.unwrap();
}

/// The TLS error of a transport error.
fn as_tls(error: &TransportError) -> &TlsError {
    match error {
        TransportError::Tls(e) => e,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// The (TLS) transport error a connection fails with; it must be fatal (the client does not
/// retry what cannot change).
async fn tls_error(id: &str, url: &str, tls: TlsOptions) -> Arc<TransportError> {
    match connect(id, url, tls).await {
        Ok(_) => panic!("{id}: connected to {url}, expected a TLS error"),
        Err(ConnectionError::Transport { server, error }) => {
            assert!(error.is_fatal(), "{id}: {error:?} is not fatal");
            assert_eq!(server, url);
            assert!(matches!(*error, TransportError::Tls(_)), "{id}: {error:?}");
            error
        }
        Err(other) => panic!("{id}: expected a transport error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca_by_name_and_by_ip_address() {
    let b = TlsBroker::start();
    connects("tls-dns", &b.url("localhost", PLAIN), b.trusting()).await;
    // An IP address is verified against the certificate's IP SAN.
    connects("tls-ip", &b.url("127.0.0.1", PLAIN), b.trusting()).await;
    // The CA from memory; the `ssl://` scheme.
    let from_memory = TlsOptions::new().with_ca_pem(b.pki.ca_pem());
    let ssl = format!("ssl://localhost:{}", b.broker.listener_port(PLAIN));
    connects("tls-pem", &ssl, from_memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_is_its_own_fatal_error() {
    let b = TlsBroker::start();
    // The default trusts the webpki roots only, which do not vouch for a test CA.
    let err = tls_error("tls-webpki", &b.url("localhost", PLAIN), TlsOptions::new()).await;
    let e = as_tls(&err);
    assert!(matches!(e, TlsError::UnknownCa), "{e:?}");
    // Another CA.
    let other = Pki::new("another CA");
    let tls = TlsOptions::new().with_ca_file(other.ca_file());
    let err = tls_error("tls-other-ca", &b.url("localhost", PLAIN), tls).await;
    let e = as_tls(&err);
    assert!(matches!(e, TlsError::UnknownCa), "{e:?}");
    assert!(e.to_string().contains("with_ca_file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_mismatch_names_both_sides_and_the_server_name_fixes_it() {
    let b = TlsBroker::start();
    let url = b.url("127.0.0.1", DEVICE);
    let err = tls_error("tls-mismatch", &url, b.trusting()).await;
    let e = as_tls(&err);
    match e {
        TlsError::HostnameMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected.as_deref(), Some("127.0.0.1"));
            assert_eq!(presented, &["device-17.example".to_owned()], "{e}");
        }
        other => panic!("expected a hostname mismatch, got {other:?}"),
    }
    // Dialling the IP, verifying the device's name.
    connects(
        "tls-override",
        &url,
        b.trusting().with_server_name("device-17.example"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_its_own_fatal_error() {
    let b = TlsBroker::start();
    let err = tls_error("tls-expired", &b.url("localhost", EXPIRED), b.trusting()).await;
    let e = as_tls(&err);
    match e {
        TlsError::Expired { not_after } => {
            // rcgen wrote 2001-01-01T00:00:00Z.
            let secs = not_after
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert_eq!(secs, 978_307_200);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_keys_in_pkcs8_sec1_and_pkcs1() {
    let b = TlsBroker::start();
    let url = b.url("localhost", MUTUAL);
    for (id, format) in [
        ("mtls-pkcs8", KeyFormat::Pkcs8),
        ("mtls-sec1", KeyFormat::Sec1),
        ("mtls-pkcs1", KeyFormat::Pkcs1Rsa),
    ] {
        let files = b.pki.client(id, format);
        connects(
            id,
            &url,
            b.trusting().with_client_cert_files(&files.cert, &files.key),
        )
        .await;
    }
    // From memory.
    let files = b.pki.client("mtls-memory", KeyFormat::Pkcs8);
    let (cert, key) = (
        std::fs::read(&files.cert).unwrap(),
        std::fs::read(&files.key).unwrap(),
    );
    connects(
        "mtls-memory",
        &url,
        b.trusting().with_client_cert_pem(cert, key),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_untrusted_client_certificate_is_refused() {
    let b = TlsBroker::start();
    let url = b.url("localhost", MUTUAL);
    let err = tls_error("mtls-none", &url, b.trusting()).await;
    let e = as_tls(&err);
    assert!(matches!(e, TlsError::ClientCertificateRefused(_)), "{e:?}");
    // A certificate of another CA.
    let other = Pki::new("another CA");
    let files = other.client("mtls-stranger", KeyFormat::Pkcs8);
    let tls = b.trusting().with_client_cert_files(&files.cert, &files.key);
    let err = tls_error("mtls-stranger", &url, tls).await;
    let e = as_tls(&err);
    assert!(matches!(e, TlsError::ClientCertificateRefused(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_keys_name_their_file_and_why() {
    let b = TlsBroker::start();
    let url = b.url("localhost", MUTUAL);
    // Encrypted with a passphrase.
    let files = b.pki.client("key-encrypted", KeyFormat::EncryptedPkcs8);
    let tls = b.trusting().with_client_cert_files(&files.cert, &files.key);
    let err = tls_error("key-encrypted", &url, tls).await;
    let e = as_tls(&err);
    match e {
        TlsError::Key { path, problem } => {
            assert_eq!(path.as_deref(), Some(files.key.as_path()));
            assert_eq!(*problem, KeyProblem::Encrypted);
            assert!(e.to_string().contains(&*files.key.to_string_lossy()), "{e}");
        }
        other => panic!("expected a key error, got {other:?}"),
    }
    // The key of another certificate.
    let a = b.pki.client("key-a", KeyFormat::Pkcs8);
    let other = b.pki.client("key-b", KeyFormat::Pkcs8);
    let tls = b.trusting().with_client_cert_files(&a.cert, &other.key);
    let err = tls_error("key-mismatch", &url, tls).await;
    let e = as_tls(&err);
    assert!(
        matches!(e, TlsError::Key { path, problem: KeyProblem::Mismatch } if path.as_deref() == Some(other.key.as_path())),
        "{e:?}"
    );
    // No key at all in the file (a certificate given as the key).
    let tls = b.trusting().with_client_cert_files(&a.cert, &a.cert);
    let err = tls_error("key-none", &url, tls).await;
    let e = as_tls(&err);
    assert!(
        matches!(
            &e,
            TlsError::Key {
                problem: KeyProblem::NotFound,
                ..
            }
        ),
        "{e:?}"
    );
    // A CA file that is not PEM.
    let junk = b.pki.write("junk.pem", "not a certificate");
    let err = tls_error("ca-junk", &url, TlsOptions::new().with_ca_file(&junk)).await;
    let e = as_tls(&err);
    assert!(
        matches!(e, TlsError::Certificate { path, what: "CA certificate", .. } if path.as_deref() == Some(junk.as_path())),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangerous_accept_any_certificate_connects_to_an_untrusted_server() {
    let b = TlsBroker::start();
    // No CA and an expired certificate: only the dangerous option gets through.
    connects(
        "tls-dangerous",
        &b.url("localhost", EXPIRED),
        TlsOptions::new().dangerous_accept_any_certificate(),
    )
    .await;
}

// ----- what the client offers -------------------------------------------------------

/// What the in-test server saw of a client's handshake.
#[derive(Debug)]
struct Offered {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
}

/// A one-connection TLS server that accepts a CONNECT, answers an MQTT 5 CONNACK,
/// and reports the SNI and the ALPN protocol agreed.
async fn one_shot_server(
    pki: &Pki,
    alpn: &[&[u8]],
) -> (u16, tokio::sync::oneshot::Receiver<Offered>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let files = pki.server("one-shot", &["localhost", "127.0.0.1"], Validity::Current);
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let (_, connection) = tls.get_ref();
        let offered = Offered {
            sni: connection.server_name().map(str::to_owned),
            alpn: connection.alpn_protocol().map(<[u8]>::to_vec),
        };
        // CONNECT: fixed header, remaining length (short), the rest.
        let mut head = [0u8; 2];
        tls.read_exact(&mut head).await.unwrap();
        assert_eq!(head[0], 0x10);
        let mut rest = vec![0u8; usize::from(head[1])];
        tls.read_exact(&mut rest).await.unwrap();
        tls.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00])
            .await
            .unwrap();
        tls.flush().await.unwrap();
        let _ = tx.send(offered);
        // Keep the connection until the client goes.
        let mut sink = Vec::new();
        let _ = tls.read_to_end(&mut sink).await;
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_and_alpn_are_offered_as_configured() {
    let pki = Pki::new("offer CA");
    let trusting = || TlsOptions::new().with_ca_file(pki.ca_file());

    // AWS IoT Core's ALPN on 443; SNI is the host dialled.
    let (port, offered) = one_shot_server(&pki, &[b"x-amzn-mqtt-ca"]).await;
    let tls = trusting().with_alpn(["x-amzn-mqtt-ca", "mqtt"]);
    let (client, _incoming) = connect("offer-alpn", &format!("mqtts://localhost:{port}"), tls)
        .await
        .unwrap();
    let offered = within(WAIT, "server report", offered).await.unwrap();
    assert_eq!(offered.sni.as_deref(), Some("localhost"));
    assert_eq!(offered.alpn.as_deref(), Some(&b"x-amzn-mqtt-ca"[..]));
    drop(client);

    // No SNI for an IP address; none offered when turned off; no ALPN by default.
    let (port, offered) = one_shot_server(&pki, &[b"mqtt"]).await;
    let (_client, _incoming) =
        connect("offer-ip", &format!("mqtts://127.0.0.1:{port}"), trusting())
            .await
            .unwrap();
    let offered = within(WAIT, "server report", offered).await.unwrap();
    assert_eq!((offered.sni, offered.alpn), (None, None));

    let (port, offered) = one_shot_server(&pki, &[]).await;
    let tls = trusting().with_sni(false);
    let (_client, _incoming) = connect("offer-nosni", &format!("mqtts://localhost:{port}"), tls)
        .await
        .unwrap();
    let offered = within(WAIT, "server report", offered).await.unwrap();
    assert_eq!(offered.sni, None);
}

// ----- through a proxy --------------------------------------------------------------

/// TLS through an HTTP CONNECT proxy with basic auth: the tunnel goes to the
/// broker's TLS port, and the certificate is verified end to end (the proxy sees
/// only ciphertext).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_through_a_connect_proxy() {
    use mqtt_client::transport::Proxy;
    use mqtt_tests::proxy::ConnectProxy;

    let b = TlsBroker::start();
    let proxy = ConnectProxy::start_with_auth("Basic dXNlcjpwYXNz").await;
    let url = b.url("localhost", PLAIN);
    let servers = Servers::parse(&url)
        .unwrap()
        .with_tls(b.trusting())
        .with_proxy(
            Proxy::http(&proxy.url())
                .unwrap()
                .with_basic_auth("user", "pass"),
        );
    let (client, mut incoming) = within(
        WAIT,
        "TLS via proxy",
        Client::connect(Options::new("tls-proxy"), servers),
    )
    .await
    .unwrap();
    round_trip(&client, &mut incoming, "tls/proxy").await;
    assert_eq!(
        proxy.tunnels(),
        vec![format!("localhost:{}", b.broker.listener_port(PLAIN))]
    );
    client.disconnect().await.unwrap();
}
