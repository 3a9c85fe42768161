//! Typed errors: why a connection ended, who ended it, and why an operation failed.
//!
//! Each error says what the application can do about it through `kind()`
//! ([`ErrorKind`]: wait and retry, fix the configuration or the request, decide
//! about a refusal, give up on a closed client), and chains its cause through
//! [`std::error::Error::source`] (the I/O error, the codec's reason, the store's
//! error).

use std::fmt;
use std::io;
use std::sync::Arc;

use mqtt_codec::error::{DecodeError, EncodeError};
use mqtt_codec::property::AckProperties;
use mqtt_codec::reason::ReasonCode;

use crate::transport::TransportError;

/// What the application can do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Passing: the same thing may work later, unchanged (the connection was lost
    /// or timed out, the server is busy). The client reconnects by itself; a
    /// publish or request can be made again.
    Transient,
    /// The configuration or the request must change: bad credentials, an invalid
    /// topic, a packet larger than the server takes, a feature the server lacks,
    /// an ack given twice.
    Configuration,
    /// The server refused this message or request on purpose (not authorised,
    /// quota exceeded, ...): sending it again unchanged will not help.
    Rejected,
    /// The server broke the protocol; the client disconnected it and reconnects.
    Protocol,
    /// The session store failed: the client stopped without sending what depended
    /// on the change. Fix the storage, then start a client again.
    Storage,
    /// The client is closed: nothing more happens on it.
    Closed,
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// This client (the application, or the client enforcing the protocol).
    Local,
    /// The server (DISCONNECT, refused CONNACK).
    Remote,
    /// Neither: the transport failed or was closed underneath (I/O error, EOF).
    Transport,
}

/// Why a connection ended or could not be established.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The server refused the connection in CONNACK.
    Refused(ConnectRefusal),
    /// The server sent DISCONNECT.
    ServerDisconnect {
        /// Its reason code.
        reason: ReasonCode,
        /// Its Reason String, if any.
        reason_string: Option<String>,
        /// Its Server Reference, if any.
        server_reference: Option<String>,
        /// Its User Properties (name, value), in order; names may repeat.
        user_properties: Vec<(String, String)>,
    },
    /// The server broke the protocol; the client sent DISCONNECT with `reason`
    /// (MQTT 5) and closed the connection.
    ProtocolViolation {
        /// The reason code sent to the server.
        reason: ReasonCode,
        /// What was wrong.
        detail: Violation,
    },
    /// No PINGRESP arrived within the ping timeout.
    KeepAliveTimeout,
    /// No CONNACK arrived within the connect timeout.
    ConnectTimeout,
    /// The transport failed while the connection was up.
    Io(Arc<io::Error>),
    /// The transport to `server` could not be opened (or broke with an error of
    /// its own, such as a TLS alert or a WebSocket close). Fatal when
    /// [`TransportError::is_fatal`] says so: the client then stops reconnecting.
    Transport {
        /// The server, as its connector names it (no password).
        server: String,
        /// What went wrong.
        error: Arc<TransportError>,
    },
    /// The transport was closed by the peer without DISCONNECT.
    TransportClosed,
    /// The application disconnected.
    LocalDisconnect,
    /// The session store failed: nothing that depended on the change was sent,
    /// and the client stopped (fatal).
    SessionStore(Arc<crate::session::StoreError>),
    /// Enhanced authentication failed on our side: the authenticator refused the
    /// server's data (a SCRAM server signature that does not verify, say). The
    /// client sent DISCONNECT 0x87. Fatal.
    Authentication {
        /// What the authenticator said.
        reason: String,
    },
    /// `Client::connect` or `Client::start` was called outside a tokio runtime:
    /// the client's driver is a task of the current runtime.
    NoRuntime,
    /// The options cannot make a valid CONNECT (a client id with U+0000, a will
    /// too large to encode, ...): nothing was sent, and nothing will be.
    InvalidOptions(String),
}

