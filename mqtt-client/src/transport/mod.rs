//! Transports: how the driver opens a byte stream to the server.
//!
//! The driver needs nothing but an ordered, reliable byte stream, opened anew for
//! every connection attempt by a [`Connector`]. The crate brings:
//!
//! - [`Servers`]: one or several servers by URL (`mqtt://`, `mqtts://`, `ws://`,
//!   `wss://`, see [`url`]), over TCP, TLS (`tls`, crate feature `tls`),
//!   WebSocket (`ws`, crate feature `websocket`) or both, optionally through an
//!   HTTP CONNECT [`proxy`]. The servers are tried in turn: a failed attempt moves
//!   to the next one at once, and the reconnect backoff applies between rounds.
//! - [`Tcp`]: plain TCP to one `host:port`, the smallest connector.
//!
//! Anything else (a Unix socket, QUIC, an in-memory pipe for tests) plugs in by
//! implementing [`Connector`] for a stream that implements [`TransportStream`].
//!
//! Errors are typed ([`TransportError`]) and split by what a retry can do: a
//! certificate the client will never accept, a refused proxy authentication or a
//! WebSocket upgrade refused with 401 are fatal ([`TransportError::is_fatal`])
//! and stop the client; a refused TCP connection, a DNS failure or a timeout are
//! retried with the backoff.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub mod proxy;
mod servers;
#[cfg(feature = "tls")]
pub mod tls;
pub mod url;
#[cfg(feature = "websocket")]
pub mod ws;

pub use proxy::{Proxy, ProxyError};
pub use servers::{NetStream, Servers};
#[cfg(feature = "tls")]
pub use tls::{KeyProblem, TlsConnector, TlsError, TlsOptions, TlsStream};
pub use url::{Scheme, ServerUrl, UrlError};
#[cfg(feature = "websocket")]
pub use ws::{WsError, WsOptions, WsStream};

/// One connection attempt, as the driver asks a [`Connector`] for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// Which server of the connector's list (`0..Connector::server_count()`).
    pub server: usize,
    /// The largest packet the client accepts (its Maximum Packet Size): a
    /// transport with frames of its own (WebSocket) refuses larger frames.
    pub maximum_packet_size: u32,
}

impl Attempt {
    /// An attempt at server `server`.
    pub fn new(server: usize, maximum_packet_size: u32) -> Self {
        Self {
            server,
            maximum_packet_size,
        }
    }
}

/// Opens a new transport to a server, once per connection attempt.
pub trait Connector: Send + Sync + 'static {
    /// The byte stream.
    type Stream: TransportStream;

    /// Opens a stream to server `attempt.server`. The driver bounds the whole
    /// call (name resolution, TCP, proxy, TLS, WebSocket upgrade) with the connect
    /// timeout.
    fn connect(
        &self,
        attempt: Attempt,
    ) -> impl Future<Output = Result<Self::Stream, TransportError>> + Send;

    /// How many servers the connector can reach; the driver tries them in turn.
    fn server_count(&self) -> usize {
        1
    }

    /// How server `server` is named in events and errors (never with a password).
    fn server_name(&self, server: usize) -> String {
        format!("server {server}")
    }

    /// A Server Reference to follow (see
    /// [`Options::with_follow_redirects`](crate::Options::with_follow_redirects)),
    /// given while connected to server `from`: the index of a server the
    /// connector can dial for it (it may grow its list: [`Connector::server_count`]
    /// is asked again), or `None` to ignore it. By default, ignored.
    fn redirect(&self, reference: &str, from: usize) -> Option<usize> {
        let _ = (reference, from);
        None
    }

    /// MQTT credentials the connector carries (the user info of a URL): used when
    /// the [`Options`](crate::Options) set none.
    fn credentials(&self) -> Option<(String, Option<mqtt_codec::property::Secret>)> {
        None
    }
}

/// A byte stream the driver can use.
///
/// [`TransportStream::poll_read_bytes`] lets a transport that receives whole
/// buffers (WebSocket frames) hand them over without a copy; every other stream
/// takes the default, a plain read into the buffer's spare capacity. A custom
/// stream implements it with an empty `impl`.
pub trait TransportStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// Reads into `buf`, adding to what it holds; `Ok(0)` is the end of the stream.
    fn poll_read_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        poll_read_into(self, cx, buf)
    }
}

/// Reads into the spare capacity of `buf` (reserving some when it has none).
pub(crate) fn poll_read_into<R: AsyncRead + ?Sized>(
    reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    use tokio::io::AsyncReadExt;
    if buf.capacity() == buf.len() {
        buf.reserve(8 * 1024);
    }
    // `read_buf` keeps no state between polls: polling a fresh one is a poll of
    // the reader itself.
    let mut reader = reader;
    let read = reader.read_buf(buf);
    let read = std::pin::pin!(read);
    read.poll(cx)
}

impl TransportStream for TcpStream {}
impl TransportStream for tokio::io::DuplexStream {}
#[cfg(unix)]
impl TransportStream for tokio::net::UnixStream {}
impl<S: TransportStream> TransportStream for Box<S> {
    fn poll_read_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.get_mut()).poll_read_bytes(cx, buf)
    }
}

