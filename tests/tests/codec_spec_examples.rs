//! Byte-exact examples from the specifications: OASIS MQTT Version 3.1.1 (with its
//! Errata 01) and OASIS MQTT Version 5.0. Where a specification shows only part of a
//! packet (a variable header, a payload), the test wraps it in a whole packet and
//! checks the part the figure shows byte for byte. Encoding must produce exactly
//! these bytes, and decoding them must give the packet back.

// Helpers outside `#[test]` functions assert by panicking too; clippy.toml allows
// that only inside the test functions themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    varint, AckProperties, ConnAck, Connect, ConnectProperties, Disconnect, FixedHeader, LastWill,
    MqttString, Packet, PacketId, PacketType, ProtocolVersion, PubAck, Publish, PublishProperties,
    QoS, ReasonCode, Secret, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    Unsubscribe, UnsubscribeProperties, UserProperty, WillProperties, MAX_PACKET_SIZE,
};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn s(text: &str) -> MqttString {
    MqttString::try_from(text).unwrap()
}

/// `packet` encodes to exactly `bytes` for `version`, and `bytes` decodes (whole) to
/// `packet`, with both `Packet::decode` and `Packet::decode_bytes`.
#[track_caller]
fn example(version: ProtocolVersion, packet: &Packet, bytes: &[u8]) {
    let encoded = packet.to_bytes(version).unwrap();
    assert_eq!(encoded[..], bytes[..], "encoding of {packet:?}");
    assert_eq!(packet.encoded_len(version), Ok(bytes.len()));
    let mut buf = BytesMut::from(bytes);
    let decoded = Packet::decode(&mut buf, version, MAX_PACKET_SIZE).unwrap();
    assert_eq!(decoded.as_ref(), Some(packet), "decoding of {bytes:02X?}");
    assert!(buf.is_empty());
    let mut frozen = Bytes::copy_from_slice(bytes);
    let decoded = Packet::decode_bytes(&mut frozen, version, MAX_PACKET_SIZE).unwrap();
    assert_eq!(decoded.as_ref(), Some(packet));
    assert!(frozen.is_empty());
}

