//! Property tests of the codec (proptest).
//!
//! - Round trip: every generated VALID packet, of every type and both versions,
//!   encodes to exactly `encoded_len` bytes and decodes back to itself through
//!   `Packet::decode`, `Packet::decode_bytes` and `Decoder`; every strict prefix of
//!   its encoding is "need more bytes" with nothing consumed.
//! - Arbitrary bytes (random, behind a valid fixed header, or mutated encodings of
//!   valid packets) never panic in any of the three decoders, for both versions; a
//!   decoded packet consumes exactly its header and remaining length (never more than
//!   it was given, never more than the maximum packet size), "need more bytes"
//!   consumes nothing (`Packet::decode`, `decode_bytes`) or only the fixed header
//!   (`Decoder`), the three decoders agree packet by packet and on the final error,
//!   and every decoded packet re-encodes and decodes to itself.
//! - Streams: several packets back to back, split at arbitrary points and fed chunk by
//!   chunk into a `Decoder` through a growing `BytesMut`, give the same packets as
//!   decoding the whole buffer.

use bytes::{Bytes, BytesMut};
use mqtt_codec::packet::PacketType;
use mqtt_codec::{DecodeError, Decoder, FixedHeader, Packet, ProtocolVersion, MAX_PACKET_SIZE};
use mqtt_tests::strategies::{
    encode_varint, packet, valid_header_bytes, version, versioned_packet,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

fn fail(what: &str, e: impl core::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

/// The lengths of the strict prefixes of an `n`-byte encoding to try: all of them for
/// short packets, the first and last 64 and a stride in between for long ones.
fn prefix_cuts(n: usize) -> Vec<usize> {
    if n <= 600 {
        (0..n).collect()
    } else {
        (0..64)
            .chain((64..n - 64).step_by(97))
            .chain(n - 64..n)
            .collect()
    }
}

/// Encodes `packet` for `version` and checks every way of decoding it.
fn check_roundtrip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let len = packet
        .encoded_len(version)
        .map_err(|e| fail("encoded_len", e))?;

    // encode appends to what the buffer holds, exactly encoded_len bytes.
    let mut buf = BytesMut::from(&b"before"[..]);
    packet
        .encode(version, &mut buf)
        .map_err(|e| fail("encode", e))?;
    prop_assert_eq!(buf.len(), 6 + len, "encoded_len != bytes written");
    let wire = buf.split_off(6);
    prop_assert_eq!(&buf[..], b"before");
    let bytes = packet.to_bytes(version).map_err(|e| fail("to_bytes", e))?;
    prop_assert_eq!(&bytes[..], &wire[..]);

    // The fixed header announces exactly the encoded size.
    let header = FixedHeader::parse(&wire, version, MAX_PACKET_SIZE)
        .map_err(|e| fail("header", e))?
        .ok_or_else(|| fail("header", "incomplete"))?;
    prop_assert_eq!(header.packet_length(), len);
    prop_assert_eq!(header.packet_type, packet.packet_type());
    let max = u32::try_from(len).map_err(|e| fail("len", e))?;
    let too_large = matches!(
        FixedHeader::parse(&wire, version, max - 1),
        Err(DecodeError::PacketTooLarge { .. })
    );
    prop_assert!(too_large, "a maximum one byte short is refused");

    // Packet::decode, with the first byte of a next packet behind it.
    let mut with_next = wire.clone();
    with_next.extend_from_slice(&[0xC0]);
    let decoded = Packet::decode(&mut with_next, version, max).map_err(|e| fail("decode", e))?;
    prop_assert_eq!(decoded.as_ref(), Some(packet));
    prop_assert_eq!(&with_next[..], &[0xC0][..]);

    // Packet::decode_bytes, zero-copy: a decoded payload points into the input.
    let mut b = bytes.clone();
    let decoded =
        Packet::decode_bytes(&mut b, version, max).map_err(|e| fail("decode_bytes", e))?;
    prop_assert!(b.is_empty());
    if let Some(Packet::Publish(p)) = &decoded {
        if !p.payload.is_empty() {
            let range = bytes.as_ptr_range();
            prop_assert!(range.contains(&p.payload.as_ptr()), "payload was copied");
        }
    }
    prop_assert_eq!(decoded.as_ref(), Some(packet));

    // Decoder.
    let mut decoder = Decoder::new(version).with_max_packet_size(max);
    let mut w = wire.clone();
    let decoded = decoder.decode(&mut w).map_err(|e| fail("Decoder", e))?;
    prop_assert_eq!(decoded.as_ref(), Some(packet));
    prop_assert!(w.is_empty());
    prop_assert_eq!(decoder.decode(&mut w), Ok(None));

    // Every strict prefix: need more bytes, nothing consumed.
    for cut in prefix_cuts(len) {
        let mut prefix = bytes.slice(..cut);
        prop_assert_eq!(
            Packet::decode_bytes(&mut prefix, version, MAX_PACKET_SIZE),
            Ok(None),
            "prefix of {} bytes",
            cut
        );
        prop_assert_eq!(prefix.len(), cut);
    }
    let mut prefix = wire;
    prefix.truncate(len - 1);
    prop_assert_eq!(
        Packet::decode(&mut prefix, version, MAX_PACKET_SIZE),
        Ok(None)
    );
    prop_assert_eq!(prefix.len(), len - 1);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// decode(encode(p)) == p and encoded_len == bytes written, MQTT 5.
    #[test]
    fn roundtrip_v5(p in packet(ProtocolVersion::V5)) {
        check_roundtrip(&p, ProtocolVersion::V5)?;
    }

    /// decode(encode(p)) == p and encoded_len == bytes written, MQTT 3.1.1.
    #[test]
    fn roundtrip_v311(p in packet(ProtocolVersion::V311)) {
        check_roundtrip(&p, ProtocolVersion::V311)?;
    }
}

/// The generators reach every packet type and the special cases the codec treats
/// apart (a sanity check of the strategies, not of the codec).
#[test]
fn strategies_cover_every_packet_type() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut runner = TestRunner::deterministic();
        let strategy = packet(version);
        let mut seen = std::collections::HashSet::new();
        let (mut shared, mut empty_topic, mut sub_ids, mut auth_data) =
            (false, false, false, false);
        for _ in 0..2000 {
            let p = strategy.new_tree(&mut runner).expect("strategy").current();
            match &p {
                Packet::Subscribe(s) => {
                    shared |= s.filters.iter().any(|(f, _)| f.starts_with("$share/"));
                }
                Packet::Publish(p) => {
                    empty_topic |= p.topic.is_empty();
                    sub_ids |= !p.properties().subscription_identifiers.is_empty();
                }
                Packet::Connect(c) => auth_data |= c.properties.authentication_data.is_some(),
                _ => {}
            }
            seen.insert(p.packet_type());
        }
        let expected = if version == ProtocolVersion::V5 {
            15
        } else {
            14
        };
        assert_eq!(seen.len(), expected, "{version:?}: {seen:?}");
        assert!(shared, "{version:?}: no shared subscription filter");
        if version == ProtocolVersion::V5 {
            assert!(seen.contains(&PacketType::Auth));
            assert!(
                empty_topic && sub_ids && auth_data,
                "{version:?}: v5 features missing"
            );
        } else {
            assert!(!seen.contains(&PacketType::Auth));
            assert!(!empty_topic && !sub_ids && !auth_data);
        }
    }
}

