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
        // The only short form: a Remaining Length of 0 means Success and no
        // properties (3.15.2.1). Unlike DISCONNECT and PUBACK, a reason code alone
        // (Remaining Length 1) is not allowed: the Property Length must follow.
        if r.is_empty() {
            return Ok(packet);
        }
        let code = r.u8()?;
        packet.reason_code = ReasonCode(code);
        if !packet.reason_code.is_valid_in_v5(PacketType::Auth) {
            return Err(DecodeError::InvalidReasonCode {
                packet_type: PacketType::Auth,
                code,
            });
        }
        let p = AuthProperties::decode(r, PacketType::Auth)?;
        check_method(&p)?;
        packet.properties = p;
        Ok(packet)
    }

    /// Whether the short form (Remaining Length 0) encodes this packet.
    fn is_short(&self) -> bool {
        self.reason_code == ReasonCode::SUCCESS && self.properties.is_empty()
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if version == ProtocolVersion::V311 {
            return Err(EncodeError::NotInVersion);
        }
        if !self.reason_code.is_valid_in_v5(PacketType::Auth) {
            let code = self.reason_code.0;
            return Err(DecodeError::InvalidReasonCode {
                packet_type: PacketType::Auth,
                code,
            }
            .into());
        }
        if self.is_short() {
            return Ok(0);
        }
        check_method(&self.properties)?;
        Ok(1 + self.properties.encoded_len()?)
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) -> Result<(), EncodeError> {
        if !self.is_short() {
            buf.put_u8(self.reason_code.0);
            self.properties.encode(buf)?;
        }
        Ok(())
    }
}

/// MQTT 5, 3.15.2.2.2: "It is a Protocol Error to omit the Authentication Method"
/// (duplicates are refused by the property decoder).
fn check_method(p: &AuthProperties) -> Result<(), DecodeError> {
    if p.authentication_method.is_none() {
        return Err(DecodeError::AuthWithoutMethod);
    }
    Ok(())
}
