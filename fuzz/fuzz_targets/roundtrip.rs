//! A valid packet of either version (`ArbitraryPacket`): `encoded_len` equals the
//! bytes `encode` writes, and `Packet::decode`, `Packet::decode_bytes` and `Decoder`
//! all give the packet back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_codec::ArbitraryPacket;

fuzz_target!(|input: ArbitraryPacket| {
    mqtt_codec_fuzz::check_roundtrip(&input.packet, input.version);
});
