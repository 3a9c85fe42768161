//! Several valid packets of one version, encoded back to back and split at arbitrary
//! points: a `Decoder` fed the chunks one by one (through a growing `BytesMut`) gives
//! the same packets as `Packet::decode` over the whole buffer, and both give the
//! packets that were encoded.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_codec::{ArbitraryPacket, ProtocolVersion, MAX_PACKET_SIZE};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(version) = ProtocolVersion::arbitrary(&mut u) else {
        return;
    };
    let mut packets = Vec::new();
    let mut wire = BytesMut::new();
    // At least one packet, at most 8.
    while packets.is_empty() || (packets.len() < 8 && u.arbitrary::<bool>().unwrap_or(false)) {
        let Ok(packet) = ArbitraryPacket::packet_for(&mut u, version) else {
            return;
        };
        if let Err(e) = packet.encode(version, &mut wire) {
            panic!("encoding a valid packet failed: {e}\n{packet:?}");
        }
        packets.push(packet);
    }
    // Split points: the rest of the input, two bytes per cut.
    let mut cuts = Vec::new();
    while let Ok(cut) = u.arbitrary::<u16>() {
        if u.is_empty() && cut == 0 {
            break;
        }
        cuts.push(usize::from(cut) % (wire.len() + 1));
        if cuts.len() >= 64 {
            break;
        }
    }
    cuts.sort_unstable();

    let (whole, end) = mqtt_codec_fuzz::decode_all(&wire, version, MAX_PACKET_SIZE);
    assert_eq!(end, Ok(()));
    assert_eq!(whole, packets, "whole-buffer decoding");
    let (chunked, end) = mqtt_codec_fuzz::decoder_chunks(&wire, &cuts, version, MAX_PACKET_SIZE);
    assert_eq!(end, Ok(()));
    assert_eq!(chunked, whole, "Decoder over chunks");
});
