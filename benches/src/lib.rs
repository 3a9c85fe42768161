//! Benchmark fixtures shared by the benches in `benches/benches/`.
//!
//! Every fixture is described once, as plain data (the constants below), and built
//! here as an `mqtt_codec` packet. The benches build the peer crate's equivalent
//! packet from the same constants and check, before measuring anything, that both
//! encoders produce the same bytes (or, where the peer orders properties
//! differently, the same length) and that both decoders accept them.

use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Connect, ConnectProperties, LastWill, MqttString, Packet, PacketId, ProtocolVersion, Publish,
    PublishProperties, QoS, RetainHandling, Secret, Subscribe, SubscriptionOptions, UserProperty,
    WillProperties,
};

/// Packets per decoded stream / encode run for the small and 1 KiB cases.
pub const SMALL_N: usize = 1000;
/// Packets per decoded stream / encode run for the 1 MiB case.
pub const LARGE_N: usize = 16;

/// Topic of every PUBLISH fixture.
pub const TOPIC: &str = "sensors/k1/temp";
/// The 16-byte payload of the small PUBLISH and of the PUBLISH with properties.
pub const SMALL_PAYLOAD: &[u8; 16] = b"{\"t\":21.5,\"u\":1}";
/// Packet identifier of every QoS 1 fixture.
pub const PACKET_ID: u16 = 7;
/// Payload size of the 1 KiB PUBLISH.
pub const KIB: usize = 1024;
/// Payload size of the 1 MiB PUBLISH.
pub const MIB: usize = 1024 * 1024;

/// Message Expiry Interval of the PUBLISH with properties.
pub const MESSAGE_EXPIRY: u32 = 3600;
/// Content Type of the PUBLISH with properties.
pub const CONTENT_TYPE: &str = "application/json";
/// Response Topic of the PUBLISH with properties.
pub const RESPONSE_TOPIC: &str = "replies/k1/temp";
/// Correlation Data of the PUBLISH with properties.
pub const CORRELATION_DATA: &[u8; 16] = b"req-000000000042";
/// User Properties of the PUBLISH with properties.
pub const PUBLISH_USER_PROPERTIES: [(&str, &str); 2] = [
    ("source", "edge-gateway-7"),
    ("trace-id", "4bf92f3577b34da6"),
];

/// Client Identifier of the CONNECT.
pub const CLIENT_ID: &str = "bench-client-0001";
/// Keep Alive of the CONNECT.
pub const KEEP_ALIVE: u16 = 30;
/// Session Expiry Interval of the CONNECT.
pub const SESSION_EXPIRY: u32 = 3600;
/// Receive Maximum of the CONNECT.
pub const RECEIVE_MAXIMUM: u16 = 100;
/// Maximum Packet Size of the CONNECT.
pub const MAXIMUM_PACKET_SIZE: u32 = 1024 * 1024;
/// Topic Alias Maximum of the CONNECT.
pub const TOPIC_ALIAS_MAXIMUM: u16 = 16;
/// User Property of the CONNECT.
pub const CONNECT_USER_PROPERTY: (&str, &str) = ("region", "eu-west-1");
/// Will Topic of the CONNECT.
pub const WILL_TOPIC: &str = "clients/bench-client-0001/status";
/// Will Payload of the CONNECT.
pub const WILL_PAYLOAD: &[u8] = b"offline";
/// Will Delay Interval of the CONNECT.
pub const WILL_DELAY: u32 = 5;
/// Will Message Expiry Interval of the CONNECT.
pub const WILL_MESSAGE_EXPIRY: u32 = 600;
/// Will Content Type of the CONNECT.
pub const WILL_CONTENT_TYPE: &str = "text/plain";
/// Will User Property of the CONNECT.
pub const WILL_USER_PROPERTY: (&str, &str) = ("reason", "unexpected-disconnect");
/// User Name of the CONNECT.
pub const USERNAME: &str = "bench-user";
/// Password of the CONNECT.
pub const PASSWORD: &str = "s3cr3t-passw0rd!";

/// The ten topic filters of the SUBSCRIBE and their maximum QoS (0, 1 or 2).
pub const SUBSCRIBE_FILTERS: [(&str, u8); 10] = [
    ("sensors/+/temp", 0),
    ("sensors/+/humidity", 1),
    ("factory/line-1/#", 1),
    ("factory/line-2/#", 2),
    ("alerts/#", 1),
    ("devices/k1/cmd", 1),
    ("devices/k2/cmd", 1),
    ("home/+/+/state", 0),
    ("telemetry/eu/+/raw", 0),
    ("$SYS/broker/uptime", 0),
];

/// A deterministic ASCII payload of `len` bytes.
pub fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| b'a' + u8::try_from(i % 26).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into()
}

/// The QoS with this number (0, 1 or 2; anything else is QoS 0).
pub fn qos(n: u8) -> QoS {
    QoS::from_u8(n).unwrap_or_default()
}

fn string(s: &str) -> MqttString {
    // The fixtures are constants above, none holds U+0000; a failure would be a bug
    // in the fixture, caught by the equivalence checks of the benches.
    MqttString::try_from(s).unwrap_or_default()
}

