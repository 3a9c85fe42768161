//! The client's protocol engine against a fuzzed server: the input is a script of
//! operations (server bytes, well-formed server packets with fuzzed fields, our
//! publishes and acks, time passing, transports lost and reopened, AUTH packets
//! of an enhanced-authentication exchange, PUBLISHes with valid and invalid
//! Topic Aliases and Payload Format Indicators). The engine runs with outgoing
//! Topic Aliases on and, in MQTT 5 when the script says so, an authenticator.
//!
//! Checks: nothing panics; everything the engine writes decodes as a valid packet
//! of its version (with our own decoder, as a server would); the outgoing window
//! stays within our maximum and each message in flight holds an identifier; the
//! outgoing Topic Aliases are what a server must be able to resolve: within the
//! Topic Alias Maximum of the CONNACK of this connection, an empty topic only
//! with an alias set before on the same connection, and never on a DUP resend.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mqtt_client::engine::{AckId, AuthError, Authenticator, Engine, Event, State};
use mqtt_client::{Backoff, ConnectionError, Options};
use mqtt_codec::packet::{Auth, ConnAck, Decoder, Packet, PubAck, Publish};
use mqtt_codec::property::{AckProperties, AuthProperties, ConnAckProperties, Secret};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::{MqttString, PacketId, ProtocolVersion, QoS};

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
}

fn qos(b: u8) -> QoS {
    match b % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The method the fuzzed server speaks, or not.
const METHOD: &str = "FUZZ-1";

/// A deterministic authenticator: it echoes the server's data, and fails on
/// data `fail` (which ends the connection with 0x87, fatally).
struct Echo;

impl Authenticator for Echo {
    fn method(&self) -> &str {
        METHOD
    }
    fn start(&mut self) -> Result<Option<Bytes>, AuthError> {
        Ok(Some(Bytes::from_static(b"hello")))
    }
    fn respond(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        match data {
            Some(b"fail") => Err(AuthError("refused".to_owned())),
            other => Ok(other.map(Bytes::copy_from_slice)),
        }
    }
    fn finish(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        match data {
            Some(b"fail") => Err(AuthError("server not verified".to_owned())),
            _ => Ok(()),
        }
    }
}

/// What the server knows of the client's outgoing Topic Aliases on this connection.
#[derive(Default)]
struct ServerAliases {
    /// The Topic Alias Maximum of the CONNACK that accepted this connection.
    maximum: u16,
    topics: HashMap<u16, MqttString>,
}

impl ServerAliases {
    /// A PUBLISH the client wrote: checks its alias as a server resolves it.
    fn check(&mut self, publish: &Publish) {
        match publish.topic_alias() {
            None => assert!(!publish.topic.is_empty(), "empty topic without an alias"),
            Some(alias) => {
                assert!(
                    alias >= 1 && alias <= self.maximum,
                    "alias {alias} beyond the server's maximum {}",
                    self.maximum
                );
                assert!(!publish.dup, "a Topic Alias on a DUP resend");
                if publish.topic.is_empty() {
                    assert!(
                        self.topics.contains_key(&alias),
                        "alias {alias} used before it was set on this connection"
                    );
                } else {
                    self.topics.insert(alias, publish.topic.clone());
                }
            }
        }
    }
}

fn encode(packet: &Packet, version: ProtocolVersion) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).ok()?;
    Some(buf)
}

