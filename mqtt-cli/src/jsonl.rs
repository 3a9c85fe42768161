//! The JSON line of one message, as `consume` writes it and `publish --format
//! json` reads it back:
//!
//! ```json
//! {"topic":"plant/1/temp","qos":1,"retain":false,"dup":false,
//!  "received_at":"2026-12-03T14:05:09.123456Z",
//!  "properties":{"content_type":"application/json","user_properties":[["site","1"]]},
//!  "encoding":"utf8","payload":"{\"c\":21.5}"}
//! ```
//!
//! `encoding` is `utf8` (the payload as text) or `base64` (standard alphabet,
//! padded). `properties` is left out when the message has none; in it,
//! `correlation_data` is always base64, `user_properties` a list of name-value
//! pairs in order (names may repeat).

use std::borrow::Cow;

use base64::Engine as _;
use bytes::Bytes;
use mqtt_source::client::codec::property::{PublishProperties, UserProperty};
use mqtt_source::client::codec::string::MqttString;
use mqtt_source::{Message, Outgoing, QoS};
use serde::{Deserialize, Serialize};

use crate::cli::PayloadMode;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Serialize)]
struct LineOut<'a> {
    topic: &'a str,
    qos: u8,
    retain: bool,
    dup: bool,
    received_at: String,
    #[serde(skip_serializing_if = "PropsOut::is_empty")]
    properties: PropsOut<'a>,
    encoding: &'static str,
    payload: Cow<'a, str>,
}

#[derive(Serialize, Default)]
struct PropsOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    user_properties: Vec<[&'a str; 2]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subscription_identifiers: Vec<u32>,
}

impl PropsOut<'_> {
    fn is_empty(&self) -> bool {
        self.content_type.is_none()
            && self.payload_format.is_none()
            && self.message_expiry.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
            && self.subscription_identifiers.is_empty()
    }
}

/// Appends the JSON line of `message` (with its newline) to `out`.
pub(crate) fn write_line(out: &mut Vec<u8>, message: &Message, mode: PayloadMode) {
    let payload = message.payload();
    let (encoding, text) = match (mode, std::str::from_utf8(payload)) {
        (PayloadMode::Auto, Ok(text)) => ("utf8", Cow::Borrowed(text)),
        _ => ("base64", Cow::Owned(B64.encode(payload))),
    };
    let line = LineOut {
        topic: message.topic(),
        qos: crate::common::qos_number(message.qos()),
        retain: message.retain(),
        dup: message.dup(),
        received_at: crate::time::rfc3339(message.received_at()),
        properties: PropsOut {
            content_type: message.content_type(),
            payload_format: message.payload_format(),
            message_expiry: message.message_expiry(),
            response_topic: message.response_topic(),
            correlation_data: message.correlation_data().map(|d| B64.encode(d)),
            user_properties: message.user_properties().map(|(k, v)| [k, v]).collect(),
            subscription_identifiers: message.subscription_identifiers().to_vec(),
        },
        encoding,
        payload: text,
    };
    // Writing JSON into a Vec cannot fail (every key is a string).
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
}

/// A JSON line read back.
#[derive(Debug, Deserialize)]
pub(crate) struct Line {
    pub(crate) topic: String,
    #[serde(default)]
    pub(crate) qos: u8,
    #[serde(default)]
    pub(crate) retain: bool,
    #[serde(default)]
    pub(crate) properties: PropsIn,
    #[serde(default = "utf8")]
    pub(crate) encoding: String,
    pub(crate) payload: String,
}

fn utf8() -> String {
    "utf8".to_owned()
}

/// The properties of a line read back (subscription identifiers are the
/// receiver's, never published, so they are read and left out).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PropsIn {
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    payload_format: Option<u8>,
    #[serde(default)]
    message_expiry: Option<u32>,
    #[serde(default)]
    response_topic: Option<String>,
    #[serde(default)]
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: Vec<(String, String)>,
    #[serde(default)]
    #[allow(dead_code)]
    subscription_identifiers: Vec<u32>,
}

impl Line {
    /// Parses one line.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a JSON line of `consume`: {e}"))
    }

    /// The message it describes.
    pub(crate) fn into_outgoing(self) -> Result<Outgoing, String> {
        let payload = match self.encoding.as_str() {
            "utf8" => Bytes::from(self.payload.into_bytes()),
            "base64" => Bytes::from(
                B64.decode(self.payload.as_bytes())
                    .map_err(|e| format!("payload: not base64: {e}"))?,
            ),
            other => return Err(format!("encoding `{other}`: utf8 or base64")),
        };
        let qos = QoS::from_u8(self.qos).ok_or_else(|| format!("qos {}: 0, 1 or 2", self.qos))?;
        let p = self.properties;
        let mut properties = PublishProperties {
            payload_format_indicator: p.payload_format,
            message_expiry_interval: p.message_expiry,
            ..PublishProperties::default()
        };
        properties.content_type = p.content_type.map(mqtt_string).transpose()?;
        properties.response_topic = p.response_topic.map(mqtt_string).transpose()?;
        properties.correlation_data = p
            .correlation_data
            .map(|d| {
                B64.decode(d.as_bytes())
                    .map(Bytes::from)
                    .map_err(|e| format!("correlation_data: not base64: {e}"))
            })
            .transpose()?;
        for (name, value) in &p.user_properties {
            properties.user_properties.push(user_property(name, value)?);
        }
        let mut outgoing = Outgoing::new(self.topic, payload)
            .with_qos(qos)
            .with_retain(self.retain);
        if properties != PublishProperties::default() {
            outgoing = outgoing.with_properties(properties);
        }
        Ok(outgoing)
    }
}

pub(crate) fn mqtt_string(s: String) -> Result<MqttString, String> {
    MqttString::try_from(s).map_err(|e| format!("not an MQTT string: {e}"))
}

pub(crate) fn user_property(name: &str, value: &str) -> Result<UserProperty, String> {
    UserProperty::new(name, value).map_err(|e| format!("user property `{name}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_read_back() {
        let line = Line::parse(
            r#"{"topic":"a/b","qos":2,"retain":true,"dup":false,"received_at":"x","properties":{"content_type":"text/plain","user_properties":[["k","v"],["k","w"]],"correlation_data":"AAE=","subscription_identifiers":[3]},"encoding":"base64","payload":"AP8="}"#,
        )
        .unwrap();
        let out = line.into_outgoing().unwrap();
        assert_eq!(out.topic, "a/b");
        assert_eq!(out.qos, QoS::ExactlyOnce);
        assert!(out.retain);
        assert_eq!(&out.payload[..], &[0x00, 0xff]);
        let p = out.properties.unwrap();
        assert_eq!(p.content_type.unwrap().as_str(), "text/plain");
        assert_eq!(p.correlation_data.unwrap().as_ref(), &[0, 1]);
        assert_eq!(p.user_properties.len(), 2);
        assert!(p.subscription_identifiers.is_empty());
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(Line::parse("not json").is_err());
        assert!(Line::parse(r#"{"payload":"x"}"#)
            .unwrap_err()
            .contains("topic"));
        let bad = Line::parse(r#"{"topic":"a","encoding":"base64","payload":"!!"}"#).unwrap();
        assert!(bad.into_outgoing().unwrap_err().contains("base64"));
        let bad = Line::parse(r#"{"topic":"a","qos":3,"payload":""}"#).unwrap();
        assert!(bad.into_outgoing().unwrap_err().contains("qos"));
    }
}
