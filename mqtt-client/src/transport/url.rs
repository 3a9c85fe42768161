//! Server URLs: `mqtt://`, `mqtts://`, `ws://`, `wss://` (and `tcp://`, `ssl://`).
//!
//! ```text
//! scheme://[user[:password]@]host[:port][/path][?query]
//! ```
//!
//! | scheme              | transport                  | default port | path          |
//! |---------------------|----------------------------|--------------|---------------|
//! | `mqtt`, `tcp`       | TCP                        | 1883         | not allowed   |
//! | `mqtts`, `ssl`, `tls` | TLS over TCP             | 8883         | not allowed   |
//! | `ws`                | WebSocket over TCP         | 80           | `/mqtt`       |
//! | `wss`               | WebSocket over TLS         | 443          | `/mqtt`       |
//!
//! The user info, percent-decoded, becomes the MQTT User Name and Password (unless
//! the [`Options`](crate::Options) set credentials of their own). For WebSocket the
//! path and the query are sent as they are written (pre-signed URLs, as AWS IoT Core
//! and Azure use, carry their credentials in the query). Hosts are DNS names, IPv4
//! addresses or bracketed IPv6 addresses (`[::1]`). A URL that cannot be used is a
//! [`UrlError`] naming the part that is wrong; nothing is resolved or dialled
//! while parsing. `Display` of a [`ServerUrl`] never shows the password.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use mqtt_codec::property::Secret;

/// How the bytes travel to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// MQTT over TCP (`mqtt://`, `tcp://`).
    Tcp,
    /// MQTT over TLS (`mqtts://`, `ssl://`, `tls://`).
    Tls,
    /// MQTT over WebSocket (`ws://`).
    Ws,
    /// MQTT over WebSocket over TLS (`wss://`).
    Wss,
}

impl Scheme {
    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tcp => 1883,
            Self::Tls => 8883,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }

    /// True for the schemes that run over TLS.
    pub fn is_secure(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// True for the WebSocket schemes.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The canonical scheme name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "mqtt",
            Self::Tls => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Self::Tcp,
            "mqtts" | "ssl" | "tls" => Self::Tls,
            "ws" => Self::Ws,
            "wss" => Self::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed server URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    /// WebSocket: path and query as written (`/mqtt` when the URL has none).
    path: String,
    username: Option<String>,
    password: Option<Secret>,
}

impl ServerUrl {
    /// Parses `url`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::MissingScheme(url.to_owned()));
        };
        let scheme =
            Scheme::parse(scheme).ok_or_else(|| UrlError::UnknownScheme(scheme.to_owned()))?;
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        // The authority ends at the first '/' or '?'.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        // The user info ends at the last '@' of the authority.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((info, hostport)) => (Some(info), hostport),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = percent_decode(user)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(UrlError::InvalidUserInfo("user name"))?;
                let pass = match pass {
                    Some(p) => Some(Secret(Bytes::from(
                        percent_decode(p).ok_or(UrlError::InvalidUserInfo("password"))?,
                    ))),
                    None => None,
                };
                (Some(user), pass)
            }
        };
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(UrlError::InvalidPort(p.to_owned())),
                Ok(p) => p,
            },
        };
        let path = if scheme.is_websocket() {
            match path {
                "" => "/mqtt".to_owned(),
                p if p.starts_with('?') => format!("/mqtt{p}"),
                p => {
                    if p.chars().any(|c| c.is_ascii_control() || c == ' ') {
                        return Err(UrlError::InvalidPath(p.to_owned()));
                    }
                    p.to_owned()
                }
            }
        } else {
            match path {
                "" | "/" => String::new(),
                p => {
                    return Err(UrlError::PathNotAllowed {
                        scheme,
                        path: p.to_owned(),
                    })
                }
            }
        };
        Ok(Self {
            scheme,
            host,
            port,
            path,
            username,
            password,
        })
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as written, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// WebSocket: the request target (path and query); empty for TCP and TLS.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The user name of the user info, percent-decoded.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password of the user info, percent-decoded.
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// `host:port` as a socket address string (IPv6 hosts bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for ServerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, UrlError> {
        Self::parse(s)
    }
}

