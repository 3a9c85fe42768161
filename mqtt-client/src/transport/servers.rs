//! [`Servers`]: the connector for URLs, and the stream it opens.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::BytesMut;
use mqtt_codec::property::Secret;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::proxy::Proxy;
use super::url::{Scheme, ServerUrl, UrlError};
use super::{Attempt, Connector, TransportError, TransportStream};

#[cfg(feature = "tls")]
use super::tls::{TlsConnector, TlsOptions};
#[cfg(feature = "websocket")]
use super::ws::{WsOptions, WsStream};

/// One or several MQTT servers by URL, and how to reach them: the connector most
/// applications use.
///
/// ```no_run
/// use mqtt_client::transport::Servers;
/// # fn main() -> Result<(), mqtt_client::transport::UrlError> {
/// // One broker over TLS, verified against the webpki roots:
/// let one = Servers::parse("mqtts://broker.example.com")?;
/// // A cluster: tried in turn, the backoff applies between rounds.
/// let cluster = Servers::parse_list(["mqtt://node-1:1883", "mqtt://node-2:1883"])?;
/// # let _ = (one, cluster);
/// # Ok(())
/// # }
/// ```
///
/// TLS settings (`Servers::with_tls`, feature `tls`) serve `mqtts://` and `wss://` alike;
/// WebSocket settings (`Servers::with_websocket`, feature `websocket`) serve `ws://` and `wss://`; a
/// proxy ([`Servers::with_proxy`], or the environment when asked with
/// [`Servers::with_proxy_from_env`]) serves every server of the list.
#[derive(Clone)]
pub struct Servers {
    urls: Vec<ServerUrl>,
    /// Servers learnt from Server References, after `urls` in index order.
    redirects: Arc<Mutex<Vec<ServerUrl>>>,
    #[cfg(feature = "tls")]
    tls: TlsOptions,
    /// Built once, at the first secure attempt (a bad key or CA file is a fatal
    /// error of that attempt).
    #[cfg(feature = "tls")]
    tls_built: Arc<Mutex<Option<TlsConnector>>>,
    #[cfg(feature = "websocket")]
    ws: WsOptions,
    proxy: ProxySetting,
}

#[derive(Clone, Debug)]
enum ProxySetting {
    Direct,
    Fixed(Proxy),
    FromEnv,
}

