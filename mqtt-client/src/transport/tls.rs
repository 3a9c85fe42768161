//! TLS for `mqtts://` and `wss://` (crate feature `tls`): rustls through
//! tokio-rustls.
//!
//! ```no_run
//! use mqtt_client::transport::{Servers, TlsOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Mutual TLS against a private CA, the certificate naming a device rather than
//! // the address dialled:
//! let tls = TlsOptions::new()
//!     .with_ca_file("ca.pem")
//!     .with_client_cert_files("device.crt", "device.key")
//!     .with_server_name("broker.internal");
//! let servers = Servers::parse("mqtts://10.0.0.7:8883")?.with_tls(tls);
//! # let _ = servers;
//! # Ok(())
//! # }
//! ```
//!
//! # Defaults
//!
//! Certificates are verified, against the Mozilla roots of `webpki-roots`
//! compiled into the program. A CA of your own ([`TlsOptions::with_ca_file`],
//! [`TlsOptions::with_ca_pem`]) replaces them (a private broker is not vouched
//! for by a public CA, and a public CA should not vouch for it), unless
//! [`TlsOptions::with_webpki_roots`] asks for both. The operating system's store
//! is an option (`with_native_roots`, crate feature `native-roots`). The server
//! name sent (SNI) and verified is the host of the URL, or the name given with
//! [`TlsOptions::with_server_name`]; certificates for IP addresses are verified
//! against their IP SANs. TLS 1.2 and 1.3 are offered.
//!
//! Verification can be turned off only with
//! [`TlsOptions::dangerous_accept_any_certificate`], which logs a warning through
//! `tracing` every time a connector is built with it.
//!
//! # The crypto provider: ring
//!
//! rustls runs on the `ring` provider here, chosen on purpose over `aws-lc-rs`
//! (rustls' default): ring builds with a C compiler alone, in well under a minute
//! on two cores, where aws-lc-rs needs cmake (and for some targets a Go or NASM
//! toolchain) and builds several times longer; ring covers every target an MQTT
//! device is likely to run on (x86-64, AArch64, 32-bit ARM, RISC-V); and the
//! client already uses ring for SCRAM-SHA-256. The cipher suites are rustls' safe
//! defaults. An application that needs a FIPS provider builds its own
//! `ClientConfig` and hands it over with [`TlsOptions::with_config`].
//!
//! # Errors
//!
//! Everything that can go wrong is a [`TlsError`] the application can act on: an
//! unknown CA, a name mismatch (with the names the certificate does carry), an
//! expired or not yet valid certificate, a client certificate the server refused,
//! a handshake failure, or a CA, certificate or key file that cannot be used (the
//! error names the file and says why; an encrypted key has its own message).
//! All but plain I/O errors are fatal: the client stops instead of retrying.
//!
//! # What it costs
//!
//! rustls encrypts from the driver's write buffer and decrypts into the read
//! buffer; the measured cost against plain TCP, per message and per connection,
//! is in `benches/TRANSPORTS.md`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};

/// The stream TLS gives over TCP.
pub type TlsStream<S = TcpStream> = tokio_rustls::client::TlsStream<S>;

/// Where a PEM document comes from.
#[derive(Clone)]
enum Pem {
    File(PathBuf),
    Memory(Arc<[u8]>),
}

impl Pem {
    fn path(&self) -> Option<PathBuf> {
        match self {
            Self::File(p) => Some(p.clone()),
            Self::Memory(_) => None,
        }
    }

    fn read(&self) -> io::Result<Arc<[u8]>> {
        match self {
            Self::File(p) => std::fs::read(p).map(Arc::from),
            Self::Memory(b) => Ok(b.clone()),
        }
    }
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Memory(b) => write!(f, "<{} bytes in memory>", b.len()),
        }
    }
}

/// The client certificate chain and its key, for mutual TLS.
#[derive(Clone)]
struct ClientCert {
    chain: Pem,
    key: Pem,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key's location is no secret, its bytes are: `Pem`'s Debug never
        // prints them.
        f.debug_struct("ClientCert")
            .field("chain", &self.chain)
            .field("key", &self.key)
            .finish()
    }
}

