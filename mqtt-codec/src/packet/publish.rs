//! PUBLISH (MQTT 5, 3.3; MQTT 3.1.1, 3.3).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::PublishProperties;
use crate::string::MqttString;
use crate::wire::{self, Head, Reader};
use crate::{topic, varint, PacketId, ProtocolVersion, QoS};

/// The properties every property-less PUBLISH points to.
static NO_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

/// An application message.
///
/// `topic` and `payload` of a decoded PUBLISH are slices of the input buffer. In MQTT 5
/// the topic may be empty when a Topic Alias is set (the receiver resolves the alias;
/// the codec keeps no alias table).
///
/// Properties are boxed and optional: most telemetry PUBLISHes carry none, and a
/// small `Publish` keeps decoding fast. Decoding yields `None` for an empty property
/// list, never `Some` of an empty set; encoding treats both alike.
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
    /// MQTT 5 properties, `None` when there are none; must be empty for 3.1.1.
    pub properties: Option<Box<PublishProperties>>,
    /// The payload.
    pub payload: Bytes,
}

impl Publish {
    /// The properties (an empty set when there are none).
    pub fn properties(&self) -> &PublishProperties {
        self.properties.as_deref().unwrap_or(&NO_PROPERTIES)
    }

    /// The Topic Alias, if any.
    pub fn topic_alias(&self) -> Option<u16> {
        self.properties.as_ref().and_then(|p| p.topic_alias)
    }

    /// Properties worth writing: `None` for none or an empty set.
    fn written_properties(&self) -> Option<&PublishProperties> {
        self.properties.as_deref().filter(|p| !p.is_empty())
    }

    #[inline]
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
        // [MQTT-3.3.2-2] no wildcards; [MQTT-1.5.4-1/2] UTF-8 without U+0000.
        let topic = r.topic_name()?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(r.packet_id()?),
        };
        let properties = match version {
            ProtocolVersion::V5 => PublishProperties::decode_boxed(r, PacketType::Publish)?,
            ProtocolVersion::V311 => None,
        };
        let publish = Self {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        };
        // [MQTT-4.7.3-1] (3.1.1) and [MQTT-3.3.2-1]/3.3.4 (5.0): an empty topic is
        // allowed only with a Topic Alias.
        if publish.topic.is_empty() && publish.topic_alias().is_none() {
            return Err(DecodeError::EmptyTopicName);
        }
        Ok(publish)
    }

    pub(crate) fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    /// Validates the packet and returns its body length and that of its properties
    /// (with their length prefix; 0 for 3.1.1).
    #[inline]
    fn lengths(&self, version: ProtocolVersion) -> Result<(usize, usize), EncodeError> {
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
        if self.topic.is_empty() && self.topic_alias().is_none() {
            return Err(DecodeError::EmptyTopicName.into());
        }
        let properties = match (version, self.written_properties()) {
            (ProtocolVersion::V5, Some(p)) => p.encoded_len()?,
            (ProtocolVersion::V5, None) => 1,
            (ProtocolVersion::V311, Some(_)) => return Err(EncodeError::NotInVersion),
            (ProtocolVersion::V311, None) => 0,
        };
        let mut len = wire::binary_len(self.topic.len())? + self.payload.len() + properties;
        if self.packet_id.is_some() {
            len += 2;
        }
        Ok((len, properties))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        self.lengths(version).map(|(body, _)| body)
    }

    /// Encodes the whole packet: validates and measures, reserves once, then writes
    /// the header bytes in two batches around the topic, and the payload.
    #[inline]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let (body, _) = self.lengths(version)?;
        let body_u32 = u32::try_from(body).map_err(|_| EncodeError::PacketTooLarge)?;
        buf.reserve(1 + varint::checked_len(body)? + body);
        let mut head = Head::default();
        head.u8(((PacketType::Publish as u8) << 4) | self.flags());
        head.varint(body_u32);
        // Checked by `lengths` (binary_len).
        head.u16(u16::try_from(self.topic.len()).unwrap_or(u16::MAX));
        head.flush(buf);
        buf.put_slice(self.topic.as_bytes());
        self.encode_after_topic(buf, version, head)
    }

    /// Writes the fields after the topic: packet identifier, properties, payload.
    #[inline]
    fn encode_after_topic(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
        mut head: Head,
    ) -> Result<(), EncodeError> {
        if let Some(id) = self.packet_id {
            head.u16(id.get());
        }
        if version == ProtocolVersion::V5 {
            match self.written_properties() {
                None => head.u8(0),
                Some(p) => {
                    head.flush(buf);
                    p.encode(buf)?;
                }
            }
        }
        head.flush(buf);
        buf.put_slice(&self.payload);
        Ok(())
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        wire::put_binary(buf, self.topic.as_bytes());
        self.encode_after_topic(buf, version, Head::default())
    }
}