fn user(pair: (&str, &str)) -> UserProperty {
    UserProperty {
        name: string(pair.0),
        value: string(pair.1),
    }
}

fn packet_id() -> Option<PacketId> {
    PacketId::new(PACKET_ID)
}

/// Case 1: a QoS 0 PUBLISH of [`SMALL_PAYLOAD`] to [`TOPIC`].
pub fn publish_small() -> Packet {
    Packet::Publish(Publish {
        topic: string(TOPIC),
        payload: Bytes::from_static(SMALL_PAYLOAD),
        ..Publish::default()
    })
}

/// Cases 2 and 3: a QoS 1 PUBLISH of `payload_len` bytes to [`TOPIC`].
pub fn publish_qos1(payload_len: usize) -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: packet_id(),
        topic: string(TOPIC),
        payload: payload(payload_len),
        ..Publish::default()
    })
}

/// Case 4 (MQTT 5): a QoS 1 PUBLISH with Payload Format Indicator, Message Expiry
/// Interval, Content Type, Response Topic, Correlation Data and two User Properties.
pub fn publish_with_properties() -> Packet {
    Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        packet_id: packet_id(),
        topic: string(TOPIC),
        payload: Bytes::from_static(SMALL_PAYLOAD),
        properties: Some(Box::new(PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(MESSAGE_EXPIRY),
            response_topic: Some(string(RESPONSE_TOPIC)),
            correlation_data: Some(Bytes::from_static(CORRELATION_DATA)),
            content_type: Some(string(CONTENT_TYPE)),
            user_properties: PUBLISH_USER_PROPERTIES.into_iter().map(user).collect(),
            ..PublishProperties::default()
        })),
        ..Publish::default()
    })
}

/// Case 5 (MQTT 5): a CONNECT with Session Expiry Interval, Receive Maximum, Maximum
/// Packet Size, Topic Alias Maximum and a User Property; a QoS 1 retained Will with
/// Will Delay Interval, Message Expiry Interval, Content Type and a User Property;
/// a User Name and a Password.
pub fn connect_with_properties() -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol_version: ProtocolVersion::V5,
        client_id: string(CLIENT_ID),
        clean_start: true,
        keep_alive: KEEP_ALIVE,
        username: Some(string(USERNAME)),
        password: Some(Secret(Bytes::from_static(PASSWORD.as_bytes()))),
        will: Some(LastWill {
            topic: string(WILL_TOPIC),
            payload: Bytes::from_static(WILL_PAYLOAD),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(WILL_DELAY),
                message_expiry_interval: Some(WILL_MESSAGE_EXPIRY),
                content_type: Some(string(WILL_CONTENT_TYPE)),
                user_properties: vec![user(WILL_USER_PROPERTY)],
                ..WillProperties::default()
            },
        }),
        properties: ConnectProperties {
            session_expiry_interval: Some(SESSION_EXPIRY),
            receive_maximum: Some(RECEIVE_MAXIMUM),
            maximum_packet_size: Some(MAXIMUM_PACKET_SIZE),
            topic_alias_maximum: Some(TOPIC_ALIAS_MAXIMUM),
            user_properties: vec![user(CONNECT_USER_PROPERTY)],
            ..ConnectProperties::default()
        },
    }))
}

/// The subscription options of filter `index` of [`SUBSCRIBE_FILTERS`] in `version`:
/// the QoS only for 3.1.1; for MQTT 5, No Local on filter 5, Retain As Published on
/// filter 6 and Retain Handling 1 on filter 7 (as a client would set them).
pub fn subscription_options(
    index: usize,
    qos_level: u8,
    version: ProtocolVersion,
) -> SubscriptionOptions {
    let mut options = SubscriptionOptions::qos(qos(qos_level));
    if version == ProtocolVersion::V5 {
        options.no_local = index == 5;
        options.retain_as_published = index == 6;
        if index == 7 {
            options.retain_handling = RetainHandling::SendIfNew;
        }
    }
    options
}

/// Case 6: a SUBSCRIBE with the ten [`SUBSCRIBE_FILTERS`].
pub fn subscribe_10(version: ProtocolVersion) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: packet_id().unwrap_or(PacketId::MIN),
        properties: mqtt_codec::SubscribeProperties::default(),
        filters: SUBSCRIBE_FILTERS
            .iter()
            .enumerate()
            .map(|(i, &(f, q))| (string(f), subscription_options(i, q, version)))
            .collect(),
    })
}

/// `n` copies of `frame`, back to back, as a connection's read buffer would hold them.
pub fn stream(frame: &[u8], n: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(frame.len() * n);
    for _ in 0..n {
        buf.extend_from_slice(frame);
    }
    buf
}

/// Where a generated result comes from: the commit, whether the work tree was
/// clean, and the time (UTC), for the header of the Markdown a bench writes.
pub fn stamp() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let tree = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.is_empty() => "clean",
        Some(_) => "MODIFIED (not a clean commit)",
        None => "unknown",
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("commit `{commit}` (work tree {tree}), {date}")
}

// ----- meters shared by the bench binaries -------------------------------------

