//! Malformed packets, one `rejects_*` test (at least) per rule of the specifications.
//!
//! Inputs are hand-written byte arrays: fixed header, then the body with a comment per
//! field. Each test names the normative statement it checks and asserts the exact
//! [`DecodeError`] and the reason code a receiver sends for it (0x81 Malformed Packet,
//! 0x82 Protocol Error, 0x84 Unsupported Protocol Version, 0x95 Packet too large).
//! Where a rule has a legal neighbour (the same bytes with the offending bit cleared),
//! the neighbour is decoded too, so a test cannot pass because of an unrelated error.
//!
//! The encoder side (refusing to write what the decoder rejects or the version cannot
//! express) is in `codec_encode_refusals.rs`.

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
    DecodeError, Decoder, Packet, PacketType, ProtocolVersion, QoS, ReasonCode,
    SubscriptionOptions, UserProperty, MAX_PACKET_SIZE,
};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const BOTH: [ProtocolVersion; 2] = [V3, V5];

const MALFORMED: u8 = 0x81;
const PROTOCOL_ERROR: u8 = 0x82;
/// [MQTT-3.1.2-1]: a server may answer a wrong protocol name with 0x84.
const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;

/// Checks that `bytes` is exactly one packet as its fixed header frames it (a guard
/// against typos in the hand-written remaining lengths), when the header is valid.
fn check_framing(bytes: &[u8]) {
    let mut len = 0usize;
    for (i, &b) in bytes.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i == 0 || b != 0 {
                assert_eq!(
                    bytes.len(),
                    2 + i + len,
                    "test bug: remaining length does not match {bytes:02X?}"
                );
            }
            return;
        }
    }
}

/// `bytes` (one whole packet) is refused with `expected`, whose reason code is
/// `reason`, by `Packet::decode`, `Packet::decode_bytes` and `Decoder`.
#[track_caller]
fn rejects(version: ProtocolVersion, bytes: &[u8], expected: DecodeError, reason: u8) {
    check_framing(bytes);
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        Packet::decode(&mut buf, version, MAX_PACKET_SIZE),
        Err(expected),
        "Packet::decode {version:?} {bytes:02X?}"
    );
    let mut frozen = Bytes::copy_from_slice(bytes);
    assert_eq!(
        Packet::decode_bytes(&mut frozen, version, MAX_PACKET_SIZE),
        Err(expected),
        "Packet::decode_bytes {version:?} {bytes:02X?}"
    );
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        Decoder::new(version).decode(&mut buf),
        Err(expected),
        "Decoder {version:?} {bytes:02X?}"
    );
    assert_eq!(
        expected.reason_code(),
        ReasonCode(reason),
        "reason code of {expected:?}"
    );
    // Every error names its rule, and says it when displayed.
    assert!(expected.normative().starts_with("MQTT-"), "{expected:?}");
    assert!(expected.to_string().contains(expected.normative()));
}

/// `bytes` is one valid packet, decoded whole.
#[track_caller]
fn accepts(version: ProtocolVersion, bytes: &[u8]) -> Packet {
    check_framing(bytes);
    let mut buf = BytesMut::from(bytes);
    let packet = Packet::decode(&mut buf, version, MAX_PACKET_SIZE)
        .unwrap_or_else(|e| panic!("{version:?} {bytes:02X?}: {e}"))
        .unwrap_or_else(|| panic!("{version:?} {bytes:02X?}: incomplete"));
    assert!(buf.is_empty(), "{bytes:02X?}: not all consumed");
    packet
}

/// Replaces the single `@@@` (40 40 40) slot of a hand-written template.
fn fill(template: &[u8], text: [u8; 3]) -> Vec<u8> {
    let at = template
        .windows(3)
        .position(|w| w == b"@@@")
        .expect("template has a slot");
    assert!(
        template[at + 1..].windows(3).all(|w| w != b"@@@"),
        "one slot only"
    );
    let mut out = template.to_vec();
    out[at..at + 3].copy_from_slice(&text);
    out
}

// ---------------------------------------------------------------------------------
// Rule 1: fixed header flags and packet types.
// ---------------------------------------------------------------------------------

/// [MQTT-2.1.3-1] (5.0 2.1.3, 3.1.1 2.2.2): the flag bits are reserved and must be
/// exactly those of table 2-2 — 0010 for PUBREL [MQTT-3.6.1-1], SUBSCRIBE
/// [MQTT-3.8.1-1] and UNSUBSCRIBE [MQTT-3.10.1-1], 0000 for every other type but
/// PUBLISH. Refused from the first byte alone.
#[test]
fn rejects_reserved_header_flags_for_every_packet_type() {
    let types = [
        (PacketType::Connect, 0b0000),
        (PacketType::ConnAck, 0b0000),
        (PacketType::PubAck, 0b0000),
        (PacketType::PubRec, 0b0000),
        (PacketType::PubRel, 0b0010),
        (PacketType::PubComp, 0b0000),
        (PacketType::Subscribe, 0b0010),
        (PacketType::SubAck, 0b0000),
        (PacketType::Unsubscribe, 0b0010),
        (PacketType::UnsubAck, 0b0000),
        (PacketType::PingReq, 0b0000),
        (PacketType::PingResp, 0b0000),
        (PacketType::Disconnect, 0b0000),
        (PacketType::Auth, 0b0000),
    ];
    for version in BOTH {
        for (packet_type, required) in types {
            if packet_type == PacketType::Auth && version == V3 {
                continue;
            }
            for flags in (0u8..16).filter(|&f| f != required) {
                let first = ((packet_type as u8) << 4) | flags;
                let expected = DecodeError::InvalidHeaderFlags { packet_type, flags };
                // A complete (empty-bodied) packet...
                rejects(version, &[first, 0x00], expected, MALFORMED);
                // ...and the first byte alone: no need to wait for more.
                let mut buf = BytesMut::from(&[first][..]);
                assert_eq!(
                    Packet::decode(&mut buf, version, MAX_PACKET_SIZE),
                    Err(expected)
                );
            }
        }
    }
}

/// The same rule, written out for the three types whose flags are not 0000.
#[test]
fn rejects_pubrel_subscribe_unsubscribe_with_flags_0000() {
    // [MQTT-3.6.1-1] PUBREL: 60 = type 6, flags 0000 (must be 0010).
    let pubrel = [0x60, 0x02, 0x00, 0x01];
    // [MQTT-3.8.1-1] SUBSCRIBE: 80, then packet id 1, filter "a", options 0.
    let subscribe = [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00];
    // [MQTT-3.10.1-1] UNSUBSCRIBE: A0, then packet id 1, filter "a".
    let unsubscribe = [0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61];
    for (bytes, packet_type) in [
        (&pubrel[..], PacketType::PubRel),
        (&subscribe[..], PacketType::Subscribe),
        (&unsubscribe[..], PacketType::Unsubscribe),
    ] {
        let expected = DecodeError::InvalidHeaderFlags {
            packet_type,
            flags: 0,
        };
        rejects(V3, bytes, expected, MALFORMED);
        // The same packet with flags 0010 is valid.
        let mut fixed = bytes.to_vec();
        fixed[0] |= 0b0010;
        accepts(V3, &fixed);
    }
    // [MQTT-2.1.3-1] PUBACK with flag bit 0 set: 41.
    rejects(
        V5,
        &[0x41, 0x02, 0x00, 0x01],
        DecodeError::InvalidHeaderFlags {
            packet_type: PacketType::PubAck,
            flags: 1,
        },
        MALFORMED,
    );
}

/// 5.0 2.1.2 / 3.1.1 2.2.1: packet type 0 is reserved (forbidden).
#[test]
fn rejects_packet_type_0() {
    for version in BOTH {
        rejects(
            version,
            &[0x00, 0x00],
            DecodeError::InvalidPacketType(0),
            MALFORMED,
        );
        // From the first byte alone.
        let mut buf = BytesMut::from(&[0x00][..]);
        assert_eq!(
            Packet::decode(&mut buf, version, MAX_PACKET_SIZE),
            Err(DecodeError::InvalidPacketType(0))
        );
    }
}

/// 3.1.1 2.2.1: type 15 is reserved (forbidden); it is AUTH only in MQTT 5.
#[test]
fn rejects_packet_type_15_in_v311() {
    rejects(
        V3,
        &[0xF0, 0x00],
        DecodeError::InvalidPacketType(15),
        MALFORMED,
    );
    assert_eq!(accepts(V5, &[0xF0, 0x00]), Packet::Auth(Box::default()));
}

