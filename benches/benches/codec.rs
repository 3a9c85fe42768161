//! Decode and encode throughput of `mqtt-codec`, side by side with rumqttc's codec
//! and with a framing-only baseline, in the same run.
//!
//! For each case (a packet, a protocol version):
//!
//! - `decode/mqtt-codec`: [`Decoder::decode`] with full validation, over a `BytesMut`
//!   holding N copies of the packet back to back, as a connection reader's buffer;
//! - `decode/rumqttc`: `rumqttc::mqttbytes::v4::Packet::read` (3.1.1) or
//!   `rumqttc::v5::mqttbytes::v5::Packet::read` (5.0) over the same bytes;
//! - `decode/framing-only`: [`FixedHeader::parse`] and `advance` past the body, the
//!   upper limit for any decoder of that stream;
//! - `encode/mqtt-codec` and `encode/rumqttc`: the packet written N times into a
//!   cleared, pre-reserved `BytesMut`.
//!
//! Throughput is `Elements(N)`: criterion reports packets per second. Before a case
//! is measured its setup checks that both libraries put the same packet on the wire
//! and that each decodes the other's bytes into the packet it started from.
//!
//! Run: `cargo bench -p mqtt-benches --bench codec`, then
//! `python3 benches/report.py > benches/RESULTS.md`.

// Bench code, not network code: a failed unwrap, expect or assert here is a bug in a
// fixture or a decoder that must stop the run, never input to recover from.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// `criterion_group!`/`criterion_main!` generate undocumented public items.
#![allow(missing_docs)]

use std::fmt::Debug;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use mqtt_benches as fx;
use mqtt_codec::{Decoder, FixedHeader, Packet, ProtocolVersion};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

/// The Maximum Packet Size every decoder is configured with: above the 1 MiB case,
/// as a server accepting such messages would set it.
const MAX_PACKET_SIZE: u32 = 2 * 1024 * 1024;

/// rumqttc's codec for one protocol version, behind one interface so the bench
/// routines are generic (monomorphised, no dispatch in the timed loops).
trait PeerCodec {
    type Packet: Debug + PartialEq;
    type Error: Debug;
    fn read(buf: &mut BytesMut) -> Result<Self::Packet, Self::Error>;
    fn write(packet: &Self::Packet, buf: &mut BytesMut) -> Result<usize, Self::Error>;
}

/// rumqttc's MQTT 3.1.1 codec.
struct RumqttcV4;

impl PeerCodec for RumqttcV4 {
    type Packet = r4::Packet;
    type Error = rumqttc::mqttbytes::Error;

    #[inline]
    fn read(buf: &mut BytesMut) -> Result<r4::Packet, Self::Error> {
        r4::Packet::read(buf, MAX_PACKET_SIZE as usize)
    }

    #[inline]
    fn write(packet: &r4::Packet, buf: &mut BytesMut) -> Result<usize, Self::Error> {
        packet.write(buf, MAX_PACKET_SIZE as usize)
    }
}

/// rumqttc's MQTT 5 codec.
struct RumqttcV5;

impl PeerCodec for RumqttcV5 {
    type Packet = r5::Packet;
    type Error = rumqttc::v5::mqttbytes::Error;

    #[inline]
    fn read(buf: &mut BytesMut) -> Result<r5::Packet, Self::Error> {
        r5::Packet::read(buf, Some(MAX_PACKET_SIZE))
    }

    #[inline]
    fn write(packet: &r5::Packet, buf: &mut BytesMut) -> Result<usize, Self::Error> {
        packet.write(buf, Some(MAX_PACKET_SIZE))
    }
}

/// One benchmark case: the same packet for both libraries.
struct Case<P: PeerCodec> {
    /// Criterion group name (one group per case and version).
    group: &'static str,
    version: ProtocolVersion,
    /// Packets per decoded stream and per encode run.
    n: usize,
    ours: Packet,
    peer: P::Packet,
    /// True when rumqttc writes the very same bytes; false when it writes the same
    /// fields in another property order (then the lengths must match).
    identical_bytes: bool,
}

// ---------------------------------------------------------------------------------
// rumqttc equivalents of the fixtures in `mqtt_benches`.

fn q4(n: u8) -> rumqttc::mqttbytes::QoS {
    match n {
        0 => rumqttc::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::mqttbytes::QoS::ExactlyOnce,
    }
}

