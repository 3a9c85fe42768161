//! Decode and encode errors.
//!
//! Decoding never reports "need more bytes" as an error: that is `Ok(None)` from the
//! framing functions. Every [`DecodeError`] means the input is not a valid MQTT packet,
//! and [`DecodeError::reason_code`] gives the MQTT 5 reason code the receiver sends in
//! its DISCONNECT (or CONNACK) before closing the connection.

use core::fmt;

use crate::packet::PacketType;
use crate::reason::ReasonCode;

/// Why a packet could not be decoded. Small and `Copy`; each variant names the rule
/// it enforces (see [`DecodeError::normative`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A Variable Byte Integer used more than four bytes (MQTT 5, 1.5.5: "The maximum
    /// number of bytes in the Variable Byte Integer field is four").
    VarIntTooLong,
    /// A Variable Byte Integer was not encoded in the minimum number of bytes
    /// [MQTT-1.5.5-1]. Enforced for 3.1.1 too, whose encoding algorithm (2.2.3) only
    /// ever produces the minimal form: a deliberate strictness.
    VarIntNotMinimal,
    /// The fixed header names packet type 0 (reserved), or 15 (AUTH) in MQTT 3.1.1.
    InvalidPacketType(u8),
    /// The four flag bits of the fixed header are not the ones the packet type
    /// requires [MQTT-2.1.3-1].
    InvalidHeaderFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The flag bits received.
        flags: u8,
    },
    /// The remaining length exceeds the maximum packet size this side accepts
    /// [MQTT-3.1.2-24], [MQTT-3.2.2-15]. Refused before the body is buffered.
    PacketTooLarge {
        /// Size of the whole packet (fixed header included) announced by the header.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// A field (integer, string, binary, property) runs past the end of the packet
    /// or of its property block [MQTT-1.5.4], [MQTT-2.2.2].
    Truncated,
    /// Bytes are left over after the last field of the packet.
    TrailingBytes,
    /// A UTF-8 Encoded String is not well-formed UTF-8 (or contains a surrogate)
    /// [MQTT-1.5.4-1].
    InvalidUtf8,
    /// A UTF-8 Encoded String contains U+0000 [MQTT-1.5.4-2].
    NullCharacter,
    /// The topic name of a PUBLISH contains `+` or `#` [MQTT-3.3.2-2].
    WildcardInTopicName,
    /// The topic name of a PUBLISH is empty (MQTT 3.1.1 always [MQTT-4.7.3-1]; MQTT 5
    /// unless a Topic Alias is present, 3.3.2.1: "It is a Protocol Error if the Topic
    /// Name is zero length and there is no Topic Alias").
    EmptyTopicName,
    /// A topic filter is empty or uses `#`/`+` outside a level of its own
    /// [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1].
    InvalidTopicFilter,
    /// A SUBSCRIBE or UNSUBSCRIBE has no topic filter ([MQTT-3.8.3-2] in 5.0,
    /// [MQTT-3.8.3-3] in 3.1.1; [MQTT-3.10.3-2]).
    NoTopicFilters,
    /// A SUBACK or UNSUBACK has no reason code (MQTT 3.1.1 UNSUBACK excepted).
    NoReasonCodes,
    /// QoS 3 in a PUBLISH fixed header [MQTT-3.3.1-4], a Will QoS [MQTT-3.1.2-12] or
    /// a subscription option [MQTT-3-8.3-4].
    InvalidQos,
    /// DUP is set on a QoS 0 PUBLISH [MQTT-3.3.1-2].
    DupWithQos0,
    /// A packet identifier is 0 [MQTT-2.2.1-3].
    ZeroPacketId,
    /// Reserved bits of the SUBSCRIBE subscription options are set [MQTT-3.8.3-5].
    SubscriptionOptionsReservedBits,
    /// Retain Handling is 3 (MQTT 5, 3.8.3.1: "It is a Protocol Error to send a Retain
    /// Handling value of 3").
    RetainHandlingThree,
    /// No Local is set on a shared subscription [MQTT-3.8.3-4].
    NoLocalOnSharedSubscription,
    /// The CONNECT reserved flag (bit 0) is set [MQTT-3.1.2-3].
    ConnectReservedFlag,
    /// Will QoS or Will Retain is set while the Will Flag is 0 [MQTT-3.1.2-11],
    /// [MQTT-3.1.2-13].
    WillFlagsWithoutWill,
    /// MQTT 3.1.1: the Password Flag is set without the User Name Flag [MQTT-3.1.2-22].
    PasswordWithoutUsername,
    /// The CONNACK Acknowledge Flags have reserved bits 7-1 set [MQTT-3.2.2-1].
    ConnAckReservedFlags,
    /// Session Present is set in a CONNACK that refuses the connection [MQTT-3.2.2-4]
    /// (3.1.1), [MQTT-3.2.2-6] (5.0).
    SessionPresentOnError,
    /// The protocol name is not "MQTT" [MQTT-3.1.2-1]; a server may answer with 0x84
    /// (Unsupported Protocol Version) before closing.
    InvalidProtocolName,
    /// The protocol level is not 4 (3.1.1) or 5 (5.0) [MQTT-3.1.2-2]; a server answers
    /// with reason code 0x84 (0x01 in 3.1.1).
    UnsupportedProtocolVersion(u8),
    /// A reason code (or 3.1.1 return code) not defined for this packet type.
    InvalidReasonCode {
        /// The packet type.
        packet_type: PacketType,
        /// The code received.
        code: u8,
    },
    /// A property identifier that is unknown, or not allowed in this packet (MQTT 5,
    /// 2.2.2.2: such a packet is a Malformed Packet).
    PropertyNotAllowed {
        /// The packet type (for will properties, CONNECT).
        packet_type: PacketType,
        /// The property identifier.
        id: u8,
    },
    /// A property that may appear once appears more than once (MQTT 5, 2.2.2.2 and the
    /// description of each property: a Protocol Error).
    DuplicateProperty(u8),
    /// A property value outside the range its definition allows: Topic Alias 0,
    /// Receive Maximum 0, Maximum Packet Size 0, Subscription Identifier 0, a byte
    /// property other than 0 or 1 (MQTT 5, 3.x.2.x: a Protocol Error).
    InvalidPropertyValue(u8),
    /// An AUTH packet other than the empty short form without an Authentication Method
    /// (MQTT 5, 3.15.2.2.2: a Protocol Error).
    AuthWithoutMethod,
    /// Maximum QoS 3 in the options of an MQTT 5 subscription (MQTT 5, 3.8.3.1: "It is
    /// a Protocol Error if the Maximum QoS field has the value 3"). In 3.1.1 the same
    /// input is [`DecodeError::InvalidQos`] (malformed, [MQTT-3-8.3-4]).
    SubscriptionQosThree,
    /// Authentication Data without an Authentication Method (MQTT 5, 3.1.2.11.10:
    /// a Protocol Error).
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// The MQTT 5 reason code a receiver sends (in DISCONNECT, or CONNACK when the
    /// packet was a CONNECT) before it closes the network connection.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            // [MQTT-3.1.2-1]: a server may answer a wrong protocol name with 0x84.
            Self::UnsupportedProtocolVersion(_) | Self::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Self::NoTopicFilters
            | Self::RetainHandlingThree
            | Self::NoLocalOnSharedSubscription
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::AuthDataWithoutMethod
            | Self::AuthWithoutMethod
            | Self::SubscriptionQosThree
            | Self::SessionPresentOnError => ReasonCode::PROTOCOL_ERROR,
            Self::EmptyTopicName => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }

    /// The normative statement (or section) of the specification this error enforces.
    pub fn normative(&self) -> &'static str {
        match self {
            Self::VarIntTooLong => "MQTT-5.0 1.5.5 (at most four bytes)",
            Self::VarIntNotMinimal => "MQTT-1.5.5-1",
            Self::InvalidPacketType(_) => "MQTT-2.1.2",
            Self::InvalidHeaderFlags { .. } => "MQTT-2.1.3-1",
            Self::PacketTooLarge { .. } => "MQTT-3.1.2-24",
            Self::Truncated => "MQTT-1.5.4 / 2.2.2",
            Self::TrailingBytes => "MQTT-2.1.4",
            Self::InvalidUtf8 => "MQTT-1.5.4-1",
            Self::NullCharacter => "MQTT-1.5.4-2",
            Self::WildcardInTopicName => "MQTT-3.3.2-2",
            Self::EmptyTopicName => "MQTT-5.0 3.3.2.1 / MQTT-4.7.3-1",
            Self::InvalidTopicFilter => "MQTT-4.7.1-1 / MQTT-4.7.1-2",
            Self::NoTopicFilters => "MQTT-3.8.3-2 (5.0) / MQTT-3.8.3-3 (3.1.1) / MQTT-3.10.3-2",
            Self::NoReasonCodes => "MQTT-3.9.3 / MQTT-3.11.3",
            Self::InvalidQos => "MQTT-3.3.1-4 / MQTT-3.1.2-12 / MQTT-3-8.3-4",
            Self::SubscriptionQosThree => "MQTT-5.0 3.8.3.1 (Maximum QoS 3)",
            Self::AuthWithoutMethod => "MQTT-5.0 3.15.2.2.2",
            Self::DupWithQos0 => "MQTT-3.3.1-2",
            Self::ZeroPacketId => "MQTT-2.2.1-3",
            Self::SubscriptionOptionsReservedBits => "MQTT-3.8.3-5",
            Self::RetainHandlingThree => "MQTT-5.0 3.8.3.1 (Retain Handling 3)",
            Self::NoLocalOnSharedSubscription => "MQTT-3.8.3-4",
            Self::ConnectReservedFlag => "MQTT-3.1.2-3",
            Self::WillFlagsWithoutWill => "MQTT-3.1.2-11 / MQTT-3.1.2-13",
            Self::PasswordWithoutUsername => "MQTT-3.1.2-22",
            Self::ConnAckReservedFlags => "MQTT-3.2.2-1",
            Self::SessionPresentOnError => "MQTT-3.2.2-6",
            Self::InvalidProtocolName => "MQTT-3.1.2-1",
            Self::UnsupportedProtocolVersion(_) => "MQTT-3.1.2-2",
            Self::InvalidReasonCode { .. } => "MQTT-2.4",
            Self::PropertyNotAllowed { .. } => "MQTT-2.2.2.2",
            Self::DuplicateProperty(_) => "MQTT-2.2.2.2",
            Self::InvalidPropertyValue(_) => "MQTT-3.x.2.x",
            Self::AuthDataWithoutMethod => "MQTT-3.1.2.11.10",
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPacketType(t) => write!(f, "invalid packet type {t}")?,
            Self::InvalidHeaderFlags { packet_type, flags } => {
                write!(
                    f,
                    "invalid fixed header flags {flags:#06b} for {packet_type:?}"
                )?;
            }
            Self::PacketTooLarge { size, max } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {max}")?;
            }
            Self::UnsupportedProtocolVersion(v) => write!(f, "unsupported protocol level {v}")?,
            Self::InvalidReasonCode { packet_type, code } => {
                write!(f, "reason code {code:#04x} is not valid in {packet_type:?}")?;
            }
            Self::PropertyNotAllowed { packet_type, id } => {
                write!(f, "property {id:#04x} is not allowed in {packet_type:?}")?;
            }
            Self::DuplicateProperty(id) => write!(f, "property {id:#04x} appears twice")?,
            Self::InvalidPropertyValue(id) => write!(f, "property {id:#04x} is out of range")?,
            other => write!(f, "{other:?}")?,
        }
        write!(f, " [{}]", self.normative())
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet could not be encoded: a value does not fit its field, or the packet
/// would not be valid on the wire. Nothing is written when encoding fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    FieldTooLong,
    /// The remaining length exceeds 268,435,455 bytes, or a property block or
    /// Variable Byte Integer exceeds its maximum.
    PacketTooLarge,
    /// A value is not valid for its field: a packet identifier missing for QoS > 0
    /// or present for QoS 0, a property out of range, an invalid topic or filter, a
    /// reason code not defined for the packet, an empty SUBSCRIBE, and so on. The
    /// error from the decoder names the rule.
    Invalid(DecodeError),
    /// A PUBLISH has a packet identifier with QoS 0, or none with QoS 1 or 2
    /// [MQTT-2.2.1-2].
    PacketIdMismatch,
    /// The packet or field does not exist in the protocol version chosen (AUTH,
    /// properties, reason codes or options in MQTT 3.1.1).
    NotInVersion,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldTooLong => f.write_str("string or binary field longer than 65535 bytes"),
            Self::PacketTooLarge => f.write_str("packet exceeds the MQTT maximum size"),
            Self::Invalid(e) => write!(f, "invalid packet: {e}"),
            Self::PacketIdMismatch => {
                f.write_str("a PUBLISH has a packet identifier exactly when QoS > 0")
            }
            Self::NotInVersion => f.write_str("not representable in this protocol version"),
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<DecodeError> for EncodeError {
    fn from(e: DecodeError) -> Self {
        Self::Invalid(e)
    }
}