// ---------------------------------------------------------------------------------
// Rule 2: every length stays inside the packet; nothing is left over.
// ---------------------------------------------------------------------------------

/// 5.0 1.5.4 / 1.5.6 / 2.2.2: a string or binary length that runs past the end of
/// the packet is a Malformed Packet.
#[test]
fn rejects_strings_and_binary_running_past_the_packet() {
    #[rustfmt::skip]
    let cases: &[(ProtocolVersion, &[u8])] = &[
        // PUBLISH QoS 0, topic length 5 but only "a/b" follows.
        (V3, &[0x30, 0x05, 0x00, 0x05, 0x61, 0x2F, 0x62]),
        // CONNECT 5.0, client id length 9 but one byte follows.
        (V5, &[0x10, 0x0E,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, // "MQTT"
            0x05, 0x02, 0x00, 0x3C, 0x00,       // level 5, clean start, keep alive 60, no properties
            0x00, 0x09, 0x61]),                 // client id: length 9, "a"
        // CONNECT 3.1.1 with user name and password; password length 8, one byte.
        (V3, &[0x10, 0x13,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54,
            0x04, 0xC2, 0x00, 0x3C,             // level 4, user name + password + clean
            0x00, 0x01, 0x63,                   // client id "c"
            0x00, 0x01, 0x75,                   // user name "u"
            0x00, 0x08, 0x70]),                 // password: length 8, "p"
        // SUBSCRIBE 3.1.1, filter length 4, "a/b" and no options byte.
        (V3, &[0x82, 0x07, 0x00, 0x01, 0x00, 0x04, 0x61, 0x2F, 0x62]),
    ];
    for &(version, bytes) in cases {
        rejects(version, bytes, DecodeError::Truncated, MALFORMED);
    }
}

/// 5.0 2.2.2.1: the Property Length is the length of the properties; a property that
/// runs past it is malformed even when the packet has more bytes, and a Property
/// Length longer than what is left of the packet is malformed too.
#[test]
fn rejects_property_length_not_matching_its_contents() {
    #[rustfmt::skip]
    let cases: &[&[u8]] = &[
        // PUBACK: property length 5 but the packet ends.
        &[0x40, 0x04, 0x00, 0x01, 0x00, 0x05],
        // PUBACK: property length 5, only 4 bytes of properties (Reason String "a").
        &[0x40, 0x08, 0x00, 0x01, 0x00, 0x05, 0x1F, 0x00, 0x01, 0x61],
        // PUBACK: property length 5 ends inside a User Property: 26, name "k",
        // then one byte of the value's length; the rest lies outside the block.
        &[0x40, 0x0B, 0x00, 0x01, 0x00, 0x05,
            0x26, 0x00, 0x01, 0x6B, 0x00,
            0x01, 0x76],
        // PUBLISH: property length 4 ends inside Correlation Data (length 5).
        &[0x30, 0x0C, 0x00, 0x01, 0x61, 0x04,
            0x09, 0x00, 0x05, 0x78,
            0x78, 0x78, 0x78, 0x78],
        // CONNACK: property length 2 ends inside Receive Maximum (two bytes).
        &[0x20, 0x06, 0x00, 0x00, 0x02, 0x21, 0x00, 0x0A],
    ];
    for bytes in cases {
        rejects(V5, bytes, DecodeError::Truncated, MALFORMED);
    }
}

/// 5.0 2.1.4 / 3.1.1 2.2.3: the Remaining Length is the exact size of the variable
/// header and payload; a packet with bytes after its last field is malformed.
#[test]
fn rejects_trailing_bytes() {
    #[rustfmt::skip]
    let cases: &[(ProtocolVersion, &[u8])] = &[
        (V3, &[0xC0, 0x01, 0x00]),                         // PINGREQ with a body
        (V5, &[0xD0, 0x01, 0x00]),                         // PINGRESP with a body
        (V3, &[0x40, 0x03, 0x00, 0x01, 0x00]),             // PUBACK 3.1.1: id then 00
        (V3, &[0x50, 0x03, 0x00, 0x01, 0x00]),             // PUBREC
        (V3, &[0x62, 0x03, 0x00, 0x01, 0x00]),             // PUBREL
        (V3, &[0x70, 0x03, 0x00, 0x01, 0x00]),             // PUBCOMP
        (V3, &[0x20, 0x03, 0x00, 0x00, 0x00]),             // CONNACK 3.1.1: flags, code, 00
        (V3, &[0xE0, 0x01, 0x00]),                         // DISCONNECT 3.1.1 has no body
        (V3, &[0xB0, 0x03, 0x00, 0x01, 0x00]),             // UNSUBACK 3.1.1 has no payload
        (V3, &[0xB0, 0x03, 0x00, 0x01, 0x80]),             // ... whatever the byte
        (V5, &[0x20, 0x04, 0x00, 0x00, 0x00, 0x00]),       // CONNACK 5.0: flags, code, props, 00
        (V5, &[0x40, 0x05, 0x00, 0x01, 0x10, 0x00, 0xFF]), // PUBACK 5.0: id, code, props, FF
        (V5, &[0xE0, 0x03, 0x04, 0x00, 0xFF]),             // DISCONNECT 5.0: code, props, FF
        (V5, &[0xF0, 0x07, 0x18, 0x04, 0x15, 0x00, 0x01, 0x6D, 0xFF]), // AUTH: code, method, FF
        // CONNECT 3.1.1, client id "c1", then FF.
        (V3, &[0x10, 0x0F,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C,
            0x00, 0x02, 0x63, 0x31,
            0xFF]),
    ];
    for &(version, bytes) in cases {
        rejects(version, bytes, DecodeError::TrailingBytes, MALFORMED);
    }
}

// ---------------------------------------------------------------------------------
// Rule 3: UTF-8 Encoded Strings, everywhere they occur.
// ---------------------------------------------------------------------------------