/// The URL without the password (the user name is shown).
impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.username {
            write!(f, "{user}@")?;
        }
        write!(f, "{}{}", self.authority(), self.path)
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerUrl")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a server URL cannot be used; each variant names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL is empty.
    Empty,
    /// No `scheme://` in front.
    MissingScheme(String),
    /// A scheme other than mqtt, tcp, mqtts, ssl, tls, ws, wss.
    UnknownScheme(String),
    /// The scheme needs a transport this build leaves out (crate features `tls`,
    /// `websocket`).
    SchemeNotBuilt {
        /// The scheme.
        scheme: Scheme,
        /// The crate feature that provides it.
        feature: &'static str,
    },
    /// No host between `://` and the port or path.
    MissingHost,
    /// The host is not a DNS name, an IPv4 address or a bracketed IPv6 address.
    InvalidHost(String),
    /// The port is not a number from 1 to 65535.
    InvalidPort(String),
    /// The user name or password has a bad percent-encoding (or the user name is
    /// not UTF-8).
    InvalidUserInfo(&'static str),
    /// A path on a TCP or TLS URL (only WebSocket URLs have one).
    PathNotAllowed {
        /// The scheme.
        scheme: Scheme,
        /// The path given.
        path: String,
    },
    /// The WebSocket path holds spaces or control characters.
    InvalidPath(String),
    /// A `#fragment`: it would never be sent.
    Fragment,
    /// An empty server list.
    NoServers,
    /// Two URLs of one list carry different user info: the client sends one
    /// CONNECT identity whichever server it reaches.
    ConflictingCredentials,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("server URL: empty"),
            Self::MissingScheme(u) => write!(
                f,
                "server URL {u:?}: no scheme (write mqtt://, mqtts://, ws:// or wss://)"
            ),
            Self::UnknownScheme(s) => write!(
                f,
                "server URL: unknown scheme {s:?} (mqtt, tcp, mqtts, ssl, tls, ws or wss)"
            ),
            Self::SchemeNotBuilt { scheme, feature } => write!(
                f,
                "server URL: {scheme}:// needs the crate feature `{feature}`, which this build leaves out"
            ),
            Self::MissingHost => f.write_str("server URL: no host"),
            Self::InvalidHost(h) => write!(f, "server URL: invalid host {h:?}"),
            Self::InvalidPort(p) => write!(f, "server URL: invalid port {p:?} (1 to 65535)"),
            Self::InvalidUserInfo(what) => {
                write!(f, "server URL: the {what} has a bad percent-encoding")
            }
            Self::PathNotAllowed { scheme, path } => write!(
                f,
                "server URL: {scheme}:// takes no path (got {path:?}); only ws:// and wss:// have one"
            ),
            Self::InvalidPath(p) => {
                write!(f, "server URL: the path {p:?} holds spaces or control characters")
            }
            Self::Fragment => f.write_str("server URL: a #fragment is never sent; remove it"),
            Self::NoServers => f.write_str("server list: empty"),
            Self::ConflictingCredentials => f.write_str(
                "server list: the URLs carry different user names or passwords; give the credentials once, in the options",
            ),
        }
    }
}

impl std::error::Error for UrlError {}

