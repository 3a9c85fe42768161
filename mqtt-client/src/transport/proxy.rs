//! HTTP CONNECT proxies (RFC 9110, 9.3.6), with basic authentication.
//!
//! The client opens TCP to the proxy, asks `CONNECT host:port HTTP/1.1` and, once
//! the proxy answers 2xx, runs TLS, WebSocket and MQTT through the tunnel as it
//! would over a direct connection: TLS is end to end, the proxy sees only the
//! host and port. The proxy comes from [`Proxy::http`], or from the environment
//! (`https_proxy` for `mqtts://` and `wss://`, `http_proxy` for `mqtt://` and
//! `ws://`, `all_proxy` for either, `no_proxy` for exceptions, lower case first)
//! only when the application asks for it with
//! [`Servers::with_proxy_from_env`](super::Servers::with_proxy_from_env).

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::url::UrlError;

/// The longest proxy response header the client reads.
const MAX_RESPONSE: usize = 16 * 1024;

/// An HTTP proxy that tunnels with CONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `user:password`, as sent in `Proxy-Authorization: Basic`.
    credentials: Option<(String, String)>,
}

impl Proxy {
    /// A proxy from its URL: `http://[user:password@]host[:port]` (the scheme may
    /// be left out; the port defaults to 1080, as curl's does). The user info is
    /// percent-decoded and used for basic authentication.
    pub fn http(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(UrlError::UnknownScheme(scheme.to_owned())),
            None if url.is_empty() => return Err(UrlError::Empty),
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // Parse as an mqtt:// URL would be: the same host, port and user info rules.
        let parsed = super::url::ServerUrl::parse(&format!("mqtt://{rest}"))?;
        let port = if rest.rsplit_once(']').map_or(rest, |(_, p)| p).contains(':') {
            parsed.port()
        } else {
            1080
        };
        let credentials = parsed.username().map(|user| {
            let password = parsed
                .password()
                .map(|p| String::from_utf8_lossy(&p.0).into_owned())
                .unwrap_or_default();
            (user.to_owned(), password)
        });
        Ok(Self {
            host: parsed.host().to_owned(),
            port,
            credentials,
        })
    }

    /// Sets the basic-authentication user and password.
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The proxy's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The proxy the environment names for a server, as curl reads it: for a
    /// secure target `https_proxy`, otherwise `http_proxy`, then `all_proxy` (each
    /// lower case first, then upper case); `None` when none is set, it is empty or
    /// `no_proxy` matches the host. `lookup` reads a variable (`std::env::var`).
    pub fn from_env_with(
        lookup: impl Fn(&str) -> Option<String>,
        secure: bool,
        host: &str,
        port: u16,
    ) -> Option<Result<Self, UrlError>> {
        let var = |name: &str| {
            lookup(name)
                .or_else(|| lookup(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        let url = if secure {
            var("https_proxy")
        } else {
            var("http_proxy")
        }
        .or_else(|| var("all_proxy"))?;
        if let Some(exceptions) = var("no_proxy") {
            if no_proxy_matches(&exceptions, host, port) {
                return None;
            }
        }
        Some(Self::http(&url))
    }

    /// Asks the proxy for a tunnel to `host:port` over `stream` (open to the
    /// proxy). Reads the answer up to its blank line and nothing more, so the
    /// stream is left at the first byte of the tunnel.
    pub(crate) async fn tunnel<S>(
        &self,
        stream: &mut S,
        host: &str,
        port: u16,
    ) -> Result<(), ProxyError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, password)) = &self.credentials {
            let token = crate::base64::encode(format!("{user}:{password}").as_bytes());
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(ProxyError::Io)?;
        stream.flush().await.map_err(ProxyError::Io)?;
        // Byte by byte: whatever follows the blank line belongs to the tunnel.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_RESPONSE {
                return Err(ProxyError::InvalidResponse(format!(
                    "response header longer than {MAX_RESPONSE} bytes"
                )));
            }
            let byte = stream.read_u8().await.map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ProxyError::InvalidResponse(
                    "the proxy closed the connection before answering".to_owned(),
                ),
                _ => ProxyError::Io(e),
            })?;
            head.push(byte);
        }
        let head = String::from_utf8_lossy(&head);
        let status_line = head.lines().next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let (version, code, reason) = (parts.next(), parts.next(), parts.next());
        let status = match (version, code.and_then(|c| c.parse::<u16>().ok())) {
            (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code,
            _ => {
                return Err(ProxyError::InvalidResponse(format!(
                    "not an HTTP status line: {status_line:?}"
                )))
            }
        };
        match status {
            200..=299 => Ok(()),
            407 => Err(ProxyError::AuthenticationRequired {
                sent_credentials: self.credentials.is_some(),
            }),
            _ => Err(ProxyError::Refused {
                status,
                reason: reason.unwrap_or_default().trim().to_owned(),
            }),
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish_non_exhaustive()
    }
}

