//! Engine: MQTT 5 enhanced authentication (4.12) against a scripted broker in
//! virtual time. The AUTH exchange at connect, re-authentication started by the
//! client, SCRAM-SHA-256 end to end with RFC 7677's example, and every misuse:
//! AUTH without a method, a different method, 0x19 from the server, AUTH 0x00
//! during connect, an authenticator that refuses the server (DISCONNECT 0x87).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod engine_common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine_common::*;
use mqtt_client::engine::{AuthError, Authenticator, Event, State};
use mqtt_client::{ConnectionError, ProtocolVersion, QoS, RequestError, Violation};
use mqtt_codec::packet::{Auth, ConnAck, Packet, PacketType};
use mqtt_codec::property::{AuthProperties, ConnAckProperties, Secret};
use mqtt_codec::reason::ReasonCode;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// An authenticator that answers from a script and records what it was given.
#[derive(Clone, Default)]
struct Scripted {
    log: Arc<Mutex<Vec<String>>>,
    refuse_finish: bool,
}

impl Scripted {
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn text(data: Option<&[u8]>) -> String {
    data.map_or("-".to_owned(), |d| String::from_utf8_lossy(d).into_owned())
}

impl Authenticator for Scripted {
    fn method(&self) -> &str {
        "TOKEN-EXCHANGE"
    }
    fn start(&mut self) -> Result<Option<Bytes>, AuthError> {
        self.log.lock().unwrap().push("start".into());
        Ok(Some(Bytes::from_static(b"hello")))
    }
    fn respond(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("respond {}", text(data)));
        Ok(Some(Bytes::from(format!("answer to {}", text(data)))))
    }
    fn finish(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        self.log
            .lock()
            .unwrap()
            .push(format!("finish {}", text(data)));
        if self.refuse_finish {
            return Err(AuthError("server proof wrong".into()));
        }
        Ok(())
    }
}

fn auth(reason: ReasonCode, method: &str, data: &[u8]) -> Auth {
    let mut properties = AuthProperties::EMPTY;
    properties.authentication_method = Some(method.try_into().unwrap());
    properties.authentication_data = Some(Secret(Bytes::copy_from_slice(data)));
    Auth {
        reason_code: reason,
        properties,
    }
}

fn connack_with(data: Option<&[u8]>) -> ConnAck {
    let mut properties = ConnAckProperties::EMPTY;
    if let Some(d) = data {
        properties.authentication_method = Some("TOKEN-EXCHANGE".try_into().unwrap());
        properties.authentication_data = Some(Secret(Bytes::copy_from_slice(d)));
    }
    ConnAck {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties,
    }
}

fn harness(authenticator: impl Authenticator) -> Harness {
    let mut h = Harness::new(options(V5));
    h.engine.set_authenticator(Box::new(authenticator));
    h
}

fn sent_auth(h: &mut Harness) -> Auth {
    match h.next_sent() {
        Packet::Auth(a) => *a,
        other => panic!("expected AUTH, got {other:?}"),
    }
}

fn data_of(a: &Auth) -> Vec<u8> {
    a.properties
        .authentication_data
        .as_ref()
        .unwrap()
        .0
        .to_vec()
}

/// Ends with DISCONNECT `reason` and the connection lost with `check`.
fn assert_ended(h: &mut Harness, reason: ReasonCode, check: impl Fn(&ConnectionError) -> bool) {
    match h.next_sent() {
        Packet::Disconnect(d) => assert_eq!(d.reason_code, reason),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    h.close_if_done();
    let events = h.events();
    let lost = events
        .iter()
        .find_map(|e| match e {
            Event::ConnectionLost(e) => Some(e.clone()),
            _ => None,
        })
        .expect("ConnectionLost");
    assert!(check(&lost), "{lost:?}");
}

#[test]
fn the_exchange_at_connect_runs_to_connack() {
    let script = Scripted::default();
    let mut h = harness(script.clone());
    let connect = h.open();
    assert_eq!(
        connect
            .properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some("TOKEN-EXCHANGE")
    );
    assert_eq!(
        &connect.properties.authentication_data.unwrap().0[..],
        b"hello"
    );
    // Two rounds of AUTH 0x18.
    for round in ["challenge-1", "challenge-2"] {
        h.deliver(auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            "TOKEN-EXCHANGE",
            round.as_bytes(),
        ));
        let answer = sent_auth(&mut h);
        assert_eq!(answer.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
        assert_eq!(data_of(&answer), format!("answer to {round}").into_bytes());
        assert_eq!(h.engine.state(), State::Connecting);
    }
    h.deliver(connack_with(Some(b"proof")));
    assert_eq!(h.engine.state(), State::Connected);
    assert_matches!(h.events().as_slice(), [Event::Connected { .. }]);
    assert_eq!(
        script.log(),
        [
            "start",
            "respond challenge-1",
            "respond challenge-2",
            "finish proof"
        ]
    );
    // Every new connection starts the exchange again.
    h.drop_transport(reset());
    h.events();
    h.advance_to_reconnect();
    let connect = h.open();
    assert!(connect.properties.authentication_method.is_some());
    assert_eq!(script.log().last().map(String::as_str), Some("start"));
}

#[test]
fn the_client_re_authenticates_while_messages_flow() {
    let script = Scripted::default();
    let mut h = harness(script.clone());
    h.open();
    h.deliver(connack_with(None));
    h.events();
    h.engine.reauthenticate(h.now).unwrap();
    h.flush();
    let start = sent_auth(&mut h);
    assert_eq!(start.reason_code, ReasonCode::RE_AUTHENTICATE);
    assert_eq!(data_of(&start), b"hello");
    // A second one while the first is under way is refused.
    assert_eq!(
        h.engine.reauthenticate(h.now),
        Err(RequestError::AuthenticationInProgress)
    );
    // Publishing goes on meanwhile.
    h.publish(publish(1, "during/reauth", QoS::AtLeastOnce, b"x"));
    assert_matches!(h.next_sent(), Packet::Publish(_));
    h.deliver(auth(
        ReasonCode::CONTINUE_AUTHENTICATION,
        "TOKEN-EXCHANGE",
        b"c",
    ));
    assert_eq!(data_of(&sent_auth(&mut h)), b"answer to c");
    h.deliver(auth(ReasonCode::SUCCESS, "TOKEN-EXCHANGE", b"done"));
    assert_matches!(h.events().as_slice(), [Event::Reauthenticated]);
    assert_eq!(script.log().last().map(String::as_str), Some("finish done"));
    assert_eq!(h.engine.state(), State::Connected);
}

#[test]
fn reauthentication_needs_a_connection_and_an_authenticator() {
    let mut h = Harness::connected(V5);
    assert_eq!(
        h.engine.reauthenticate(h.now),
        Err(RequestError::NoAuthenticator)
    );
    let mut h = harness(Scripted::default());
    assert_eq!(
        h.engine.reauthenticate(h.now),
        Err(RequestError::NotConnected)
    );
}

#[test]
fn an_authenticator_that_refuses_the_server_disconnects_with_0x87_and_is_fatal() {
    let script = Scripted {
        refuse_finish: true,
        ..Scripted::default()
    };
    let mut h = harness(script);
    h.open();
    h.deliver(connack_with(Some(b"forged")));
    assert_ended(&mut h, ReasonCode::NOT_AUTHORIZED, |e| {
        matches!(e, ConnectionError::Authentication { .. }) && e.is_fatal()
    });
    assert_eq!(h.engine.state(), State::Closed);
}

fn protocol_error(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::ProtocolViolation {
            reason: ReasonCode::PROTOCOL_ERROR,
            detail: Violation::UnexpectedPacket(PacketType::Auth),
        }
    )
}