// ---------------------------------------------------------------------------------
// Arbitrary bytes.

/// What decoding the whole input packet by packet gave: the packets, and how it
/// ended (`Ok(())`: need more bytes, or nothing left).
type Outcome = (Vec<Packet>, Result<(), DecodeError>);

/// A decoded packet re-encodes (to `encoded_len` bytes) and decodes to itself.
fn check_reencode(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    // A CONNECT carries its own protocol level, whatever the decoder was set to.
    let version = match packet {
        Packet::Connect(c) => c.protocol_version,
        _ => version,
    };
    let bytes = packet
        .to_bytes(version)
        .map_err(|e| fail(&format!("re-encoding {packet:?}"), e))?;
    prop_assert_eq!(Ok(bytes.len()), packet.encoded_len(version));
    let mut b = bytes;
    let again = Packet::decode_bytes(&mut b, version, MAX_PACKET_SIZE)
        .map_err(|e| fail(&format!("decoding re-encoded {packet:?}"), e))?;
    prop_assert_eq!(again.as_ref(), Some(packet));
    prop_assert!(b.is_empty());
    Ok(())
}

/// `Packet::decode` over the whole input, checking what each call consumes.
fn decode_all(input: &[u8], version: ProtocolVersion, max: u32) -> Result<Outcome, TestCaseError> {
    let mut buf = BytesMut::from(input);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        let header = FixedHeader::parse(&buf, version, max);
        let result = Packet::decode(&mut buf, version, max);
        let consumed = before - buf.len();
        match (header, result) {
            (Err(he), Err(e)) => {
                prop_assert_eq!(he, e);
                prop_assert_eq!(consumed, 0, "a bad header consumes nothing");
                return Ok((packets, Err(e)));
            }
            (Ok(None), Ok(None)) => {
                prop_assert_eq!(consumed, 0);
                return Ok((packets, Ok(())));
            }
            (Ok(Some(h)), Ok(None)) => {
                prop_assert!(before < h.packet_length());
                prop_assert_eq!(consumed, 0);
                return Ok((packets, Ok(())));
            }
            (Ok(Some(h)), Ok(Some(p))) => {
                prop_assert_eq!(consumed, h.packet_length());
                prop_assert!(consumed <= before);
                prop_assert!(consumed as u64 <= u64::from(max));
                prop_assert_eq!(h.packet_type, p.packet_type());
                check_reencode(&p, version)?;
                packets.push(p);
            }
            (Ok(Some(h)), Err(e)) => {
                // The body was refused: its frame is consumed, nothing more.
                prop_assert_eq!(consumed, h.packet_length());
                prop_assert!(consumed <= before);
                return Ok((packets, Err(e)));
            }
            (header, result) => {
                prop_assert!(false, "header {:?} but decode {:?}", header, result);
            }
        }
    }
}