impl Servers {
    /// One server.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        Self::parse_list([url])
    }

    /// Several servers, tried in the order given.
    pub fn parse_list<I, S>(urls: I) -> Result<Self, UrlError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls = urls
            .into_iter()
            .map(|u| ServerUrl::parse(u.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(urls)
    }

    /// Servers from parsed URLs, tried in the order given.
    pub fn new(urls: Vec<ServerUrl>) -> Result<Self, UrlError> {
        if urls.is_empty() {
            return Err(UrlError::NoServers);
        }
        #[cfg(not(all(feature = "tls", feature = "websocket")))]
        for url in &urls {
            #[cfg(not(feature = "tls"))]
            if url.scheme().is_secure() {
                return Err(UrlError::SchemeNotBuilt {
                    scheme: url.scheme(),
                    feature: "tls",
                });
            }
            #[cfg(not(feature = "websocket"))]
            if url.scheme().is_websocket() {
                return Err(UrlError::SchemeNotBuilt {
                    scheme: url.scheme(),
                    feature: "websocket",
                });
            }
        }
        let mut credentials = urls.iter().filter(|u| u.username().is_some());
        if let Some(first) = credentials.next() {
            let same = |u: &&ServerUrl| {
                u.username() == first.username()
                    && u.password().map(|p| &p.0) == first.password().map(|p| &p.0)
            };
            if !credentials.all(|u| same(&u)) {
                return Err(UrlError::ConflictingCredentials);
            }
        }
        Ok(Self {
            urls,
            redirects: Arc::new(Mutex::new(Vec::new())),
            #[cfg(feature = "tls")]
            tls: TlsOptions::new(),
            #[cfg(feature = "tls")]
            tls_built: Arc::new(Mutex::new(None)),
            #[cfg(feature = "websocket")]
            ws: WsOptions::new(),
            proxy: ProxySetting::Direct,
        })
    }

    /// The servers, in the order they are tried.
    pub fn urls(&self) -> &[ServerUrl] {
        &self.urls
    }

    /// TLS settings for `mqtts://` and `wss://` (by default: verification on,
    /// against the webpki roots).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self.tls_built = Arc::new(Mutex::new(None));
        self
    }

    /// WebSocket settings for `ws://` and `wss://` (by default: subprotocol `mqtt`).
    #[cfg(feature = "websocket")]
    pub fn with_websocket(mut self, ws: WsOptions) -> Self {
        self.ws = ws;
        self
    }

    /// Every server is reached through this HTTP CONNECT proxy.
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxySetting::Fixed(proxy);
        self
    }

    /// The proxy comes from the environment at every attempt (`https_proxy`,
    /// `http_proxy`, `all_proxy`, `no_proxy`: see [`Proxy::from_env_with`]). Off
    /// unless asked for: a library does not follow environment variables behind
    /// the application's back.
    pub fn with_proxy_from_env(mut self) -> Self {
        self.proxy = ProxySetting::FromEnv;
        self
    }

    /// Server `index`: of the list, then of the redirects.
    fn url(&self, index: usize) -> Option<ServerUrl> {
        match self.urls.get(index) {
            Some(u) => Some(u.clone()),
            None => self
                .redirects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(index - self.urls.len())
                .cloned(),
        }
    }

    fn proxy_for(&self, url: &ServerUrl) -> Result<Option<Proxy>, TransportError> {
        match &self.proxy {
            ProxySetting::Direct => Ok(None),
            ProxySetting::Fixed(p) => Ok(Some(p.clone())),
            ProxySetting::FromEnv => {
                match Proxy::from_env_with(
                    |name| std::env::var(name).ok(),
                    url.scheme().is_secure(),
                    url.host(),
                    url.port(),
                ) {
                    None => Ok(None),
                    Some(Ok(p)) => Ok(Some(p)),
                    Some(Err(e)) => Err(TransportError::Unsupported(format!(
                        "the proxy named by the environment: {e}"
                    ))),
                }
            }
        }
    }

    #[cfg(feature = "tls")]
    fn tls_connector(&self) -> Result<TlsConnector, TransportError> {
        let mut built = self
            .tls_built
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = built.as_ref() {
            return Ok(c.clone());
        }
        let connector = self.tls.build().map_err(TransportError::Tls)?;
        *built = Some(connector.clone());
        Ok(connector)
    }

    async fn open(&self, url: &ServerUrl, attempt: Attempt) -> Result<NetStream, TransportError> {
        let tcp = match self.proxy_for(url)? {
            None => dial(&url.authority()).await?,
            Some(proxy) => {
                let mut tcp = dial(&proxy.authority()).await?;
                proxy.tunnel(&mut tcp, url.host(), url.port()).await?;
                tcp
            }
        };
        #[cfg(feature = "websocket")]
        let max_frame = usize::try_from(attempt.maximum_packet_size).unwrap_or(usize::MAX);
        #[cfg(not(feature = "websocket"))]
        let _ = attempt;
        match url.scheme() {
            Scheme::Tcp => Ok(NetStream::Tcp(tcp)),
            #[cfg(feature = "tls")]
            Scheme::Tls => {
                let tls = self
                    .tls_connector()?
                    .connect(url.host(), tcp)
                    .await
                    .map_err(TransportError::Tls)?;
                Ok(NetStream::Tls(Box::new(tls)))
            }
            #[cfg(feature = "websocket")]
            Scheme::Ws => {
                let ws = super::ws::upgrade(
                    tcp,
                    url.host(),
                    url.port(),
                    false,
                    url.path(),
                    &self.ws,
                    max_frame,
                )
                .await
                .map_err(TransportError::WebSocket)?;
                Ok(NetStream::Ws(Box::new(ws)))
            }
            #[cfg(all(feature = "tls", feature = "websocket"))]
            Scheme::Wss => {
                let tls = self
                    .tls_connector()?
                    .connect(url.host(), tcp)
                    .await
                    .map_err(TransportError::Tls)?;
                let ws = super::ws::upgrade(
                    tls,
                    url.host(),
                    url.port(),
                    true,
                    url.path(),
                    &self.ws,
                    max_frame,
                )
                .await
                .map_err(|e| match e {
                    // A TLS 1.3 server refuses a client certificate after the
                    // handshake: the alert arrives on the upgrade's first read.
                    super::ws::WsError::Io(io) => match super::tls::classify(io) {
                        super::tls::TlsError::Io(io) => {
                            TransportError::WebSocket(super::ws::WsError::Io(io))
                        }
                        tls => TransportError::Tls(tls),
                    },
                    e => TransportError::WebSocket(e),
                })?;
                Ok(NetStream::Wss(Box::new(ws)))
            }
            #[allow(unreachable_patterns, reason = "which arms exist depends on features")]
            scheme => Err(TransportError::Unsupported(format!(
                "{scheme}:// is not in this build (crate features `tls`, `websocket`)"
            ))),
        }
    }
}

