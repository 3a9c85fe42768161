//! The packets that open and close a connection: CONNECT from the options, and
//! DISCONNECT.

use mqtt_codec::packet::{Connect, Packet};
use mqtt_codec::property::{ConnectProperties, DisconnectProperties};
use mqtt_codec::reason::ReasonCode;
use mqtt_codec::string::MqttString;
use mqtt_codec::ProtocolVersion;

use super::Engine;
use crate::error::{ConnectionError, RequestError};
use crate::options::Options;

impl<T> Engine<T> {
    pub(super) fn build_connect(&mut self) -> Result<Connect, ConnectionError> {
        // Reconnections resume the session (MQTT 5); a 3.1.1 client keeps its
        // configured Clean Session, since 0 there makes the session outlive the
        // connection, which the application did not ask for.
        let clean_start = match (self.version, self.had_session) {
            (ProtocolVersion::V5, true) => false,
            _ => self.opts.clean_start,
        };
        self.sent_clean_start = clean_start;
        let mut connect = connect_packet(&self.opts, &self.client_id, clean_start)?;
        if self.auth.is_some() && self.version != ProtocolVersion::V5 {
            return Err(ConnectionError::InvalidOptions(
                "enhanced authentication (an authenticator) needs MQTT 5".to_owned(),
            ));
        }
        if let Some((method, data)) = self.connect_authentication()? {
            connect.properties.authentication_method = Some(method);
            connect.properties.authentication_data = data;
            // The method and data must still fit the packet.
            Packet::Connect(Box::new(connect.clone()))
                .encoded_len(self.version)
                .map_err(|e| ConnectionError::InvalidOptions(format!("CONNECT: {e}")))?;
        }
        Ok(connect)
    }
}

impl Options {
    /// Checks that these options make a CONNECT that encodes (identifiers and user
    /// name without U+0000 and within 65,535 bytes, a will and properties that
    /// fit), so that a misconfiguration is an error at start, not a silent loop.
    /// [`crate::Client::connect`] and [`crate::Client::start`] call it.
    pub fn validate(&self) -> Result<(), ConnectionError> {
        connect_packet(self, &self.client_id, self.clean_start).map(|_| ())
    }
}

/// The DISCONNECT an application asks for, refused when the reason code is not
/// valid in DISCONNECT or the properties do not encode. 3.1.1's DISCONNECT has
/// neither: they are left out.
pub(crate) fn disconnect_packet(
    version: ProtocolVersion,
    reason: ReasonCode,
    properties: DisconnectProperties,
) -> Result<Packet, RequestError> {
    let (reason, properties) = match version {
        ProtocolVersion::V5 => (reason, properties),
        ProtocolVersion::V311 => (
            ReasonCode::NORMAL_DISCONNECTION,
            DisconnectProperties::EMPTY,
        ),
    };
    let packet = Packet::Disconnect(Box::new(mqtt_codec::packet::Disconnect {
        reason_code: reason,
        properties,
    }));
    packet.encoded_len(version).map_err(RequestError::Encode)?;
    Ok(packet)
}

/// The CONNECT `opts` ask for, validated by encoding it.
fn connect_packet(
    opts: &Options,
    client_id: &str,
    clean_start: bool,
) -> Result<Connect, ConnectionError> {
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        ConnectionError::InvalidOptions(format!("{what}: {e}"))
    };
    let mut properties = ConnectProperties::EMPTY;
    if opts.version == ProtocolVersion::V5 {
        properties.session_expiry_interval = opts.session_expiry_interval;
        if opts.receive_maximum != u16::MAX {
            properties.receive_maximum = Some(opts.receive_maximum.max(1));
        }
        if opts.maximum_packet_size < mqtt_codec::MAX_PACKET_SIZE {
            properties.maximum_packet_size = Some(opts.maximum_packet_size.max(1));
        }
        if opts.topic_alias_maximum > 0 {
            properties.topic_alias_maximum = Some(opts.topic_alias_maximum);
        }
        if opts.request_response_information {
            properties.request_response_information = Some(true);
        }
        properties.request_problem_information = opts.request_problem_information;
        for (name, value) in &opts.user_properties {
            let property = mqtt_codec::property::UserProperty::new(name, value)
                .map_err(|e| invalid("user property", &e))?;
            properties.user_properties.push(property);
        }
    }
    // [MQTT-3.1.3-7]: in 3.1.1 a zero-byte ClientId needs CleanSession 1 (MQTT 5
    // lets the server assign one for a persistent session).
    if opts.version == ProtocolVersion::V311 && client_id.is_empty() && !clean_start {
        return Err(ConnectionError::InvalidOptions(
            "client id: MQTT 3.1.1 needs a client id for a persistent session (clean_start false)"
                .to_owned(),
        ));
    }
    if let Some(will) = &opts.will {
        // A server refuses it with 0x99 (3.1.3.2.3): found at start instead.
        if will.properties.payload_format_indicator == Some(1)
            && std::str::from_utf8(&will.payload).is_err()
        {
            return Err(ConnectionError::InvalidOptions(
                "will: the payload is not UTF-8 and its Payload Format Indicator says it is"
                    .to_owned(),
            ));
        }
    }
    let client_id = MqttString::try_from(client_id).map_err(|e| invalid("client id", &e))?;
    let username = match opts.username.as_deref() {
        Some(u) => Some(MqttString::try_from(u).map_err(|e| invalid("user name", &e))?),
        None => None,
    };
    let connect = Connect {
        protocol_version: opts.version,
        client_id,
        clean_start,
        keep_alive: opts.keep_alive,
        username,
        password: opts.password.clone(),
        will: opts.will.clone(),
        properties,
    };
    let packet = Packet::Connect(Box::new(connect));
    packet
        .encoded_len(opts.version)
        .map_err(|e| invalid("CONNECT", &e))?;
    match packet {
        Packet::Connect(connect) => Ok(*connect),
        _ => Err(ConnectionError::InvalidOptions("CONNECT".to_owned())),
    }
}
