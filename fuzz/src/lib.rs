//! Checks shared by the fuzz targets of `mqtt-codec` (see `fuzz_targets/`).
//!
//! Every check panics (and so makes libFuzzer report a crash) when the codec breaks
//! one of its promises: no panic on any input, exact consumption, agreement between
//! `Packet::decode`, `Packet::decode_bytes` and `Decoder`, and
//! `decode(encode(p)) == p` with `encoded_len` exact.

use bytes::{Bytes, BytesMut};
use mqtt_codec::{DecodeError, Decoder, FixedHeader, Packet, ProtocolVersion, MAX_PACKET_SIZE};

/// The packets decoded from an input, and how decoding ended: `Ok(())` when the input
/// ran out (nothing left, or an incomplete packet), or the error.
pub type Outcome = (Vec<Packet>, Result<(), DecodeError>);

/// Encodes `packet` for `version`, checks `encoded_len`, decodes it again (with every
/// decoder) and checks the result equals `packet`. Returns the encoding.
pub fn check_roundtrip(packet: &Packet, version: ProtocolVersion) -> Bytes {
    // A CONNECT carries its own protocol level, whatever the decoder was set to.
    let version = match packet {
        Packet::Connect(c) => c.protocol_version,
        _ => version,
    };
    let len = match packet.encoded_len(version) {
        Ok(len) => len,
        Err(e) => panic!("encoded_len of a valid packet failed: {e}\n{packet:?}"),
    };
    let mut buf = BytesMut::from(&b"xy"[..]);
    if let Err(e) = packet.encode(version, &mut buf) {
        panic!("encoding a valid packet failed: {e}\n{packet:?}");
    }
    assert_eq!(
        buf.len(),
        2 + len,
        "encoded_len != bytes written\n{packet:?}"
    );
    let wire = buf.split_off(2);
    assert_eq!(&buf[..], b"xy", "encode overwrote the buffer");

    let mut b = wire.clone().freeze();
    let decoded = Packet::decode_bytes(&mut b, version, MAX_PACKET_SIZE);
    assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "decode_bytes");
    assert!(b.is_empty(), "decode_bytes left bytes behind");

    let mut w = wire.clone();
    let decoded = Packet::decode(&mut w, version, MAX_PACKET_SIZE);
    assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "decode");
    assert!(w.is_empty(), "decode left bytes behind");

    let mut w = wire.clone();
    let decoded = Decoder::new(version).decode(&mut w);
    assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "Decoder");
    assert!(w.is_empty(), "Decoder left bytes behind");
    wire.freeze()
}

/// `Packet::decode` over the whole input, packet by packet, checking what each call
/// consumes: a bad header nothing, "need more bytes" nothing, a packet or a refused
/// body exactly its header and remaining length. Every decoded packet must re-encode
/// and decode to itself.
pub fn decode_all(input: &[u8], version: ProtocolVersion, max: u32) -> Outcome {
    let mut buf = BytesMut::from(input);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        let header = FixedHeader::parse(&buf, version, max);
        let result = Packet::decode(&mut buf, version, max);
        let consumed = before - buf.len();
        match (header, result) {
            (Err(he), Err(e)) => {
                assert_eq!(he, e);
                assert_eq!(consumed, 0, "a bad header consumed bytes");
                return (packets, Err(e));
            }
            (Ok(None), Ok(None)) => {
                assert_eq!(consumed, 0, "need-more-bytes consumed bytes");
                return (packets, Ok(()));
            }
            (Ok(Some(h)), Ok(None)) => {
                assert!(before < h.packet_length(), "whole packet not decoded");
                assert_eq!(consumed, 0, "need-more-bytes consumed bytes");
                return (packets, Ok(()));
            }
            (Ok(Some(h)), Ok(Some(p))) => {
                assert_eq!(consumed, h.packet_length(), "consumed != packet length");
                assert!(consumed <= before);
                assert!(consumed as u64 <= u64::from(max), "packet over the maximum");
                assert_eq!(h.packet_type, p.packet_type());
                check_roundtrip(&p, version);
                packets.push(p);
            }
            (Ok(Some(h)), Err(e)) => {
                assert_eq!(consumed, h.packet_length(), "refused body: bad consumption");
                return (packets, Err(e));
            }
            (header, result) => panic!("header {header:?} but decode {result:?}"),
        }
    }
}

/// `Packet::decode_bytes` over the whole input.
pub fn decode_bytes_all(input: &[u8], version: ProtocolVersion, max: u32) -> Outcome {
    let mut buf = Bytes::copy_from_slice(input);
    let mut packets = Vec::new();
    loop {
        let before = buf.len();
        let header = FixedHeader::parse(&buf, version, max).ok().flatten();
        let result = Packet::decode_bytes(&mut buf, version, max);
        let consumed = before - buf.len();
        match result {
            Ok(Some(p)) => {
                assert_eq!(Some(consumed), header.map(|h| h.packet_length()));
                packets.push(p);
            }
            Ok(None) => {
                assert_eq!(consumed, 0, "need-more-bytes consumed bytes");
                return (packets, Ok(()));
            }
            Err(e) => {
                assert_eq!(consumed, header.map_or(0, |h| h.packet_length()));
                return (packets, Err(e));
            }
        }
    }
}

/// A `Decoder` fed `input` in chunks ending at `cuts` (sorted, at most `input.len()`;
/// the end of the input is added) through a growing `BytesMut`. Over the calls that
/// produce one packet, the decoder consumes exactly that packet's fixed header and
/// Remaining Length; while it waits for a body it holds at most the fixed header.
pub fn decoder_chunks(input: &[u8], cuts: &[usize], version: ProtocolVersion, max: u32) -> Outcome {
    let mut decoder = Decoder::new(version).with_max_packet_size(max);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    // Bytes fed so far, and where the packet being decoded starts in `input`.
    let (mut fed, mut packet_start) = (0, 0);
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let result = decoder.decode(&mut buf);
            let consumed = fed - buf.len() - packet_start;
            match result {
                Ok(Some(p)) => {
                    let header = FixedHeader::parse(&input[packet_start..], version, max);
                    let length = header.ok().flatten().map(|h| h.packet_length());
                    assert_eq!(Some(consumed), length, "Decoder consumed the wrong length");
                    packet_start += consumed;
                    packets.push(p);
                }
                Ok(None) => {
                    assert!(consumed <= 5, "Decoder consumed part of a body");
                    break;
                }
                Err(e) => return (packets, Err(e)),
            }
        }
    }
    (packets, Ok(()))
}

/// Raw bytes through every decoder, for `version`, with the protocol maximum packet
/// size and with a small one: no panic, exact consumption, the decoders agree (whole,
/// and a `Decoder` fed one byte at a time), decoded packets round-trip.
pub fn check_raw(input: &[u8], version: ProtocolVersion) {
    let every_byte: Vec<usize> = (1..input.len()).collect();
    for max in [MAX_PACKET_SIZE, 64] {
        let whole = decode_all(input, version, max);
        assert_eq!(decode_bytes_all(input, version, max), whole, "decode_bytes");
        assert_eq!(decoder_chunks(input, &[], version, max), whole, "Decoder");
        assert_eq!(
            decoder_chunks(input, &every_byte, version, max),
            whole,
            "Decoder fed byte by byte"
        );
    }
}