/// Why the proxy did not open a tunnel.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyError {
    /// 407: the proxy wants (other) credentials. Fatal: retrying cannot fix it.
    AuthenticationRequired {
        /// Whether credentials were sent (and refused).
        sent_credentials: bool,
    },
    /// Any other non-2xx status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The answer is not HTTP, too long, or cut short.
    InvalidResponse(String),
    /// The connection to the proxy failed.
    Io(std::io::Error),
}

impl ProxyError {
    /// True when no retry can help: refused authentication, or a status that says
    /// the request itself is wrong (4xx other than 408 and 429).
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::AuthenticationRequired { .. } => true,
            Self::Refused { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            Self::InvalidResponse(_) | Self::Io(_) => false,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthenticationRequired {
                sent_credentials: true,
            } => f.write_str("the proxy refused the credentials (407)"),
            Self::AuthenticationRequired {
                sent_credentials: false,
            } => f.write_str("the proxy requires authentication (407); none was configured"),
            Self::Refused { status, reason } => {
                write!(f, "the proxy refused the tunnel: {status} {reason}")
            }
            Self::InvalidResponse(what) => write!(f, "invalid proxy response: {what}"),
            Self::Io(e) => write!(f, "proxy connection failed: {e}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// `no_proxy`: a comma- or space-separated list of host names (matching the host
/// and its subdomains; a leading `.` or `*.` is ignored), IP addresses,
/// `host:port` entries, or `*` for everything.
fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            let (name, entry_port) = match entry.rsplit_once(':') {
                Some((n, p)) if !n.contains(':') || n.ends_with(']') => (
                    n.trim_start_matches('[').trim_end_matches(']'),
                    p.parse().ok(),
                ),
                _ => (entry.trim_start_matches('[').trim_end_matches(']'), None),
            };
            if entry_port.is_some_and(|p: u16| p != port) {
                return false;
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn proxy_urls() {
        let p = Proxy::http("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials.clone()),
            ("proxy.corp", 3128, None)
        );
        let p = Proxy::http("proxy.corp").unwrap();
        assert_eq!(p.port(), 1080);
        let p = Proxy::http("http://u%40corp:s3cr%3At@10.1.2.3:8080/").unwrap();
        assert_eq!(p.credentials, Some(("u@corp".into(), "s3cr:t".into())));
        assert!(!format!("{p:?}").contains("s3cr"));
        let p = Proxy::http("http://[::1]").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 1080));
        assert_eq!(p.authority(), "[::1]:1080");
        assert!(matches!(
            Proxy::http("socks5://p:1080"),
            Err(UrlError::UnknownScheme(_))
        ));
        assert!(matches!(
            Proxy::http("http://p:x"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(Proxy::http(""), Err(UrlError::Empty)));
    }

    #[test]
    fn environment_is_read_as_curl_does() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |k: &str| map.get(k).cloned()
        };
        let vars = env(&[
            ("http_proxy", "http://plain:3128"),
            ("HTTPS_PROXY", "http://secure:3129"),
            (
                "no_proxy",
                "localhost, .internal.corp,10.0.0.9,broker.lan:1883",
            ),
        ]);
        let pick = |secure, host, port| {
            Proxy::from_env_with(&vars, secure, host, port).map(|p| p.unwrap().host().to_owned())
        };
        assert_eq!(
            pick(false, "broker.example.com", 1883).as_deref(),
            Some("plain")
        );
        assert_eq!(
            pick(true, "broker.example.com", 8883).as_deref(),
            Some("secure")
        );
        assert_eq!(pick(true, "localhost", 8883), None);
        assert_eq!(pick(true, "a.internal.corp", 8883), None);
        assert_eq!(pick(true, "internal.corp", 8883), None);
        assert_eq!(
            pick(true, "notinternal.corp", 8883).as_deref(),
            Some("secure")
        );
        assert_eq!(pick(false, "10.0.0.9", 1883), None);
        assert_eq!(pick(false, "broker.lan", 1883), None);
        assert_eq!(pick(false, "broker.lan", 1884).as_deref(), Some("plain"));
        let none = env(&[]);
        assert!(Proxy::from_env_with(none, false, "h", 1).is_none());
        let all = env(&[("ALL_PROXY", "http://every:1"), ("NO_PROXY", "*")]);
        assert!(Proxy::from_env_with(&all, false, "h", 1).is_none());
        let all = env(&[("ALL_PROXY", "http://every:1"), ("http_proxy", " ")]);
        let p = Proxy::from_env_with(&all, false, "h", 1).unwrap().unwrap();
        assert_eq!(p.host(), "every");
    }

    async fn exchange(
        proxy: &Proxy,
        answer: &'static [u8],
    ) -> (Result<(), ProxyError>, String, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                request.push(server.read_u8().await.unwrap());
            }
            server.write_all(answer).await.unwrap();
            server.shutdown().await.unwrap();
            String::from_utf8(request).unwrap()
        });
        let result = proxy.tunnel(&mut client, "broker.example.com", 8883).await;
        let request = server.await.unwrap();
        let mut rest = Vec::new();
        if result.is_ok() {
            client.read_to_end(&mut rest).await.unwrap();
        }
        (result, request, rest)
    }

    #[tokio::test]
    async fn tunnel_request_and_answers() {
        let proxy = Proxy::http("http://proxy:3128")
            .unwrap()
            .with_basic_auth("Aladdin", "open sesame");
        let (result, request, rest) = exchange(
            &proxy,
            b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n\x20\x02",
        )
        .await;
        result.unwrap();
        assert_eq!(
            request,
            "CONNECT broker.example.com:8883 HTTP/1.1\r\nHost: broker.example.com:8883\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        // The bytes after the header belong to the tunnel and are not consumed.
        assert_eq!(rest, b"\x20\x02");

        let (result, _, _) = exchange(
            &proxy,
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
        )
        .await;
        let e = result.unwrap_err();
        assert!(matches!(
            e,
            ProxyError::AuthenticationRequired {
                sent_credentials: true
            }
        ));
        assert!(e.is_fatal());
        let anonymous = Proxy::http("proxy:3128").unwrap();
        let (result, request, _) = exchange(&anonymous, b"HTTP/1.0 407 Auth\r\n\r\n").await;
        assert!(!request.contains("Proxy-Authorization"));
        assert!(result
            .unwrap_err()
            .to_string()
            .contains("none was configured"));
        let (result, _, _) = exchange(&anonymous, b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        let e = result.unwrap_err();
        assert!(
            matches!(&e, ProxyError::Refused { status: 502, reason } if reason == "Bad Gateway")
        );
        assert!(!e.is_fatal());
        let (result, _, _) = exchange(&anonymous, b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
        assert!(result.unwrap_err().is_fatal());
        let (result, _, _) = exchange(&anonymous, b"SSH-2.0-OpenSSH\r\n\r\n").await;
        assert!(matches!(result, Err(ProxyError::InvalidResponse(_))));
        let (result, _, _) = exchange(&anonymous, b"HTTP/1.1 200 OK\r\n").await;
        assert!(matches!(result, Err(ProxyError::InvalidResponse(_))));
    }
}