/// The CONNECT payload used around the variable header examples: client id "c", Will
/// Topic "w", Will Payload "bye", User Name "u", Password "p".
fn connect_0xce(version: ProtocolVersion, properties: ConnectProperties) -> Packet {
    Connect {
        protocol_version: version,
        client_id: s("c"),
        clean_start: true,
        keep_alive: 10,
        username: Some(s("u")),
        password: Some(Secret(Bytes::from_static(b"p"))),
        will: Some(LastWill {
            topic: s("w"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        properties,
    }
    .into()
}

/// MQTT 3.1.1, 3.1.2.10, Figure 3.6 "Variable header non normative example":
/// Protocol Name "MQTT", Protocol Level 4, Connect Flags 0xCE (User Name, Password,
/// Will QoS 1, Will Flag, Clean Session), Keep Alive 10.
#[test]
fn v311_connect_variable_header_example() {
    const VARIABLE_HEADER: [u8; 10] = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // Protocol Name
        0x04, // Protocol Level
        0xCE, // Connect Flags 1100 1110
        0x00, 0x0A, // Keep Alive 10
    ];
    #[rustfmt::skip]
    let packet = [
        0x10, 0x1B,                                   // CONNECT, Remaining Length 27
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0xCE, 0x00, 0x0A,
        0x00, 0x01, 0x63,                             // Client Identifier "c"
        0x00, 0x01, 0x77,                             // Will Topic "w"
        0x00, 0x03, 0x62, 0x79, 0x65,                 // Will Message "bye"
        0x00, 0x01, 0x75,                             // User Name "u"
        0x00, 0x01, 0x70,                             // Password "p"
    ];
    assert_eq!(packet[2..12], VARIABLE_HEADER);
    example(V3, &connect_0xce(V3, ConnectProperties::default()), &packet);
}

/// MQTT 5.0, 3.1.2.12 "Variable Header non-normative example": Protocol Name "MQTT",
/// Protocol Version 5, Connect Flags 0xCE, Keep Alive 10, Properties: length 5,
/// Session Expiry Interval (identifier 17) = 10.
#[test]
fn v5_connect_variable_header_example() {
    const VARIABLE_HEADER: [u8; 16] = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // Protocol Name
        0x05, // Protocol Version
        0xCE, // Connect Flags
        0x00, 0x0A, // Keep Alive 10
        0x05, // Property Length 5
        0x11, // Session Expiry Interval identifier (17)
        0x00, 0x00, 0x00, 0x0A, // Session Expiry Interval 10
    ];
    #[rustfmt::skip]
    let packet = [
        0x10, 0x22,                                   // CONNECT, Remaining Length 34
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0xCE, 0x00, 0x0A,
        0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,
        0x00, 0x01, 0x63,                             // Client Identifier "c"
        0x00,                                         // Will Properties: none
        0x00, 0x01, 0x77,                             // Will Topic "w"
        0x00, 0x03, 0x62, 0x79, 0x65,                 // Will Payload "bye"
        0x00, 0x01, 0x75,                             // User Name "u"
        0x00, 0x01, 0x70,                             // Password "p"
    ];
    assert_eq!(packet[2..18], VARIABLE_HEADER);
    let properties = ConnectProperties {
        session_expiry_interval: Some(10),
        ..ConnectProperties::default()
    };
    example(V5, &connect_0xce(V5, properties), &packet);
}

/// MQTT 3.1.1, 3.3.2.3, Table 3.3 and Figure 3.11 "Publish Packet variable header non
/// normative example": Topic Name "a/b", Packet Identifier 10.
#[test]
fn v311_publish_variable_header_example() {
    let packet = Publish {
        qos: QoS::AtLeastOnce,
        topic: s("a/b"),
        packet_id: Some(pid(10)),
        ..Publish::default()
    };
    #[rustfmt::skip]
    let bytes = [
        0x32, 0x07,                                   // PUBLISH QoS 1, Remaining Length 7
        0x00, 0x03, 0x61, 0x2F, 0x62,                 // Topic Name "a/b"
        0x00, 0x0A,                                   // Packet Identifier 10
    ];
    example(V3, &packet.into(), &bytes);
}

/// MQTT 5.0, 3.3.2 "PUBLISH Variable Header non-normative example": Topic Name "a/b",
/// Packet Identifier 10, Property Length 0.
#[test]
fn v5_publish_variable_header_example() {
    let packet = Publish {
        qos: QoS::AtLeastOnce,
        topic: s("a/b"),
        packet_id: Some(pid(10)),
        payload: Bytes::from_static(b"hi"),
        ..Publish::default()
    };
    #[rustfmt::skip]
    let bytes = [
        0x32, 0x0A,                                   // PUBLISH QoS 1, Remaining Length 10
        0x00, 0x03, 0x61, 0x2F, 0x62,                 // Topic Name "a/b"
        0x00, 0x0A,                                   // Packet Identifier 10
        0x00,                                         // Property Length 0
        0x68, 0x69,                                   // payload "hi"
    ];
    example(V5, &packet.into(), &bytes);
}

/// The PUBLISH fixed header flags (3.1.1 Figure 3.10, 5.0 3.3.1): DUP bit 3,
/// QoS bits 2-1, RETAIN bit 0.
#[test]
fn publish_fixed_header_flags() {
    let cases = [
        (false, QoS::AtMostOnce, false, 0x30),
        (false, QoS::AtMostOnce, true, 0x31),
        (false, QoS::AtLeastOnce, false, 0x32),
        (true, QoS::AtLeastOnce, false, 0x3A),
        (false, QoS::ExactlyOnce, true, 0x35),
        (true, QoS::ExactlyOnce, true, 0x3D),
    ];
    for (dup, qos, retain, first) in cases {
        let packet_id = (qos != QoS::AtMostOnce).then(|| pid(1));
        let packet = Publish {
            dup,
            qos,
            retain,
            topic: s("t"),
            packet_id,
            ..Publish::default()
        };
        let mut bytes = vec![first, 0x03, 0x00, 0x01, 0x74];
        if packet_id.is_some() {
            bytes.extend_from_slice(&[0x00, 0x01]);
            bytes[1] += 2;
        }
        example(V3, &packet.into(), &bytes);
    }
}

/// MQTT 3.1.1, 3.8.2.1 Figure 3.21 (Packet Identifier 10) and 3.8.3.1 Table 3.5 /
/// Figure 3.23 "Payload byte format non normative example": "a/b" QoS 1, "c/d" QoS 2.
#[test]
fn v311_subscribe_example() {
    let packet = Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (s("a/b"), SubscriptionOptions::qos(QoS::AtLeastOnce)),
            (s("c/d"), SubscriptionOptions::qos(QoS::ExactlyOnce)),
        ],
    };
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x0E,                                   // SUBSCRIBE, Remaining Length 14
        0x00, 0x0A,                                   // Packet Identifier 10
        0x00, 0x03, 0x61, 0x2F, 0x62, 0x01,           // "a/b", Requested QoS 1
        0x00, 0x03, 0x63, 0x2F, 0x64, 0x02,           // "c/d", Requested QoS 2
    ];
    example(V3, &packet.into(), &bytes);
}

