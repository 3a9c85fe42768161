//! PUBACK, PUBREC, PUBREL and PUBCOMP (MQTT 5, 3.4-3.7): one shape, four packet types.

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::AckProperties;
use crate::reason::ReasonCode;
use crate::wire::Reader;
use crate::{PacketId, ProtocolVersion};

/// The body of PUBACK, PUBREC, PUBREL and PUBCOMP; [`Packet`](crate::Packet) says
/// which. In MQTT 3.1.1 only the packet identifier exists: `reason_code` must be
/// Success and `properties` empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    /// The identifier of the PUBLISH (or PUBREL) being answered.
    pub packet_id: PacketId,
    /// The reason code (MQTT 5). Success is encoded in the short form.
    pub reason_code: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: AckProperties,
}

impl PubAck {
    /// A successful acknowledgement with no properties.
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::SUCCESS,
            properties: AckProperties::default(),
        }
    }

    pub(crate) fn decode(
        r: &mut Reader,
        packet_type: PacketType,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut ack = Self::new(packet_id);
        if version == ProtocolVersion::V311 {
            return Ok(ack);
        }
        // MQTT 5, 3.4.2.1: a Remaining Length of 2 means Success and no properties;
        // with no Property Length the properties are empty (3.4.2.2.1).
        if r.is_empty() {
            return Ok(ack);
        }
        let code = r.u8()?;
        ack.reason_code = ReasonCode(code);
        if !ack.reason_code.is_valid_in_v5(packet_type) {
            return Err(DecodeError::InvalidReasonCode { packet_type, code });
        }
        if !r.is_empty() {
            ack.properties = AckProperties::decode(r, packet_type)?;
        }
        Ok(ack)
    }

    pub(crate) fn body_len(
        &self,
        packet_type: PacketType,
        version: ProtocolVersion,
    ) -> Result<usize, EncodeError> {
        match version {
            ProtocolVersion::V311 => {
                if self.reason_code != ReasonCode::SUCCESS || !self.properties.is_empty() {
                    return Err(EncodeError::NotInVersion);
                }
                Ok(2)
            }
            ProtocolVersion::V5 => {
                if !self.reason_code.is_valid_in_v5(packet_type) {
                    let code = self.reason_code.0;
                    return Err(DecodeError::InvalidReasonCode { packet_type, code }.into());
                }
                if self.properties.is_empty() {
                    if self.reason_code == ReasonCode::SUCCESS {
                        Ok(2)
                    } else {
                        Ok(3)
                    }
                } else {
                    Ok(3 + self.properties.encoded_len()?)
                }
            }
        }
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        buf.put_u16(self.packet_id.get());
        if version == ProtocolVersion::V5 {
            let short = self.properties.is_empty();
            if !(short && self.reason_code == ReasonCode::SUCCESS) {
                buf.put_u8(self.reason_code.0);
            }
            if !short {
                self.properties.encode(buf)?;
            }
        }
        Ok(())
    }
}
