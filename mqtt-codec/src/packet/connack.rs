//! CONNACK (MQTT 5, 3.2; MQTT 3.1.1, 3.2).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::ConnAckProperties;
use crate::reason::ReasonCode;
use crate::wire::Reader;
use crate::ProtocolVersion;

/// The server's answer to CONNECT. In MQTT 3.1.1 the return code (0-5) is held as its
/// MQTT 5 equivalent (see [`ReasonCode::from_v311_connack`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present.
    pub session_present: bool,
    /// Connect Reason Code (5.0) or Return Code (3.1.1).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        // [MQTT-3.2.2-1] Bits 7-1 of the Connect Acknowledge Flags are reserved.
        if flags & 0xFE != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let session_present = flags & 1 != 0;
        let code = r.u8()?;
        let invalid = DecodeError::InvalidReasonCode {
            packet_type: PacketType::ConnAck,
            code,
        };
        let (reason_code, properties) = match version {
            ProtocolVersion::V311 => (
                ReasonCode::from_v311_connack(code).ok_or(invalid)?,
                ConnAckProperties::default(),
            ),
            ProtocolVersion::V5 => {
                let reason_code = ReasonCode(code);
                if !reason_code.is_valid_in_v5(PacketType::ConnAck) {
                    return Err(invalid);
                }
                let p = ConnAckProperties::decode(r, PacketType::ConnAck)?;
                if p.authentication_data.is_some() && p.authentication_method.is_none() {
                    return Err(DecodeError::AuthDataWithoutMethod);
                }
                (reason_code, p)
            }
        };
        // [MQTT-3.2.2-4] (3.1.1) / [MQTT-3.2.2-6] (5.0): a refused connection has no
        // session.
        if session_present && !reason_code.is_success() {
            return Err(DecodeError::SessionPresentOnError);
        }
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if !self.reason_code.is_valid_in(PacketType::ConnAck, version) {
            return Err(if version == ProtocolVersion::V311 {
                EncodeError::NotInVersion
            } else {
                let code = self.reason_code.0;
                DecodeError::InvalidReasonCode {
                    packet_type: PacketType::ConnAck,
                    code,
                }
                .into()
            });
        }
        if self.session_present && !self.reason_code.is_success() {
            return Err(DecodeError::SessionPresentOnError.into());
        }
        match version {
            ProtocolVersion::V311 => {
                if !self.properties.is_empty() {
                    return Err(EncodeError::NotInVersion);
                }
                Ok(2)
            }
            ProtocolVersion::V5 => {
                let p = &self.properties;
                if p.authentication_data.is_some() && p.authentication_method.is_none() {
                    return Err(DecodeError::AuthDataWithoutMethod.into());
                }
                Ok(2 + p.encoded_len()?)
            }
        }
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        buf.put_u8(u8::from(self.session_present));
        match version {
            ProtocolVersion::V311 => {
                // Checked by body_len.
                buf.put_u8(self.reason_code.to_v311_connack().unwrap_or(0));
            }
            ProtocolVersion::V5 => {
                buf.put_u8(self.reason_code.0);
                self.properties.encode(buf)?;
            }
        }
        Ok(())
    }
}