/// Templates: one packet per place a UTF-8 Encoded String occurs, with the 3-byte
/// string under test at the `@@@` slot.
#[rustfmt::skip]
fn string_templates() -> Vec<(&'static str, ProtocolVersion, Vec<u8>)> {
    vec![
        ("PUBLISH topic 3.1.1", V3, vec![0x30, 0x07,
            0x00, 0x03, b'@', b'@', b'@',             // topic
            0x68, 0x69]),                             // payload "hi"
        ("PUBLISH topic 5.0", V5, vec![0x30, 0x06,
            0x00, 0x03, b'@', b'@', b'@',             // topic
            0x00]),                                   // no properties
        ("user property name", V5, vec![0x30, 0x0D,
            0x00, 0x01, 0x61,                         // topic "a"
            0x09,                                     // property length 9
            0x26, 0x00, 0x03, b'@', b'@', b'@',       // User Property name
            0x00, 0x01, 0x76]),                       // value "v"
        ("user property value", V5, vec![0x30, 0x0D,
            0x00, 0x01, 0x61,
            0x09,
            0x26, 0x00, 0x01, 0x6B,                   // name "k"
            0x00, 0x03, b'@', b'@', b'@']),           // value
        ("client id 3.1.1", V3, vec![0x10, 0x0F,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C,
            0x00, 0x03, b'@', b'@', b'@']),
        ("client id 5.0", V5, vec![0x10, 0x10,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C, 0x00,
            0x00, 0x03, b'@', b'@', b'@']),
        ("will topic 3.1.1", V3, vec![0x10, 0x14,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x06, 0x00, 0x3C, // will + clean
            0x00, 0x01, 0x63,                         // client id "c"
            0x00, 0x03, b'@', b'@', b'@',             // will topic
            0x00, 0x00]),                             // empty will payload
        ("will topic 5.0", V5, vec![0x10, 0x16,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3C, 0x00,
            0x00, 0x01, 0x63,
            0x00,                                     // no will properties
            0x00, 0x03, b'@', b'@', b'@',
            0x00, 0x00]),
        ("user name 3.1.1", V3, vec![0x10, 0x12,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x82, 0x00, 0x3C, // user name + clean
            0x00, 0x01, 0x63,
            0x00, 0x03, b'@', b'@', b'@']),
        ("user name 5.0", V5, vec![0x10, 0x13,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x82, 0x00, 0x3C, 0x00,
            0x00, 0x01, 0x63,
            0x00, 0x03, b'@', b'@', b'@']),
        ("content type", V5, vec![0x30, 0x0A,
            0x00, 0x01, 0x61,
            0x06, 0x03, 0x00, 0x03, b'@', b'@', b'@']), // Content Type
        ("response topic", V5, vec![0x30, 0x0A,
            0x00, 0x01, 0x61,
            0x06, 0x08, 0x00, 0x03, b'@', b'@', b'@']), // Response Topic
        ("will content type", V5, vec![0x10, 0x1A,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3C, 0x00,
            0x00, 0x01, 0x63,
            0x06, 0x03, 0x00, 0x03, b'@', b'@', b'@', // will properties: Content Type
            0x00, 0x01, 0x74,                         // will topic "t"
            0x00, 0x00]),
        ("reason string", V5, vec![0x40, 0x0A,
            0x00, 0x01, 0x00,                         // PUBACK id 1, Success
            0x06, 0x1F, 0x00, 0x03, b'@', b'@', b'@']), // Reason String
        ("authentication method", V5, vec![0xF0, 0x08,
            0x18,                                     // Continue authentication
            0x06, 0x15, 0x00, 0x03, b'@', b'@', b'@']), // Authentication Method
        ("assigned client identifier", V5, vec![0x20, 0x09,
            0x00, 0x00,
            0x06, 0x12, 0x00, 0x03, b'@', b'@', b'@']),
        ("response information", V5, vec![0x20, 0x09,
            0x00, 0x00,
            0x06, 0x1A, 0x00, 0x03, b'@', b'@', b'@']),
        ("server reference", V5, vec![0xE0, 0x08,
            0x9C,                                     // Use another server
            0x06, 0x1C, 0x00, 0x03, b'@', b'@', b'@']),
        ("SUBSCRIBE filter 3.1.1", V3, vec![0x82, 0x08,
            0x00, 0x01,
            0x00, 0x03, b'@', b'@', b'@',
            0x01]),                                   // QoS 1
        ("SUBSCRIBE filter 5.0", V5, vec![0x82, 0x09,
            0x00, 0x01, 0x00,
            0x00, 0x03, b'@', b'@', b'@',
            0x01]),
        ("UNSUBSCRIBE filter 3.1.1", V3, vec![0xA2, 0x07,
            0x00, 0x01,
            0x00, 0x03, b'@', b'@', b'@']),
        ("UNSUBSCRIBE filter 5.0", V5, vec![0xA2, 0x08,
            0x00, 0x01, 0x00,
            0x00, 0x03, b'@', b'@', b'@']),
    ]
}

/// [MQTT-1.5.4-1]: a UTF-8 Encoded String must be well-formed UTF-8 and must not hold
/// the surrogates U+D800..U+DFFF; [MQTT-1.5.4-2]: it must not hold U+0000. Both are
/// Malformed Packets, in every string of every packet.
#[test]
fn rejects_ill_formed_utf8_surrogates_and_null_in_every_string() {
    let bad: [([u8; 3], DecodeError); 6] = [
        ([0xED, 0xA0, 0x80], DecodeError::InvalidUtf8), // U+D800, a surrogate
        ([0xED, 0xBF, 0xBF], DecodeError::InvalidUtf8), // U+DFFF
        ([0xC3, 0x28, 0x61], DecodeError::InvalidUtf8), // bad continuation byte
        ([0x61, 0xFF, 0x62], DecodeError::InvalidUtf8), // FF never occurs in UTF-8
        ([0xC0, 0x80, 0x61], DecodeError::InvalidUtf8), // overlong U+0000
        ([0x61, 0x00, 0x62], DecodeError::NullCharacter), // U+0000
    ];
    for (place, version, template) in string_templates() {
        // The template itself is valid, with "@@@" and with a non-ASCII string.
        accepts(version, &template);
        accepts(version, &fill(&template, [0xC3, 0xA9, 0x40])); // "é@"
        for (text, expected) in bad {
            let bytes = fill(&template, text);
            let mut buf = BytesMut::from(&bytes[..]);
            assert_eq!(
                Packet::decode(&mut buf, version, MAX_PACKET_SIZE),
                Err(expected),
                "{place}: {text:02X?}"
            );
            rejects(version, &bytes, expected, MALFORMED);
        }
    }
}

// ---------------------------------------------------------------------------------
// Rule 4: PUBLISH topic names.
// ---------------------------------------------------------------------------------

/// [MQTT-3.3.2-2]: the Topic Name of a PUBLISH must not contain wildcards; neither
/// may a Will Topic or a Response Topic (they are topic names too).
#[test]
fn rejects_wildcards_in_topic_names() {
    #[rustfmt::skip]
    let cases: &[(ProtocolVersion, &[u8])] = &[
        (V3, &[0x30, 0x05, 0x00, 0x03, 0x61, 0x2F, 0x2B]),                   // "a/+"
        (V3, &[0x30, 0x05, 0x00, 0x03, 0x61, 0x2F, 0x23]),                   // "a/#"
        (V5, &[0x32, 0x08, 0x00, 0x03, 0x2B, 0x2F, 0x62, 0x00, 0x01, 0x00]), // "+/b", QoS 1, id 1
        (V5, &[0x30, 0x04, 0x00, 0x01, 0x23, 0x00]),                         // "#"
        (V5, &[0x30, 0x05, 0x00, 0x02, 0x61, 0x2B, 0x00]),                   // "a+" too
        // Response Topic "a/#".
        (V5, &[0x30, 0x0A, 0x00, 0x01, 0x61, 0x06, 0x08, 0x00, 0x03, 0x61, 0x2F, 0x23]),
        // CONNECT 3.1.1 with Will Topic "a/#".
        (V3, &[0x10, 0x14,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x06, 0x00, 0x3C,
            0x00, 0x01, 0x63,
            0x00, 0x03, 0x61, 0x2F, 0x23,
            0x00, 0x00]),
    ];
    for &(version, bytes) in cases {
        rejects(version, bytes, DecodeError::WildcardInTopicName, MALFORMED);
    }
}

/// [MQTT-4.7.3-1]: topic names are at least one character long. MQTT 5 allows an
/// empty PUBLISH topic only with a Topic Alias ([MQTT-3.3.2-1], 3.3.2.3.4: "It is a
/// Protocol Error if the Topic Name is zero length and there is no Topic Alias").
#[test]
fn rejects_empty_topic_names() {
    rejects(
        V3,
        &[0x30, 0x02, 0x00, 0x00],
        DecodeError::EmptyTopicName,
        PROTOCOL_ERROR,
    );
    // QoS 1, id 1.
    rejects(
        V3,
        &[0x32, 0x04, 0x00, 0x00, 0x00, 0x01],
        DecodeError::EmptyTopicName,
        PROTOCOL_ERROR,
    );
    // 5.0 without properties.
    rejects(
        V5,
        &[0x30, 0x03, 0x00, 0x00, 0x00],
        DecodeError::EmptyTopicName,
        PROTOCOL_ERROR,
    );
    // 5.0 with properties, but no Topic Alias (Message Expiry Interval 10).
    rejects(
        V5,
        &[0x30, 0x08, 0x00, 0x00, 0x05, 0x02, 0x00, 0x00, 0x00, 0x0A],
        DecodeError::EmptyTopicName,
        PROTOCOL_ERROR,
    );
    // 5.0, empty topic with Topic Alias 1: valid.
    let Packet::Publish(p) = accepts(V5, &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01]) else {
        panic!("not a PUBLISH");
    };
    assert!(p.topic.is_empty());
    assert_eq!(p.topic_alias(), Some(1));
    // An empty Will Topic is no topic name either.
    #[rustfmt::skip]
    let will = [0x10, 0x11,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x06, 0x00, 0x3C,
        0x00, 0x01, 0x63,
        0x00, 0x00,                                   // Will Topic ""
        0x00, 0x00]; // Will Payload
    rejects(V3, &will, DecodeError::EmptyTopicName, PROTOCOL_ERROR);
}

// ---------------------------------------------------------------------------------
// Rule 5: topic filters, SUBSCRIBE/UNSUBSCRIBE payloads, shared subscriptions.
// ---------------------------------------------------------------------------------

