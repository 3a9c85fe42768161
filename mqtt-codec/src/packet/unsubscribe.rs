//! UNSUBSCRIBE (MQTT 5, 3.10; MQTT 3.1.1, 3.10).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::subscribe::check_filter;
use crate::packet::PacketType;
use crate::property::UnsubscribeProperties;
use crate::string::MqttString;
use crate::wire::{self, Reader};
use crate::{PacketId, ProtocolVersion};

/// A request to remove subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: UnsubscribeProperties,
    /// Topic filters; at least one [MQTT-3.10.3-2].
    pub filters: Vec<MqttString>,
}

impl Unsubscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = match version {
            ProtocolVersion::V5 => UnsubscribeProperties::decode(r, PacketType::Unsubscribe)?,
            ProtocolVersion::V311 => UnsubscribeProperties::default(),
        };
        let mut filters = Vec::with_capacity(r.count_fields(0));
        while !r.is_empty() {
            let filter = r.string()?;
            check_filter(&filter, version)?;
            filters.push(filter);
        }
        // [MQTT-3.10.3-2] At least one topic filter.
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters);
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.filters.is_empty() {
            return Err(DecodeError::NoTopicFilters.into());
        }
        let mut len = 2;
        match version {
            ProtocolVersion::V5 => len += self.properties.encoded_len()?,
            ProtocolVersion::V311 => {
                if !self.properties.is_empty() {
                    return Err(EncodeError::NotInVersion);
                }
            }
        }
        for filter in &self.filters {
            check_filter(filter, version)?;
            len += wire::binary_len(filter.len())?;
        }
        Ok(len)
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if version == ProtocolVersion::V5 {
            self.properties.encode(buf)?;
        }
        for filter in &self.filters {
            wire::put_binary(buf, filter.as_bytes());
        }
        Ok(())
    }
}