impl ConnectionError {
    /// Who ended the connection.
    pub fn initiator(&self) -> Initiator {
        match self {
            Self::Refused(_) | Self::ServerDisconnect { .. } => Initiator::Remote,
            Self::ProtocolViolation { .. }
            | Self::KeepAliveTimeout
            | Self::ConnectTimeout
            | Self::LocalDisconnect
            | Self::InvalidOptions(_)
            | Self::SessionStore(_)
            | Self::Authentication { .. }
            | Self::NoRuntime => Initiator::Local,
            Self::Io(_) | Self::Transport { .. } | Self::TransportClosed => Initiator::Transport,
        }
    }

    /// An I/O error as a connection error.
    pub fn io(err: io::Error) -> Self {
        Self::Io(Arc::new(err))
    }

    /// What the application can do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused(r) if r.is_fatal() => ErrorKind::Configuration,
            Self::Refused(_)
            | Self::ServerDisconnect { .. }
            | Self::KeepAliveTimeout
            | Self::ConnectTimeout
            | Self::Io(_)
            | Self::TransportClosed => ErrorKind::Transient,
            Self::ProtocolViolation { .. } => ErrorKind::Protocol,
            Self::LocalDisconnect => ErrorKind::Closed,
            Self::InvalidOptions(_) | Self::NoRuntime | Self::Authentication { .. } => {
                ErrorKind::Configuration
            }
            Self::Transport { error, .. } if error.is_fatal() => ErrorKind::Configuration,
            Self::Transport { .. } => ErrorKind::Transient,
            Self::SessionStore(_) => ErrorKind::Storage,
        }
    }

    /// The Server Reference the server gave with a refusal or a DISCONNECT.
    pub fn server_reference(&self) -> Option<&str> {
        match self {
            Self::Refused(r) => r.server_reference.as_deref(),
            Self::ServerDisconnect {
                server_reference, ..
            } => server_reference.as_deref(),
            _ => None,
        }
    }

    /// The Reason String the server gave with a refusal (CONNACK) or a
    /// DISCONNECT: text for humans, not to be parsed (MQTT 5, 3.14.2.2.3).
    pub fn reason_string(&self) -> Option<&str> {
        match self {
            Self::Refused(r) => r.reason_string.as_deref(),
            Self::ServerDisconnect { reason_string, .. } => reason_string.as_deref(),
            _ => None,
        }
    }

    /// The User Properties of the server's DISCONNECT (empty for any other
    /// error), as (name, value) in the order sent.
    pub fn user_properties(&self) -> &[(String, String)] {
        match self {
            Self::ServerDisconnect {
                user_properties, ..
            } => user_properties,
            _ => &[],
        }
    }

    /// True when reconnecting cannot help (bad credentials, banned, ...).
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::Refused(r) => r.is_fatal(),
            Self::Transport { error, .. } => error.is_fatal(),
            Self::LocalDisconnect
            | Self::InvalidOptions(_)
            | Self::SessionStore(_)
            | Self::Authentication { .. }
            | Self::NoRuntime => true,
            _ => false,
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => write!(f, "connection refused by the server: {r}"),
            Self::ServerDisconnect {
                reason,
                reason_string,
                ..
            } => {
                write!(f, "the server disconnected: {}", reason)?;
                write_reason_string(f, reason_string.as_deref())
            }
            Self::ProtocolViolation { reason, detail } => write!(
                f,
                "the server broke the protocol ({detail}); disconnected with {}",
                reason
            ),
            Self::KeepAliveTimeout => f.write_str("no PINGRESP within the ping timeout"),
            Self::ConnectTimeout => f.write_str("no CONNACK within the connect timeout"),
            Self::Io(e) => write!(f, "transport error: {e}"),
            Self::Transport { server, error } => write!(f, "{server}: {error}"),
            Self::TransportClosed => f.write_str("the transport was closed without DISCONNECT"),
            Self::LocalDisconnect => f.write_str("disconnected by the application"),
            Self::InvalidOptions(what) => write!(f, "invalid options: {what}"),
            Self::SessionStore(e) => write!(f, "{e}"),
            Self::NoRuntime => f.write_str("not called within a tokio runtime"),
            Self::Authentication { reason } => write!(f, "authentication failed: {reason}"),
        }
    }
}