/// SUBSCRIBE with one filter: header, packet id 1, (5.0: no properties), filter,
/// options.
fn subscribe_one(version: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x01];
    if version == V5 {
        body.push(0x00);
    }
    body.extend_from_slice(&u16::try_from(filter.len()).unwrap().to_be_bytes());
    body.extend_from_slice(filter);
    body.push(options);
    let mut out = vec![0x82, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(&body);
    out
}

/// UNSUBSCRIBE with one filter.
fn unsubscribe_one(version: ProtocolVersion, filter: &[u8]) -> Vec<u8> {
    let mut out = subscribe_one(version, filter, 0);
    out.pop();
    out[0] = 0xA2;
    out[1] -= 1;
    out
}

/// [MQTT-4.7.1-1] `#` must be the last character and alone in its level;
/// [MQTT-4.7.1-2] `+` must occupy an entire level; [MQTT-4.7.3-1] a filter is at least
/// one character long. SUBSCRIBE and UNSUBSCRIBE, both versions.
#[test]
fn rejects_malformed_topic_filters() {
    // The literal form of the first case: SUBSCRIBE 3.1.1 "a/#/b" QoS 0.
    rejects(
        V3,
        &[
            0x82, 0x0A, 0x00, 0x01, 0x00, 0x05, 0x61, 0x2F, 0x23, 0x2F, 0x62, 0x00,
        ],
        DecodeError::InvalidTopicFilter,
        MALFORMED,
    );
    let bad: [&[u8]; 10] = [
        b"a/#/b",
        b"a#",
        b"#/",
        b"##",
        b"+a",
        b"a/b+",
        b"a/+b/c",
        b"sport/tennis#",
        b"",
        b"#/#",
    ];
    for version in BOTH {
        for filter in bad {
            rejects(
                version,
                &subscribe_one(version, filter, 0),
                DecodeError::InvalidTopicFilter,
                MALFORMED,
            );
            rejects(
                version,
                &unsubscribe_one(version, filter),
                DecodeError::InvalidTopicFilter,
                MALFORMED,
            );
        }
        for good in [&b"#"[..], b"+", b"a/+/#", b"/", b"+/+", b"a//b"] {
            accepts(version, &subscribe_one(version, good, 0));
            accepts(version, &unsubscribe_one(version, good));
        }
    }
}

/// [MQTT-3.8.3-2] (5.0; [MQTT-3.8.3-3] in 3.1.1) SUBSCRIBE and [MQTT-3.10.3-2]
/// UNSUBSCRIBE carry at least one topic filter; none is a Protocol Error.
#[test]
fn rejects_subscribe_and_unsubscribe_without_filters() {
    let e = DecodeError::NoTopicFilters;
    rejects(V3, &[0x82, 0x02, 0x00, 0x01], e, PROTOCOL_ERROR); // id 1, nothing
    rejects(V5, &[0x82, 0x03, 0x00, 0x01, 0x00], e, PROTOCOL_ERROR); // id 1, no properties
    rejects(V3, &[0xA2, 0x02, 0x00, 0x01], e, PROTOCOL_ERROR);
    rejects(V5, &[0xA2, 0x03, 0x00, 0x01, 0x00], e, PROTOCOL_ERROR);
    // Properties but no filter: Subscription Identifier 1.
    rejects(
        V5,
        &[0x82, 0x05, 0x00, 0x01, 0x02, 0x0B, 0x01],
        e,
        PROTOCOL_ERROR,
    );
}

/// [MQTT-3.9.3-1] / [MQTT-3.11.3-1] (5.0): a SUBACK (either version) and an MQTT 5
/// UNSUBACK carry one reason code per filter of the request, which has at least one;
/// none is a Malformed Packet.
#[test]
fn rejects_suback_and_unsuback_without_reason_codes() {
    let e = DecodeError::NoReasonCodes;
    rejects(V3, &[0x90, 0x02, 0x00, 0x01], e, MALFORMED); // id 1, nothing
    rejects(V5, &[0x90, 0x03, 0x00, 0x01, 0x00], e, MALFORMED); // id 1, no properties
    rejects(V5, &[0xB0, 0x03, 0x00, 0x01, 0x00], e, MALFORMED);
    // Reason String "r", then no code.
    rejects(
        V5,
        &[0x90, 0x07, 0x00, 0x01, 0x04, 0x1F, 0x00, 0x01, 0x72],
        e,
        MALFORMED,
    );
    // A 3.1.1 UNSUBACK has no payload at all.
    accepts(V3, &[0xB0, 0x02, 0x00, 0x01]);
}

/// [MQTT-4.8.2-1] a Share Name is at least one character long; [MQTT-4.8.2-2] it holds
/// no `/`, `+` or `#` and is followed by `/` and a topic filter (5.0 4.8.2).
#[test]
fn rejects_invalid_shared_subscriptions() {
    let bad: [&[u8]; 7] = [
        b"$share/",
        b"$share//a",
        b"$share/g",
        b"$share/g/",
        b"$share/g+/a",
        b"$share/#/a",
        b"$share/g/a#",
    ];
    for filter in bad {
        rejects(
            V5,
            &subscribe_one(V5, filter, 1),
            DecodeError::InvalidTopicFilter,
            MALFORMED,
        );
        rejects(
            V5,
            &unsubscribe_one(V5, filter),
            DecodeError::InvalidTopicFilter,
            MALFORMED,
        );
    }
    accepts(V5, &subscribe_one(V5, b"$share/g/a/#", 1));
    // In 3.1.1 "$share" has no meaning: "$share/g" is an ordinary filter.
    accepts(V3, &subscribe_one(V3, b"$share/g", 1));
}

/// [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
#[test]
fn rejects_no_local_on_a_shared_subscription() {
    #[rustfmt::skip]
    let bytes = [0x82, 0x10,
        0x00, 0x01,                                   // packet id 1
        0x00,                                         // no properties
        0x00, 0x0A, 0x24, 0x73, 0x68, 0x61, 0x72, 0x65, 0x2F, 0x67, 0x2F, 0x61, // "$share/g/a"
        0x05]; // QoS 1 + No Local
    rejects(
        V5,
        &bytes,
        DecodeError::NoLocalOnSharedSubscription,
        PROTOCOL_ERROR,
    );
    // Without No Local it is valid, and No Local on an ordinary filter is too.
    let mut without = bytes;
    without[17] = 0x01;
    accepts(V5, &without);
    accepts(V5, &subscribe_one(V5, b"a/b", 0x05));
}

// ---------------------------------------------------------------------------------
// Rule 6: reserved bits.
// ---------------------------------------------------------------------------------

/// 3.1.1 [MQTT-3.8.3-4]: bits 7-2 of the Requested QoS byte are reserved;
/// 5.0 [MQTT-3.8.3-5]: bits 7-6 of the Subscription Options are reserved.
/// Malformed Packet.
#[test]
fn rejects_reserved_subscription_option_bits() {
    let e = DecodeError::SubscriptionOptionsReservedBits;
    for bit in 2..8 {
        // 82 08 | id 1 | "a/b" | options.
        let bytes = [
            0x82,
            0x08,
            0x00,
            0x01,
            0x00,
            0x03,
            0x61,
            0x2F,
            0x62,
            1 << bit,
        ];
        rejects(V3, &bytes, e, MALFORMED);
    }
    for options in [0x40, 0x80, 0xC0, 0x41] {
        // 82 09 | id 1 | no properties | "a/b" | options.
        let bytes = [
            0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 0x61, 0x2F, 0x62, options,
        ];
        rejects(V5, &bytes, e, MALFORMED);
    }
    // Bits 5-2 are Retain Handling, Retain As Published and No Local in 5.0.
    let bytes = [
        0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x2E,
    ];
    let Packet::Subscribe(sub) = accepts(V5, &bytes) else {
        panic!("not a SUBSCRIBE");
    };
    assert_eq!(
        sub.filters[0].1,
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: mqtt_codec::RetainHandling::DoNotSend,
        }
    );
}

/// 5.0 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
#[test]
fn rejects_retain_handling_3() {
    // 82 09 | id 1 | no properties | "a/b" | options 0011 0000.
    let bytes = [
        0x82, 0x09, 0x00, 0x01, 0x00, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x30,
    ];
    rejects(V5, &bytes, DecodeError::RetainHandlingThree, PROTOCOL_ERROR);
}

