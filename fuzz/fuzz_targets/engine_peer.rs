//! The client's protocol engine against a fuzzed server: the input is a script of
//! operations (server bytes, well-formed server packets with fuzzed fields, our
//! publishes and acks, time passing, transports lost and reopened).
//!
//! Checks: nothing panics; everything the engine writes decodes as a valid packet
//! of its version (with our own decoder, as a server would); the outgoing window
//! stays within our maximum and each message in flight holds an identifier.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use mqtt_client::engine::{AckId, Engine, Event, State};
use mqtt_client::{Backoff, ConnectionError, Options};
use mqtt_codec::packet::{ConnAck, Decoder, Packet, PubAck, Publish};
use mqtt_codec::property::{AckProperties, ConnAckProperties};
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
    let mut engine: Engine<u32> = Engine::new(options);
    let mut server = Decoder::new(version);
    let mut now = Instant::now();
    let mut tickets: Vec<AckId> = Vec::new();
    let mut token = 0u32;
    let max_inflight = usize::from(1 + u16::from(flags >> 4));

    for _ in 0..2_000 {
        let Some(op) = s.byte() else { break };
        match op % 9 {
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
                if let Some(mut buf) = encode(&Packet::ConnAck(Box::new(connack)), version) {
                    engine.handle_read(now, &mut buf);
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
                    let mut props = mqtt_codec::property::PublishProperties::EMPTY;
                    props.topic_alias = Some(u16::from(b & 7).max(1));
                    if b & 4 != 0 {
                        publish.topic = MqttString::default();
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
                        topic: MqttString::from_static("out/t").unwrap_or_default(),
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
        }
        // The window is bounded by our maximum (the server's Receive Maximum only
        // meters sending: entries above it wait to be resent), and every entry
        // holds its own identifier.
        assert!(engine.inflight() <= max_inflight);
        assert!(engine.packet_ids_in_use() as usize >= engine.inflight());
    }
});