/// A Reason String from the network, quoted and escaped: ` ("text")`.
fn write_reason_string(f: &mut fmt::Formatter<'_>, reason_string: Option<&str>) -> fmt::Result {
    match reason_string {
        Some(s) => write!(f, " ({s:?})"),
        None => Ok(()),
    }
}

/// The Reason String of ack properties, if any.
fn ack_reason_string(properties: &AckProperties) -> Option<&str> {
    properties.reason_string.as_ref().map(|s| s.as_str())
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(&**e),
            Self::Transport { error, .. } => Some(&**error),
            Self::SessionStore(e) => Some(&**e),
            Self::ProtocolViolation {
                detail: Violation::Decode(e),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

/// What the server did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// A packet that does not decode (malformed, too large, ...).
    Decode(DecodeError),
    /// A packet the server must not send, or not now (a second CONNACK, a
    /// SUBSCRIBE, anything before CONNACK...).
    UnexpectedPacket(mqtt_codec::packet::PacketType),
    /// More QoS 1/2 PUBLISHes in flight than our Receive Maximum.
    ReceiveMaximumExceeded,
    /// A Topic Alias of 0, above our Topic Alias Maximum, or unknown.
    TopicAliasInvalid,
    /// A SUBACK/UNSUBACK whose reason code count differs from the request's.
    AckCountMismatch,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "{e}"),
            Self::UnexpectedPacket(t) => write!(f, "unexpected {t:?}"),
            Self::ReceiveMaximumExceeded => f.write_str("Receive Maximum exceeded"),
            Self::TopicAliasInvalid => f.write_str("invalid Topic Alias"),
            Self::AckCountMismatch => f.write_str("wrong number of reason codes in an ack"),
        }
    }
}

/// A refused connection: the CONNACK reason code, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRefusal {
    /// The kind of refusal.
    pub kind: RefusalKind,
    /// The CONNACK reason code (3.1.1 return codes mapped to their MQTT 5 equivalent).
    pub reason: ReasonCode,
    /// The Reason String, if any.
    pub reason_string: Option<String>,
    /// The Server Reference, if any (0x9C Use another server, 0x9D Server moved).
    pub server_reference: Option<String>,
}

impl ConnectRefusal {
    /// Classifies a CONNACK reason code.
    pub fn new(reason: ReasonCode, reason_string: Option<String>) -> Self {
        let kind = match reason.0 {
            0x84 => RefusalKind::UnsupportedProtocolVersion,
            0x85 => RefusalKind::ClientIdRejected,
            0x86 => RefusalKind::BadCredentials,
            0x87 => RefusalKind::NotAuthorized,
            0x88 => RefusalKind::ServerUnavailable,
            0x89 => RefusalKind::ServerBusy,
            0x8A => RefusalKind::Banned,
            0x8C => RefusalKind::BadAuthenticationMethod,
            0x90 => RefusalKind::TopicNameInvalid,
            0x95 => RefusalKind::PacketTooLarge,
            0x97 => RefusalKind::QuotaExceeded,
            0x99 => RefusalKind::PayloadFormatInvalid,
            0x9A => RefusalKind::RetainNotSupported,
            0x9B => RefusalKind::QosNotSupported,
            0x9C => RefusalKind::UseAnotherServer,
            0x9D => RefusalKind::ServerMoved,
            0x9F => RefusalKind::ConnectionRateExceeded,
            0x81 | 0x82 => RefusalKind::ProtocolError,
            0x83 => RefusalKind::ImplementationSpecific,
            _ => RefusalKind::Unspecified,
        };
        Self {
            kind,
            reason,
            reason_string,
            server_reference: None,
        }
    }