/// [MQTT-3.1.2-3]: the reserved flag (bit 0) of the CONNECT flags must be 0.
#[test]
fn rejects_connect_reserved_flag() {
    #[rustfmt::skip]
    let v3 = [0x10, 0x0C,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04,
        0x03,                                         // clean session + reserved bit
        0x00, 0x3C,
        0x00, 0x00]; // empty client id
    rejects(V3, &v3, DecodeError::ConnectReservedFlag, MALFORMED);
    #[rustfmt::skip]
    let v5 = [0x10, 0x0D,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05,
        0x03,
        0x00, 0x3C, 0x00,
        0x00, 0x00];
    rejects(V5, &v5, DecodeError::ConnectReservedFlag, MALFORMED);
    let mut fixed = v5;
    fixed[9] = 0x02;
    accepts(V5, &fixed);
}

/// [MQTT-3.2.2-1]: bits 7-1 of the Connect Acknowledge Flags are reserved, 0.
#[test]
fn rejects_connack_reserved_flags() {
    for bit in 1..8 {
        let flags = 1u8 << bit;
        rejects(
            V3,
            &[0x20, 0x02, flags, 0x00],
            DecodeError::ConnAckReservedFlags,
            MALFORMED,
        );
        rejects(
            V5,
            &[0x20, 0x03, flags, 0x00, 0x00],
            DecodeError::ConnAckReservedFlags,
            MALFORMED,
        );
    }
}

/// [MQTT-3.1.2-11] Will QoS must be 0 and [MQTT-3.1.2-13] Will Retain must be 0 when
/// the Will Flag is 0.
#[test]
fn rejects_will_qos_or_retain_without_will_flag() {
    for version in BOTH {
        for flags in [0x0A, 0x12, 0x22, 0x2A] {
            // flags: clean start + Will QoS 1 / Will QoS 2 / Will Retain / both.
            let mut bytes = vec![0x10, 0x0C, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54];
            bytes.extend_from_slice(&[version.level(), flags, 0x00, 0x3C]);
            if version == V5 {
                bytes.push(0x00); // no properties
                bytes[1] += 1;
            }
            bytes.extend_from_slice(&[0x00, 0x00]); // empty client id
            rejects(
                version,
                &bytes,
                DecodeError::WillFlagsWithoutWill,
                MALFORMED,
            );
        }
    }
}

/// 3.1.1 [MQTT-3.1.2-22]: a password without a user name is malformed. MQTT 5
/// (3.1.2.9) allows it.
#[test]
fn rejects_v311_password_without_username_but_v5_accepts_it() {
    #[rustfmt::skip]
    let v3 = [0x10, 0x0E,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04,
        0x42,                                         // password + clean session
        0x00, 0x3C,
        0x00, 0x00,                                   // client id ""
        0x00, 0x00]; // password (empty)
    rejects(V3, &v3, DecodeError::PasswordWithoutUsername, MALFORMED);
    #[rustfmt::skip]
    let v5 = [0x10, 0x11,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05,
        0x42,
        0x00, 0x3C, 0x00,
        0x00, 0x00,
        0x00, 0x02, 0x70, 0x77]; // password "pw"
    let Packet::Connect(c) = accepts(V5, &v5) else {
        panic!("not a CONNECT");
    };
    assert_eq!(c.username, None);
    assert_eq!(c.password.unwrap().expose().as_ref(), b"pw");
}

// ---------------------------------------------------------------------------------
// Rule 7: Variable Byte Integers.
// ---------------------------------------------------------------------------------

/// [MQTT-1.5.5-1]: a Variable Byte Integer takes at most four bytes and is encoded
/// in the minimum number of bytes — for the Remaining Length, the Property Length,
/// Subscription Identifiers and property identifiers alike. Malformed Packet.
#[test]
fn rejects_variable_byte_integers_too_long_or_not_minimal() {
    // Remaining Length with a fifth byte: refused once the fifth byte is seen.
    for version in BOTH {
        let e = DecodeError::VarIntTooLong;
        for bytes in [
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F][..],
            &[0x30, 0x80, 0x80, 0x80, 0x80][..],
        ] {
            let mut buf = BytesMut::from(bytes);
            assert_eq!(Packet::decode(&mut buf, version, MAX_PACKET_SIZE), Err(e));
            let mut buf = BytesMut::from(bytes);
            assert_eq!(Decoder::new(version).decode(&mut buf), Err(e));
        }
        assert_eq!(e.reason_code(), ReasonCode(MALFORMED));
        // Four continuation bytes are not enough to tell yet.
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80][..]);
        assert_eq!(Packet::decode(&mut buf, version, MAX_PACKET_SIZE), Ok(None));
    }

    let e = DecodeError::VarIntNotMinimal;
    // PINGREQ with Remaining Length 0 as 80 00.
    rejects(V3, &[0xC0, 0x80, 0x00], e, MALFORMED);
    // PUBLISH "a/b" with Remaining Length 5 as 85 00.
    rejects(
        V3,
        &[0x30, 0x85, 0x00, 0x00, 0x03, 0x61, 0x2F, 0x62],
        e,
        MALFORMED,
    );
    // Remaining Length 127 as FF 80 00.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x80, 0x00][..]);
    assert_eq!(Packet::decode(&mut buf, V5, MAX_PACKET_SIZE), Err(e));
    // PUBACK 5.0, Property Length 0 as 80 00.
    rejects(
        V5,
        &[0x40, 0x05, 0x00, 0x01, 0x00, 0x80, 0x00],
        e,
        MALFORMED,
    );
    // PUBLISH 5.0, Subscription Identifier 1 as 81 00.
    rejects(
        V5,
        &[0x30, 0x07, 0x00, 0x01, 0x61, 0x03, 0x0B, 0x81, 0x00],
        e,
        MALFORMED,
    );
    // PUBACK 5.0, Reason String identifier 0x1F as 9F 00.
    rejects(
        V5,
        &[
            0x40, 0x09, 0x00, 0x01, 0x00, 0x05, 0x9F, 0x00, 0x00, 0x01, 0x61,
        ],
        e,
        MALFORMED,
    );

    let e = DecodeError::VarIntTooLong;
    // PUBACK 5.0, five-byte Property Length.
    rejects(
        V5,
        &[0x40, 0x08, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        e,
        MALFORMED,
    );
    #[rustfmt::skip]
    let subscribe = [0x82, 0x0D,
        0x00, 0x01,
        0x06, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F,     // five-byte Subscription Identifier
        0x00, 0x01, 0x61, 0x00];
    rejects(V5, &subscribe, e, MALFORMED);
}

// ---------------------------------------------------------------------------------
// Rule 8: which properties a packet may carry, and how often.
// ---------------------------------------------------------------------------------

/// 5.0 2.2.2.2: a property not defined for the packet type is a Malformed Packet.
#[test]
fn rejects_properties_not_allowed_in_the_packet() {
    #[rustfmt::skip]
    let cases: &[(&[u8], PacketType, u8)] = &[
        // Topic Alias in CONNECT.
        (&[0x10, 0x10,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x03, 0x23, 0x00, 0x01,
            0x00, 0x00], PacketType::Connect, 0x23),
        // Server Keep Alive in CONNECT.
        (&[0x10, 0x10,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x03, 0x13, 0x00, 0x0A,
            0x00, 0x00], PacketType::Connect, 0x13),
        // Session Expiry Interval among the Will Properties.
        (&[0x10, 0x19,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3C, 0x00,
            0x00, 0x01, 0x63,
            0x05, 0x11, 0x00, 0x00, 0x00, 0x0A,
            0x00, 0x01, 0x74,
            0x00, 0x00], PacketType::Connect, 0x11),
        // Will Delay Interval in PUBLISH.
        (&[0x30, 0x09, 0x00, 0x01, 0x61, 0x05, 0x18, 0x00, 0x00, 0x00, 0x0A],
            PacketType::Publish, 0x18),
        // Reason String in PUBLISH.
        (&[0x30, 0x08, 0x00, 0x01, 0x61, 0x04, 0x1F, 0x00, 0x01, 0x78],
            PacketType::Publish, 0x1F),
        // Maximum QoS in CONNECT... as a PUBLISH property.
        (&[0x30, 0x06, 0x00, 0x01, 0x61, 0x02, 0x24, 0x01], PacketType::Publish, 0x24),
        // Subscription Identifier in UNSUBSCRIBE.
        (&[0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00, 0x01, 0x61],
            PacketType::Unsubscribe, 0x0B),
        // Subscription Identifier in PUBACK.
        (&[0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x0B, 0x01], PacketType::PubAck, 0x0B),
        // Payload Format Indicator in SUBSCRIBE.
        (&[0x82, 0x09, 0x00, 0x01, 0x02, 0x01, 0x01, 0x00, 0x01, 0x61, 0x00],
            PacketType::Subscribe, 0x01),
        // Authentication Method in DISCONNECT.
        (&[0xE0, 0x06, 0x00, 0x04, 0x15, 0x00, 0x01, 0x78], PacketType::Disconnect, 0x15),
        // Session Expiry Interval in AUTH.
        (&[0xF0, 0x07, 0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01], PacketType::Auth, 0x11),
        // Topic Alias in CONNACK... is not allowed; Topic Alias Maximum is.
        (&[0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01], PacketType::ConnAck, 0x23),
        // Unknown identifier 0x7F in PUBREC.
        (&[0x50, 0x06, 0x00, 0x01, 0x00, 0x02, 0x7F, 0x00], PacketType::PubRec, 0x7F),
        // Identifier 0 in SUBACK.
        (&[0x90, 0x06, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00], PacketType::SubAck, 0x00),
    ];
    for &(bytes, packet_type, id) in cases {
        rejects(
            V5,
            bytes,
            DecodeError::PropertyNotAllowed { packet_type, id },
            MALFORMED,
        );
    }
}