/// Plain TCP to one `host:port`, with Nagle's algorithm off (MQTT packets are
/// small and latency matters more than coalescing; the driver batches writes
/// itself). [`Servers`] does the same and more, from URLs.
#[derive(Debug, Clone)]
pub struct Tcp {
    address: String,
}

impl Tcp {
    /// A TCP connector to `address` (`host:port`), resolved at every attempt.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
        }
    }
}

impl Connector for Tcp {
    type Stream = TcpStream;

    async fn connect(&self, _: Attempt) -> Result<TcpStream, TransportError> {
        servers::dial(&self.address).await
    }

    fn server_name(&self, _: usize) -> String {
        format!("mqtt://{}", self.address)
    }
}

/// Why a transport could not be opened (or broke in a way a plain I/O error does
/// not say).
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The network failed: connection refused or reset, unreachable... Retried.
    Io(io::Error),
    /// The host name did not resolve. Retried (DNS can recover).
    Resolve {
        /// The host.
        host: String,
        /// What the resolver said.
        error: io::Error,
    },
    /// The transport was not up within the connect timeout. Retried.
    Timeout,
    /// The HTTP CONNECT proxy refused or failed.
    Proxy(ProxyError),
    /// TLS failed: a certificate, a key, the handshake.
    #[cfg(feature = "tls")]
    Tls(TlsError),
    /// The WebSocket upgrade or a frame failed.
    #[cfg(feature = "websocket")]
    WebSocket(WsError),
    /// The transport needs something this build leaves out (a crate feature).
    Unsupported(String),
    /// A custom connector's error.
    Other {
        /// The error.
        error: Box<dyn std::error::Error + Send + Sync>,
        /// Whether retrying can help.
        fatal: bool,
    },
}

impl TransportError {
    /// True when no retry can help: the client stops with this error instead of
    /// reconnecting (a certificate it will never accept, a key it cannot read,
    /// proxy credentials refused, a WebSocket upgrade refused with 4xx).
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Io(_) | Self::Resolve { .. } | Self::Timeout => false,
            Self::Proxy(e) => e.is_fatal(),
            #[cfg(feature = "tls")]
            Self::Tls(e) => e.is_fatal(),
            #[cfg(feature = "websocket")]
            Self::WebSocket(e) => e.is_fatal(),
            Self::Unsupported(_) => true,
            Self::Other { fatal, .. } => *fatal,
        }
    }

    /// Types an I/O error read from an open transport: a TLS alert (a client
    /// certificate refused after a TLS 1.3 handshake) or a WebSocket error
    /// wrapped in it become their own variants; anything else is [`Self::Io`].
    pub fn from_io(error: io::Error) -> Self {
        #[cfg(feature = "websocket")]
        let error = match ws::take_ws_error(error) {
            Ok(ws) => return Self::WebSocket(ws),
            Err(error) => error,
        };
        #[cfg(feature = "tls")]
        {
            match tls::classify(error) {
                TlsError::Io(error) => Self::Io(error),
                tls => Self::Tls(tls),
            }
        }
        #[cfg(not(feature = "tls"))]
        Self::Io(error)
    }
}

impl From<io::Error> for TransportError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<ProxyError> for TransportError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Io(e) => Self::Io(e),
            e => Self::Proxy(e),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Resolve { host, error } => write!(f, "cannot resolve {host}: {error}"),
            Self::Timeout => f.write_str("the transport was not up within the connect timeout"),
            Self::Proxy(e) => write!(f, "{e}"),
            #[cfg(feature = "tls")]
            Self::Tls(e) => write!(f, "TLS: {e}"),
            #[cfg(feature = "websocket")]
            Self::WebSocket(e) => write!(f, "WebSocket: {e}"),
            Self::Unsupported(what) => f.write_str(what),
            Self::Other { error, .. } => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) | Self::Resolve { error: e, .. } => Some(e),
            Self::Proxy(e) => Some(e),
            #[cfg(feature = "tls")]
            Self::Tls(e) => Some(e),
            #[cfg(feature = "websocket")]
            Self::WebSocket(e) => Some(e),
            Self::Other { error, .. } => Some(&**error),
            Self::Timeout | Self::Unsupported(_) => None,
        }
    }
}

// ----- the driver's halves of a stream ------------------------------------------

/// Splits a stream into the halves the driver reads and writes from one task
/// (the lock is never contended: both halves live on the driver task).
pub(crate) fn split<S: TransportStream>(stream: S) -> (ReadHalf<S>, WriteHalf<S>) {
    let shared = Arc::new(Mutex::new(stream));
    (ReadHalf(shared.clone()), WriteHalf(shared))
}

pub(crate) struct ReadHalf<S>(Arc<Mutex<S>>);

pub(crate) struct WriteHalf<S>(Arc<Mutex<S>>);

impl<S: TransportStream> ReadHalf<S> {
    pub(crate) async fn read_bytes(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| {
            let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            Pin::new(&mut *stream).poll_read_bytes(cx, buf)
        })
        .await
    }
}

impl<S: TransportStream> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *stream).poll_read(cx, buf)
    }
}

impl<S: TransportStream> AsyncWrite for WriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *stream).poll_shutdown(cx)
    }
}