    /// True when retrying the same CONNECT cannot succeed: a configuration problem
    /// (credentials, authorisation, client id, protocol version, will, packet
    /// size). Busy, unavailable, quota and rate refusals are retried with backoff.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            RefusalKind::UnsupportedProtocolVersion
                | RefusalKind::ClientIdRejected
                | RefusalKind::BadCredentials
                | RefusalKind::NotAuthorized
                | RefusalKind::Banned
                | RefusalKind::BadAuthenticationMethod
                | RefusalKind::TopicNameInvalid
                | RefusalKind::PacketTooLarge
                | RefusalKind::PayloadFormatInvalid
                | RefusalKind::RetainNotSupported
                | RefusalKind::QosNotSupported
                | RefusalKind::ProtocolError
        )
    }
}

impl fmt::Display for ConnectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.kind, self.reason)?;
        if let Some(s) = &self.reason_string {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

/// The kinds of CONNACK refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// 0x84 (3.1.1: 1).
    UnsupportedProtocolVersion,
    /// 0x85 (3.1.1: 2).
    ClientIdRejected,
    /// 0x86 (3.1.1: 4).
    BadCredentials,
    /// 0x87 (3.1.1: 5).
    NotAuthorized,
    /// 0x88 (3.1.1: 3).
    ServerUnavailable,
    /// 0x89.
    ServerBusy,
    /// 0x8A.
    Banned,
    /// 0x8C.
    BadAuthenticationMethod,
    /// 0x90 (of the will topic).
    TopicNameInvalid,
    /// 0x95.
    PacketTooLarge,
    /// 0x97.
    QuotaExceeded,
    /// 0x99 (of the will payload).
    PayloadFormatInvalid,
    /// 0x9A (a retained will).
    RetainNotSupported,
    /// 0x9B (the will's QoS).
    QosNotSupported,
    /// 0x9C.
    UseAnotherServer,
    /// 0x9D.
    ServerMoved,
    /// 0x9F.
    ConnectionRateExceeded,
    /// 0x81, 0x82.
    ProtocolError,
    /// 0x83.
    ImplementationSpecific,
    /// 0x80 or a code this client does not know.
    Unspecified,
}

/// Why a PUBLISH did not complete.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PublishError {
    /// The server answered PUBACK or PUBREC (or PUBCOMP) with a failure reason code.
    Rejected {
        /// The reason code (0x80 and above).
        reason: ReasonCode,
        /// The ack's properties (Reason String, User Properties).
        properties: AckProperties,
    },
    /// Refused before sending: larger than the server's Maximum Packet Size.
    PacketTooLarge {
        /// The packet's size.
        size: usize,
        /// The server's maximum.
        maximum: u32,
    },
    /// Refused before sending: the QoS is above the server's Maximum QoS.
    QosNotSupported,
    /// Refused before sending: RETAIN is set and the server has no retain.
    RetainNotSupported,
    /// Refused before sending: a property the client manages or must not send
    /// (Topic Alias, Subscription Identifier).
    PropertyNotAllowed(&'static str),
    /// Refused before sending: not a valid topic name (empty, a wildcard, U+0000,
    /// longer than 65,535 bytes).
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: DecodeError,
    },
    /// Refused before sending: the Payload Format Indicator is 1 (UTF-8) and
    /// the payload is not well-formed UTF-8 (MQTT 5, 3.3.2.3.2; a server would
    /// refuse it with 0x99 Payload format invalid).
    InvalidPayload,
    /// Refused before sending: the packet cannot be encoded.
    Encode(EncodeError),
    /// The server kept no session and the policy is [`crate::SessionLostPolicy::Fail`].
    SessionLost,
    /// The client closed before the flow completed. A QoS 1/2 message may still
    /// have reached the server.
    Closed,
    /// A QoS 0 message was still in the client's buffer when the connection was lost.
    ConnectionLost,
}

