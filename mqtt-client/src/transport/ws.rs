//! WebSocket for `ws://` and `wss://` (crate feature `websocket`):
//! tokio-tungstenite's handshake and framing, over TCP or over this crate's TLS.
//!
//! ```no_run
//! use mqtt_client::transport::{Servers, WsOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A broker behind an HTTPS load balancer that takes a bearer token:
//! let ws = WsOptions::new().with_header("Authorization", "Bearer eyJhbGciOi...");
//! let servers = Servers::parse("wss://broker.example.com/mqtt")?.with_websocket(ws);
//! # let _ = servers;
//! # Ok(())
//! # }
//! ```
//!
//! - The upgrade asks for the subprotocol `mqtt` (MQTT 5 and 3.1.1; `mqttv3.1`
//!   with [`WsOptions::with_subprotocol`] for old brokers) and checks that the
//!   server agreed to it; it carries the URL's path and query (pre-signed URLs
//!   keep their credentials there) and any custom headers. Header values never
//!   appear in `Debug`.
//! - MQTT travels in binary messages only [MQTT-6.0.0-1]: a packet split across
//!   messages, or several packets in one, decode alike, since the driver reads a
//!   byte stream. A text message is answered with close code 1003 and fails with
//!   [`WsError::TextFrame`]; a message larger than the client's Maximum Packet
//!   Size with 1009 and [`WsError::FrameTooLarge`].
//! - Writes: what the driver writes between two flushes goes out as one binary
//!   message (the driver flushes once per batch of packets).
//! - An upgrade refused with 4xx (401 Unauthorized, 403, 404 a wrong path) is
//!   fatal; 5xx and network errors are retried.
//!
//! # What it costs against TCP
//!
//! On the way in, tungstenite hands each message over as a slice of its read
//! buffer, which the driver's decoder cannot take without a copy: each incoming
//! message is copied once into the driver's buffer (the payloads the application
//! receives are then zero-copy slices of that buffer, as over TCP). On the way
//! out, tungstenite copies each message into its frame buffer to mask it, as every
//! client must [RFC 6455 5.3]. The measured cost per message and per connection
//! against plain TCP is in `benches/TRANSPORTS.md`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::TransportStream;

/// Pending output beyond which a write waits for the message before it to go out.
const MAX_PENDING: usize = 64 * 1024;

/// WebSocket settings for `ws://` and `wss://` servers.
#[derive(Clone)]
pub struct WsOptions {
    subprotocol: String,
    headers: Vec<(String, String)>,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are often credentials (a bearer token): names only.
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: <hidden>"))
            .collect();
        f.debug_struct("WsOptions")
            .field("subprotocol", &self.subprotocol)
            .field("headers", &headers)
            .finish()
    }
}

impl WsOptions {
    /// Subprotocol `mqtt`, no extra headers.
    pub fn new() -> Self {
        Self {
            subprotocol: "mqtt".to_owned(),
            headers: Vec::new(),
        }
    }

    /// The subprotocol asked for: `mqtt` by default, `mqttv3.1` for brokers that
    /// predate MQTT 3.1.1.
    pub fn with_subprotocol(mut self, subprotocol: &str) -> Self {
        subprotocol.clone_into(&mut self.subprotocol);
        self
    }

    /// An HTTP header on the upgrade request (token authentication, a tenant id);
    /// may be given several times. Its value never appears in `Debug`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Why the WebSocket upgrade or a message failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WsError {
    /// The server answered the upgrade with this HTTP status (401, 403, 404...).
    Refused {
        /// The status code.
        status: u16,
    },
    /// The server did not agree to the subprotocol asked for.
    Subprotocol {
        /// Asked for.
        asked: String,
        /// What the server answered (`None`: no subprotocol).
        answered: Option<String>,
    },
    /// A header given with [`WsOptions::with_header`] is not valid HTTP.
    InvalidHeader(String),
    /// The server sent a text message: MQTT goes in binary messages only
    /// [MQTT-6.0.0-1]. The connection was closed with 1003.
    TextFrame,
    /// The server sent a message larger than the client's Maximum Packet Size.
    /// The connection was closed with 1009.
    FrameTooLarge {
        /// The message's size.
        size: usize,
        /// The limit.
        maximum: usize,
    },
    /// The WebSocket protocol was broken (a malformed frame, a bad handshake).
    Protocol(String),
    /// The network failed.
    Io(io::Error),
}