impl Connector for Servers {
    type Stream = NetStream;

    async fn connect(&self, attempt: Attempt) -> Result<NetStream, TransportError> {
        let url = self
            .url(attempt.server)
            .ok_or_else(|| TransportError::Unsupported("no server".to_owned()))?;
        self.open(&url, attempt).await
    }

    fn server_count(&self) -> usize {
        self.urls.len()
            + self
                .redirects
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
    }

    fn server_name(&self, server: usize) -> String {
        self.url(server)
            .map_or_else(|| format!("server {server}"), |u| u.to_string())
    }

    /// `host[:port]` (the port defaulting to that of `from`'s scheme), or a URL;
    /// of a space-separated list, the first.
    fn redirect(&self, reference: &str, from: usize) -> Option<usize> {
        let reference = reference.split_whitespace().next()?;
        let current = self.url(from)?;
        let url = if reference.contains("://") {
            ServerUrl::parse(reference).ok()?
        } else {
            let path = if current.scheme().is_websocket() {
                current.path()
            } else {
                ""
            };
            ServerUrl::parse(&format!("{}://{reference}{path}", current.scheme())).ok()?
        };
        if Servers::new(vec![url.clone()]).is_err() {
            return None;
        }
        let mut redirects = self
            .redirects
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = self
            .urls
            .iter()
            .chain(redirects.iter())
            .position(|u| *u == url);
        Some(known.unwrap_or_else(|| {
            redirects.push(url);
            self.urls.len() + redirects.len() - 1
        }))
    }

    fn credentials(&self) -> Option<(String, Option<Secret>)> {
        self.urls.iter().find_map(|u| {
            u.username()
                .map(|user| (user.to_owned(), u.password().cloned()))
        })
    }
}

impl fmt::Debug for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Servers");
        d.field("urls", &self.urls);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls);
        #[cfg(feature = "websocket")]
        d.field("websocket", &self.ws);
        d.field("proxy", &self.proxy).finish()
    }
}

/// Resolves `authority` and connects to its addresses in turn; Nagle off.
pub(super) async fn dial(authority: &str) -> Result<TcpStream, TransportError> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addresses =
        tokio::net::lookup_host(authority)
            .await
            .map_err(|error| TransportError::Resolve {
                host: host.to_owned(),
                error,
            })?;
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => TransportError::Io(e),
        None => TransportError::Resolve {
            host: host.to_owned(),
            error: io::Error::new(io::ErrorKind::NotFound, "no address"),
        },
    })
}