/// 5.0 2.2.2.2 and each property's definition: "It is a Protocol Error to include
/// the [property] more than once." Subscription Identifier may repeat in PUBLISH
/// (3.3.2.3.8) but not in SUBSCRIBE (3.8.2.1.2); User Property may always repeat, and
/// its order is kept [MQTT-3.3.2-18].
#[test]
fn rejects_duplicate_properties() {
    #[rustfmt::skip]
    let cases: &[(&[u8], u8)] = &[
        // SUBSCRIBE: Subscription Identifier 1, then 2.
        (&[0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 0x61, 0x00], 0x0B),
        // CONNECT: Session Expiry Interval twice.
        (&[0x10, 0x17,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x0A, 0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00, 0x00, 0x02,
            0x00, 0x00], 0x11),
        // PUBACK: Reason String twice.
        (&[0x40, 0x0C, 0x00, 0x01, 0x00,
            0x08, 0x1F, 0x00, 0x01, 0x61, 0x1F, 0x00, 0x01, 0x62], 0x1F),
        // PUBLISH: Topic Alias twice.
        (&[0x30, 0x0A, 0x00, 0x01, 0x61, 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02], 0x23),
        // AUTH: Authentication Method twice.
        (&[0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x01, 0x61, 0x15, 0x00, 0x01, 0x62], 0x15),
        // CONNACK: Maximum QoS twice (same value).
        (&[0x20, 0x07, 0x00, 0x00, 0x04, 0x24, 0x00, 0x24, 0x00], 0x24),
    ];
    for &(bytes, id) in cases {
        rejects(
            V5,
            bytes,
            DecodeError::DuplicateProperty(id),
            PROTOCOL_ERROR,
        );
    }

    // PUBLISH: Subscription Identifier 1, then 2: allowed.
    let bytes = [0x30, 0x08, 0x00, 0x01, 0x61, 0x04, 0x0B, 0x01, 0x0B, 0x02];
    let Packet::Publish(p) = accepts(V5, &bytes) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(p.properties().subscription_identifiers, [1, 2]);

    // PUBLISH: User Property k=2, then k=1: allowed, in that order.
    #[rustfmt::skip]
    let bytes = [0x30, 0x12, 0x00, 0x01, 0x61,
        0x0E,
        0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x32,
        0x26, 0x00, 0x01, 0x6B, 0x00, 0x01, 0x31];
    let Packet::Publish(p) = accepts(V5, &bytes) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        p.properties().user_properties,
        [
            UserProperty::new("k", "2").unwrap(),
            UserProperty::new("k", "1").unwrap()
        ]
    );
}

// ---------------------------------------------------------------------------------
// Rule 9: property values in range.
// ---------------------------------------------------------------------------------

/// 5.0 3.x.2.x: each property's definition makes some values a Protocol Error:
/// Payload Format Indicator other than 0/1 (3.3.2.3.2, 3.1.3.2.3), Topic Alias 0
/// (3.3.2.3.4), Subscription Identifier 0 (3.3.2.3.8, 3.8.2.1.2), Maximum QoS other
/// than 0/1 (3.2.2.3.4), Receive Maximum 0 (3.1.2.11.3, 3.2.2.3.3), Maximum Packet
/// Size 0 (3.1.2.11.4, 3.2.2.3.6), and the boolean properties other than 0/1.
#[test]
fn rejects_property_values_out_of_range() {
    #[rustfmt::skip]
    let cases: &[(&[u8], u8)] = &[
        // PUBLISH: Payload Format Indicator 2.
        (&[0x30, 0x06, 0x00, 0x01, 0x61, 0x02, 0x01, 0x02], 0x01),
        // CONNECT: Will Properties with Payload Format Indicator 2.
        (&[0x10, 0x16,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x06, 0x00, 0x3C, 0x00,
            0x00, 0x01, 0x63,
            0x02, 0x01, 0x02,
            0x00, 0x01, 0x74,
            0x00, 0x00], 0x01),
        // PUBLISH: Topic Alias 0.
        (&[0x30, 0x07, 0x00, 0x01, 0x61, 0x03, 0x23, 0x00, 0x00], 0x23),
        // PUBLISH: Subscription Identifier 0.
        (&[0x30, 0x06, 0x00, 0x01, 0x61, 0x02, 0x0B, 0x00], 0x0B),
        // SUBSCRIBE: Subscription Identifier 0.
        (&[0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 0x61, 0x00], 0x0B),
        // CONNACK: Maximum QoS 2.
        (&[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02], 0x24),
        // CONNECT: Receive Maximum 0.
        (&[0x10, 0x10,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x03, 0x21, 0x00, 0x00,
            0x00, 0x00], 0x21),
        // CONNACK: Receive Maximum 0.
        (&[0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00], 0x21),
        // CONNECT: Maximum Packet Size 0.
        (&[0x10, 0x12,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x05, 0x27, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00], 0x27),
        // CONNACK: Maximum Packet Size 0.
        (&[0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00], 0x27),
        // CONNECT: Request Response Information 2, Request Problem Information 2.
        (&[0x10, 0x0F,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x02, 0x19, 0x02,
            0x00, 0x00], 0x19),
        (&[0x10, 0x0F,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
            0x02, 0x17, 0x02,
            0x00, 0x00], 0x17),
        // CONNACK: Retain Available, Wildcard Subscription Available, Subscription
        // Identifiers Available, Shared Subscription Available: 2.
        (&[0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x02], 0x25),
        (&[0x20, 0x05, 0x00, 0x00, 0x02, 0x28, 0x02], 0x28),
        (&[0x20, 0x05, 0x00, 0x00, 0x02, 0x29, 0xFF], 0x29),
        (&[0x20, 0x05, 0x00, 0x00, 0x02, 0x2A, 0x02], 0x2A),
    ];
    for &(bytes, id) in cases {
        rejects(
            V5,
            bytes,
            DecodeError::InvalidPropertyValue(id),
            PROTOCOL_ERROR,
        );
    }
    // Values 0 and 1 of the same properties are fine.
    accepts(V5, &[0x30, 0x06, 0x00, 0x01, 0x61, 0x02, 0x01, 0x01]);
    accepts(V5, &[0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x01]);
    accepts(V5, &[0x20, 0x05, 0x00, 0x00, 0x02, 0x2A, 0x00]);
}

/// 5.0 3.1.2.11.10 (CONNECT), 3.2.2.3.18 (CONNACK), 3.15.2.2.3 (AUTH):
/// Authentication Data without an Authentication Method is a Protocol Error.
#[test]
fn rejects_authentication_data_without_method() {
    let e = DecodeError::AuthDataWithoutMethod;
    #[rustfmt::skip]
    let connect = [0x10, 0x11,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C,
        0x04, 0x16, 0x00, 0x01, 0x78,                 // Authentication Data "x"
        0x00, 0x00];
    rejects(V5, &connect, e, PROTOCOL_ERROR);
    rejects(
        V5,
        &[0x20, 0x07, 0x00, 0x00, 0x04, 0x16, 0x00, 0x01, 0x78],
        e,
        PROTOCOL_ERROR,
    );
    // AUTH names its method in every form but the empty one (MQTT 5, 3.15.2.2.2).
    rejects(
        V5,
        &[0xF0, 0x06, 0x18, 0x04, 0x16, 0x00, 0x01, 0x78],
        DecodeError::AuthWithoutMethod,
        PROTOCOL_ERROR,
    );
}

