//! DISCONNECT (MQTT 5, 3.14; MQTT 3.1.1, 3.14).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::DisconnectProperties;
use crate::reason::ReasonCode;
use crate::wire::Reader;
use crate::ProtocolVersion;

/// The last packet of a connection. MQTT 3.1.1 DISCONNECT has no body: the reason code
/// must be Normal disconnection and the properties empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Disconnect Reason Code (MQTT 5).
    pub reason_code: ReasonCode,
    /// Properties (MQTT 5).
    pub properties: DisconnectProperties,
}

impl Disconnect {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let mut packet = Self::default();
        // 3.1.1 has no body (trailing bytes are refused by the caller); in MQTT 5 a
        // Remaining Length of 0 means Normal disconnection (3.14.2.1).
        if version == ProtocolVersion::V311 || r.is_empty() {
            return Ok(packet);
        }
        let code = r.u8()?;
        packet.reason_code = ReasonCode(code);
        if !packet.reason_code.is_valid_in_v5(PacketType::Disconnect) {
            return Err(DecodeError::InvalidReasonCode {
                packet_type: PacketType::Disconnect,
                code,
            });
        }
        // A Remaining Length of 1 means no properties (3.14.2.2.1).
        if !r.is_empty() {
            packet.properties = DisconnectProperties::decode(r, PacketType::Disconnect)?;
        }
        Ok(packet)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        match version {
            ProtocolVersion::V311 => {
                if self.reason_code == ReasonCode::NORMAL_DISCONNECTION
                    && self.properties.is_empty()
                {
                    Ok(0)
                } else {
                    Err(EncodeError::NotInVersion)
                }
            }
            ProtocolVersion::V5 => {
                if !self.reason_code.is_valid_in_v5(PacketType::Disconnect) {
                    let code = self.reason_code.0;
                    let packet_type = PacketType::Disconnect;
                    return Err(DecodeError::InvalidReasonCode { packet_type, code }.into());
                }
                if !self.properties.is_empty() {
                    Ok(1 + self.properties.encoded_len()?)
                } else if self.reason_code != ReasonCode::NORMAL_DISCONNECTION {
                    Ok(1)
                } else {
                    Ok(0)
                }
            }
        }
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V311 {
            return Ok(());
        }
        let has_properties = !self.properties.is_empty();
        if has_properties || self.reason_code != ReasonCode::NORMAL_DISCONNECTION {
            buf.put_u8(self.reason_code.0);
        }
        if has_properties {
            self.properties.encode(buf)?;
        }
        Ok(())
    }
}
