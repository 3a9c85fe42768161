//! Runs one codec operation over a stream of packets, for counting instructions with
//! callgrind (`benches/icount.sh`): instruction counts do not depend on what else the
//! machine is doing, so they compare implementations where wall-clock time is noisy.
//!
//! ```text
//! icount CASE IMPL OP PASSES
//!   CASE   small_v311 small_v5 kib_v311 kib_v5 props_v5 connect_v5 sub_v311 sub_v5
//!   IMPL   ours rumqttc framing
//!   OP     decode encode
//! ```
//!
//! Each pass decodes (or encodes) 1000 packets. The per-packet count is the difference
//! between two runs with different pass counts, divided by the extra packets, so that
//! start-up and setup outside the passes cancel out.

// A measuring tool: a failure is a bug in the fixture and should stop it loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::hint::black_box;

use bytes::{Buf, BytesMut};
use mqtt_benches as fx;
use mqtt_codec::{Decoder, FixedHeader, Packet, ProtocolVersion as V};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

const MAX: u32 = 2 * 1024 * 1024;
const N: usize = 1000;

fn case(name: &str) -> (Packet, V) {
    match name {
        "small_v311" => (fx::publish_small(), V::V311),
        "small_v5" => (fx::publish_small(), V::V5),
        "kib_v311" => (fx::publish_qos1(fx::KIB), V::V311),
        "kib_v5" => (fx::publish_qos1(fx::KIB), V::V5),
        "props_v5" => (fx::publish_with_properties(), V::V5),
        "connect_v5" => (fx::connect_with_properties(), V::V5),
        "sub_v311" => (fx::subscribe_10(V::V311), V::V311),
        "sub_v5" => (fx::subscribe_10(V::V5), V::V5),
        other => panic!("unknown case {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, case_name, imp, op, passes] = &args[..] else {
        panic!("usage: icount CASE IMPL OP PASSES");
    };
    let passes: usize = passes.parse().unwrap();
    let (packet, v) = case(case_name);
    let frame = packet.to_bytes(v).unwrap();
    let mut out = BytesMut::with_capacity(frame.len() * N);
    let r4_packet = || r4::Packet::read(&mut BytesMut::from(&frame[..]), MAX as usize).unwrap();
    let r5_packet = || r5::Packet::read(&mut BytesMut::from(&frame[..]), Some(MAX)).unwrap();
    for _ in 0..passes {
        match (imp.as_str(), op.as_str(), v) {
            ("ours", "decode", _) => {
                let mut decoder = Decoder::new(v).with_max_packet_size(MAX);
                let mut buf = fx::stream(&frame, N);
                for _ in 0..N {
                    black_box(decoder.decode(&mut buf).unwrap().unwrap());
                }
            }
            ("framing", "decode", _) => {
                let mut buf = fx::stream(&frame, N);
                for _ in 0..N {
                    let header = FixedHeader::parse(&buf, v, MAX).unwrap().unwrap();
                    buf.advance(black_box(header).packet_length());
                }
            }
            ("rumqttc", "decode", V::V311) => {
                let mut buf = fx::stream(&frame, N);
                for _ in 0..N {
                    black_box(r4::Packet::read(&mut buf, MAX as usize).unwrap());
                }
            }
            ("rumqttc", "decode", V::V5) => {
                let mut buf = fx::stream(&frame, N);
                for _ in 0..N {
                    black_box(r5::Packet::read(&mut buf, Some(MAX)).unwrap());
                }
            }
            ("ours", "encode", _) => {
                out.clear();
                for _ in 0..N {
                    black_box(&packet).encode(v, &mut out).unwrap();
                }
            }
            ("rumqttc", "encode", V::V311) => {
                let p = r4_packet();
                out.clear();
                for _ in 0..N {
                    black_box(&p).write(&mut out, MAX as usize).unwrap();
                }
            }
            ("rumqttc", "encode", V::V5) => {
                let p = r5_packet();
                out.clear();
                for _ in 0..N {
                    black_box(&p).write(&mut out, Some(MAX)).unwrap();
                }
            }
            other => panic!("unknown IMPL/OP {other:?}"),
        }
        black_box(&mut out);
    }
}
