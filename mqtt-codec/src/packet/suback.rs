//! SUBACK and UNSUBACK (MQTT 5, 3.9 and 3.11; MQTT 3.1.1, 3.9 and 3.11).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::AckProperties;
use crate::reason::ReasonCode;
use crate::wire::Reader;
use crate::{PacketId, ProtocolVersion};

/// The answer to SUBSCRIBE: one reason code per topic filter, in order. Success codes
/// are the granted QoS (0x00, 0x01, 0x02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: AckProperties,
    /// One code per filter. 3.1.1 allows only 0x00, 0x01, 0x02 and 0x80.
    pub reason_codes: Vec<ReasonCode>,
}

/// The answer to UNSUBSCRIBE. In MQTT 3.1.1 it has no payload: `reason_codes` is
/// empty; in MQTT 5 it holds one code per filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: AckProperties,
    /// One code per filter (MQTT 5); empty for 3.1.1.
    pub reason_codes: Vec<ReasonCode>,
}

/// Decodes the common shape: packet identifier, properties (5.0), reason codes.
fn decode_ack(
    r: &mut Reader,
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<(PacketId, AckProperties, Vec<ReasonCode>), DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = match version {
        ProtocolVersion::V5 => AckProperties::decode(r, packet_type)?,
        ProtocolVersion::V311 => AckProperties::default(),
    };
    let mut codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8()?;
        let reason_code = ReasonCode(code);
        if !reason_code.is_valid_in(packet_type, version) {
            return Err(DecodeError::InvalidReasonCode { packet_type, code });
        }
        codes.push(reason_code);
    }
    Ok((packet_id, properties, codes))
}

fn ack_body_len(
    properties: &AckProperties,
    codes: &[ReasonCode],
    packet_type: PacketType,
    version: ProtocolVersion,
) -> Result<usize, EncodeError> {
    for code in codes {
        if !code.is_valid_in(packet_type, version) {
            return Err(if version == ProtocolVersion::V311 {
                EncodeError::NotInVersion
            } else {
                DecodeError::InvalidReasonCode {
                    packet_type,
                    code: code.0,
                }
                .into()
            });
        }
    }
    match version {
        ProtocolVersion::V5 => Ok(2 + properties.encoded_len()? + codes.len()),
        ProtocolVersion::V311 => {
            if properties.is_empty() {
                Ok(2 + codes.len())
            } else {
                Err(EncodeError::NotInVersion)
            }
        }
    }
}

fn encode_ack(
    buf: &mut impl BufMut,
    packet_id: PacketId,
    properties: &AckProperties,
    codes: &[ReasonCode],
    version: ProtocolVersion,
) -> Result<(), EncodeError> {
    buf.put_u16(packet_id.get());
    if version == ProtocolVersion::V5 {
        properties.encode(buf)?;
    }
    for code in codes {
        buf.put_u8(code.0);
    }
    Ok(())
}

impl SubAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let (packet_id, properties, reason_codes) = decode_ack(r, PacketType::SubAck, version)?;
        // One code per filter of a SUBSCRIBE, which has at least one [MQTT-3.9.3-1].
        if reason_codes.is_empty() {
            return Err(DecodeError::NoReasonCodes);
        }
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        if self.reason_codes.is_empty() {
            return Err(DecodeError::NoReasonCodes.into());
        }
        ack_body_len(
            &self.properties,
            &self.reason_codes,
            PacketType::SubAck,
            version,
        )
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        encode_ack(
            buf,
            self.packet_id,
            &self.properties,
            &self.reason_codes,
            version,
        )
    }
}

impl UnsubAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        if version == ProtocolVersion::V311 {
            // 3.1.1: the UNSUBACK has no payload (3.11.3): any byte after the
            // identifier is trailing, whatever its value (not a reason code).
            let packet_id = r.packet_id()?;
            r.finish()?;
            return Ok(Self {
                packet_id,
                properties: AckProperties::default(),
                reason_codes: Vec::new(),
            });
        }
        let (packet_id, properties, reason_codes) = decode_ack(r, PacketType::UnsubAck, version)?;
        // 5.0 [MQTT-3.11.3-1]: one code per filter, at least one.
        if reason_codes.is_empty() {
            return Err(DecodeError::NoReasonCodes);
        }
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        match version {
            ProtocolVersion::V311 if !self.reason_codes.is_empty() => {
                return Err(EncodeError::NotInVersion);
            }
            ProtocolVersion::V5 if self.reason_codes.is_empty() => {
                return Err(DecodeError::NoReasonCodes.into());
            }
            _ => {}
        }
        ack_body_len(
            &self.properties,
            &self.reason_codes,
            PacketType::UnsubAck,
            version,
        )
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        encode_ack(
            buf,
            self.packet_id,
            &self.properties,
            &self.reason_codes,
            version,
        )
    }
}