/// `Packet::decode_bytes` over the whole input.
fn decode_bytes_all(
    input: &[u8],
    version: ProtocolVersion,
    max: u32,
) -> Result<Outcome, TestCaseError> {
    let mut buf = Bytes::copy_from_slice(input);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        let header = FixedHeader::parse(&buf, version, max);
        let result = Packet::decode_bytes(&mut buf, version, max);
        let consumed = before - buf.len();
        match result {
            Ok(Some(p)) => {
                let h = header.ok().flatten();
                prop_assert_eq!(Some(consumed), h.map(|h| h.packet_length()));
                packets.push(p);
            }
            Ok(None) => {
                prop_assert_eq!(consumed, 0);
                return Ok((packets, Ok(())));
            }
            Err(e) => {
                let frame = header.ok().flatten().map_or(0, |h| h.packet_length());
                prop_assert_eq!(consumed, frame);
                return Ok((packets, Err(e)));
            }
        }
    }
}

/// A `Decoder` fed `input` in chunks ending at `cuts` (sorted; the end of the input is
/// added), through a growing `BytesMut`. Over the calls that produce one packet, the
/// decoder consumes exactly that packet's fixed header and Remaining Length; while it
/// waits for a body it holds at most the fixed header.
fn decoder_chunks(
    input: &[u8],
    cuts: &[usize],
    version: ProtocolVersion,
    max: u32,
) -> Result<Outcome, TestCaseError> {
    let mut decoder = Decoder::new(version).with_max_packet_size(max);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    // Bytes fed so far, and where the packet being decoded starts in `input`.
    let (mut fed, mut packet_start) = (0, 0);
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let chunk = input
            .get(fed..end)
            .ok_or_else(|| fail("cut", "out of range"))?;
        buf.extend_from_slice(chunk);
        fed = end;
        loop {
            let result = decoder.decode(&mut buf);
            let consumed = fed - buf.len() - packet_start;
            match result {
                Ok(Some(p)) => {
                    let header = FixedHeader::parse(
                        input.get(packet_start..).unwrap_or_default(),
                        version,
                        max,
                    )
                    .map_err(|e| fail("header", e))?
                    .ok_or_else(|| fail("header", "incomplete"))?;
                    prop_assert_eq!(consumed, header.packet_length());
                    packet_start += consumed;
                    packets.push(p);
                }
                Ok(None) => {
                    // At most the fixed header (2..=5 bytes) is held.
                    prop_assert!(consumed <= 5, "Decoder consumed part of a body");
                    break;
                }
                Err(e) => return Ok((packets, Err(e))),
            }
        }
    }
    Ok((packets, Ok(())))
}

/// Every check on one input: the three decoders agree, whole or fed byte by byte.
fn check_raw(
    input: &[u8],
    version: ProtocolVersion,
    max: u32,
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let whole = decode_all(input, version, max)?;
    let via_bytes = decode_bytes_all(input, version, max)?;
    prop_assert_eq!(&via_bytes, &whole, "decode_bytes disagrees with decode");
    let via_decoder = decoder_chunks(input, &[], version, max)?;
    prop_assert_eq!(&via_decoder, &whole, "Decoder disagrees with decode");
    let chunked = decoder_chunks(input, cuts, version, max)?;
    prop_assert_eq!(&chunked, &whole, "chunked Decoder disagrees with decode");
    Ok(())
}

/// The maximum packet size: usually the protocol's, sometimes tiny.
fn max_packet_size() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(MAX_PACKET_SIZE), 1 => 0..600u32]
}

/// Sorted cut points into an input of `len` bytes.
fn cut_points(indices: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indices.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// A valid header byte for `version`, a Remaining Length that matches the random body
/// that follows (most of the time), then the body.
fn framed_garbage(version: ProtocolVersion) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(valid_header_bytes(version)),
        vec(any::<u8>(), 0..300),
        prop_oneof![4 => Just(0i64), 1 => -3..4i64],
    )
        .prop_map(|(first, body, skew)| {
            let mut out = vec![first];
            let len = i64::try_from(body.len()).unwrap_or(0) + skew;
            encode_varint(u32::try_from(len.max(0)).unwrap_or(0), &mut out);
            out.extend_from_slice(&body);
            out
        })
}

