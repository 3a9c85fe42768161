//! AUTH (MQTT 5, 3.15). Does not exist in MQTT 3.1.1.

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::AuthProperties;
use crate::reason::ReasonCode;
use crate::wire::Reader;
use crate::ProtocolVersion;

/// An extended authentication exchange step (MQTT 5 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Success (0x00), Continue authentication (0x18) or Re-authenticate (0x19).
    pub reason_code: ReasonCode,
    /// Properties; Authentication Data is redacted in `Debug`.
    pub properties: AuthProperties,
}

impl Auth {
    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut packet = Self::default();
        // A Remaining Length of 0 means Success and no properties (3.15.2.1).
        if r.is_empty() {
            return Ok(packet);
        }
        let code = r.u8()?;
        packet.reason_code = ReasonCode(code);
        if !packet.reason_code.is_valid_for(PacketType::Auth) {
            return Err(DecodeError::InvalidReasonCode {
                packet_type: PacketType::Auth,
                code,
            });
        }
        if !r.is_empty() {
            let p = AuthProperties::decode(r, PacketType::Auth)?;
            if p.authentication_data.is_some() && p.authentication_method.is_none() {
                return Err(DecodeError::AuthDataWithoutMethod);
            }
            packet.properties = p;
        }
        Ok(packet)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if version == ProtocolVersion::V311 {
            return Err(EncodeError::NotInVersion);
        }
        if !self.reason_code.is_valid_for(PacketType::Auth) {
            let code = self.reason_code.0;
            return Err(DecodeError::InvalidReasonCode {
                packet_type: PacketType::Auth,
                code,
            }
            .into());
        }
        let p = &self.properties;
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod.into());
        }
        if !p.is_empty() {
            Ok(1 + p.encoded_len()?)
        } else if self.reason_code != ReasonCode::SUCCESS {
            Ok(1)
        } else {
            Ok(0)
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        let has_properties = !self.properties.is_empty();
        if has_properties || self.reason_code != ReasonCode::SUCCESS {
            buf.put_u8(self.reason_code.0);
        }
        if has_properties {
            self.properties.encode(buf)?;
        }
        Ok(())
    }
}
