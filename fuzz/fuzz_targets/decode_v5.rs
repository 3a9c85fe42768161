//! Raw bytes through `Packet::decode`, `Packet::decode_bytes` and `Decoder` as MQTT 5:
//! no panic, exact consumption, the decoders agree, every decoded packet re-encodes
//! and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_codec::ProtocolVersion;

fuzz_target!(|data: &[u8]| {
    mqtt_codec_fuzz::check_raw(data, ProtocolVersion::V5);
});