fuzz_target!(|data: &[u8]| {
    let mut s = Script(data);
    let Some(flags) = s.byte() else { return };
    let version = if flags & 1 == 0 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    // A second byte of options (inputs of one byte are too short to matter).
    let more = s.byte().unwrap_or(0);
    let window = 1 + u16::from(flags >> 4);
    let options = Options::new("fuzz")
        .with_version(version)
        .with_receive_maximum(window)
        .with_max_inflight(window)
        .with_strict_receive_maximum(flags & 2 == 0)
        .with_auto_ack(flags & 4 != 0)
        .with_topic_alias_maximum(u16::from(flags & 8))
        .with_reconnect(
            Backoff::default()
                .with_jitter(false)
                .with_max_attempts(Some(50)),
        );
    let options = options.with_outgoing_topic_aliases(more & 2 == 0);
    let mut engine: Engine<u32> = Engine::new(options);
    let authenticating = version == ProtocolVersion::V5 && more & 1 != 0;
    if authenticating {
        engine.set_authenticator(Box::new(Echo));
    }
    let mut server = Decoder::new(version);
    let mut aliases = ServerAliases::default();
    let mut now = Instant::now();
    let mut tickets: Vec<AckId> = Vec::new();
    let mut token = 0u32;
    let max_inflight = usize::from(1 + u16::from(flags >> 4));

    for _ in 0..2_000 {
        let Some(op) = s.byte() else { break };
        match op % 11 {
            0 => {
                let n = usize::from(s.byte().unwrap_or(0));
                let mut buf = BytesMut::from(s.bytes(n));
                engine.handle_read(now, &mut buf);
            }
            1 => {
                let b = s.byte().unwrap_or(0);
                let mut properties = ConnAckProperties::EMPTY;
                if version == ProtocolVersion::V5 {
                    if b & 1 != 0 {
                        properties.receive_maximum = Some(u16::from(s.byte().unwrap_or(1)).max(1));
                    }
                    if b & 2 != 0 {
                        properties.maximum_packet_size =
                            Some(u32::from(s.u16().unwrap_or(1)).max(1));
                    }
                    if b & 4 != 0 {
                        properties.maximum_qos = Some(qos(b >> 3).min(QoS::AtLeastOnce));
                    }
                    if b & 8 != 0 {
                        properties.server_keep_alive = Some(u16::from(b >> 4));
                    }
                    if b & 0x20 != 0 {
                        // 0 to 3: a small table fills and replaces aliases.
                        let maximum = u16::from(s.byte().unwrap_or(0) & 3);
                        properties.topic_alias_maximum = Some(maximum);
                    }
                    if authenticating || b & 0x40 != 0 {
                        let a = s.byte().unwrap_or(0);
                        if a & 1 == 0 {
                            let method = if a & 2 == 0 { METHOD } else { "OTHER" };
                            properties.authentication_method = MqttString::try_from(method).ok();
                        }
                        if a & 4 != 0 {
                            let data: &[u8] = if a & 8 != 0 { b"fail" } else { b"ok" };
                            properties.authentication_data =
                                Some(Secret(Bytes::copy_from_slice(data)));
                        }
                    }
                }
                let reason = if b & 0x80 != 0 && b & 0x40 != 0 {
                    ReasonCode(0x87)
                } else {
                    ReasonCode::SUCCESS
                };
                let connack = ConnAck {
                    session_present: b & 0x10 != 0,
                    reason_code: reason,
                    properties,
                };
                let maximum = connack.properties.topic_alias_maximum.unwrap_or(0);
                let was_connecting = engine.state() == State::Connecting;
                if let Some(mut buf) = encode(&Packet::ConnAck(Box::new(connack)), version) {
                    engine.handle_read(now, &mut buf);
                }
                if was_connecting && engine.state() == State::Connected {
                    aliases.maximum = maximum;
                }
            }
            2 => {
                let b = s.byte().unwrap_or(0);
                let q = qos(b);
                let id = s.u16().and_then(PacketId::new);
                let mut publish = Publish {
                    qos: q,
                    dup: b & 0x10 != 0 && q != QoS::AtMostOnce,
                    retain: b & 0x20 != 0,
                    topic: MqttString::from_static("t/x").unwrap_or_default(),
                    packet_id: if q == QoS::AtMostOnce {
                        None
                    } else {
                        id.or(PacketId::new(1))
                    },
                    payload: Bytes::copy_from_slice(s.bytes(usize::from(b >> 6))),
                    ..Publish::default()
                };
                if version == ProtocolVersion::V5 && b & 0x08 != 0 {
                    // Aliases 1 to 15 against our maximum of 0 or 8 (valid and
                    // invalid), set or used (empty topic), on a few topics; and a
                    // Payload Format Indicator, with a payload that may not be UTF-8.
                    let x = s.byte().unwrap_or(0);
                    let mut props = mqtt_codec::property::PublishProperties::EMPTY;
                    props.topic_alias = Some(u16::from(x & 15).max(1));
                    if b & 4 != 0 {
                        publish.topic = MqttString::default();
                    } else if let Some(topic) =
                        ["t/x", "t/y", "t/z", "u"].get(usize::from(x >> 4 & 3))
                    {
                        publish.topic = MqttString::from_static(topic).unwrap_or_default();
                    }
                    if x & 0x40 != 0 {
                        props.payload_format_indicator = Some(1);
                        if x & 0x80 != 0 {
                            publish.payload = Bytes::from_static(b"\xff\xfe");
                        }
                    }
                    publish.properties = Some(Box::new(props));
                }
                if let Some(mut buf) = encode(&Packet::Publish(publish), version) {
                    engine.handle_read(now, &mut buf);
                }
            }
            3 => {
                let b = s.byte().unwrap_or(0);
                let q = qos(b);
                if engine.can_publish(q) {
                    let publish = Publish {
                        qos: q,
                        retain: b & 0x10 != 0,
                        // A few topics: the server's small alias table fills.
                        topic: MqttString::from_static(
                            ["out/a", "out/b", "out/c", "out/d"][usize::from(b >> 2 & 3)],
                        )
                        .unwrap_or_default(),
                        payload: Bytes::copy_from_slice(s.bytes(usize::from(b >> 5))),
                        ..Publish::default()
                    };
                    token += 1;
                    let _ = engine.publish(now, publish, token);
                }
            }
            4 => {
                let b = s.byte().unwrap_or(0);
                if !tickets.is_empty() {
                    let t = tickets.remove(usize::from(b) % tickets.len());
                    let reason = if b & 0x80 != 0 {
                        ReasonCode(0x80)
                    } else {
                        ReasonCode::SUCCESS
                    };
                    let _ = engine.ack(now, t, reason, AckProperties::EMPTY);
                }
            }
            5 => {
                now += Duration::from_millis(100 * u64::from(s.byte().unwrap_or(1)));
                engine.handle_timeout(now);
            }
            6 => {
                if engine.wants_transport(now) {
                    engine.handle_transport_open(now);
                    server = Decoder::new(version);
                    aliases = ServerAliases::default();
                } else if matches!(engine.state(), State::Connecting | State::Connected) {
                    engine.handle_transport_error(now, ConnectionError::TransportClosed);
                } else if let Some(at) = engine.poll_timeout() {
                    now = now.max(at);
                    engine.handle_timeout(now);
                }
            }
            7 => {
                let kind = s.byte().unwrap_or(0);
                if let Some(id) = s.u16().and_then(PacketId::new) {
                    let ack = PubAck::new(id);
                    let packet = match kind % 4 {
                        0 => Packet::PubAck(ack),
                        1 => Packet::PubRec(ack),
                        2 => Packet::PubRel(ack),
                        _ => Packet::PubComp(ack),
                    };
                    if let Some(mut buf) = encode(&packet, version) {
                        engine.handle_read(now, &mut buf);
                    }
                }
            }
            9 => {
                // AUTH from the server: continue, success or (its own, wrong)
                // re-authenticate, with our method or another or none, and data.
                let a = s.byte().unwrap_or(0);
                if version == ProtocolVersion::V5 {
                    let reason = match a & 3 {
                        0 | 1 => ReasonCode::CONTINUE_AUTHENTICATION,
                        2 => ReasonCode::SUCCESS,
                        _ => ReasonCode::RE_AUTHENTICATE,
                    };
                    let mut properties = AuthProperties::EMPTY;
                    properties.authentication_method = match a >> 2 & 3 {
                        0 | 1 => MqttString::try_from(METHOD).ok(),
                        2 => MqttString::try_from("OTHER").ok(),
                        _ => None,
                    };
                    let data: Option<&[u8]> = match a >> 4 & 3 {
                        0 => None,
                        1 => Some(b"fail"),
                        _ => Some(s.bytes(usize::from(a >> 6))),
                    };
                    properties.authentication_data =
                        data.map(|d| Secret(Bytes::copy_from_slice(d)));
                    let auth = Packet::Auth(Box::new(Auth {
                        reason_code: reason,
                        properties,
                    }));
                    if let Some(mut buf) = encode(&auth, version) {
                        engine.handle_read(now, &mut buf);
                    }
                }
            }
            10 => {
                // Refused unless connected, with an authenticator, and idle.
                let _ = engine.reauthenticate(now);
            }
            _ => {
                let b = s.byte().unwrap_or(0);
                let reason = ReasonCode(b & 0x8F);
                // An invalid reason code is refused: the engine goes on.
                let _ = engine.disconnect(
                    now,
                    reason,
                    mqtt_codec::property::DisconnectProperties::EMPTY,
                );
            }
        }

        // What a server would read: every packet must decode.
        while let Some(bytes) = engine.poll_transmit() {
            let mut wire = BytesMut::from(&bytes[..]);
            loop {
                match server.decode(&mut wire) {
                    Ok(Some(Packet::Connect(c))) => {
                        assert_eq!(c.protocol_version, version);
                    }
                    Ok(Some(Packet::Publish(p))) => aliases.check(&p),
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        assert!(wire.is_empty(), "the engine wrote a partial packet");
                        break;
                    }
                    Err(e) => panic!("the engine wrote an invalid packet: {e:?}"),
                }
            }
        }
        while let Some(event) = engine.poll_event() {
            if let Event::Message(m) = event {
                if let Some(t) = m.ack {
                    tickets.push(t);
                }
            }
        }
        if engine.should_close_transport() && engine.state() == State::Closing {
            engine.handle_transport_closed(now);
            server = Decoder::new(version);
            aliases = ServerAliases::default();
        }
        // The window is bounded by our maximum (the server's Receive Maximum only
        // meters sending: entries above it wait to be resent), and every entry
        // holds its own identifier.
        assert!(engine.inflight() <= max_inflight);
        assert!(engine.packet_ids_in_use() as usize >= engine.inflight());
    }
});