fn split_host_port(s: &str) -> Result<(String, Option<&str>), UrlError> {
    if s.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(UrlError::InvalidHost(s.to_owned()));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(UrlError::InvalidHost(host.to_owned()));
        }
        let port = match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| UrlError::InvalidHost(s.to_owned()))?,
            ),
        };
        return Ok((host.to_owned(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    if !valid_host(host) {
        return Err(UrlError::InvalidHost(host.to_owned()));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A DNS name (letters, digits, `-`, `_`, dots; labels of 1 to 63) or an IPv4
/// address (which is a DNS-shaped string too).
fn valid_host(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            // A trailing dot (fully qualified) leaves one empty last label.
            (label.is_empty() && i > 0 && host.ends_with('.') && host.len() > 1)
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = hex(bytes.next()?)?;
            let lo = hex(bytes.next()?)?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn ok(url: &str) -> ServerUrl {
        ServerUrl::parse(url).unwrap()
    }

    #[test]
    fn schemes_and_default_ports() {
        for (url, scheme, port) in [
            ("mqtt://broker", Scheme::Tcp, 1883),
            ("tcp://broker", Scheme::Tcp, 1883),
            ("mqtts://broker", Scheme::Tls, 8883),
            ("ssl://broker", Scheme::Tls, 8883),
            ("tls://broker", Scheme::Tls, 8883),
            ("ws://broker", Scheme::Ws, 80),
            ("wss://broker", Scheme::Wss, 443),
            ("MQTTS://Broker.Example.COM", Scheme::Tls, 8883),
        ] {
            let u = ok(url);
            assert_eq!((u.scheme(), u.port()), (scheme, port), "{url}");
        }
        assert_eq!(
            ok("MQTTS://Broker.Example.COM").host(),
            "broker.example.com"
        );
    }

    #[test]
    fn ports_user_info_and_ipv6() {
        let u = ok("mqtt://alice:p%40ss%3Aword@10.0.0.7:1884");
        assert_eq!(u.host(), "10.0.0.7");
        assert_eq!(u.port(), 1884);
        assert_eq!(u.username(), Some("alice"));
        assert_eq!(&u.password().unwrap().0[..], b"p@ss:word");
        assert_eq!(u.to_string(), "mqtt://alice@10.0.0.7:1884");
        assert!(!format!("{u:?}").contains("p@ss"));
        let u = ok("mqtts://[::1]:8884");
        assert_eq!((u.host(), u.port()), ("::1", 8884));
        assert_eq!(u.authority(), "[::1]:8884");
        assert_eq!(ok("ws://[fe80::1]").authority(), "[fe80::1]:80");
        let u = ok("mqtt://bob@host");
        assert_eq!((u.username(), u.password()), (Some("bob"), None));
        // An '@' in the password is taken up to the last '@'.
        let u = ok("mqtt://u:a@b@host");
        assert_eq!(&u.password().unwrap().0[..], b"a@b");
        assert_eq!(u.host(), "host");
    }

    #[test]
    fn websocket_paths_and_queries_are_kept() {
        assert_eq!(ok("ws://broker").path(), "/mqtt");
        assert_eq!(ok("wss://broker:8443/").path(), "/");
        assert_eq!(ok("wss://broker/custom/path").path(), "/custom/path");
        let signed = "wss://abc-ats.iot.eu-west-1.amazonaws.com/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=3f%2Bab";
        assert_eq!(
            ok(signed).path(),
            "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=3f%2Bab"
        );
        assert_eq!(ok("ws://broker?token=x").path(), "/mqtt?token=x");
        assert_eq!(ok("mqtt://broker/").path(), "");
    }

    #[test]
    fn errors_name_the_part() {
        use UrlError::*;
        for (url, want) in [
            ("", Empty),
            ("broker:1883", MissingScheme("broker:1883".into())),
            ("http://broker", UnknownScheme("http".into())),
            ("mqtt://", MissingHost),
            ("mqtt://:1883", MissingHost),
            ("mqtt://user@", MissingHost),
            ("mqtt://bro ker", InvalidHost("bro ker".into())),
            ("mqtt://-bad-.com", InvalidHost("-bad-.com".into())),
            ("mqtt://[::zz]:1883", InvalidHost("::zz".into())),
            ("mqtt://[::1", InvalidHost("[::1".into())),
            ("mqtt://host:0", InvalidPort("0".into())),
            ("mqtt://host:65536", InvalidPort("65536".into())),
            ("mqtt://host:abc", InvalidPort("abc".into())),
            ("mqtt://host:", InvalidPort(String::new())),
            ("mqtt://u%zz:p@host", InvalidUserInfo("user name")),
            ("mqtt://u:p%4@host", InvalidUserInfo("password")),
            (
                "mqtts://host/mqtt",
                PathNotAllowed {
                    scheme: Scheme::Tls,
                    path: "/mqtt".into(),
                },
            ),
            ("ws://host/a b", InvalidPath("/a b".into())),
            ("ws://host/mqtt#frag", Fragment),
        ] {
            assert_eq!(ServerUrl::parse(url), Err(want), "{url}");
        }
        let message = ServerUrl::parse("mqtt://host:99999")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("port") && message.contains("99999"),
            "{message}"
        );
    }
}