/// TLS settings for `mqtts://` and `wss://` servers: see the [module docs](self).
///
/// Built into a [`TlsConnector`] once, at the first secure connection attempt: a
/// CA or key file that cannot be used is a fatal error of that attempt.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Whether the webpki roots are trusted: `None` means "unless a CA is given".
    webpki_roots: Option<bool>,
    #[cfg(feature = "native-roots")]
    native_roots: bool,
    cas: Vec<Pem>,
    client_cert: Option<ClientCert>,
    server_name: Option<String>,
    alpn: Vec<Vec<u8>>,
    sni: bool,
    accept_any_certificate: bool,
    config: Option<CustomConfig>,
}

/// A `ClientConfig` given whole (its Debug says only that it is there).
#[derive(Clone)]
struct CustomConfig(Arc<ClientConfig>);

impl fmt::Debug for CustomConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<custom rustls ClientConfig>")
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsOptions {
    /// Verification on, against the webpki roots; no client certificate; SNI on.
    pub fn new() -> Self {
        Self {
            webpki_roots: None,
            #[cfg(feature = "native-roots")]
            native_roots: false,
            cas: Vec::new(),
            client_cert: None,
            server_name: None,
            alpn: Vec::new(),
            sni: true,
            accept_any_certificate: false,
            config: None,
        }
    }

    /// Trusts the CA certificates of a PEM file (one or several). Replaces the
    /// webpki roots unless [`Self::with_webpki_roots`] is also given. May be given
    /// more than once.
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.cas.push(Pem::File(path.as_ref().to_path_buf()));
        self
    }

    /// Trusts the CA certificates of a PEM document in memory (as
    /// [`Self::with_ca_file`]).
    pub fn with_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.cas.push(Pem::Memory(Arc::from(pem.as_ref())));
        self
    }

    /// Trusts the webpki (Mozilla) roots, also when a CA of your own is given.
    pub fn with_webpki_roots(mut self) -> Self {
        self.webpki_roots = Some(true);
        self
    }

    /// Trusts the operating system's certificate store (read when the connector
    /// is built), in place of the webpki roots unless [`Self::with_webpki_roots`]
    /// is also given.
    #[cfg(feature = "native-roots")]
    pub fn with_native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// A client certificate chain (PEM, the end-entity certificate first) and its
    /// private key (PEM: PKCS#8, PKCS#1 for RSA or SEC1 for EC; not encrypted),
    /// from files, for mutual TLS.
    pub fn with_client_cert_files(
        mut self,
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        self.client_cert = Some(ClientCert {
            chain: Pem::File(chain.as_ref().to_path_buf()),
            key: Pem::File(key.as_ref().to_path_buf()),
        });
        self
    }

    /// A client certificate chain and its key as PEM documents in memory (as
    /// [`Self::with_client_cert_files`]). The key never appears in `Debug`.
    pub fn with_client_cert_pem(mut self, chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Self {
        self.client_cert = Some(ClientCert {
            chain: Pem::Memory(Arc::from(chain.as_ref())),
            key: Pem::Memory(Arc::from(key.as_ref())),
        });
        self
    }

    /// The name the server's certificate is verified against and sent as SNI,
    /// in place of the host dialled: a DNS name or an IP address (connecting to
    /// `10.0.0.7` while the certificate names `broker.internal`).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The ALPN protocols offered, in order of preference: AWS IoT Core takes MQTT
    /// on port 443 with `x-amzn-mqtt-ca` (and `mqtt` for its custom authorizers).
    /// None by default.
    pub fn with_alpn<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Whether the server name is sent in the handshake (SNI; on by default, never
    /// for an IP address).
    pub fn with_sni(mut self, sni: bool) -> Self {
        self.sni = sni;
        self
    }

    /// **Dangerous**: accepts any certificate from any server, so anyone on the path
    /// can read and change the traffic, passwords included. For a test broker
    /// with a throwaway certificate, never in production: prefer
    /// [`Self::with_ca_file`] with the test CA. Logged at warn level whenever a
    /// connector is built with it.
    pub fn dangerous_accept_any_certificate(mut self) -> Self {
        self.accept_any_certificate = true;
        self
    }

    /// A rustls `ClientConfig` built by the application (another crypto
    /// provider, a custom verifier, session resumption settings): used as is, in
    /// place of every setting above but the server name.
    pub fn with_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.config = Some(CustomConfig(config));
        self
    }

    /// Reads the CA, certificate and key material and builds the connector.
    pub fn build(&self) -> Result<TlsConnector, TlsError> {
        let server_name = match &self.server_name {
            None => None,
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::InvalidServerName(name.clone()))?,
            ),
        };
        let config = match &self.config {
            Some(CustomConfig(config)) => config.clone(),
            None => Arc::new(self.build_config()?),
        };
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(config),
            server_name,
        })
    }

    fn build_config(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        let builder = if self.accept_any_certificate {
            tracing::warn!(
                "TLS certificate verification is OFF (TlsOptions::dangerous_accept_any_certificate): \
                 the connection is open to interception"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some(cert) => {
                let chain = read_certificates(&cert.chain, "client certificate")?;
                let key = read_key(&cert.key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| match e {
                        rustls::Error::InconsistentKeys(_) => TlsError::Key {
                            path: cert.key.path(),
                            problem: KeyProblem::Mismatch,
                        },
                        e => TlsError::Key {
                            path: cert.key.path(),
                            problem: KeyProblem::Invalid(e.to_string()),
                        },
                    })?
            }
        };
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni;
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "native-roots")]
        let native = self.native_roots;
        #[cfg(not(feature = "native-roots"))]
        let native = false;
        if self.webpki_roots.unwrap_or(self.cas.is_empty() && !native) {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        #[cfg(feature = "native-roots")]
        if native {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "no certificates found".to_owned(), ToString::to_string);
                return Err(TlsError::NativeRoots(why));
            }
            // Unparsable entries of a system store are skipped, as browsers do.
            let _ = roots.add_parsable_certificates(found.certs);
        }
        for ca in &self.cas {
            for cert in read_certificates(ca, "CA certificate")? {
                roots.add(cert).map_err(|e| TlsError::Certificate {
                    path: ca.path(),
                    what: "CA certificate",
                    reason: e.to_string(),
                })?;
            }
        }
        Ok(roots)
    }
}

