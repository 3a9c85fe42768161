//! SUBSCRIBE (MQTT 5, 3.8; MQTT 3.1.1, 3.8).

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::property::SubscribeProperties;
use crate::string::MqttString;
use crate::topic::{self, SharedSubscription};
use crate::wire::{self, Head, Reader};
use crate::{PacketId, ProtocolVersion, QoS};

/// A request for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5 properties; must be empty for 3.1.1.
    pub properties: SubscribeProperties,
    /// Topic filters and their options; at least one ([MQTT-3.8.3-2] in 5.0).
    pub filters: Vec<(MqttString, SubscriptionOptions)>,
}

/// Retain Handling (MQTT 5, 3.8.3.1): when retained messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe (0).
    #[default]
    SendOnSubscribe = 0,
    /// Send them only if the subscription did not already exist (1).
    SendIfNew = 1,
    /// Do not send them (2).
    DoNotSend = 2,
}

/// Subscription Options (MQTT 5, 3.8.3.1). In MQTT 3.1.1 only `qos` exists; the
/// other fields must keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local: do not send this client's own messages back.
    pub no_local: bool,
    /// Retain As Published: keep the RETAIN flag when forwarding.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this QoS and everything else default.
    pub fn qos(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = match version {
            // 3.1.1 [MQTT-3.8.3-4]: bits 7-2 reserved.
            ProtocolVersion::V311 => 0b1111_1100,
            // 5.0 [MQTT-3.8.3-5]: bits 7-6 reserved.
            ProtocolVersion::V5 => 0b1100_0000,
        };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionOptionsReservedBits);
        }
        let qos = QoS::from_u8(byte & 0b11).ok_or(match version {
            // 3.1.1 [MQTT-3-8.3-4]: malformed.
            ProtocolVersion::V311 => DecodeError::InvalidQos,
            // 5.0, 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the
            // value 3".
            ProtocolVersion::V5 => DecodeError::SubscriptionQosThree,
        })?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendOnSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::RetainHandlingThree),
        };
        Ok(Self {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    fn to_byte(self) -> u8 {
        (self.qos as u8)
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }
}

/// Checks a filter as SUBSCRIBE/UNSUBSCRIBE carry it in `version`; returns whether it
/// is a shared subscription (MQTT 5 only).
pub(crate) fn check_filter(filter: &str, version: ProtocolVersion) -> Result<bool, DecodeError> {
    match version {
        ProtocolVersion::V5 => match SharedSubscription::parse(filter)? {
            Some(_) => Ok(true),
            None => topic::check_topic_filter(filter).map(|()| false),
        },
        ProtocolVersion::V311 => topic::check_topic_filter(filter).map(|()| false),
    }
}

fn check_entry(
    filter: &str,
    options: SubscriptionOptions,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let shared = check_filter(filter, version)?;
    // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
    if shared && options.no_local {
        return Err(DecodeError::NoLocalOnSharedSubscription);
    }
    Ok(())
}

impl Subscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = match version {
            ProtocolVersion::V5 => SubscribeProperties::decode(r, PacketType::Subscribe)?,
            ProtocolVersion::V311 => SubscribeProperties::default(),
        };
        let mut filters = Vec::with_capacity(r.count_fields(1));
        while !r.is_empty() {
            let filter = r.string()?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            check_entry(&filter, options, version)?;
            filters.push((filter, options));
        }
        // [MQTT-3.8.3-2] (5.0) / [MQTT-3.8.3-3] (3.1.1): at least one topic filter.
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
        for (filter, options) in &self.filters {
            if version == ProtocolVersion::V311 && *options != SubscriptionOptions::qos(options.qos)
            {
                return Err(EncodeError::NotInVersion);
            }
            check_entry(filter, *options, version)?;
            len += wire::binary_len(filter.len())? + 1;
        }
        Ok(len)
    }

    pub(crate) fn encode_body(
        &self,
        buf: &mut impl BufMut,
        version: ProtocolVersion,
    ) -> Result<(), EncodeError> {
        let mut head = Head::default();
        head.u16(self.packet_id.get());
        if version == ProtocolVersion::V5 {
            head.flush(buf);
            self.properties.encode(buf)?;
        }
        // Each filter's options byte travels with the next filter's length: two
        // copies per filter instead of three.
        for (filter, options) in &self.filters {
            // Checked by `body_len` (binary_len).
            head.u16(u16::try_from(filter.len()).unwrap_or(u16::MAX));
            head.flush(buf);
            buf.put_slice(filter.as_bytes());
            head.u8(options.to_byte());
        }
        head.flush(buf);
        Ok(())
    }
}