/// User + system CPU time of this process: fields 14 and 15 of `/proc/self/stat`.
pub fn process_cpu(clk_tck: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 2 (comm) is parenthesised and may hold spaces: count from its end, where
    // field 3 starts; fields 14 and 15 are then the 12th and 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(clk_tck.max(1));
    Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
}

/// `getconf CLK_TCK`, read once; 100 (the Linux value) if it cannot be read.
pub fn clock_ticks() -> u64 {
    let read = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&t| t > 0);
    read.unwrap_or_else(|| {
        eprintln!("bench: `getconf CLK_TCK` failed, assuming 100");
        100
    })
}

/// The median; `None` of nothing.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values.get(mid).copied()
    } else {
        Some((values.get(mid.checked_sub(1)?)? + values.get(mid)?) / 2.0)
    }
}

/// `mosquitto -h`'s first line, e.g. "mosquitto version 2.0.11".
pub fn mosquitto_version() -> String {
    ["mosquitto", "/usr/sbin/mosquitto"]
        .iter()
        .find_map(|bin| {
            let out = Command::new(bin).arg("-h").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text.lines().next()?.trim().to_owned();
            (!line.is_empty()).then_some(line)
        })
        .unwrap_or_else(|| "mosquitto (version unknown)".to_owned())
}

/// rumqttc's version from the workspace's Cargo.lock.
pub fn rumqttc_version() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .unwrap_or_default();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"rumqttc\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
            {
                return version.to_owned();
            }
        }
    }
    "0.25".to_owned()
}

/// A rate with no decimals, or `n/a`.
pub fn fmt_rate(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.0}"))
}

/// Microseconds with two decimals, or `n/a`.
pub fn fmt_us(us: Option<f64>) -> String {
    us.map_or_else(|| "n/a".to_owned(), |us| format!("{us:.2}"))
}

/// The environment variable `name` parsed (`_` allowed as a digit separator),
/// `None` when unset; an
/// error naming it when it does not parse.
pub fn env_parse<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .replace('_', "")
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={text:?} is not a valid number")),
        Err(_) => Ok(None),
    }
}

/// Size of every payload of the benches through a broker (e2e, source).
pub const SEQ_PAYLOAD_LEN: usize = 100;
/// Leading payload bytes holding the sequence number (u64, big endian).
pub const SEQ_LEN: usize = 8;

/// The sequence number of a payload, if it is one of ours.
pub fn seq_of(payload: &[u8]) -> Option<u64> {
    if payload.len() != SEQ_PAYLOAD_LEN {
        return None;
    }
    let head: [u8; SEQ_LEN] = payload.get(..SEQ_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// A receiver's count of what arrived, by sequence number `0..expected`.
#[derive(Debug)]
pub struct SeqTracker {
    /// Receipts per sequence number (saturating).
    seen: Vec<u8>,
    expected: u64,
    received: u64,
    unique: u64,
    invalid: u64,
    reordered: u64,
    highest: Option<u64>,
}

impl SeqTracker {
    /// A tracker expecting sequence numbers `0..expected`.
    pub fn new(expected: u64) -> Self {
        Self {
            seen: vec![0; usize::try_from(expected).unwrap_or(usize::MAX)],
            expected,
            received: 0,
            unique: 0,
            invalid: 0,
            reordered: 0,
            highest: None,
        }
    }

    /// Counts one payload; true when it was the last distinct one expected.
    pub fn record(&mut self, payload: &[u8]) -> bool {
        self.received += 1;
        let slot = seq_of(payload).and_then(|seq| {
            let index = usize::try_from(seq).ok()?;
            self.seen.get_mut(index).map(|slot| (seq, slot))
        });
        let Some((seq, slot)) = slot else {
            self.invalid += 1;
            return false;
        };
        let first = *slot == 0;
        *slot = slot.saturating_add(1);
        if !first {
            return false;
        }
        self.unique += 1;
        match self.highest {
            Some(highest) if seq < highest => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        self.unique == self.expected
    }

    /// Every message arrived.
    pub fn complete(&self) -> bool {
        self.unique == self.expected
    }

    /// Every PUBLISH received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The counts.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            expected: self.expected,
            received: self.received,
            unique: self.unique,
            duplicates: self.received - self.unique - self.invalid,
            missing: self.expected - self.unique,
            invalid: self.invalid,
            reordered: self.reordered,
        }
    }
}

/// What a receiver got, by sequence number.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// Messages sent.
    pub expected: u64,
    /// Every PUBLISH received.
    pub received: u64,
    /// Distinct valid sequence numbers received.
    pub unique: u64,
    /// Receipts of an already received sequence number.
    pub duplicates: u64,
    /// Sequence numbers never received.
    pub missing: u64,
    /// Payloads of the wrong size or with a sequence number out of range.
    pub invalid: u64,
    /// First receipts of a sequence number below the highest received before.
    pub reordered: u64,
}

impl Delivery {
    /// Nothing received out of `expected`.
    pub fn none(expected: u64) -> Self {
        Self {
            expected,
            received: 0,
            unique: 0,
            duplicates: 0,
            missing: expected,
            invalid: 0,
            reordered: 0,
        }
    }
}