fn read_certificates(
    pem: &Pem,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Certificate {
        path: pem.path(),
        what,
        reason,
    };
    let bytes = pem
        .read()
        .map_err(|e| error(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE section in it".to_owned()));
    }
    Ok(certs)
}

fn read_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, TlsError> {
    let error = |problem| TlsError::Key {
        path: pem.path(),
        problem,
    };
    let bytes = pem
        .read()
        .map_err(|e| error(KeyProblem::Unreadable(e.to_string())))?;
    // PKCS#8 "ENCRYPTED PRIVATE KEY", or a legacy OpenSSL key with a Proc-Type
    // header: the parser would skip the first and choke on the second.
    if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(error(KeyProblem::Encrypted));
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(error(KeyProblem::NotFound)),
        Err(e) => Err(error(KeyProblem::Invalid(format!("not valid PEM: {e}")))),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Built [`TlsOptions`]: cheap to clone, used for every secure connection.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// The TLS handshake over `stream`, verifying the server as `host` (or as the
    /// server name of the options).
    pub async fn connect<S>(&self, host: &str, stream: S) -> Result<TlsStream<S>, TlsError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.to_owned())
                .map_err(|_| TlsError::InvalidServerName(host.to_owned()))?,
        };
        self.inner.connect(name, stream).await.map_err(classify)
    }
}

/// What is wrong with a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The file cannot be read.
    Unreadable(String),
    /// No PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section in it.
    NotFound,
    /// The key is encrypted with a passphrase, which the client does not take:
    /// decrypt it first (`openssl pkey -in key.pem -out plain.pem`) and protect the
    /// file instead.
    Encrypted,
    /// The key does not belong to the certificate given with it.
    Mismatch,
    /// The key cannot be used (malformed, an unsupported algorithm).
    Invalid(String),
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "cannot read it: {e}"),
            Self::NotFound => f.write_str(
                "no private key in it (expected PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            ),
            Self::Encrypted => f.write_str(
                "it is encrypted with a passphrase, which is not supported: decrypt it \
                 (openssl pkey -in KEY -out PLAIN) and protect the file instead",
            ),
            Self::Mismatch => f.write_str("it does not match the client certificate"),
            Self::Invalid(e) => write!(f, "it cannot be used: {e}"),
        }
    }
}