impl PublishError {
    /// The Reason String of the server's failure ack ([`PublishError::Rejected`]).
    pub fn reason_string(&self) -> Option<&str> {
        match self {
            Self::Rejected { properties, .. } => ack_reason_string(properties),
            _ => None,
        }
    }

    /// What the application can do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::PacketTooLarge { .. }
            | Self::QosNotSupported
            | Self::RetainNotSupported
            | Self::PropertyNotAllowed(_)
            | Self::InvalidTopic { .. }
            | Self::InvalidPayload
            | Self::Encode(_) => ErrorKind::Configuration,
            Self::SessionLost | Self::ConnectionLost => ErrorKind::Transient,
            Self::Closed => ErrorKind::Closed,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { reason, properties } => {
                write!(f, "rejected by the server: {}", reason)?;
                write_reason_string(f, ack_reason_string(properties))
            }
            Self::PacketTooLarge { size, maximum } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the server's maximum of {maximum}"
                )
            }
            Self::QosNotSupported => f.write_str("QoS above the server's Maximum QoS"),
            Self::RetainNotSupported => f.write_str("the server does not support retain"),
            Self::PropertyNotAllowed(p) => write!(f, "a client may not send {p} here"),
            Self::InvalidTopic { topic, reason } => {
                write!(f, "invalid topic name {topic:?}: {reason}")
            }
            Self::InvalidPayload => {
                f.write_str("the payload is not UTF-8 and its Payload Format Indicator says it is")
            }
            Self::Encode(e) => write!(f, "cannot encode: {e}"),
            Self::SessionLost => f.write_str("the server lost the session"),
            Self::Closed => f.write_str("the client closed before the flow completed"),
            Self::ConnectionLost => f.write_str("the connection was lost before sending"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidTopic { reason, .. } => Some(reason),
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a SUBSCRIBE or UNSUBSCRIBE did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Refused before sending: no filter in the request.
    Empty,
    /// Refused before sending: not a valid topic filter.
    InvalidFilter {
        /// The filter.
        filter: String,
        /// What is wrong with it.
        reason: DecodeError,
    },
    /// Refused before sending: a property that cannot be sent (a User Property
    /// with U+0000, say).
    InvalidProperty {
        /// Which property.
        what: &'static str,
        /// What is wrong with it.
        reason: DecodeError,
    },
    /// Refused before sending: a Subscription Identifier of 0 or above
    /// 268,435,455 (MQTT 5, 3.8.2.1.2).
    InvalidSubscriptionIdentifier(u32),
    /// Refused before sending: the packet cannot be encoded.
    Encode(EncodeError),
    /// Refused before sending: the server said it has no wildcard subscriptions,
    /// no shared subscriptions or no subscription identifiers.
    NotSupported(&'static str),
    /// Refused before sending: larger than the server's Maximum Packet Size.
    PacketTooLarge,
    /// The server refused some or all of the filters of a SUBSCRIBE or
    /// UNSUBSCRIBE (SUBACK/UNSUBACK reason codes 0x80 and above): what
    /// [`crate::SubscribeOutcome::check`] and [`crate::UnsubscribeOutcome::check`]
    /// make of such an answer.
    Rejected {
        /// Each refused filter: its position in the request and its reason code.
        failures: Vec<(usize, ReasonCode)>,
        /// The ack's properties (Reason String, User Properties).
        properties: AckProperties,
    },
    /// The client closed before the server answered.
    Closed,
    /// Not connected now (a re-authentication needs a connection).
    NotConnected,
    /// A re-authentication without an authenticator.
    NoAuthenticator,
    /// A re-authentication while an exchange is under way.
    AuthenticationInProgress,
    /// The connection ended before the server answered; the client reconnects.
    ConnectionLost,
}

impl RequestError {
    /// The Reason String of the server's ack ([`RequestError::Rejected`]).
    pub fn reason_string(&self) -> Option<&str> {
        match self {
            Self::Rejected { properties, .. } => ack_reason_string(properties),
            _ => None,
        }
    }

    /// What the application can do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Closed => ErrorKind::Closed,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::NotConnected | Self::AuthenticationInProgress | Self::ConnectionLost => {
                ErrorKind::Transient
            }
            _ => ErrorKind::Configuration,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no topic filter in the request"),
            Self::InvalidFilter { filter, reason } => {
                write!(f, "invalid topic filter {filter:?}: {reason}")
            }
            Self::InvalidProperty { what, reason } => write!(f, "invalid {what}: {reason}"),
            Self::InvalidSubscriptionIdentifier(id) => {
                write!(f, "invalid Subscription Identifier {id} (1 to 268,435,455)")
            }
            Self::Encode(e) => write!(f, "cannot encode: {e}"),
            Self::NotSupported(what) => write!(f, "the server does not support {what}"),
            Self::PacketTooLarge => f.write_str("packet exceeds the server's maximum packet size"),
            Self::Rejected {
                failures,
                properties,
            } => {
                f.write_str("refused by the server:")?;
                for (i, (index, reason)) in failures.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    write!(f, "{sep} filter {index}: {reason}")?;
                }
                write_reason_string(f, ack_reason_string(properties))
            }
            Self::Closed => f.write_str("the client closed before the server answered"),
            Self::NotConnected => f.write_str("not connected"),
            Self::NoAuthenticator => f.write_str("no authenticator was configured"),
            Self::AuthenticationInProgress => {
                f.write_str("an authentication exchange is already under way")
            }
            Self::ConnectionLost => f.write_str("the connection ended before the server answered"),
        }
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidFilter { reason, .. } | Self::InvalidProperty { reason, .. } => {
                Some(reason)
            }
            Self::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a request of [`crate::Client::request`] got no response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ResponseError {
    /// No response within the time given (the request may still have reached
    /// its responder; a response arriving later is dropped).
    Timeout,
    /// The response topic could not be subscribed to (refused by the server,
    /// the client closed, ...).
    Subscribe(RequestError),
    /// The request could not be published, or the server refused it.
    Publish(PublishError),
    /// No usable response topic: the configured or default one is not a valid
    /// topic name, or the client identifier is not known yet (a server-assigned
    /// one before the first connection).
    ResponseTopic(String),
    /// The client closed before the response came.
    Closed,
}

