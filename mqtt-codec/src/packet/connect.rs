//! CONNECT (MQTT 5, 3.1; MQTT 3.1.1, 3.1).

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::{ConnectProperties, Secret, WillProperties};
use crate::string::MqttString;
use crate::wire::{self, Reader};
use crate::{topic, ProtocolVersion, QoS};

const PROTOCOL_NAME: &[u8] = b"MQTT";

/// The first packet a client sends. The protocol version is read from the packet
/// itself (its protocol level), so CONNECT decodes the same under either version.
///
/// `Debug` redacts the password and authentication data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol level: 4 (3.1.1) or 5 (5.0).
    pub protocol_version: ProtocolVersion,
    /// Client Identifier; may be empty (the server assigns one in MQTT 5).
    pub client_id: MqttString,
    /// Clean Start (5.0) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep Alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// User Name.
    pub username: Option<MqttString>,
    /// Password (redacted in `Debug`). In 3.1.1 only with a user name [MQTT-3.1.2-22].
    pub password: Option<Secret>,
    /// The Will Message.
    pub will: Option<LastWill>,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: ConnectProperties,
}

impl Default for Connect {
    fn default() -> Self {
        Self {
            protocol_version: ProtocolVersion::V5,
            client_id: MqttString::new(),
            clean_start: true,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties::default(),
        }
    }
}

/// A Will Message: published by the server if the connection ends without a normal
/// DISCONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastWill {
    /// Will Topic: a topic name, no wildcards.
    pub topic: MqttString,
    /// Will Payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will Retain.
    pub retain: bool,
    /// Will Properties (MQTT 5); must be empty for 3.1.1.
    pub properties: WillProperties,
}

mod flag {
    pub(super) const RESERVED: u8 = 0b0000_0001;
    pub(super) const CLEAN_START: u8 = 0b0000_0010;
    pub(super) const WILL: u8 = 0b0000_0100;
    pub(super) const WILL_QOS_SHIFT: u8 = 3;
    pub(super) const WILL_QOS: u8 = 0b0001_1000;
    pub(super) const WILL_RETAIN: u8 = 0b0010_0000;
    pub(super) const PASSWORD: u8 = 0b0100_0000;
    pub(super) const USERNAME: u8 = 0b1000_0000;
}

impl Connect {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        // [MQTT-3.1.2-1] The protocol name is the UTF-8 string "MQTT".
        let name = r.binary()?;
        if name != PROTOCOL_NAME {
            return Err(DecodeError::InvalidProtocolName);
        }
        // [MQTT-3.1.2-2] Protocol level 4 (3.1.1) or 5 (5.0).
        let level = r.u8()?;
        let version = ProtocolVersion::from_level(level)
            .ok_or(DecodeError::UnsupportedProtocolVersion(level))?;
        let flags = r.u8()?;
        // [MQTT-3.1.2-3] The reserved flag must be 0.
        if flags & flag::RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & flag::WILL != 0;
        // [MQTT-3.1.2-12] Will QoS 3 is malformed.
        let will_qos = QoS::from_u8((flags & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT)
            .ok_or(DecodeError::InvalidQos)?;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        // [MQTT-3.1.2-11] [MQTT-3.1.2-13] No Will QoS or Will Retain without a Will.
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let has_username = flags & flag::USERNAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        // [MQTT-3.1.2-22] (3.1.1 only; MQTT 5 allows a password alone).
        if version == ProtocolVersion::V311 && has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = match version {
            ProtocolVersion::V5 => {
                let p = ConnectProperties::decode(r, PacketType::Connect)?;
                // MQTT 5, 3.1.2.11.10: Authentication Data without a Method is a
                // Protocol Error.
                if p.authentication_data.is_some() && p.authentication_method.is_none() {
                    return Err(DecodeError::AuthDataWithoutMethod);
                }
                p
            }
            ProtocolVersion::V311 => ConnectProperties::default(),
        };
        // Payload order: Client Identifier, Will Properties, Will Topic, Will Payload,
        // User Name, Password [MQTT-3.1.3-1].
        let client_id = r.string()?;
        let will = if has_will {
            let properties = match version {
                ProtocolVersion::V5 => WillProperties::decode(r, PacketType::Connect)?,
                ProtocolVersion::V311 => WillProperties::default(),
            };
            let topic = r.string()?;
            topic::check_topic_name(&topic)?;
            let payload = r.binary()?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(Secret(r.binary()?))
        } else {
            None
        };
        Ok(Self {
            protocol_version: version,
            client_id,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            username,
            password,
            will,
            properties,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        flags
    }

    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        let v5 = self.protocol_version == ProtocolVersion::V5;
        // Protocol name (6), level (1), flags (1), keep alive (2).
        let mut len = 10 + wire::binary_len(self.client_id.len())?;
        if v5 {
            let p = &self.properties;
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                return Err(DecodeError::AuthDataWithoutMethod.into());
            }
            len += p.encoded_len()?;
        } else {
            if !self.properties.is_empty() {
                return Err(EncodeError::NotInVersion);
            }
            if self.password.is_some() && self.username.is_none() {
                return Err(DecodeError::PasswordWithoutUsername.into());
            }
            // A zero-byte ClientId with CleanSession 0 breaks [MQTT-3.1.3-7] but is
            // well-formed: the decoder reads it (the server answers CONNACK 0x02
            // [MQTT-3.1.3-8]) and so the encoder writes it, so that what decodes
            // re-encodes (a proxy forwards it; the server refuses it). A client
            // refuses it before encoding: mqtt-client's `Options` do.
        }
        if let Some(will) = &self.will {
            topic::check_topic_name(&will.topic)?;
            len += wire::binary_len(will.topic.len())? + wire::binary_len(will.payload.len())?;
            if v5 {
                len += will.properties.encoded_len()?;
            } else if !will.properties.is_empty() {
                return Err(EncodeError::NotInVersion);
            }
        }
        if let Some(username) = &self.username {
            len += wire::binary_len(username.len())?;
        }
        if let Some(password) = &self.password {
            len += wire::binary_len(password.0.len())?;
        }
        Ok(len)
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        let v5 = self.protocol_version == ProtocolVersion::V5;
        wire::put_binary(buf, PROTOCOL_NAME);
        buf.put_u8(self.protocol_version.level());
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.encode(buf)?;
        }
        wire::put_binary(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(buf)?;
            }
            wire::put_binary(buf, will.topic.as_bytes());
            wire::put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_binary(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            wire::put_binary(buf, &password.0);
        }
        Ok(())
    }
}
