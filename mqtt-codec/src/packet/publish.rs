//! PUBLISH (MQTT 5, 3.3; MQTT 3.1.1, 3.3).

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::PublishProperties;
use crate::string::MqttString;
use crate::wire::{self, Reader};
use crate::{topic, PacketId, ProtocolVersion, QoS};

/// An application message.
///
/// `topic` and `payload` of a decoded PUBLISH are slices of the input buffer. In MQTT 5
/// the topic may be empty when `properties.topic_alias` is set (the receiver resolves
/// the alias; the codec keeps no alias table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// DUP: this may be a re-delivery. Always false for QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// The QoS level.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// The topic name: no wildcards [MQTT-3.3.2-2].
    pub topic: MqttString,
    /// Present exactly when `qos` is 1 or 2 [MQTT-2.2.1-2].
    pub packet_id: Option<PacketId>,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: PublishProperties,
    /// The payload.
    pub payload: Bytes,
}

impl Publish {
    pub(crate) fn decode(
        r: &mut Reader,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let dup = flags & 0b1000 != 0;
        let retain = flags & 0b0001 != 0;
        // [MQTT-3.3.1-4] QoS 3 is a Malformed Packet.
        let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQos)?;
        // [MQTT-3.3.1-2] DUP must be 0 for QoS 0.
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupWithQos0);
        }
        let topic = r.string()?;
        // [MQTT-3.3.2-2] no wildcards in a topic name.
        topic::check_no_wildcards(&topic)?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(r.packet_id()?),
        };
        let properties = match version {
            ProtocolVersion::V5 => PublishProperties::decode(r, PacketType::Publish)?,
            ProtocolVersion::V311 => PublishProperties::default(),
        };
        // [MQTT-4.7.3-1] (3.1.1) and [MQTT-3.3.2-1]/3.3.4 (5.0): an empty topic is
        // allowed only with a Topic Alias.
        if topic.is_empty() && properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        Ok(Self {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) if self.dup => {
                return Err(DecodeError::DupWithQos0.into());
            }
            (QoS::AtMostOnce, None) => {}
            // [MQTT-2.2.1-2] an identifier exactly when QoS > 0.
            (QoS::AtMostOnce, Some(_)) | (_, None) => return Err(EncodeError::PacketIdMismatch),
            _ => {}
        }
        topic::check_no_wildcards(&self.topic)?;
        if self.topic.is_empty() && self.properties.topic_alias.is_none() {
            return Err(DecodeError::EmptyTopicName.into());
        }
        let mut len = wire::binary_len(self.topic.len())? + self.payload.len();
        if self.packet_id.is_some() {
            len += 2;
        }
        match version {
            ProtocolVersion::V5 => len += self.properties.encoded_len()?,
            ProtocolVersion::V311 => {
                if !self.properties.is_empty() {
                    return Err(EncodeError::NotInVersion);
                }
            }
        }
        Ok(len)
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        wire::put_binary(buf, self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            buf.put_u16(id.get());
        }
        if version == ProtocolVersion::V5 {
            self.properties.encode(buf)?;
        }
        buf.put_slice(&self.payload);
        Ok(())
    }
}