fn q5(n: u8) -> rumqttc::v5::mqttbytes::QoS {
    match n {
        0 => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        1 => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        _ => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

fn pair((k, v): (&str, &str)) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

fn r4_publish(qos: u8, payload: Bytes) -> r4::Packet {
    r4::Packet::Publish(r4::Publish {
        dup: false,
        qos: q4(qos),
        retain: false,
        topic: fx::TOPIC.to_owned(),
        pkid: if qos == 0 { 0 } else { fx::PACKET_ID },
        payload,
    })
}

fn r5_publish(qos: u8, payload: Bytes, properties: Option<r5::PublishProperties>) -> r5::Packet {
    r5::Packet::Publish(r5::Publish {
        dup: false,
        qos: q5(qos),
        retain: false,
        topic: Bytes::from_static(fx::TOPIC.as_bytes()),
        pkid: if qos == 0 { 0 } else { fx::PACKET_ID },
        payload,
        properties,
    })
}

fn r5_publish_properties() -> r5::PublishProperties {
    r5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(fx::MESSAGE_EXPIRY),
        topic_alias: None,
        response_topic: Some(fx::RESPONSE_TOPIC.to_owned()),
        correlation_data: Some(Bytes::from_static(fx::CORRELATION_DATA)),
        user_properties: fx::PUBLISH_USER_PROPERTIES.into_iter().map(pair).collect(),
        subscription_identifiers: Vec::new(),
        content_type: Some(fx::CONTENT_TYPE.to_owned()),
    }
}

fn r5_connect() -> r5::Packet {
    let connect = r5::Connect {
        keep_alive: fx::KEEP_ALIVE,
        client_id: fx::CLIENT_ID.to_owned(),
        clean_start: true,
        properties: Some(r5::ConnectProperties {
            session_expiry_interval: Some(fx::SESSION_EXPIRY),
            receive_maximum: Some(fx::RECEIVE_MAXIMUM),
            max_packet_size: Some(fx::MAXIMUM_PACKET_SIZE),
            topic_alias_max: Some(fx::TOPIC_ALIAS_MAXIMUM),
            request_response_info: None,
            request_problem_info: None,
            user_properties: vec![pair(fx::CONNECT_USER_PROPERTY)],
            authentication_method: None,
            authentication_data: None,
        }),
    };
    let will = r5::LastWill {
        topic: Bytes::from_static(fx::WILL_TOPIC.as_bytes()),
        message: Bytes::from_static(fx::WILL_PAYLOAD),
        qos: q5(1),
        retain: true,
        properties: Some(r5::LastWillProperties {
            delay_interval: Some(fx::WILL_DELAY),
            payload_format_indicator: None,
            message_expiry_interval: Some(fx::WILL_MESSAGE_EXPIRY),
            content_type: Some(fx::WILL_CONTENT_TYPE.to_owned()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![pair(fx::WILL_USER_PROPERTY)],
        }),
    };
    let login = r5::Login::new(fx::USERNAME, fx::PASSWORD);
    r5::Packet::Connect(connect, Some(will), Some(login))
}

fn r4_subscribe() -> r4::Packet {
    r4::Packet::Subscribe(r4::Subscribe {
        pkid: fx::PACKET_ID,
        filters: fx::SUBSCRIBE_FILTERS
            .iter()
            .map(|&(path, qos)| r4::SubscribeFilter::new(path.to_owned(), q4(qos)))
            .collect(),
    })
}

fn r5_subscribe() -> r5::Packet {
    let filters = fx::SUBSCRIBE_FILTERS
        .iter()
        .enumerate()
        .map(|(i, &(path, qos))| {
            let options = fx::subscription_options(i, qos, ProtocolVersion::V5);
            r5::Filter {
                path: path.to_owned(),
                qos: q5(qos),
                nolocal: options.no_local,
                preserve_retain: options.retain_as_published,
                retain_forward_rule: match options.retain_handling {
                    mqtt_codec::RetainHandling::SendOnSubscribe => {
                        r5::RetainForwardRule::OnEverySubscribe
                    }
                    mqtt_codec::RetainHandling::SendIfNew => r5::RetainForwardRule::OnNewSubscribe,
                    mqtt_codec::RetainHandling::DoNotSend => r5::RetainForwardRule::Never,
                },
            }
        })
        .collect();
    r5::Packet::Subscribe(r5::Subscribe {
        pkid: fx::PACKET_ID,
        filters,
        properties: None,
    })
}

// ---------------------------------------------------------------------------------
// The cases.

fn v311_cases() -> Vec<Case<RumqttcV4>> {
    let v = ProtocolVersion::V311;
    vec![
        Case {
            group: "1_publish_qos0_16B_v311",
            version: v,
            n: fx::SMALL_N,
            ours: fx::publish_small(),
            peer: r4_publish(0, Bytes::from_static(fx::SMALL_PAYLOAD)),
            identical_bytes: true,
        },
        Case {
            group: "2_publish_qos1_1KiB_v311",
            version: v,
            n: fx::SMALL_N,
            ours: fx::publish_qos1(fx::KIB),
            peer: r4_publish(1, fx::payload(fx::KIB)),
            identical_bytes: true,
        },
        Case {
            group: "3_publish_qos1_1MiB_v311",
            version: v,
            n: fx::LARGE_N,
            ours: fx::publish_qos1(fx::MIB),
            peer: r4_publish(1, fx::payload(fx::MIB)),
            identical_bytes: true,
        },
        Case {
            group: "6_subscribe_10_filters_v311",
            version: v,
            n: fx::SMALL_N,
            ours: fx::subscribe_10(v),
            peer: r4_subscribe(),
            identical_bytes: true,
        },
    ]
}

fn v5_cases() -> Vec<Case<RumqttcV5>> {
    let v = ProtocolVersion::V5;
    vec![
        Case {
            group: "1_publish_qos0_16B_v5",
            version: v,
            n: fx::SMALL_N,
            ours: fx::publish_small(),
            peer: r5_publish(0, Bytes::from_static(fx::SMALL_PAYLOAD), None),
            identical_bytes: true,
        },
        Case {
            group: "2_publish_qos1_1KiB_v5",
            version: v,
            n: fx::SMALL_N,
            ours: fx::publish_qos1(fx::KIB),
            peer: r5_publish(1, fx::payload(fx::KIB), None),
            identical_bytes: true,
        },
        Case {
            group: "3_publish_qos1_1MiB_v5",
            version: v,
            n: fx::LARGE_N,
            ours: fx::publish_qos1(fx::MIB),
            peer: r5_publish(1, fx::payload(fx::MIB), None),
            identical_bytes: true,
        },
        Case {
            group: "4_publish_properties_v5",
            version: v,
            n: fx::SMALL_N,
            ours: fx::publish_with_properties(),
            peer: r5_publish(
                1,
                Bytes::from_static(fx::SMALL_PAYLOAD),
                Some(r5_publish_properties()),
            ),
            // rumqttc writes the User Properties before the Content Type; we write
            // them last. Same fields, same length, another order.
            identical_bytes: false,
        },
        Case {
            group: "5_connect_properties_v5",
            version: v,
            n: fx::SMALL_N,
            ours: fx::connect_with_properties(),
            peer: r5_connect(),
            identical_bytes: true,
        },
        Case {
            group: "6_subscribe_10_filters_v5",
            version: v,
            n: fx::SMALL_N,
            ours: fx::subscribe_10(v),
            peer: r5_subscribe(),
            identical_bytes: true,
        },
    ]
}

// ---------------------------------------------------------------------------------
// Equivalence checks (setup, not timed) and the benchmarks.

/// Encodes with both libraries, compares the bytes, and cross-decodes. Returns the
/// frame both decoders are then measured on (ours).
fn check_equivalent<P: PeerCodec>(case: &Case<P>) -> Bytes {
    let ours = case
        .ours
        .to_bytes(case.version)
        .expect("our encoder refused the fixture");
    let mut peer = BytesMut::new();
    let written = P::write(&case.peer, &mut peer).expect("rumqttc refused the fixture");
    assert_eq!(
        written,
        peer.len(),
        "{}: rumqttc's reported size",
        case.group
    );
    if case.identical_bytes {
        assert_eq!(
            &ours[..],
            &peer[..],
            "{}: the encoders disagree",
            case.group
        );
    } else {
        assert_eq!(
            ours.len(),
            peer.len(),
            "{}: the encoders disagree on length",
            case.group
        );
    }
    // Each decoder accepts the other's bytes and yields the packet the other started from.
    let mut buf = BytesMut::from(&peer[..]);
    let decoded = Packet::decode(&mut buf, case.version, MAX_PACKET_SIZE)
        .expect("we refused rumqttc's bytes")
        .expect("a whole packet");
    assert_eq!(
        decoded, case.ours,
        "{}: our decode of rumqttc's bytes",
        case.group
    );
    assert!(buf.is_empty());
    let mut buf = BytesMut::from(&ours[..]);
    let decoded = P::read(&mut buf).expect("rumqttc refused our bytes");
    assert_eq!(
        decoded, case.peer,
        "{}: rumqttc's decode of our bytes",
        case.group
    );
    assert!(buf.is_empty());
    ours
}

fn bench_case<P: PeerCodec>(c: &mut Criterion, case: &Case<P>) {
    let frame = check_equivalent(case);
    let (version, n) = (case.version, case.n);
    let mut group = c.benchmark_group(case.group);
    group.throughput(Throughput::Elements(n as u64));

    // Decode. The setup (not timed) builds a fresh stream of N packets for every
    // iteration, so the routine starts with its input hot in cache, as after a socket
    // read. One routine call decodes thousands of bytes or more, so the per-iteration
    // timer (PerIteration) costs well under 1% of it. The routine returns the emptied
    // buffer: freeing it happens outside the timing, for every implementation alike.
    group.bench_function(BenchmarkId::new("decode", "mqtt-codec"), |b| {
        b.iter_batched(
            || {
                let decoder = Decoder::new(version).with_max_packet_size(MAX_PACKET_SIZE);
                (decoder, fx::stream(&frame, n))
            },
            |(mut decoder, mut buf)| {
                for _ in 0..n {
                    match decoder.decode(&mut buf) {
                        Ok(Some(packet)) => {
                            black_box(packet);
                        }
                        other => panic!("decode failed: {other:?}"),
                    }
                }
                assert!(buf.is_empty());
                buf
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function(BenchmarkId::new("decode", "rumqttc"), |b| {
        b.iter_batched(
            || fx::stream(&frame, n),
            |mut buf| {
                for _ in 0..n {
                    match P::read(&mut buf) {
                        Ok(packet) => {
                            black_box(packet);
                        }
                        Err(e) => panic!("rumqttc decode failed: {e:?}"),
                    }
                }
                assert!(buf.is_empty());
                buf
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function(BenchmarkId::new("decode", "framing-only"), |b| {
        b.iter_batched(
            || fx::stream(&frame, n),
            |mut buf| {
                for _ in 0..n {
                    match FixedHeader::parse(&buf, version, MAX_PACKET_SIZE) {
                        Ok(Some(header)) => {
                            buf.advance(black_box(header).packet_length());
                        }
                        other => panic!("framing failed: {other:?}"),
                    }
                }
                assert!(buf.is_empty());
                buf
            },
            BatchSize::PerIteration,
        );
    });

    // Encode: N packets into a buffer reserved once for all of them and cleared
    // before each run. `black_box(&packet)` keeps the compiler from hoisting the
    // per-packet work (validation, length computation) out of the loop.
    group.bench_function(BenchmarkId::new("encode", "mqtt-codec"), |b| {
        let mut buf = BytesMut::with_capacity(frame.len() * n);
        b.iter(|| {
            buf.clear();
            for _ in 0..n {
                black_box(&case.ours).encode(version, &mut buf).unwrap();
            }
            black_box(&mut buf);
        });
        assert_eq!(buf.len(), frame.len() * n);
    });

    group.bench_function(BenchmarkId::new("encode", "rumqttc"), |b| {
        let mut buf = BytesMut::with_capacity(frame.len() * n);
        b.iter(|| {
            buf.clear();
            for _ in 0..n {
                P::write(black_box(&case.peer), &mut buf).unwrap();
            }
            black_box(&mut buf);
        });
        assert_eq!(buf.len(), frame.len() * n);
    });

    group.finish();
}

fn codec(c: &mut Criterion) {
    // Interleave versions so each case's two variants run one after the other.
    let v311 = v311_cases();
    let v5 = v5_cases();
    let order = [
        "1_publish_qos0_16B",
        "2_publish_qos1_1KiB",
        "3_publish_qos1_1MiB",
        "4_publish_properties",
        "5_connect_properties",
        "6_subscribe_10_filters",
    ];
    for prefix in order {
        for case in v311.iter().filter(|case| case.group.starts_with(prefix)) {
            bench_case(c, case);
        }
        for case in v5.iter().filter(|case| case.group.starts_with(prefix)) {
            bench_case(c, case);
        }
    }
}

fn config() -> Criterion {
    // Modest on purpose: 50 benchmarks on a shared 2-core machine in ~4 minutes.
    // Command-line options (e.g. --measurement-time) still override these.
    Criterion::default()
        .sample_size(25)
        .measurement_time(Duration::from_millis(2500))
        .warm_up_time(Duration::from_secs(1))
        .nresamples(20_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = codec
}
criterion_main!(benches);