/// MQTT 5.0, 3.8.2 "SUBSCRIBE Variable Header non-normative example" (Packet
/// Identifier 10, Property Length 0) and 3.8.3 "Payload non-normative example": "a/b"
/// with options 1 (QoS 1), "c/d" with options 2 (QoS 2).
#[test]
fn v5_subscribe_example() {
    let packet = Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (s("a/b"), SubscriptionOptions::qos(QoS::AtLeastOnce)),
            (s("c/d"), SubscriptionOptions::qos(QoS::ExactlyOnce)),
        ],
    };
    #[rustfmt::skip]
    let bytes = [
        0x82, 0x0F,                                   // SUBSCRIBE, Remaining Length 15
        0x00, 0x0A,                                   // Packet Identifier 10
        0x00,                                         // Property Length 0
        0x00, 0x03, 0x61, 0x2F, 0x62, 0x01,           // "a/b", Subscription Options 1
        0x00, 0x03, 0x63, 0x2F, 0x64, 0x02,           // "c/d", Subscription Options 2
    ];
    example(V5, &packet.into(), &bytes);
}

/// MQTT 3.1.1, 3.9.3.1, Table 3.6 / Figure 3.27 "Payload byte format non normative
/// example": Success - Maximum QoS 0, Success - Maximum QoS 2, Failure (128).
#[test]
fn v311_suback_payload_example() {
    let packet = SubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_0,
            ReasonCode::GRANTED_QOS_2,
            ReasonCode(0x80),
        ],
    };
    #[rustfmt::skip]
    let bytes = [
        0x90, 0x05,                                   // SUBACK, Remaining Length 5
        0x00, 0x0A,                                   // Packet Identifier 10
        0x00, 0x02, 0x80,                             // return codes
    ];
    example(V3, &packet.into(), &bytes);
}

/// MQTT 3.1.1, 3.10.3.1, Table 3.7 / Figure 3.30 "Payload byte format non normative
/// example": "a/b", "c/d"; MQTT 5.0, 3.10.3.1 the same payload after a Property
/// Length of 0.
#[test]
fn unsubscribe_payload_example() {
    let packet: Packet = Unsubscribe {
        packet_id: pid(10),
        properties: UnsubscribeProperties::default(),
        filters: vec![s("a/b"), s("c/d")],
    }
    .into();
    #[rustfmt::skip]
    let v3 = [
        0xA2, 0x0C,                                   // UNSUBSCRIBE, Remaining Length 12
        0x00, 0x0A,                                   // Packet Identifier 10
        0x00, 0x03, 0x61, 0x2F, 0x62,                 // "a/b"
        0x00, 0x03, 0x63, 0x2F, 0x64,                 // "c/d"
    ];
    example(V3, &packet, &v3);
    #[rustfmt::skip]
    let v5 = [
        0xA2, 0x0D,
        0x00, 0x0A,
        0x00,                                         // Property Length 0
        0x00, 0x03, 0x61, 0x2F, 0x62,
        0x00, 0x03, 0x63, 0x2F, 0x64,
    ];
    example(V5, &packet, &v5);
}

/// The packets whose whole encoding the specifications give: PINGREQ (3.12.1),
/// PINGRESP (3.13.1), 3.1.1 DISCONNECT (3.14.1), 3.1.1 CONNACK (3.2.1, Remaining
/// Length 2), 3.1.1 PUBACK/PUBREC/PUBREL/PUBCOMP (3.4.1-3.7.1, Remaining Length 2,
/// PUBREL flags 0010) and 3.1.1 UNSUBACK (3.11.1, Remaining Length 2).
#[test]
fn fixed_size_packets() {
    for version in [V3, V5] {
        example(version, &Packet::PingReq, &[0xC0, 0x00]);
        example(version, &Packet::PingResp, &[0xD0, 0x00]);
    }
    example(V3, &Disconnect::default().into(), &[0xE0, 0x00]);
    example(V3, &ConnAck::default().into(), &[0x20, 0x02, 0x00, 0x00]);
    let session_present = ConnAck {
        session_present: true,
        ..ConnAck::default()
    };
    example(V3, &session_present.into(), &[0x20, 0x02, 0x01, 0x00]);
    // Return code 5: "Connection Refused, not authorized".
    let refused = ConnAck {
        reason_code: ReasonCode::NOT_AUTHORIZED,
        ..ConnAck::default()
    };
    example(V3, &refused.into(), &[0x20, 0x02, 0x00, 0x05]);
    let ack = PubAck::new(pid(10));
    example(V3, &Packet::PubAck(ack.clone()), &[0x40, 0x02, 0x00, 0x0A]);
    example(V3, &Packet::PubRec(ack.clone()), &[0x50, 0x02, 0x00, 0x0A]);
    example(V3, &Packet::PubRel(ack.clone()), &[0x62, 0x02, 0x00, 0x0A]);
    example(V3, &Packet::PubComp(ack), &[0x70, 0x02, 0x00, 0x0A]);
    let unsuback = UnsubAck {
        packet_id: pid(10),
        properties: AckProperties::default(),
        reason_codes: Vec::new(),
    };
    example(V3, &unsuback.into(), &[0xB0, 0x02, 0x00, 0x0A]);
}

