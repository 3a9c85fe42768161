//! The simulated sensor fleet of the quickstart: devices on sites, each sending
//! readings with a sequence number and its send time. Every tenth reading of a
//! device is an alert at QoS 2, the others telemetry at QoS 1. Values follow a
//! slow daily-like wave plus noise, derived from (device, seq) so that a
//! reading sent again is the same reading.

use bytes::Bytes;
use mqtt_source::client::codec::property::PublishProperties;
use mqtt_source::client::codec::string::MqttString;
use mqtt_source::{Outgoing, QoS};
use serde::{Deserialize, Serialize};

/// Devices per site.
const PER_SITE: u32 = 25;

/// One reading to send: which device, which of its readings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub(crate) device: u32,
    pub(crate) seq: u64,
}

impl Reading {
    pub(crate) fn is_alert(&self) -> bool {
        self.seq % 10 == 9
    }
}

/// The number of readings device `d` of `devices` sends out of `total`.
pub(crate) fn readings_of(d: u32, devices: u32, total: u64) -> u64 {
    let devices = u64::from(devices.max(1));
    total / devices + u64::from(u64::from(d) < total % devices)
}

/// The readings publisher `p` of `publishers` sends, devices interleaved as a
/// fleet sends them (every device's first reading, then every second, ...).
pub(crate) fn schedule(
    p: u32,
    publishers: u32,
    devices: u32,
    total: u64,
) -> impl Iterator<Item = Reading> {
    let mine: Vec<u32> = (0..devices)
        .filter(|d| d % publishers.max(1) == p)
        .collect();
    let rounds = readings_of(0, devices, total);
    (0..rounds).flat_map(move |seq| {
        mine.clone()
            .into_iter()
            .filter(move |&d| seq < readings_of(d, devices, total))
            .map(move |device| Reading { device, seq })
    })
}

/// What a device sends, as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub(crate) device: String,
    pub(crate) site: String,
    pub(crate) seq: u64,
    /// Microseconds since the Unix epoch when it was sent.
    pub(crate) sent_at_us: u64,
    pub(crate) kind: String,
    pub(crate) temperature_c: f64,
    pub(crate) humidity_pct: f64,
    pub(crate) pressure_hpa: f64,
    pub(crate) battery_v: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alert: Option<String>,
}

pub(crate) fn device_name(d: u32) -> String {
    format!("sensor-{d:05}")
}

/// The device index of a name written by [`device_name`].
pub(crate) fn device_index(name: &str) -> Option<u32> {
    name.strip_prefix("sensor-")?.parse().ok()
}

fn site_name(d: u32) -> String {
    format!("plant-{}", d / PER_SITE + 1)
}

/// A number in [0, 1) from (device, seq, salt): splitmix64.
fn noise(device: u32, seq: u64, salt: u64) -> f64 {
    let mut z = (u64::from(device) << 40) ^ seq ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The message of a reading, stamped with the time now.
pub(crate) fn message(reading: Reading) -> Outgoing {
    let Reading { device, seq } = reading;
    let phase = seq as f64 / 50.0 + f64::from(device);
    let temperature =
        20.0 + f64::from(device % 7) + 4.0 * phase.sin() + noise(device, seq, 1) - 0.5;
    let alert = reading.is_alert();
    let payload = Payload {
        device: device_name(device),
        site: site_name(device),
        seq,
        sent_at_us: crate::time::unix_micros(std::time::SystemTime::now()),
        kind: if alert { "alert" } else { "telemetry" }.to_owned(),
        temperature_c: round(temperature, 2),
        humidity_pct: round(
            40.0 + 15.0 * (phase / 3.0).cos() + 2.0 * noise(device, seq, 2),
            1,
        ),
        pressure_hpa: round(1013.0 + 5.0 * noise(device, seq, 3) - 2.5, 1),
        battery_v: round(
            4.1 - 0.6 * (seq as f64 / 100_000.0).min(1.0) - 0.05 * noise(device, seq, 4),
            3,
        ),
        alert: alert.then(|| {
            if temperature > 24.0 {
                "temperature_high".to_owned()
            } else {
                "heartbeat_missed".to_owned()
            }
        }),
    };
    let kind = if alert { "alerts" } else { "telemetry" };
    let topic = format!("fleet/{}/{}/{kind}", payload.site, payload.device);
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let properties = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: MqttString::try_from("application/json").ok(),
        ..PublishProperties::default()
    };
    Outgoing::new(topic, Bytes::from(body))
        .with_qos(if alert {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        })
        .with_properties(properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_covers_every_reading_once() {
        let (devices, total, publishers) = (7, 103, 3);
        let mut all: Vec<(u32, u64)> = (0..publishers)
            .flat_map(|p| schedule(p, publishers, devices, total))
            .map(|r| (r.device, r.seq))
            .collect();
        assert_eq!(all.len(), 103);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 103);
        let sum: u64 = (0..devices).map(|d| readings_of(d, devices, total)).sum();
        assert_eq!(sum, total);
    }

    #[test]
    fn a_message_is_valid_json_with_its_reading() {
        let m = message(Reading {
            device: 42,
            seq: 19,
        });
        assert_eq!(m.qos, QoS::ExactlyOnce);
        assert!(
            m.topic.starts_with("fleet/plant-2/sensor-00042/alerts"),
            "{}",
            m.topic
        );
        let p: Payload = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!((device_index(&p.device), p.seq), (Some(42), 19));
        assert!(p.alert.is_some());
        let m = message(Reading { device: 1, seq: 0 });
        assert_eq!(m.qos, QoS::AtLeastOnce);
        assert!(m.topic.ends_with("/telemetry"));
    }
}
