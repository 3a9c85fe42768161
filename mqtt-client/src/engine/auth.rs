//! Enhanced authentication (MQTT 5, 4.12): the AUTH exchange at connect and
//! re-authentication, driven by an [`Authenticator`].
//!
//! ```text
//!   CONNECT  (method, data = start())          ->
//!            <- AUTH 0x18 (data)                  server continues
//!   AUTH 0x18 (data = respond(data))           ->   ... as many rounds as the method needs
//!            <- CONNACK 0x00 (data)               finish(data): the client checks the server
//!
//!   re-authentication, while connected, started by the client:
//!   AUTH 0x19 (data = start())                 ->
//!            <- AUTH 0x18 (data) / AUTH 0x18 -> ...
//!            <- AUTH 0x00 (data)                  finish(data)
//! ```
//!
//! Only the client starts a re-authentication (3.15.2.1: 0x19 is sent by the
//! Client), so an AUTH 0x19 from the server, an AUTH when no exchange is under way,
//! an AUTH 0x00 during connect (success there is CONNACK) or an Authentication
//! Method other than ours is a Protocol Error: DISCONNECT 0x82 [MQTT-4.12.0-6,
//! MQTT-4.12.1-1]. An authenticator that fails ends the connection with
//! DISCONNECT 0x87 and [`ConnectionError::Authentication`], which is fatal: the
//! same credentials would fail again. Packets other than AUTH flow as usual during
//! a re-authentication.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use mqtt_codec::packet::{Auth, Packet};
use mqtt_codec::property::{AuthProperties, Secret};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;

use super::{Engine, Event, State};
use crate::error::{ConnectionError, RequestError, Violation};

/// One side of an enhanced-authentication method (SCRAM, Kerberos, a token
/// exchange...). The engine calls it for every exchange: [`Authenticator::start`]
/// at every CONNECT and at every re-authentication, then
/// [`Authenticator::respond`] for each AUTH 0x18 of the server, then
/// [`Authenticator::finish`] with the server's last data.
pub trait Authenticator: Send + 'static {
    /// The Authentication Method, such as `SCRAM-SHA-256`.
    fn method(&self) -> &str;

    /// Starts an exchange: the Authentication Data of CONNECT or of AUTH 0x19.
    fn start(&mut self) -> Result<Option<Bytes>, AuthError>;

    /// The server continues (AUTH 0x18) with `data`: the data to answer with.
    fn respond(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError>;

    /// The server accepted (CONNACK 0x00, AUTH 0x00) with `data`: a method that
    /// authenticates the server too checks it here.
    fn finish(&mut self, data: Option<&[u8]>) -> Result<(), AuthError>;
}

/// Why an authenticator gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError(pub String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthError {}

/// Where the exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Exchange {
    /// None under way.
    #[default]
    Idle,
    /// The CONNECT carried the method; CONNACK ends it.
    Connecting,
    /// A re-authentication; AUTH 0x00 ends it.
    Reauthenticating,
}

/// The authenticator the engine holds, with `Debug`.
pub(super) struct AuthSlot(pub(super) Box<dyn Authenticator>);

impl fmt::Debug for AuthSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authenticator({:?})", self.0.method())
    }
}

impl<T> Engine<T> {
    /// Uses `authenticator` for the AUTH exchange of every connection (MQTT 5).
    pub fn set_authenticator(&mut self, authenticator: Box<dyn Authenticator>) {
        self.auth = Some(AuthSlot(authenticator));
    }

    /// Starts a re-authentication (AUTH 0x19): refused unless connected with an
    /// authenticator and no exchange is under way. [`Event::Reauthenticated`]
    /// reports its success; a failure ends the connection.
    pub fn reauthenticate(&mut self, now: Instant) -> Result<(), RequestError> {
        if self.state != State::Connected {
            return Err(RequestError::NotConnected);
        }
        let Some(slot) = self.auth.as_mut() else {
            return Err(RequestError::NoAuthenticator);
        };
        if self.exchange != Exchange::Idle {
            return Err(RequestError::AuthenticationInProgress);
        }
        match slot.0.start() {
            Ok(data) => {
                self.exchange = Exchange::Reauthenticating;
                self.write_auth(now, ReasonCode::RE_AUTHENTICATE, data);
                Ok(())
            }
            Err(e) => {
                self.auth_failed(now, e);
                Err(RequestError::Closed)
            }
        }
    }