/// MQTT 5.0 short forms: 3.4.2.1 "The Reason Code and Property Length can be omitted
/// if the Reason Code is 0x00 (Success) and there are no Properties. In this case the
/// PUBACK has a Remaining Length of 2" (likewise PUBREC, PUBREL, PUBCOMP); 3.14.2.1
/// DISCONNECT and 3.15.2.1 AUTH with Remaining Length 0 mean Success; a Remaining
/// Length of 1 (resp. 3) means no properties (3.4.2.2.1, 3.14.2.2.1). AUTH has no
/// such middle form, and its long form must name the Authentication Method
/// (3.15.2.2.2), so `F0 02 00 00` is refused (see codec_rejects.rs).
#[test]
fn v5_short_forms() {
    let ack = PubAck::new(pid(10));
    example(V5, &Packet::PubAck(ack.clone()), &[0x40, 0x02, 0x00, 0x0A]);
    example(V5, &Packet::PubRel(ack), &[0x62, 0x02, 0x00, 0x0A]);
    let refused = PubAck {
        reason_code: ReasonCode::NO_MATCHING_SUBSCRIBERS,
        ..PubAck::new(pid(10))
    };
    example(
        V5,
        &Packet::PubRec(refused),
        &[0x50, 0x03, 0x00, 0x0A, 0x10],
    );
    example(V5, &Disconnect::default().into(), &[0xE0, 0x00]);
    let will = Disconnect {
        reason_code: ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        ..Disconnect::default()
    };
    example(V5, &will.into(), &[0xE0, 0x01, 0x04]);
    example(V5, &mqtt_codec::Auth::default().into(), &[0xF0, 0x00]);

    // The long forms of the same packets decode to the same values.
    for (bytes, expected) in [
        (
            &[0x40, 0x04, 0x00, 0x0A, 0x00, 0x00][..],
            Packet::PubAck(PubAck::new(pid(10))),
        ),
        (
            &[0x40, 0x03, 0x00, 0x0A, 0x00][..],
            Packet::PubAck(PubAck::new(pid(10))),
        ),
        (&[0xE0, 0x02, 0x00, 0x00][..], Disconnect::default().into()),
        (&[0xE0, 0x01, 0x00][..], Disconnect::default().into()),
    ] {
        let mut buf = BytesMut::from(bytes);
        assert_eq!(
            Packet::decode(&mut buf, V5, MAX_PACKET_SIZE),
            Ok(Some(expected))
        );
        assert!(buf.is_empty());
    }
}