/// Why TLS failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate is not signed by a CA the client trusts (a
    /// self-signed or private CA: give it with [`TlsOptions::with_ca_file`]).
    UnknownCa,
    /// The server's certificate does not name the host (or the server name given).
    HostnameMismatch {
        /// The name verified.
        expected: Option<String>,
        /// The names the certificate carries.
        presented: Vec<String>,
    },
    /// The server's certificate has expired.
    Expired {
        /// Its notAfter time, when known.
        not_after: Option<SystemTime>,
    },
    /// The server's certificate is not valid yet (or the clock is wrong).
    NotYetValid {
        /// Its notBefore time, when known.
        not_before: Option<SystemTime>,
    },
    /// The server's certificate is revoked.
    Revoked,
    /// The server's certificate is unacceptable for another reason.
    BadCertificate(String),
    /// The server refused the client's certificate, or asked for one that was not
    /// given (the TLS alert it sent).
    ClientCertificateRefused(String),
    /// The handshake failed otherwise (no protocol version, cipher suite or ALPN
    /// protocol in common, an alert from the server).
    Handshake(String),
    /// A private key cannot be used.
    Key {
        /// The file, `None` for a key in memory.
        path: Option<PathBuf>,
        /// Why.
        problem: KeyProblem,
    },
    /// A CA or client certificate cannot be used.
    Certificate {
        /// The file, `None` for a PEM document in memory.
        path: Option<PathBuf>,
        /// Which one ("CA certificate", "client certificate").
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The operating system's certificate store cannot be read.
    NativeRoots(String),
    /// Not a valid DNS name or IP address to verify the server against.
    InvalidServerName(String),
    /// The network failed during the handshake (retried).
    Io(io::Error),
}

impl TlsError {
    /// True for everything but a network failure: a certificate, key or setting
    /// that is wrong now is wrong at the next attempt too.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Io(_))
    }

    fn from_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => Self::UnknownCa,
                CertificateError::NotValidForName => Self::HostnameMismatch {
                    expected: None,
                    presented: Vec::new(),
                },
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => Self::HostnameMismatch {
                    expected: Some(expected.to_str().into_owned()),
                    presented: presented.iter().map(|p| plain_name(p)).collect(),
                },
                CertificateError::Expired => Self::Expired { not_after: None },
                CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                    not_after: Some(UNIX_EPOCH + Duration::from_secs(not_after.as_secs())),
                },
                CertificateError::NotValidYet => Self::NotYetValid { not_before: None },
                CertificateError::NotValidYetContext { not_before, .. } => Self::NotYetValid {
                    not_before: Some(UNIX_EPOCH + Duration::from_secs(not_before.as_secs())),
                },
                CertificateError::Revoked => Self::Revoked,
                other => Self::BadCertificate(other.to_string()),
            },
            // Alerts about certificates, sent by the server, are about ours.
            rustls::Error::AlertReceived(
                alert @ (AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::NoCertificate
                | AlertDescription::AccessDenied),
            ) => Self::ClientCertificateRefused(format!("{alert:?}")),
            rustls::Error::AlertReceived(alert) => {
                Self::Handshake(format!("the server sent the alert {alert:?}"))
            }
            rustls::Error::NoApplicationProtocol => {
                Self::Handshake("no ALPN protocol in common with the server".to_owned())
            }
            other => Self::Handshake(other.to_string()),
        }
    }
}

/// A name as webpki reports it (`DnsName("a.example")`), without the wrapping.
fn plain_name(presented: &str) -> String {
    for prefix in [
        "DnsName(",
        "IpAddress(",
        "URI(",
        "UniformResourceIdentifier(",
    ] {
        if let Some(inner) = presented
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
        {
            return inner.trim_matches('"').to_owned();
        }
    }
    presented.to_owned()
}

/// Types an I/O error from a TLS stream: rustls' own errors ride in
/// [`io::Error`]s; anything else is [`TlsError::Io`].
pub(crate) fn classify(error: io::Error) -> TlsError {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(e) => TlsError::from_rustls(e),
        None => TlsError::Io(error),
    }
}