/// The stream [`Servers`] opens: TCP, TLS, WebSocket or WebSocket over TLS.
#[non_exhaustive]
pub enum NetStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// WebSocket over TCP.
    #[cfg(feature = "websocket")]
    Ws(Box<WsStream<TcpStream>>),
    /// WebSocket over TLS.
    #[cfg(all(feature = "tls", feature = "websocket"))]
    Wss(Box<WsStream<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl fmt::Debug for NetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp(_) => "NetStream::Tcp",
            #[cfg(feature = "tls")]
            Self::Tls(_) => "NetStream::Tls",
            #[cfg(feature = "websocket")]
            Self::Ws(_) => "NetStream::Ws",
            #[cfg(all(feature = "tls", feature = "websocket"))]
            Self::Wss(_) => "NetStream::Wss",
        })
    }
}

/// Calls `$e` on the inner stream of every variant.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            NetStream::Tcp($s) => $e,
            #[cfg(feature = "tls")]
            NetStream::Tls($s) => $e,
            #[cfg(feature = "websocket")]
            NetStream::Ws($s) => $e,
            #[cfg(all(feature = "tls", feature = "websocket"))]
            NetStream::Wss($s) => $e,
        }
    };
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.is_write_vectored(),
            #[cfg(feature = "websocket")]
            Self::Ws(s) => s.is_write_vectored(),
            #[cfg(all(feature = "tls", feature = "websocket"))]
            Self::Wss(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl TransportStream for NetStream {
    fn poll_read_bytes(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NetStream::Tcp(s) => super::poll_read_into(Pin::new(s), cx, buf),
            #[cfg(feature = "tls")]
            NetStream::Tls(s) => super::poll_read_into(Pin::new(s), cx, buf),
            #[cfg(feature = "websocket")]
            NetStream::Ws(s) => Pin::new(&mut **s).poll_read_bytes(cx, buf),
            #[cfg(all(feature = "tls", feature = "websocket"))]
            NetStream::Wss(s) => Pin::new(&mut **s).poll_read_bytes(cx, buf),
        }
    }
}

#[cfg(feature = "tls")]
impl<S: TransportStream> TransportStream for tokio_rustls::client::TlsStream<S> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_redirect_joins_the_list_once_with_the_current_scheme() {
        let servers = Servers::parse_list(["mqtt://a:1883", "mqtt://b:1883"]).unwrap();
        assert_eq!(servers.redirect("c:1884", 1), Some(2));
        assert_eq!(servers.server_count(), 3);
        assert_eq!(servers.server_name(2), "mqtt://c:1884");
        // Known servers keep their index; a URL is taken as it is; the first of a list.
        assert_eq!(servers.redirect("c:1884", 0), Some(2));
        assert_eq!(servers.redirect("b:1883 c:1884", 0), Some(1));
        assert_eq!(servers.redirect("mqtt://d", 0), Some(3));
        assert_eq!(servers.server_name(3), "mqtt://d:1883");
        assert_eq!(servers.redirect("host:notaport", 0), None);
        assert_eq!(servers.redirect("", 0), None);
        assert_eq!(servers.server_count(), 4);
    }

    #[test]
    fn credentials_come_from_the_urls_and_must_agree() {
        let servers = Servers::parse_list(["mqtt://u:p@a", "mqtt://b"]).unwrap();
        let (user, password) = servers.credentials().unwrap();
        assert_eq!((user.as_str(), &password.unwrap().0[..]), ("u", &b"p"[..]));
        assert_eq!(
            Servers::parse_list(["mqtt://u:p@a", "mqtt://u:q@b"]).unwrap_err(),
            UrlError::ConflictingCredentials
        );
        assert_eq!(
            Servers::parse_list(Vec::<String>::new()).unwrap_err(),
            UrlError::NoServers
        );
    }
}