    /// Method and first data for CONNECT.
    pub(super) fn connect_authentication(
        &mut self,
    ) -> Result<Option<(MqttString, Option<Secret>)>, ConnectionError> {
        self.exchange = Exchange::Idle;
        let Some(slot) = self.auth.as_mut() else {
            return Ok(None);
        };
        let method = MqttString::try_from(slot.0.method())
            .map_err(|e| ConnectionError::InvalidOptions(format!("authentication method: {e}")))?;
        let data = slot
            .0
            .start()
            .map_err(|e| ConnectionError::Authentication { reason: e.0 })?;
        self.exchange = Exchange::Connecting;
        Ok(Some((method, data.map(Secret))))
    }

    /// CONNACK 0x00 of a connection that authenticated: the server's last data.
    /// False when the authenticator refused it (the connection is ending).
    pub(super) fn connack_authentication(
        &mut self,
        now: Instant,
        method: Option<&str>,
        data: Option<&[u8]>,
    ) -> bool {
        let exchange = std::mem::take(&mut self.exchange);
        let Some(slot) = self.auth.as_mut() else {
            return true;
        };
        if exchange != Exchange::Connecting {
            return true;
        }
        if method.is_some_and(|m| m != slot.0.method()) {
            self.violation_auth(now);
            return false;
        }
        match slot.0.finish(data) {
            Ok(()) => true,
            Err(e) => {
                self.auth_failed(now, e);
                false
            }
        }
    }

    /// An AUTH packet from the server.
    pub(super) fn on_auth(&mut self, now: Instant, auth: &Auth) {
        let Some(slot) = self.auth.as_mut() else {
            // [MQTT-4.12.0-6]: no method in CONNECT, no AUTH from the server.
            self.violation_auth(now);
            return;
        };
        let method = auth.properties.authentication_method.as_ref();
        if method.map(|m| m.as_str()) != Some(slot.0.method()) {
            // [MQTT-4.12.0-5 / 4.12.1-1]: the same method throughout.
            self.violation_auth(now);
            return;
        }
        let data = auth
            .properties
            .authentication_data
            .as_ref()
            .map(|d| &d.0[..]);
        match (auth.reason_code, self.exchange) {
            (
                ReasonCode::CONTINUE_AUTHENTICATION,
                Exchange::Connecting | Exchange::Reauthenticating,
            ) => match slot.0.respond(data) {
                Ok(answer) => {
                    self.write_auth(now, ReasonCode::CONTINUE_AUTHENTICATION, answer);
                }
                Err(e) => self.auth_failed(now, e),
            },
            (ReasonCode::SUCCESS, Exchange::Reauthenticating) => match slot.0.finish(data) {
                Ok(()) => {
                    self.exchange = Exchange::Idle;
                    self.events.push_back(Event::Reauthenticated);
                }
                Err(e) => self.auth_failed(now, e),
            },
            // 0x19 from the server, 0x00 during connect, anything outside an exchange.
            _ => self.violation_auth(now),
        }
    }

    fn write_auth(&mut self, now: Instant, reason: ReasonCode, data: Option<Bytes>) {
        let Some(slot) = self.auth.as_ref() else {
            return;
        };
        let Ok(method) = MqttString::try_from(slot.0.method()) else {
            return;
        };
        let mut properties = AuthProperties::EMPTY;
        properties.authentication_method = Some(method);
        properties.authentication_data = data.map(Secret);
        let packet = Packet::Auth(Box::new(Auth {
            reason_code: reason,
            properties,
        }));
        self.write(now, &packet);
    }

    fn auth_failed(&mut self, now: Instant, error: AuthError) {
        self.exchange = Exchange::Idle;
        self.end_connection(
            now,
            ConnectionError::Authentication { reason: error.0 },
            Some(ReasonCode::NOT_AUTHORIZED),
        );
    }

    fn violation_auth(&mut self, now: Instant) {
        self.exchange = Exchange::Idle;
        self.end_connection(
            now,
            ConnectionError::ProtocolViolation {
                reason: ReasonCode::PROTOCOL_ERROR,
                detail: Violation::UnexpectedPacket(mqtt_codec::packet::PacketType::Auth),
            },
            Some(ReasonCode::PROTOCOL_ERROR),
        );
    }
}