/// MQTT 5, 3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method";
/// 3.15.2.1: only a Remaining Length of 0 may omit the Reason Code and Property
/// Length, so a reason code alone is truncated.
#[test]
fn rejects_auth_without_method_or_property_length() {
    rejects(
        V5,
        &[0xF0, 0x02, 0x18, 0x00],
        DecodeError::AuthWithoutMethod,
        PROTOCOL_ERROR,
    );
    rejects(
        V5,
        &[0xF0, 0x02, 0x00, 0x00],
        DecodeError::AuthWithoutMethod,
        PROTOCOL_ERROR,
    );
    rejects(V5, &[0xF0, 0x01, 0x18], DecodeError::Truncated, MALFORMED);
    // The legal neighbours: the empty short form, and a method.
    assert_eq!(accepts(V5, &[0xF0, 0x00]), Packet::Auth(Box::default()));
    accepts(V5, &[0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 0x6D]);
}

// ---------------------------------------------------------------------------------
// Rule 10: reason codes, packet identifiers, QoS, CONNECT header, CONNACK, size.
// ---------------------------------------------------------------------------------

/// The reason codes each MQTT 5 packet may carry, copied from the tables of 3.2.2.2
/// (CONNACK), 3.4.2.1 (PUBACK), 3.5.2.1 (PUBREC), 3.6.2.1 (PUBREL), 3.7.2.1 (PUBCOMP),
/// 3.9.3 (SUBACK), 3.11.3 (UNSUBACK), 3.14.2.1 (DISCONNECT) and 3.15.2.1 (AUTH).
fn spec_reason_codes(packet_type: PacketType) -> &'static [u8] {
    match packet_type {
        PacketType::ConnAck => &[
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        PacketType::PubAck | PacketType::PubRec => {
            &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
        }
        PacketType::PubRel | PacketType::PubComp => &[0x00, 0x92],
        PacketType::SubAck => &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        PacketType::UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        PacketType::Disconnect => &[
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
            0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
            0xA2,
        ],
        PacketType::Auth => &[0x00, 0x18, 0x19],
        _ => &[],
    }
}

/// 5.0 2.4 and the table of each packet: a reason code the packet does not define
/// is a Malformed Packet. Named cases first, then every byte value for every packet.
#[test]
fn rejects_reason_codes_not_defined_for_the_packet() {
    let invalid = |packet_type, code| DecodeError::InvalidReasonCode { packet_type, code };
    // PUBACK with 0x92 (Packet Identifier not found belongs to PUBREL/PUBCOMP).
    rejects(
        V5,
        &[0x40, 0x03, 0x00, 0x01, 0x92],
        invalid(PacketType::PubAck, 0x92),
        MALFORMED,
    );
    rejects(
        V5,
        &[0x50, 0x03, 0x00, 0x01, 0x92],
        invalid(PacketType::PubRec, 0x92),
        MALFORMED,
    );
    // PUBREL with 0x10 (No matching subscribers belongs to PUBACK/PUBREC).
    rejects(
        V5,
        &[0x62, 0x03, 0x00, 0x01, 0x10],
        invalid(PacketType::PubRel, 0x10),
        MALFORMED,
    );
    rejects(
        V5,
        &[0x70, 0x03, 0x00, 0x01, 0x10],
        invalid(PacketType::PubComp, 0x10),
        MALFORMED,
    );
    // SUBACK granting "QoS 3".
    rejects(
        V5,
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03],
        invalid(PacketType::SubAck, 0x03),
        MALFORMED,
    );
    // UNSUBACK with Granted QoS 1.
    rejects(
        V5,
        &[0xB0, 0x04, 0x00, 0x01, 0x00, 0x01],
        invalid(PacketType::UnsubAck, 0x01),
        MALFORMED,
    );
    // DISCONNECT with 0x01, AUTH with 0x01, CONNACK with 0x01.
    rejects(
        V5,
        &[0xE0, 0x01, 0x01],
        invalid(PacketType::Disconnect, 0x01),
        MALFORMED,
    );
    rejects(
        V5,
        &[0xF0, 0x01, 0x01],
        invalid(PacketType::Auth, 0x01),
        MALFORMED,
    );
    rejects(
        V5,
        &[0x20, 0x03, 0x00, 0x01, 0x00],
        invalid(PacketType::ConnAck, 0x01),
        MALFORMED,
    );

    // Every byte, every packet: accepted exactly when the specification lists it.
    for code in 0..=u8::MAX {
        #[rustfmt::skip]
        let packets: [(PacketType, Vec<u8>); 9] = [
            (PacketType::ConnAck, vec![0x20, 0x03, 0x00, code, 0x00]),
            (PacketType::PubAck, vec![0x40, 0x03, 0x00, 0x01, code]),
            (PacketType::PubRec, vec![0x50, 0x03, 0x00, 0x01, code]),
            (PacketType::PubRel, vec![0x62, 0x03, 0x00, 0x01, code]),
            (PacketType::PubComp, vec![0x70, 0x03, 0x00, 0x01, code]),
            (PacketType::SubAck, vec![0x90, 0x04, 0x00, 0x01, 0x00, code]),
            (PacketType::UnsubAck, vec![0xB0, 0x04, 0x00, 0x01, 0x00, code]),
            (PacketType::Disconnect, vec![0xE0, 0x01, code]),
            // AUTH: code, then properties with the (required) method "m".
            (PacketType::Auth, vec![0xF0, 0x06, code, 0x04, 0x15, 0x00, 0x01, 0x6D]),
        ];
        for (packet_type, bytes) in packets {
            if spec_reason_codes(packet_type).contains(&code) {
                accepts(V5, &bytes);
            } else {
                rejects(V5, &bytes, invalid(packet_type, code), MALFORMED);
            }
        }
    }
}

/// 3.1.1 3.2.2.3: CONNACK return codes 6-255 are reserved; [MQTT-3.9.3-2]: SUBACK
/// return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved.
#[test]
fn rejects_v311_connack_and_suback_codes_out_of_range() {
    for code in 0..=u8::MAX {
        let connack = [0x20, 0x02, 0x00, code];
        if code <= 5 {
            accepts(V3, &connack);
        } else {
            let e = DecodeError::InvalidReasonCode {
                packet_type: PacketType::ConnAck,
                code,
            };
            rejects(V3, &connack, e, MALFORMED);
        }
        let suback = [0x90, 0x03, 0x00, 0x01, code];
        if matches!(code, 0x00 | 0x01 | 0x02 | 0x80) {
            accepts(V3, &suback);
        } else {
            let e = DecodeError::InvalidReasonCode {
                packet_type: PacketType::SubAck,
                code,
            };
            rejects(V3, &suback, e, MALFORMED);
        }
    }
}