/// The encoding of a valid packet with a few bytes of its body overwritten, and
/// usually re-framed with the right Remaining Length; sometimes truncated.
fn mutated_packet(version: ProtocolVersion) -> impl Strategy<Value = Vec<u8>> {
    (
        packet(version),
        vec((any::<Index>(), any::<u8>()), 0..4),
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => any::<Index>().prop_map(Some)],
    )
        .prop_map(move |(p, edits, reframe, truncate)| {
            let wire = p.to_bytes(version).unwrap_or_default();
            let header = FixedHeader::parse(&wire, version, MAX_PACKET_SIZE)
                .ok()
                .flatten();
            let header_len = header.map_or(0, |h| usize::from(h.header_length));
            let mut body = wire.get(header_len..).unwrap_or_default().to_vec();
            let mut first = wire.first().copied().unwrap_or(0);
            for (i, byte) in edits {
                // Index 0 of the edits stands for the header byte.
                let at = i.index(body.len() + 1);
                if at == 0 {
                    first = byte;
                } else if let Some(b) = body.get_mut(at - 1) {
                    *b = byte;
                }
            }
            if let Some(t) = truncate {
                body.truncate(t.index(body.len() + 1));
            }
            let mut out = vec![first];
            if reframe {
                encode_varint(u32::try_from(body.len()).unwrap_or(0), &mut out);
            } else {
                out.extend_from_slice(wire.get(1..header_len.max(1)).unwrap_or_default());
            }
            out.extend_from_slice(&body);
            out
        })
}

/// Inputs that reach past the fixed header: up to four pieces of framed garbage,
/// mutated packets and random bytes, back to back.
fn deep_input(version: ProtocolVersion) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        2 => framed_garbage(version),
        3 => mutated_packet(version),
        1 => vec(any::<u8>(), 0..16),
    ];
    vec(piece, 1..4).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(512))]

    /// Random bytes of any length up to 4 KiB: no panic, exact consumption, the
    /// decoders agree, decoded packets round-trip.
    #[test]
    fn random_bytes_never_panic(
        version in version(),
        input in vec(any::<u8>(), 0..4096),
        max in max_packet_size(),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        check_raw(&input, version, max, &cut_points(&cuts, input.len()))?;
    }

    /// Random bytes behind valid first bytes: the same checks, deeper in the decoders.
    #[test]
    fn framed_bytes_never_panic(
        (version, input) in version().prop_flat_map(|v| (Just(v), deep_input(v))),
        max in max_packet_size(),
        cuts in vec(any::<Index>(), 0..8),
    ) {
        check_raw(&input, version, max, &cut_points(&cuts, input.len()))?;
    }

    /// Packets of one version decoded with the other: no panic, same checks.
    #[test]
    fn other_version_never_panics(
        (version, p) in versioned_packet(),
        max in max_packet_size(),
    ) {
        let other = match version {
            ProtocolVersion::V5 => ProtocolVersion::V311,
            ProtocolVersion::V311 => ProtocolVersion::V5,
        };
        let wire = p.to_bytes(version).map_err(|e| fail("encode", e))?;
        check_raw(&wire, other, max, &[])?;
    }
}

// ---------------------------------------------------------------------------------
// Streams.

proptest! {
    #![proptest_config(config(256))]

    /// Packets back to back, split at arbitrary points (or fed one byte at a time) into
    /// a Decoder through a growing BytesMut: the same packets as decoding whole.
    #[test]
    fn split_stream_decodes_like_whole(
        (version, packets) in version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..8))),
        cuts in vec(any::<Index>(), 0..24),
        byte_by_byte in proptest::bool::weighted(0.1),
    ) {
        let mut wire = BytesMut::new();
        for p in &packets {
            p.encode(version, &mut wire).map_err(|e| fail("encode", e))?;
        }
        let cuts = if byte_by_byte {
            (1..wire.len()).collect()
        } else {
            cut_points(&cuts, wire.len())
        };

        // Whole, with Packet::decode.
        let mut whole = wire.clone();
        let mut decoded = Vec::new();
        while let Some(p) = Packet::decode(&mut whole, version, MAX_PACKET_SIZE)
            .map_err(|e| fail("decode", e))?
        {
            decoded.push(p);
        }
        prop_assert!(whole.is_empty());
        prop_assert_eq!(&decoded, &packets);

        // In chunks, with one Decoder.
        let mut decoder = Decoder::new(version);
        let mut buf = BytesMut::new();
        let mut chunked = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            while let Some(p) = decoder.decode(&mut buf).map_err(|e| fail("Decoder", e))? {
                chunked.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoder.decode(&mut buf), Ok(None));
        prop_assert_eq!(&chunked, &decoded);
    }
}