#[test]
fn misused_auth_packets_are_protocol_errors() {
    // AUTH when CONNECT named no method [MQTT-4.12.0-6].
    let mut h = Harness::connected(V5);
    h.deliver(auth(
        ReasonCode::CONTINUE_AUTHENTICATION,
        "TOKEN-EXCHANGE",
        b"x",
    ));
    assert_ended(&mut h, ReasonCode::PROTOCOL_ERROR, protocol_error);

    // A different method.
    let mut h = harness(Scripted::default());
    h.open();
    h.deliver(auth(ReasonCode::CONTINUE_AUTHENTICATION, "OTHER", b"x"));
    assert_ended(&mut h, ReasonCode::PROTOCOL_ERROR, protocol_error);

    // AUTH 0x00 during connect: success there is CONNACK.
    let mut h = harness(Scripted::default());
    h.open();
    h.deliver(auth(ReasonCode::SUCCESS, "TOKEN-EXCHANGE", b"x"));
    assert_ended(&mut h, ReasonCode::PROTOCOL_ERROR, protocol_error);

    // 0x19 from the server: only the client starts a re-authentication.
    let mut h = harness(Scripted::default());
    h.open();
    h.deliver(connack_with(None));
    h.events();
    h.deliver(auth(ReasonCode::RE_AUTHENTICATE, "TOKEN-EXCHANGE", b"x"));
    assert_ended(&mut h, ReasonCode::PROTOCOL_ERROR, protocol_error);

    // AUTH 0x18 outside an exchange.
    let mut h = harness(Scripted::default());
    h.open();
    h.deliver(connack_with(None));
    h.events();
    h.deliver(auth(
        ReasonCode::CONTINUE_AUTHENTICATION,
        "TOKEN-EXCHANGE",
        b"x",
    ));
    assert_ended(&mut h, ReasonCode::PROTOCOL_ERROR, protocol_error);
}

#[test]
fn an_authenticator_with_mqtt_3_1_1_is_refused() {
    let mut h = Harness::new(options(ProtocolVersion::V311));
    h.engine.set_authenticator(Box::new(Scripted::default()));
    h.engine.handle_transport_open(h.now);
    h.close_if_done();
    let events = h.events();
    assert_matches!(
        events.last(),
        Some(Event::Closed(ConnectionError::InvalidOptions(_)))
    );
}

/// SCRAM-SHA-256 through the engine, the scripted broker playing RFC 7677's
/// server: the client's proof is the RFC's, and the server's signature verifies.
#[cfg(feature = "scram")]
#[test]
fn scram_sha_256_end_to_end_with_the_rfc_7677_example() {
    use mqtt_client::scram::Scram;
    let mut h = harness(Scram::new("user", "pencil").with_fixed_nonce("rOprNGfwEbeRWgbNEkqO"));
    let connect = h.open();
    assert_eq!(
        connect
            .properties
            .authentication_method
            .as_ref()
            .map(|m| m.as_str()),
        Some("SCRAM-SHA-256")
    );
    assert_eq!(
        &connect.properties.authentication_data.unwrap().0[..],
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    );
    h.deliver(auth(
        ReasonCode::CONTINUE_AUTHENTICATION,
        "SCRAM-SHA-256",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    ));
    let last = sent_auth(&mut h);
    assert_eq!(
        data_of(&last),
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    let mut properties = ConnAckProperties::EMPTY;
    properties.authentication_method = Some("SCRAM-SHA-256".try_into().unwrap());
    properties.authentication_data = Some(Secret(Bytes::from_static(
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    )));
    h.deliver(ConnAck {
        session_present: false,
        reason_code: ReasonCode::SUCCESS,
        properties,
    });
    assert_eq!(h.engine.state(), State::Connected);
}