/// [MQTT-2.2.1-3] (5.0 2.2.1; 3.1.1 [MQTT-2.3.1-1]): a packet identifier is non-zero,
/// in every packet that carries one.
#[test]
fn rejects_packet_identifier_0() {
    #[rustfmt::skip]
    let cases: &[(ProtocolVersion, &[u8])] = &[
        (V3, &[0x32, 0x07, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x00]),       // PUBLISH QoS 1
        (V3, &[0x34, 0x07, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x00]),       // PUBLISH QoS 2
        (V5, &[0x32, 0x08, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x00, 0x00]), // PUBLISH 5.0
        (V3, &[0x40, 0x02, 0x00, 0x00]),                                     // PUBACK
        (V3, &[0x50, 0x02, 0x00, 0x00]),                                     // PUBREC
        (V3, &[0x62, 0x02, 0x00, 0x00]),                                     // PUBREL
        (V3, &[0x70, 0x02, 0x00, 0x00]),                                     // PUBCOMP
        (V5, &[0x40, 0x02, 0x00, 0x00]),
        (V5, &[0x50, 0x03, 0x00, 0x00, 0x10]),
        (V5, &[0x62, 0x03, 0x00, 0x00, 0x92]),
        (V5, &[0x70, 0x02, 0x00, 0x00]),
        (V3, &[0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00]),             // SUBSCRIBE
        (V5, &[0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00]),
        (V3, &[0x90, 0x03, 0x00, 0x00, 0x00]),                               // SUBACK
        (V5, &[0x90, 0x04, 0x00, 0x00, 0x00, 0x00]),
        (V3, &[0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x61]),                   // UNSUBSCRIBE
        (V5, &[0xA2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x61]),
        (V3, &[0xB0, 0x02, 0x00, 0x00]),                                     // UNSUBACK
        (V5, &[0xB0, 0x04, 0x00, 0x00, 0x00, 0x00]),
    ];
    for &(version, bytes) in cases {
        rejects(version, bytes, DecodeError::ZeroPacketId, MALFORMED);
        // Identifier 1 instead: valid.
        let mut fixed = bytes.to_vec();
        let at = if bytes[0] >> 4 == 3 { 8 } else { 3 };
        assert_eq!(fixed[at], 0x00);
        fixed[at] = 0x01;
        accepts(version, &fixed);
    }
}

/// QoS 3 is malformed: in the PUBLISH fixed header [MQTT-3.3.1-4], as Will QoS
/// [MQTT-3.1.2-12] and in the subscription options ([MQTT-3.8.3-4] 3.1.1, 3.8.3.1 5.0).
#[test]
fn rejects_qos_3() {
    let e = DecodeError::InvalidQos;
    for version in BOTH {
        for first in [0x36, 0x37, 0x3E, 0x3F] {
            // PUBLISH "a/b" with id 1 under every DUP/RETAIN combination.
            let mut bytes = vec![first, 0x07, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00, 0x01];
            if version == V5 {
                bytes.push(0x00);
                bytes[1] += 1;
            }
            rejects(version, &bytes, e, MALFORMED);
        }
        // SUBSCRIBE "a/b" with options 03: malformed in 3.1.1 [MQTT-3-8.3-4], a
        // Protocol Error in 5.0 (3.8.3.1).
        let (sub_error, sub_code) = match version {
            V3 => (e, MALFORMED),
            _ => (DecodeError::SubscriptionQosThree, PROTOCOL_ERROR),
        };
        rejects(
            version,
            &subscribe_one(version, b"a/b", 0x03),
            sub_error,
            sub_code,
        );
    }
    #[rustfmt::skip]
    let will_qos_3 = [0x10, 0x12,
        0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04,
        0x1E,                                         // Will QoS 3 + Will + clean
        0x00, 0x3C,
        0x00, 0x01, 0x63,                             // client id "c"
        0x00, 0x01, 0x74,                             // will topic "t"
        0x00, 0x00]; // will payload
    rejects(V3, &will_qos_3, e, MALFORMED);
    let mut will_qos_2 = will_qos_3;
    will_qos_2[9] = 0x16;
    accepts(V3, &will_qos_2);
}

/// [MQTT-3.3.1-2]: DUP must be 0 for a QoS 0 PUBLISH.
#[test]
fn rejects_dup_with_qos_0() {
    for first in [0x38, 0x39] {
        // DUP (+ RETAIN), QoS 0, topic "a/b".
        rejects(
            V3,
            &[first, 0x05, 0x00, 0x03, 0x61, 0x2F, 0x62],
            DecodeError::DupWithQos0,
            MALFORMED,
        );
        rejects(
            V5,
            &[first, 0x06, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x00],
            DecodeError::DupWithQos0,
            MALFORMED,
        );
    }
}

/// [MQTT-3.1.2-1]: the protocol name is the UTF-8 string "MQTT" (MQTT 3.1's
/// "MQIsdp" and any other spelling are refused).
#[test]
fn rejects_wrong_protocol_name() {
    #[rustfmt::skip]
    let mqisdp = [0x10, 0x0F,
        0x00, 0x06, 0x4D, 0x51, 0x49, 0x73, 0x64, 0x70, // "MQIsdp"
        0x03, 0x02, 0x00, 0x3C,
        0x00, 0x01, 0x63];
    #[rustfmt::skip]
    let lowercase = [0x10, 0x0D,
        0x00, 0x04, 0x6D, 0x71, 0x74, 0x74,             // "mqtt"
        0x04, 0x02, 0x00, 0x3C,
        0x00, 0x01, 0x63];
    for version in BOTH {
        rejects(
            version,
            &mqisdp,
            DecodeError::InvalidProtocolName,
            UNSUPPORTED_PROTOCOL_VERSION,
        );
        rejects(
            version,
            &lowercase,
            DecodeError::InvalidProtocolName,
            UNSUPPORTED_PROTOCOL_VERSION,
        );
    }
}

/// [MQTT-3.1.2-2]: protocol levels other than 4 and 5 are refused with CONNACK 0x84
/// Unsupported Protocol Version (0x01 in 3.1.1).
#[test]
fn rejects_unsupported_protocol_level() {
    for level in [0x00, 0x03, 0x06, 0x84, 0xFF] {
        #[rustfmt::skip]
        let bytes = [0x10, 0x0D,
            0x00, 0x04, 0x4D, 0x51, 0x54, 0x54,
            level, 0x02, 0x00, 0x3C,
            0x00, 0x01, 0x63];
        for version in BOTH {
            rejects(
                version,
                &bytes,
                DecodeError::UnsupportedProtocolVersion(level),
                0x84,
            );
        }
    }
}

/// [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0): a CONNACK refusing the connection
/// has Session Present 0.
#[test]
fn rejects_session_present_with_a_failing_connack() {
    let e = DecodeError::SessionPresentOnError;
    for code in 1..=5 {
        rejects(V3, &[0x20, 0x02, 0x01, code], e, PROTOCOL_ERROR);
    }
    for code in [0x80, 0x87, 0x9F] {
        rejects(V5, &[0x20, 0x03, 0x01, code, 0x00], e, PROTOCOL_ERROR);
    }
    accepts(V3, &[0x20, 0x02, 0x01, 0x00]);
    accepts(V5, &[0x20, 0x03, 0x01, 0x00, 0x00]);
}

/// [MQTT-3.1.2-24] / [MQTT-3.2.2-15] (5.0 Maximum Packet Size): a packet larger than
/// the maximum is refused with 0x95 from its fixed header alone, before the body
/// arrives.
#[test]
fn rejects_packet_over_maximum_size_from_the_header_alone() {
    // PUBLISH announcing the largest Remaining Length: 268,435,455 + 5 header bytes.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    let expected = DecodeError::PacketTooLarge {
        size: 268_435_460,
        max: 1024,
    };
    assert_eq!(expected.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    assert_eq!(expected.reason_code(), ReasonCode(0x95));
    for version in BOTH {
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(Packet::decode(&mut buf, version, 1024), Err(expected));
        let mut bytes = Bytes::copy_from_slice(&header);
        assert_eq!(
            Packet::decode_bytes(&mut bytes, version, 1024),
            Err(expected)
        );
        let mut decoder = Decoder::new(version).with_max_packet_size(1024);
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(decoder.decode(&mut buf), Err(expected));
        // Without a limit the same header just waits for its body.
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(Packet::decode(&mut buf, version, MAX_PACKET_SIZE), Ok(None));
    }

    // The limit counts the whole packet, header included: "a/b" + 5 bytes = 12 bytes.
    let publish = [
        0x30, 0x0A, 0x00, 0x03, 0x61, 0x2F, 0x62, 0x68, 0x65, 0x6C, 0x6C, 0x6F,
    ];
    let mut buf = BytesMut::from(&publish[..]);
    assert!(Packet::decode(&mut buf, V3, 12).unwrap().is_some());
    let mut buf = BytesMut::from(&publish[..2]);
    assert_eq!(
        Packet::decode(&mut buf, V3, 11),
        Err(DecodeError::PacketTooLarge { size: 12, max: 11 })
    );
    // A two-byte Remaining Length counts too: 128 + 3 = 131.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x01][..]);
    assert_eq!(
        Packet::decode(&mut buf, V5, 130),
        Err(DecodeError::PacketTooLarge {
            size: 131,
            max: 130
        })
    );
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x01][..]);
    assert_eq!(Packet::decode(&mut buf, V5, 131), Ok(None));
}