fn unix(t: &SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = |f: &mut fmt::Formatter<'_>, path: &Option<PathBuf>| match path {
            Some(p) => write!(f, " {}", p.display()),
            None => f.write_str(" (in memory)"),
        };
        match self {
            Self::UnknownCa => f.write_str(
                "the server's certificate is not issued by a trusted CA \
                 (give its CA with TlsOptions::with_ca_file)",
            ),
            Self::HostnameMismatch {
                expected,
                presented,
            } => {
                f.write_str("the server's certificate is not valid for ")?;
                match expected {
                    Some(name) => write!(f, "{name}")?,
                    None => f.write_str("the server name")?,
                }
                if !presented.is_empty() {
                    write!(f, " (it names {})", presented.join(", "))?;
                }
                Ok(())
            }
            Self::Expired { not_after } => {
                f.write_str("the server's certificate has expired")?;
                if let Some(t) = not_after {
                    write!(f, " (not after {} s since the epoch)", unix(t))?;
                }
                Ok(())
            }
            Self::NotYetValid { not_before } => {
                f.write_str("the server's certificate is not valid yet (check the clock)")?;
                if let Some(t) = not_before {
                    write!(f, " (not before {} s since the epoch)", unix(t))?;
                }
                Ok(())
            }
            Self::Revoked => f.write_str("the server's certificate is revoked"),
            Self::BadCertificate(why) => write!(f, "the server's certificate is refused: {why}"),
            Self::ClientCertificateRefused(alert) => write!(
                f,
                "the server refused the client certificate, or needs one (alert {alert})"
            ),
            Self::Handshake(why) => write!(f, "handshake failed: {why}"),
            Self::Key { path, problem } => {
                f.write_str("private key")?;
                file(f, path)?;
                write!(f, ": {problem}")
            }
            Self::Certificate { path, what, reason } => {
                f.write_str(what)?;
                file(f, path)?;
                write!(f, ": {reason}")
            }
            Self::NativeRoots(why) => {
                write!(f, "cannot read the system's certificate store: {why}")
            }
            Self::InvalidServerName(name) => {
                write!(f, "{name:?} is not a DNS name or IP address to verify")
            }
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The verifier of [`TlsOptions::dangerous_accept_any_certificate`]: any
/// certificate, but the handshake signatures are still checked (the peer holds the
/// key of the certificate it shows, whatever that is).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key =
            b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        let options = TlsOptions::new().with_client_cert_pem(b"cert", key);
        let debug = format!("{options:?}");
        assert!(!debug.contains("c2VjcmV0"), "{debug}");
        assert!(debug.contains("bytes in memory"), "{debug}");
    }

    #[test]
    fn encrypted_key_has_its_own_message() {
        let pem = Pem::Memory(Arc::from(
            &b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                [..],
        ));
        let err = read_key(&pem).unwrap_err();
        assert!(matches!(
            err,
            TlsError::Key {
                problem: KeyProblem::Encrypted,
                ..
            }
        ));
        assert!(err.to_string().contains("encrypted"), "{err}");
    }

    #[test]
    fn missing_files_are_named() {
        let err = TlsOptions::new()
            .with_ca_file("/nonexistent/ca.pem")
            .build()
            .unwrap_err();
        assert!(err.is_fatal());
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let err = TlsOptions::new()
            .with_client_cert_files("/nonexistent/c.pem", "/nonexistent/k.pem")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/c.pem"), "{err}");
    }

    #[test]
    fn default_build_works_and_server_names_are_checked() {
        assert!(TlsOptions::new().build().is_ok());
        assert!(TlsOptions::new()
            .with_server_name("10.0.0.7")
            .build()
            .is_ok());
        assert!(matches!(
            TlsOptions::new().with_server_name("not a name").build(),
            Err(TlsError::InvalidServerName(_))
        ));
    }

    #[test]
    fn io_errors_stay_io_and_rustls_errors_are_typed() {
        let e = classify(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(e, TlsError::Io(_)) && !e.is_fatal());
        let e = classify(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        ));
        assert!(matches!(e, TlsError::ClientCertificateRefused(_)) && e.is_fatal());
        let e = classify(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        ));
        assert!(matches!(e, TlsError::UnknownCa));
    }
}