/// MQTT 3.1.1 Table 2.4 / MQTT 5.0 Table 1-1 "Size of Variable Byte Integer": the
/// boundaries of each length, as the Remaining Length of real packets.
#[test]
fn variable_byte_integer_boundaries_as_remaining_length() {
    let table: [(u32, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (value, encoding) in table {
        assert_eq!(varint::len(value), encoding.len(), "{value}");
        // The fixed header alone.
        let mut header = vec![0x30];
        header.extend_from_slice(encoding);
        for version in [V3, V5] {
            let parsed = FixedHeader::parse(&header, version, MAX_PACKET_SIZE)
                .unwrap()
                .unwrap();
            assert_eq!(parsed.packet_type, PacketType::Publish);
            assert_eq!(parsed.remaining_length, value);
            assert_eq!(usize::from(parsed.header_length), 1 + encoding.len());
            // One byte short of the Remaining Length: incomplete, not an error.
            let short = FixedHeader::parse(&header[..header.len() - 1], version, MAX_PACKET_SIZE);
            assert_eq!(short, Ok(None));
        }
    }
    assert_eq!(varint::MAX, 268_435_455);
    // The largest packet: a 5-byte fixed header and 268,435,455 bytes.
    let largest = FixedHeader::parse(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F], V5, MAX_PACKET_SIZE)
        .unwrap()
        .unwrap();
    assert_eq!(largest.packet_length(), MAX_PACKET_SIZE as usize);

    // Whole packets: PINGREQ has Remaining Length 0; a PUBLISH with topic "a" (3 bytes)
    // and a payload makes up each other boundary up to 2,097,152.
    example(V3, &Packet::PingReq, &[0xC0, 0x00]);
    for (value, encoding) in &table[1..7] {
        let value = *value as usize;
        let payload = Bytes::from(vec![0xA5; value - 3]);
        let packet: Packet = Publish {
            topic: s("a"),
            payload: payload.clone(),
            ..Publish::default()
        }
        .into();
        let mut bytes = vec![0x30];
        bytes.extend_from_slice(encoding);
        bytes.extend_from_slice(&[0x00, 0x01, 0x61]);
        bytes.extend_from_slice(&payload);
        example(V3, &packet, &bytes);
    }
}

/// MQTT 3.1.1 1.5.3.1 Figure 1.3 / MQTT 5.0 1.5.4 "UTF-8 Encoded String non-normative
/// example": "A\u{2A6D4}" (LATIN CAPITAL LETTER A, then a CJK ideograph
/// outside the Basic Multilingual Plane) is 00 05 41 F0 AA 9B 94.
#[test]
fn utf8_string_example_inside_packets() {
    const STRING: [u8; 7] = [0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let text = "A\u{2A6D4}";

    // As a PUBLISH topic, both versions.
    let publish: Packet = Publish {
        topic: s(text),
        ..Publish::default()
    }
    .into();
    let mut v3 = vec![0x30, 0x07];
    v3.extend_from_slice(&STRING);
    example(V3, &publish, &v3);
    let mut v5 = vec![0x30, 0x08];
    v5.extend_from_slice(&STRING);
    v5.push(0x00); // Property Length 0
    example(V5, &publish, &v5);

    // As a CONNECT client id.
    let connect: Packet = Connect {
        protocol_version: V3,
        client_id: s(text),
        clean_start: true,
        keep_alive: 10,
        ..Connect::default()
    }
    .into();
    #[rustfmt::skip]
    let mut bytes = vec![
        0x10, 0x11,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x0A,
    ];
    bytes.extend_from_slice(&STRING);
    example(V3, &connect, &bytes);

    // As a User Property name and value, and as a topic filter.
    let subscribe: Packet = Subscribe {
        packet_id: pid(10),
        properties: SubscribeProperties {
            subscription_identifier: None,
            user_properties: vec![UserProperty {
                name: s(text),
                value: s(text),
            }],
        },
        filters: vec![(s(text), SubscriptionOptions::default())],
    }
    .into();
    let mut bytes = vec![0x82, 0x1A, 0x00, 0x0A, 0x0F, 0x26];
    bytes.extend_from_slice(&STRING);
    bytes.extend_from_slice(&STRING);
    bytes.extend_from_slice(&STRING);
    bytes.push(0x00);
    example(V5, &subscribe, &bytes);
}

/// MQTT 5.0 2.2.2.2 and 3.3.2.3: properties are an identifier (a Variable Byte Integer)
/// followed by the value in its data type; the values here are the encodings of 1.5
/// (Two and Four Byte Integers big-endian, strings and binary data length-prefixed).
#[test]
fn v5_publish_property_encodings() {
    let packet: Packet = Publish {
        topic: s("a"),
        properties: Some(Box::new(PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(0x0102_0304),
            topic_alias: Some(0x0A0B),
            correlation_data: Some(Bytes::from_static(&[0xFF])),
            subscription_identifiers: vec![128],
            ..PublishProperties::default()
        })),
        ..Publish::default()
    }
    .into();
    #[rustfmt::skip]
    let bytes = [
        0x30, 0x15,
        0x00, 0x01, 0x61,                             // Topic Name "a"
        0x11,                                         // Property Length 17
        0x01, 0x01,                                   // Payload Format Indicator 1
        0x02, 0x01, 0x02, 0x03, 0x04,                 // Message Expiry Interval
        0x23, 0x0A, 0x0B,                             // Topic Alias
        0x09, 0x00, 0x01, 0xFF,                       // Correlation Data
        0x0B, 0x80, 0x01,                             // Subscription Identifier 128
    ];
    example(V5, &packet, &bytes);
}