impl WsError {
    /// True for what no retry fixes: an upgrade refused with 4xx, a subprotocol
    /// or header the server will not take; also a server that broke the protocol
    /// (text or oversized messages, malformed frames) — it will do it again.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Refused { status } => (400..500).contains(status),
            Self::Io(_) => false,
            _ => true,
        }
    }

    fn from_tungstenite(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e) => Self::Io(e),
            tungstenite::Error::Http(response) => Self::Refused {
                status: response.status().as_u16(),
            },
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                Self::Io(io::ErrorKind::UnexpectedEof.into())
            }
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size,
                max_size,
            }) => Self::FrameTooLarge {
                size,
                maximum: max_size,
            },
            other => Self::Protocol(other.to_string()),
        }
    }

    /// Into an [`io::Error`] the driver's reads and writes can carry
    /// ([`take_ws_error`] gets it back).
    fn into_io(self) -> io::Error {
        match self {
            Self::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { status } => {
                write!(f, "the server refused the upgrade with HTTP {status}")
            }
            Self::Subprotocol { asked, answered } => match answered {
                Some(a) => write!(f, "asked for subprotocol {asked:?}, the server chose {a:?}"),
                None => write!(f, "the server did not agree to subprotocol {asked:?}"),
            },
            Self::InvalidHeader(why) => write!(f, "invalid header: {why}"),
            Self::TextFrame => f.write_str("the server sent a text message (MQTT needs binary)"),
            Self::FrameTooLarge { size, maximum } => write!(
                f,
                "the server sent a message of {size} bytes, over the maximum of {maximum}"
            ),
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The [`WsError`] inside an I/O error from a [`WsStream`], or the error back.
pub(crate) fn take_ws_error(error: io::Error) -> Result<WsError, io::Error> {
    if error
        .get_ref()
        .is_some_and(|e| e.downcast_ref::<WsError>().is_some())
    {
        match error.into_inner().map(|e| e.downcast::<WsError>()) {
            Some(Ok(ws)) => Ok(*ws),
            // Checked just above; kept total all the same.
            Some(Err(other)) => Err(io::Error::new(io::ErrorKind::InvalidData, other)),
            None => Err(io::ErrorKind::InvalidData.into()),
        }
    } else {
        Err(error)
    }
}

/// The WebSocket upgrade over `stream` (TCP, or TLS for `wss://`), asking for
/// `path_and_query` on `host:port`. Messages larger than `max_message` bytes are
/// refused.
pub async fn upgrade<S>(
    stream: S,
    host: &str,
    port: u16,
    secure: bool,
    path_and_query: &str,
    options: &WsOptions,
    max_message: usize,
) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let scheme = if secure { "wss" } else { "ws" };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let path = if path_and_query.starts_with('/') {
        path_and_query.to_owned()
    } else {
        format!("/{path_and_query}")
    };
    let uri = format!("{scheme}://{host}:{port}{path}");
    let mut request = uri
        .as_str()
        .into_client_request()
        .map_err(|e| WsError::Protocol(format!("{uri}: {e}")))?;
    let headers = request.headers_mut();
    let protocol = HeaderValue::from_str(&options.subprotocol).map_err(|_| {
        WsError::InvalidHeader("the subprotocol is not a valid header value".into())
    })?;
    headers.insert("Sec-WebSocket-Protocol", protocol);
    for (name, value) in &options.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WsError::InvalidHeader(format!("{name:?} is not a header name")))?;
        // The value is a secret more often than not: not in the error.
        let value = HeaderValue::from_str(value)
            .map_err(|_| WsError::InvalidHeader(format!("the value of {name} is not valid")))?;
        headers.append(header, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let (socket, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .map_err(WsError::from_tungstenite)?;
    let answered = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if answered.as_deref() != Some(options.subprotocol.as_str()) {
        return Err(WsError::Subprotocol {
            asked: options.subprotocol.clone(),
            answered,
        });
    }
    Ok(WsStream {
        socket,
        read: Bytes::new(),
        write: BytesMut::new(),
        closed: false,
    })
}

/// MQTT over a WebSocket: the byte stream the driver reads and writes, carried in
/// binary messages.
pub struct WsStream<S> {
    socket: WebSocketStream<S>,
    /// What is left of the last message after a short `poll_read`.
    read: Bytes,
    /// Written since the last flush: the next message.
    write: BytesMut,
    /// The server closed (or a Close was read).
    closed: bool,
}

impl<S> fmt::Debug for WsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsStream")
            .field("buffered_in", &self.read.len())
            .field("buffered_out", &self.write.len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// The next binary message, `None` at the end of the stream.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.closed {
            return Poll::Ready(Ok(None));
        }
        loop {
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                None => {
                    self.closed = true;
                    return Poll::Ready(Ok(None));
                }
                Some(Ok(Message::Binary(data))) => {
                    if !data.is_empty() {
                        return Poll::Ready(Ok(Some(data)));
                    }
                }
                // tungstenite answers pings itself (the pong goes out with the
                // next read or write).
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    self.closed = true;
                    return Poll::Ready(Ok(None));
                }
                Some(Ok(Message::Text(_))) => {
                    self.close_with(cx, CloseCode::Unsupported, "MQTT needs binary messages");
                    return Poll::Ready(Err(WsError::TextFrame.into_io()));
                }
                Some(Err(e)) => {
                    let e = WsError::from_tungstenite(e);
                    if matches!(e, WsError::FrameTooLarge { .. }) {
                        self.close_with(
                            cx,
                            CloseCode::Size,
                            "message over the maximum packet size",
                        );
                    }
                    return Poll::Ready(Err(e.into_io()));
                }
            }
        }
    }

    /// Sends a Close frame, as far as it goes without waiting: the connection is
    /// dropped right after.
    fn close_with(&mut self, cx: &mut Context<'_>, code: CloseCode, reason: &'static str) {
        self.closed = true;
        let mut socket = Pin::new(&mut self.socket);
        if let Poll::Ready(Ok(())) = socket.as_mut().poll_ready(cx) {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            if socket
                .as_mut()
                .start_send(Message::Close(Some(frame)))
                .is_ok()
            {
                let _ = socket.poll_flush(cx);
            }
        }
    }

    /// Sends what was written as one binary message.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let mut socket = Pin::new(&mut self.socket);
        ready!(socket.as_mut().poll_ready(cx))
            .map_err(|e| WsError::from_tungstenite(e).into_io())?;
        let message = Message::Binary(self.write.split().freeze());
        socket
            .start_send(message)
            .map_err(|e| WsError::from_tungstenite(e).into_io())?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            match ready!(this.poll_message(cx))? {
                Some(data) => this.read = data,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.read.len().min(buf.remaining());
        let chunk = this.read.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() >= MAX_PENDING {
            ready!(this.poll_send(cx))?;
        }
        this.write.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() >= MAX_PENDING {
            ready!(this.poll_send(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.write.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.socket)
            .poll_flush(cx)
            .map_err(|e| WsError::from_tungstenite(e).into_io())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        match ready!(Pin::new(&mut this.socket).poll_close(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(WsError::from_tungstenite(e).into_io())),
        }
    }
}

impl<S> TransportStream for WsStream<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    /// A whole message at a time: taken without a copy when the driver's buffer is
    /// empty and the message is not shared, else appended.
    fn poll_read_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let data = if this.read.is_empty() {
            match ready!(this.poll_message(cx))? {
                Some(data) => data,
                None => return Poll::Ready(Ok(0)),
            }
        } else {
            std::mem::take(&mut this.read)
        };
        let n = data.len();
        if buf.is_empty() {
            match data.try_into_mut() {
                Ok(unique) => *buf = unique,
                Err(shared) => buf.extend_from_slice(&shared),
            }
        } else {
            buf.extend_from_slice(&data);
        }
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_hidden() {
        let options = WsOptions::new()
            .with_subprotocol("mqttv3.1")
            .with_header("Authorization", "Bearer s3cr3t-token");
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("Authorization: <hidden>"), "{debug}");
        assert!(debug.contains("mqttv3.1"), "{debug}");
    }

    #[test]
    fn errors_survive_the_trip_through_io() {
        let io = WsError::TextFrame.into_io();
        assert!(matches!(take_ws_error(io), Ok(WsError::TextFrame)));
        let plain = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(take_ws_error(plain).is_err());
        assert!(WsError::Refused { status: 401 }.is_fatal());
        assert!(!WsError::Refused { status: 503 }.is_fatal());
        assert!(!WsError::Io(io::ErrorKind::BrokenPipe.into()).is_fatal());
    }
}