impl ResponseError {
    /// What the application can do about it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::Transient,
            Self::Subscribe(e) => e.kind(),
            Self::Publish(e) => e.kind(),
            Self::ResponseTopic(_) => ErrorKind::Configuration,
            Self::Closed => ErrorKind::Closed,
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no response within the time given"),
            Self::Subscribe(e) => write!(f, "cannot subscribe to the response topic: {e}"),
            Self::Publish(e) => write!(f, "cannot publish the request: {e}"),
            Self::ResponseTopic(why) => write!(f, "no usable response topic: {why}"),
            Self::Closed => f.write_str("the client closed before the response came"),
        }
    }
}

impl std::error::Error for ResponseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Subscribe(e) => Some(e),
            Self::Publish(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an acknowledgement was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckError {
    /// The message came on an earlier connection: the server will send it again.
    StaleConnection,
    /// Already acknowledged.
    AlreadyAcked,
    /// The reason code is not valid for this ack (PUBACK/PUBREC) or version.
    InvalidReasonCode,
    /// The client is closed.
    Closed,
}

impl AckError {
    /// What the application can do about it. A stale ack needs nothing: the server
    /// sends the message again.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::StaleConnection => ErrorKind::Transient,
            Self::AlreadyAcked | Self::InvalidReasonCode => ErrorKind::Configuration,
            Self::Closed => ErrorKind::Closed,
        }
    }
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StaleConnection => f.write_str("the message came on an earlier connection"),
            Self::AlreadyAcked => f.write_str("already acknowledged"),
            Self::InvalidReasonCode => f.write_str("reason code not valid for this ack"),
            Self::Closed => f.write_str("the client is closed"),
        }
    }
}

impl std::error::Error for AckError {}
