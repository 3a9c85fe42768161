//! Properties every fixture of `mqtt_tests::fixtures` must have: it round-trips,
//! its encoded length is exact, every truncation of it is incomplete (never a packet,
//! never an error, from both `Packet::decode` and `Decoder`), a shorter Remaining
//! Length decodes only to the short forms the specifications allow, and decoding
//! shares the input buffer instead of copying.

// Helpers outside `#[test]` functions assert by panicking too; clippy.toml allows
// that only inside the test functions themselves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, Decoder,
    DisconnectProperties, FixedHeader, Packet, PacketType, ProtocolVersion, PublishProperties,
    ReasonCode, SubscribeProperties, UnsubscribeProperties, UserProperty, WillProperties,
    MAX_PACKET_SIZE,
};
use mqtt_tests::fixtures::{self, Fixture};
use proptest::prelude::*;

fn encode(f: &Fixture) -> Bytes {
    f.to_bytes()
        .unwrap_or_else(|e| panic!("{}: encode failed: {e}", f.name))
}

/// Appends `value` as a Variable Byte Integer (MQTT 5, 1.5.5).
fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = u8::try_from(value % 128).unwrap();
        value /= 128;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The fixed header and the body of an encoded packet.
fn split(f: &Fixture, wire: &[u8]) -> (FixedHeader, Bytes) {
    let header = FixedHeader::parse(wire, f.version, MAX_PACKET_SIZE)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: incomplete header", f.name));
    let body = Bytes::copy_from_slice(&wire[usize::from(header.header_length)..]);
    assert_eq!(body.len(), header.remaining_length as usize, "{}", f.name);
    (header, body)
}

fn packet_types() -> [PacketType; 15] {
    [
        PacketType::Connect,
        PacketType::ConnAck,
        PacketType::Publish,
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
        PacketType::Subscribe,
        PacketType::SubAck,
        PacketType::Unsubscribe,
        PacketType::UnsubAck,
        PacketType::PingReq,
        PacketType::PingResp,
        PacketType::Disconnect,
        PacketType::Auth,
    ]
}

#[test]
fn fixture_names_are_unique_and_every_packet_type_is_covered() {
    let all = fixtures::all();
    let mut names = HashSet::new();
    for f in &all {
        assert!(names.insert(f.name), "duplicate fixture name {}", f.name);
        let prefix = match f.version {
            ProtocolVersion::V311 => "v311/",
            ProtocolVersion::V5 => "v5/",
        };
        assert!(
            f.name.starts_with(prefix),
            "{}: name/version mismatch",
            f.name
        );
        if let Packet::Connect(c) = &f.packet {
            assert_eq!(c.protocol_version, f.version, "{}", f.name);
        }
        assert_eq!(fixtures::by_name(f.name).as_ref(), Some(f));
    }
    assert_eq!(fixtures::by_name("no/such/fixture"), None);
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        for t in packet_types() {
            let count = all
                .iter()
                .filter(|f| f.version == version && f.packet.packet_type() == t)
                .count();
            if t == PacketType::Auth && version == ProtocolVersion::V311 {
                assert_eq!(count, 0, "AUTH does not exist in MQTT 3.1.1");
            } else {
                assert!(count > 0, "no {t:?} fixture for {version:?}");
            }
        }
    }
}

/// A list of user properties worth testing: several, with a repeated name.
fn rich_user_properties(props: &[UserProperty]) -> bool {
    let names: HashSet<&str> = props.iter().map(|p| p.name.as_str()).collect();
    props.len() >= 3 && names.len() < props.len()
}

// The patterns below list every field without `..`: adding a property to a set breaks
// the build here until a fixture fills it in.

fn full_connect(p: &ConnectProperties) -> bool {
    matches!(p, ConnectProperties {
        session_expiry_interval: Some(_),
        receive_maximum: Some(_),
        maximum_packet_size: Some(_),
        topic_alias_maximum: Some(_),
        request_response_information: Some(_),
        request_problem_information: Some(_),
        authentication_method: Some(_),
        authentication_data: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_will(p: &WillProperties) -> bool {
    matches!(p, WillProperties {
        will_delay_interval: Some(_),
        payload_format_indicator: Some(_),
        message_expiry_interval: Some(_),
        content_type: Some(_),
        response_topic: Some(_),
        correlation_data: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_connack(p: &ConnAckProperties) -> bool {
    matches!(p, ConnAckProperties {
        session_expiry_interval: Some(_),
        receive_maximum: Some(_),
        maximum_qos: Some(_),
        retain_available: Some(_),
        maximum_packet_size: Some(_),
        assigned_client_identifier: Some(_),
        topic_alias_maximum: Some(_),
        reason_string: Some(_),
        wildcard_subscription_available: Some(_),
        subscription_identifiers_available: Some(_),
        shared_subscription_available: Some(_),
        server_keep_alive: Some(_),
        response_information: Some(_),
        server_reference: Some(_),
        authentication_method: Some(_),
        authentication_data: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_publish(p: &PublishProperties) -> bool {
    matches!(p, PublishProperties {
        payload_format_indicator: Some(_),
        message_expiry_interval: Some(_),
        topic_alias: Some(_),
        response_topic: Some(_),
        correlation_data: Some(_),
        content_type: Some(_),
        subscription_identifiers,
        user_properties,
    } if subscription_identifiers.len() >= 2 && rich_user_properties(user_properties))
}

fn full_ack(p: &AckProperties) -> bool {
    matches!(p, AckProperties {
        reason_string: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_subscribe(p: &SubscribeProperties) -> bool {
    matches!(p, SubscribeProperties {
        subscription_identifier: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_unsubscribe(p: &UnsubscribeProperties) -> bool {
    matches!(p, UnsubscribeProperties { user_properties } if rich_user_properties(user_properties))
}

fn full_disconnect(p: &DisconnectProperties) -> bool {
    matches!(p, DisconnectProperties {
        session_expiry_interval: Some(_),
        reason_string: Some(_),
        server_reference: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

fn full_auth(p: &AuthProperties) -> bool {
    matches!(p, AuthProperties {
        authentication_method: Some(_),
        authentication_data: Some(_),
        reason_string: Some(_),
        user_properties,
    } if rich_user_properties(user_properties))
}

#[test]
fn every_property_set_has_a_fixture_with_every_property() {
    let all = fixtures::all();
    let any = |pred: &dyn Fn(&Packet) -> bool| all.iter().any(|f| pred(&f.packet));
    assert!(any(
        &|p| matches!(p, Packet::Connect(c) if full_connect(&c.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Connect(c) if c.will.as_ref().is_some_and(|w| full_will(&w.properties)))
    ));
    assert!(any(
        &|p| matches!(p, Packet::ConnAck(c) if full_connack(&c.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Publish(x) if full_publish(x.properties()))
    ));
    for t in [
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
    ] {
        assert!(
            any(&|p| p.packet_type() == t
                && matches!(p, Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) if full_ack(&a.properties))),
            "{t:?}"
        );
    }
    assert!(any(
        &|p| matches!(p, Packet::SubAck(x) if full_ack(&x.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::UnsubAck(x) if full_ack(&x.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Subscribe(x) if full_subscribe(&x.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Unsubscribe(x) if full_unsubscribe(&x.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Disconnect(x) if full_disconnect(&x.properties))
    ));
    assert!(any(
        &|p| matches!(p, Packet::Auth(x) if full_auth(&x.properties))
    ));

    // The minimal forms are there too.
    let wire = |name: &str| encode(&fixtures::by_name(name).unwrap());
    assert_eq!(wire("v5/puback/short-form")[..], [0x40, 0x02, 0xFF, 0xFF]);
    assert_eq!(wire("v5/disconnect/no-body")[..], [0xE0, 0x00]);
    assert_eq!(wire("v5/auth/no-body")[..], [0xF0, 0x00]);
}

#[test]
fn every_fixture_round_trips() {
    // A PINGREQ after each packet: decoding must stop exactly at its end.
    const NEXT: [u8; 2] = [0xC0, 0x00];
    for f in fixtures::all() {
        let wire = encode(&f);
        let name = f.name;
        assert_eq!(
            f.packet.encoded_len(f.version),
            Ok(wire.len()),
            "{name}: encoded_len"
        );

        // `encode` appends, leaving what the buffer held.
        let mut buf = BytesMut::from(&b"prefix"[..]);
        f.packet.encode(f.version, &mut buf).unwrap();
        assert_eq!(&buf[..6], b"prefix", "{name}");
        assert_eq!(&buf[6..], &wire[..], "{name}: encode and to_bytes differ");

        // Packet::decode on BytesMut.
        let mut buf = BytesMut::from(&wire[..]);
        buf.extend_from_slice(&NEXT);
        let decoded = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.as_ref(), Some(&f.packet), "{name}");
        assert_eq!(
            &buf[..],
            &NEXT,
            "{name}: consumed the wrong number of bytes"
        );

        // Packet::decode_bytes on Bytes.
        let mut bytes = Bytes::from([&wire[..], &NEXT].concat());
        let decoded = Packet::decode_bytes(&mut bytes, f.version, MAX_PACKET_SIZE).unwrap();
        assert_eq!(decoded.as_ref(), Some(&f.packet), "{name}");
        assert_eq!(&bytes[..], &NEXT, "{name}");

        // Decoder, then the next packet from the same stream.
        let mut decoder = Decoder::new(f.version).with_max_packet_size(
            u32::try_from(wire.len()).unwrap(), // the exact size is accepted
        );
        let mut buf = BytesMut::from(&wire[..]);
        buf.extend_from_slice(&NEXT);
        assert_eq!(decoder.decode(&mut buf).unwrap().as_ref(), Some(&f.packet));
        assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Packet::PingReq));
        assert!(buf.is_empty(), "{name}");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);

        // Re-encoding the decoded packet gives the same bytes.
        assert_eq!(
            decoded.unwrap().to_bytes(f.version).unwrap(),
            wire,
            "{name}"
        );
    }
}

#[test]
fn every_truncated_prefix_is_incomplete() {
    for f in fixtures::all() {
        let wire = encode(&f);
        let name = f.name;
        for cut in 0..wire.len() {
            let prefix = &wire[..cut];

            let mut buf = BytesMut::from(prefix);
            let r = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE);
            assert_eq!(r, Ok(None), "{name}: Packet::decode of {cut} bytes");
            assert_eq!(&buf[..], prefix, "{name}: Ok(None) must not consume");

            let mut bytes = Bytes::copy_from_slice(prefix);
            let r = Packet::decode_bytes(&mut bytes, f.version, MAX_PACKET_SIZE);
            assert_eq!(r, Ok(None), "{name}: Packet::decode_bytes of {cut} bytes");
            assert_eq!(&bytes[..], prefix, "{name}");

            let mut buf = BytesMut::from(prefix);
            let r = Decoder::new(f.version).decode(&mut buf);
            assert_eq!(r, Ok(None), "{name}: Decoder::decode of {cut} bytes");
        }

        // One decoder fed a byte at a time: nothing until the last byte.
        let mut decoder = Decoder::new(f.version);
        let mut buf = BytesMut::new();
        for (i, &byte) in wire.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let r = decoder.decode(&mut buf).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(r, None, "{name}: packet after {} bytes", i + 1);
            } else {
                assert_eq!(r.as_ref(), Some(&f.packet), "{name}");
            }
        }
        assert!(buf.is_empty(), "{name}");
    }
}

#[test]
fn a_stream_of_every_fixture_decodes_in_any_chunking() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let packets: Vec<Packet> = fixtures::all()
            .into_iter()
            .filter(|f| f.version == version)
            .map(|f| f.packet)
            .collect();
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(version, &mut stream).unwrap();
        }
        let stream = stream.freeze();
        for chunk in [1, 2, 3, 7, 64, 1000, stream.len()] {
            let mut decoder = Decoder::new(version);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(p) = decoder.decode(&mut buf).unwrap() {
                    out.push(p);
                }
            }
            assert!(buf.is_empty());
            assert_eq!(out, packets, "{version:?}, chunks of {chunk}");
        }
    }
}

/// Whether `shorter`, decoded from a body cut short, is one of the forms a shorter
/// body legitimately has:
///
/// - PUBLISH: the payload is whatever follows the variable header, so a shorter body
///   is the same message with a prefix of its payload;
/// - SUBSCRIBE, UNSUBSCRIBE, SUBACK, UNSUBACK: the list ends at an entry boundary, so
///   a non-empty prefix of the entries;
/// - MQTT 5 PUBACK, PUBREC, PUBREL, PUBCOMP (3.4.2.1: Remaining Length 2 means
///   Success, 3.4.2.2.1: no Property Length means no properties), DISCONNECT (3.14.2.1
///   and 3.14.2.2.1) and AUTH (3.15.2.1 and 3.15.2.2.1): the reason code and
///   properties may be left out.
///
/// CONNECT, CONNACK, PINGREQ, PINGRESP and every MQTT 3.1.1 acknowledgement have no
/// shorter form.
fn is_short_form(original: &Packet, shorter: &Packet) -> bool {
    fn strict_prefix<T: PartialEq>(short: &[T], long: &[T]) -> bool {
        !short.is_empty() && short.len() < long.len() && long.starts_with(short)
    }
    match (original, shorter) {
        (Packet::Publish(o), Packet::Publish(s)) => {
            o.payload.starts_with(&s.payload)
                && s.payload.len() < o.payload.len()
                && mqtt_codec::Publish {
                    payload: o.payload.clone(),
                    ..s.clone()
                } == *o
        }
        (Packet::Subscribe(o), Packet::Subscribe(s)) => {
            o.packet_id == s.packet_id
                && o.properties == s.properties
                && strict_prefix(&s.filters, &o.filters)
        }
        (Packet::Unsubscribe(o), Packet::Unsubscribe(s)) => {
            o.packet_id == s.packet_id
                && o.properties == s.properties
                && strict_prefix(&s.filters, &o.filters)
        }
        (Packet::SubAck(o), Packet::SubAck(s)) => {
            o.packet_id == s.packet_id
                && o.properties == s.properties
                && strict_prefix(&s.reason_codes, &o.reason_codes)
        }
        (Packet::UnsubAck(o), Packet::UnsubAck(s)) => {
            o.packet_id == s.packet_id
                && o.properties == s.properties
                && strict_prefix(&s.reason_codes, &o.reason_codes)
        }
        (Packet::PubAck(o), Packet::PubAck(s))
        | (Packet::PubRec(o), Packet::PubRec(s))
        | (Packet::PubRel(o), Packet::PubRel(s))
        | (Packet::PubComp(o), Packet::PubComp(s)) => {
            o.packet_id == s.packet_id
                && s.properties.is_empty()
                && (s.reason_code == o.reason_code || s.reason_code == ReasonCode::SUCCESS)
        }
        (Packet::Disconnect(o), Packet::Disconnect(s)) => {
            s.properties.is_empty()
                && (s.reason_code == o.reason_code || s.reason_code == ReasonCode::SUCCESS)
        }
        (Packet::Auth(o), Packet::Auth(s)) => {
            s.properties.is_empty()
                && (s.reason_code == o.reason_code || s.reason_code == ReasonCode::SUCCESS)
        }
        _ => false,
    }
}

/// Whether the packet's reason code is Success and it has no properties: an MQTT 5
/// PUBACK family packet, DISCONNECT or AUTH whose canonical form omits the code.
fn omits_success_code(p: &Packet) -> bool {
    match p {
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            a.reason_code == ReasonCode::SUCCESS && a.properties.is_empty()
        }
        Packet::Disconnect(d) => d.reason_code == ReasonCode::SUCCESS && d.properties.is_empty(),
        Packet::Auth(a) => a.reason_code == ReasonCode::SUCCESS && a.properties.is_empty(),
        _ => false,
    }
}

/// The header claims fewer bytes than the packet holds (and the body is cut to match).
/// The strongest true statement: decoding never panics; when it succeeds the result
/// is one of the short forms the specification allows for that packet (see
/// [`is_short_form`]), and re-encoding it gives back exactly the shortened packet —
/// or, when the cut leaves an explicit Success reason code (0x00) as the last byte,
/// exactly the shortened packet without that byte, the canonical short form.
#[test]
fn a_shorter_remaining_length_decodes_only_to_allowed_short_forms() {
    let mut short_forms = 0;
    for f in fixtures::all() {
        let name = f.name;
        let wire = encode(&f);
        let (header, body) = split(&f, &wire);
        let first = wire[0];
        for len in 0..body.len() {
            let mut head = vec![first];
            put_varint(&mut head, len);
            let short_header = FixedHeader::parse(&head, f.version, MAX_PACKET_SIZE)
                .unwrap()
                .unwrap();
            assert_eq!(short_header.packet_type, header.packet_type);
            assert_eq!(short_header.remaining_length as usize, len);
            let Ok(shorter) = Packet::decode_body(&short_header, body.slice(..len), f.version)
            else {
                continue;
            };
            short_forms += 1;
            assert!(
                is_short_form(&f.packet, &shorter),
                "{name}: {len} body bytes decode to a packet that is no short form: {shorter:?}"
            );
            let mut expected = head.clone();
            expected.extend_from_slice(&body[..len]);
            let reencoded = shorter.to_bytes(f.version).unwrap();
            if reencoded[..] != expected[..] {
                // Only an explicit trailing Success code may be dropped.
                assert!(
                    f.version == ProtocolVersion::V5
                        && omits_success_code(&shorter)
                        && body[len - 1] == 0x00,
                    "{name}: {len} body bytes re-encode differently"
                );
                let mut canonical = vec![first];
                put_varint(&mut canonical, len - 1);
                canonical.extend_from_slice(&body[..len - 1]);
                assert_eq!(reencoded[..], canonical[..], "{name}: {len}");
            }
            // And the re-encoding decodes to the same packet.
            let mut again = BytesMut::from(&reencoded[..]);
            assert_eq!(
                Packet::decode(&mut again, f.version, MAX_PACKET_SIZE).unwrap(),
                Some(shorter),
                "{name}"
            );
        }
    }
    // The short forms do occur (PUBLISH payloads, lists, MQTT 5 acknowledgements).
    assert!(short_forms > 100, "only {short_forms} short forms");
}

#[test]
fn packets_without_a_short_form_reject_every_shorter_remaining_length() {
    for f in fixtures::all() {
        let no_short_form = matches!(f.packet, Packet::Connect(_) | Packet::ConnAck(_))
            || (f.version == ProtocolVersion::V311
                && matches!(
                    f.packet,
                    Packet::PubAck(_)
                        | Packet::PubRec(_)
                        | Packet::PubRel(_)
                        | Packet::PubComp(_)
                        | Packet::UnsubAck(_)
                ));
        if !no_short_form {
            continue;
        }
        let wire = encode(&f);
        let (_, body) = split(&f, &wire);
        for len in 0..body.len() {
            let mut head = vec![wire[0]];
            put_varint(&mut head, len);
            let header = FixedHeader::parse(&head, f.version, MAX_PACKET_SIZE)
                .unwrap()
                .unwrap();
            let r = Packet::decode_body(&header, body.slice(..len), f.version);
            assert!(r.is_err(), "{}: {len} body bytes decoded: {r:?}", f.name);
        }
    }
}

// Zero-copy: decoded fields are slices of the input buffer.

/// The address range of a buffer.
fn range_of(buf: &[u8]) -> Range<usize> {
    let start = buf.as_ptr() as usize;
    start..start + buf.len()
}

#[track_caller]
fn assert_inside(buffer: &Range<usize>, field: &[u8], what: &str) {
    assert!(!field.is_empty(), "{what}: pick a non-empty field");
    let field = range_of(field);
    assert!(
        buffer.start <= field.start && field.end <= buffer.end,
        "{what} was copied: {field:?} is outside the input {buffer:?}"
    );
}

fn fixture_wire(name: &str) -> (Fixture, Bytes) {
    let f = fixtures::by_name(name).unwrap();
    let wire = encode(&f);
    (f, wire)
}

#[test]
fn publish_decoded_from_bytes_mut_shares_the_buffer() {
    let (f, wire) = fixture_wire("v5/publish/qos1-all-properties");
    let mut buf = BytesMut::from(&wire[..]);
    let input = range_of(&buf);
    let Some(Packet::Publish(p)) = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE).unwrap()
    else {
        panic!("not a PUBLISH");
    };
    assert_inside(&input, &p.payload, "payload");
    assert_inside(&input, p.topic.as_bytes(), "topic");
    let props = p.properties();
    assert_inside(
        &input,
        props.correlation_data.as_ref().unwrap(),
        "correlation data",
    );
    assert_inside(
        &input,
        props.response_topic.as_ref().unwrap().as_bytes(),
        "response topic",
    );
    assert_inside(
        &input,
        props.content_type.as_ref().unwrap().as_bytes(),
        "content type",
    );
    for up in &props.user_properties {
        if !up.name.is_empty() {
            assert_inside(&input, up.name.as_bytes(), "user property name");
            assert_inside(&input, up.value.as_bytes(), "user property value");
        }
    }
}

#[test]
fn publish_decoded_from_bytes_and_by_the_decoder_shares_the_buffer() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let name = match version {
            ProtocolVersion::V311 => "v311/publish/qos2-dup-retain-non-ascii",
            ProtocolVersion::V5 => "v5/publish/qos1-non-ascii-multiple-subscription-identifiers",
        };
        let (f, wire) = fixture_wire(name);

        let mut bytes = Bytes::copy_from_slice(&wire);
        let input = range_of(&bytes);
        let Some(Packet::Publish(p)) =
            Packet::decode_bytes(&mut bytes, f.version, MAX_PACKET_SIZE).unwrap()
        else {
            panic!("not a PUBLISH");
        };
        assert_inside(&input, &p.payload, "payload (decode_bytes)");
        assert_inside(&input, p.topic.as_bytes(), "topic (decode_bytes)");

        let mut buf = BytesMut::from(&wire[..]);
        let input = range_of(&buf);
        let Some(Packet::Publish(p)) = Decoder::new(version).decode(&mut buf).unwrap() else {
            panic!("not a PUBLISH");
        };
        assert_inside(&input, &p.payload, "payload (Decoder)");
        assert_inside(&input, p.topic.as_bytes(), "topic (Decoder)");
    }
}

#[test]
fn connect_strings_share_the_buffer() {
    let (f, wire) = fixture_wire("v5/connect/all-properties");
    let mut buf = BytesMut::from(&wire[..]);
    let input = range_of(&buf);
    let Some(Packet::Connect(c)) = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE).unwrap()
    else {
        panic!("not a CONNECT");
    };
    assert_inside(&input, c.client_id.as_bytes(), "client id");
    assert_inside(&input, c.username.as_ref().unwrap().as_bytes(), "username");
    assert_inside(&input, c.password.as_ref().unwrap().expose(), "password");
    let will = c.will.as_ref().unwrap();
    assert_inside(&input, will.topic.as_bytes(), "will topic");
    assert_inside(&input, &will.payload, "will payload");
    let wp = &will.properties;
    assert_inside(
        &input,
        wp.correlation_data.as_ref().unwrap(),
        "will correlation data",
    );
    assert_inside(
        &input,
        wp.content_type.as_ref().unwrap().as_bytes(),
        "will content type",
    );
    assert_inside(
        &input,
        wp.user_properties[0].value.as_bytes(),
        "will user property",
    );
    let p = &c.properties;
    assert_inside(
        &input,
        p.authentication_method.as_ref().unwrap().as_bytes(),
        "auth method",
    );
    assert_inside(
        &input,
        p.authentication_data.as_ref().unwrap().expose(),
        "auth data",
    );
    assert_inside(
        &input,
        p.user_properties[1].name.as_bytes(),
        "user property name",
    );
}

#[test]
fn subscribe_filters_and_user_properties_share_the_buffer() {
    let (f, wire) = fixture_wire("v5/subscribe/shared-all-properties-non-ascii");
    let mut buf = BytesMut::from(&wire[..]);
    let input = range_of(&buf);
    let Some(Packet::Subscribe(s)) = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE).unwrap()
    else {
        panic!("not a SUBSCRIBE");
    };
    for (filter, _) in &s.filters {
        assert_inside(&input, filter.as_bytes(), "topic filter");
    }
    for up in s
        .properties
        .user_properties
        .iter()
        .filter(|u| !u.name.is_empty())
    {
        assert_inside(&input, up.name.as_bytes(), "user property name");
        assert_inside(&input, up.value.as_bytes(), "user property value");
    }

    let (f, wire) = fixture_wire("v5/unsubscribe/shared-all-properties");
    let mut bytes = Bytes::copy_from_slice(&wire);
    let input = range_of(&bytes);
    let Some(Packet::Unsubscribe(u)) =
        Packet::decode_bytes(&mut bytes, f.version, MAX_PACKET_SIZE).unwrap()
    else {
        panic!("not an UNSUBSCRIBE");
    };
    for filter in &u.filters {
        assert_inside(&input, filter.as_bytes(), "unsubscribe filter");
    }
}

#[test]
fn ack_and_disconnect_strings_share_the_buffer() {
    for name in [
        "v5/connack/session-present-all-properties",
        "v5/puback/reason-code-all-properties",
        "v5/disconnect/reason-code-all-properties",
        "v5/auth/re-authenticate-all-properties",
    ] {
        let (f, wire) = fixture_wire(name);
        let mut buf = BytesMut::from(&wire[..]);
        let input = range_of(&buf);
        let packet = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE)
            .unwrap()
            .unwrap();
        let reason = match &packet {
            Packet::ConnAck(c) => c.properties.reason_string.clone(),
            Packet::PubAck(a) => a.properties.reason_string.clone(),
            Packet::Disconnect(d) => d.properties.reason_string.clone(),
            Packet::Auth(a) => a.properties.reason_string.clone(),
            other => panic!("{name}: unexpected {other:?}"),
        };
        assert_inside(&input, reason.unwrap().as_bytes(), name);
    }
}

// Mutations of valid packets: never a panic, and whatever decodes re-encodes to a
// packet that decodes back to itself (the decoder accepts nothing the encoder refuses).

fn mutation_strategy() -> impl Strategy<Value = (usize, Vec<(usize, u8)>, usize)> {
    let count = fixtures::all().len();
    (
        0..count,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        any::<usize>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_fixtures_never_panic_and_decodings_round_trip(
        (index, edits, cut) in mutation_strategy()
    ) {
        let f = &fixtures::all()[index];
        let mut wire = encode(f).to_vec();
        for (pos, byte) in edits {
            let pos = pos % wire.len();
            wire[pos] = byte;
        }
        // Sometimes drop the tail as well.
        if cut % 4 == 0 {
            wire.truncate(cut % (wire.len() + 1));
        }
        let mut buf = BytesMut::from(&wire[..]);
        if let Ok(Some(packet)) = Packet::decode(&mut buf, f.version, MAX_PACKET_SIZE) {
            // A CONNECT carries its own protocol level (a mutation may change it).
            let version = match &packet {
                Packet::Connect(c) => c.protocol_version,
                _ => f.version,
            };
            let again = packet.to_bytes(version);
            prop_assert!(again.is_ok(), "{}: decoded {:?} but cannot encode it: {:?}", f.name, packet, again);
            let mut again = BytesMut::from(&again.unwrap()[..]);
            let back = Packet::decode(&mut again, version, MAX_PACKET_SIZE);
            prop_assert_eq!(back, Ok(Some(packet)));
        }
        let mut decoder = Decoder::new(f.version);
        let mut buf = BytesMut::from(&wire[..]);
        let _ = decoder.decode(&mut buf);
    }
}
