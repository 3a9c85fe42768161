//! Reason codes (MQTT 5, 2.4) and the MQTT 3.1.1 CONNACK return codes.
//!
//! [`ReasonCode`] is an open newtype: any byte can be held, named constants cover
//! every code the specification defines, and [`ReasonCode::is_valid_in`] tells
//! whether a code may appear in a given packet of a version. The decoder rejects codes that are not
//! valid for their packet; the encoder refuses to write them.

use core::fmt;

use crate::packet::PacketType;
use crate::ProtocolVersion;

/// An MQTT 5 reason code (one byte). Values below 0x80 mean success, values from 0x80
/// mean failure.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        impl ReasonCode {
            $( $(#[$doc])* pub const $name: ReasonCode = ReasonCode($value); )*

            /// The name the specification gives this code, if it defines one. Codes
            /// shared by several names (0x00, 0x01, 0x02) give the most general one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// Success (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, AUTH), Normal
    /// disconnection (DISCONNECT), Granted QoS 0 (SUBACK).
    SUCCESS = 0x00, "Success";
    /// Granted QoS 1 (SUBACK).
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    /// Granted QoS 2 (SUBACK).
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    /// Disconnect with Will Message (DISCONNECT).
    DISCONNECT_WITH_WILL_MESSAGE = 0x04, "Disconnect with Will Message";
    /// No matching subscribers (PUBACK, PUBREC).
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    /// No subscription existed (UNSUBACK).
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    /// Continue authentication (AUTH).
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    /// Re-authenticate (AUTH).
    RE_AUTHENTICATE = 0x19, "Re-authenticate";
    /// Unspecified error.
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    /// Malformed Packet.
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    /// Protocol Error.
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    /// Implementation specific error.
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    /// Unsupported Protocol Version (CONNACK).
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    /// Client Identifier not valid (CONNACK).
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    /// Bad User Name or Password (CONNACK).
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    /// Not authorized.
    NOT_AUTHORIZED = 0x87, "Not authorized";
    /// Server unavailable (CONNACK).
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    /// Server busy.
    SERVER_BUSY = 0x89, "Server busy";
    /// Banned (CONNACK).
    BANNED = 0x8A, "Banned";
    /// Server shutting down (DISCONNECT).
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    /// Bad authentication method.
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    /// Keep Alive timeout (DISCONNECT).
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    /// Session taken over (DISCONNECT).
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    /// Topic Filter invalid.
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    /// Topic Name invalid.
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    /// Packet Identifier in use.
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    /// Packet Identifier not found.
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    /// Receive Maximum exceeded (DISCONNECT).
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    /// Topic Alias invalid (DISCONNECT).
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    /// Packet too large.
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    /// Message rate too high (DISCONNECT).
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    /// Quota exceeded.
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    /// Administrative action (DISCONNECT).
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    /// Payload format invalid.
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    /// Retain not supported.
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    /// QoS not supported.
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    /// Use another server.
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    /// Server moved.
    SERVER_MOVED = 0x9D, "Server moved";
    /// Shared Subscriptions not supported.
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    /// Connection rate exceeded.
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    /// Maximum connect time (DISCONNECT).
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    /// Subscription Identifiers not supported.
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    /// Wildcard Subscriptions not supported.
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

impl ReasonCode {
    /// Normal disconnection (DISCONNECT), the same value as [`ReasonCode::SUCCESS`].
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode(0x00);
    /// Granted QoS 0 (SUBACK), the same value as [`ReasonCode::SUCCESS`].
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode(0x00);

    /// True for codes below 0x80.
    pub fn is_success(self) -> bool {
        self.0 < 0x80
    }

    /// Whether the code may appear in a packet of this type (MQTT 5, 2.4 and the
    /// reason code table of each packet).
    pub fn is_valid_in_v5(self, packet_type: PacketType) -> bool {
        let allowed: &[u8] = match packet_type {
            PacketType::ConnAck => &[
                0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
                0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
            ],
            PacketType::PubAck | PacketType::PubRec => {
                &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
            }
            PacketType::PubRel | PacketType::PubComp => &[0x00, 0x92],
            PacketType::SubAck => &[
                0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
            ],
            PacketType::UnsubAck => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
            PacketType::Disconnect => &[
                0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
                0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
                0xA2,
            ],
            PacketType::Auth => &[0x00, 0x18, 0x19],
            _ => &[],
        };
        allowed.contains(&self.0)
    }

    /// Whether the code may appear in a packet of this type in this protocol version.
    /// MQTT 3.1.1 carries reason codes only in CONNACK (return codes 0-5, held here as
    /// their MQTT 5 equivalents) and SUBACK (0x00, 0x01, 0x02, 0x80).
    pub fn is_valid_in(self, packet_type: PacketType, version: ProtocolVersion) -> bool {
        match version {
            ProtocolVersion::V5 => self.is_valid_in_v5(packet_type),
            ProtocolVersion::V311 => match packet_type {
                PacketType::ConnAck => self.to_v311_connack().is_some(),
                PacketType::SubAck => matches!(self.0, 0x00 | 0x01 | 0x02 | 0x80),
                _ => self == ReasonCode::SUCCESS,
            },
        }
    }

    /// The MQTT 3.1.1 CONNACK return code for this reason code, if 3.1.1 has one.
    pub fn to_v311_connack(self) -> Option<u8> {
        Some(match self {
            ReasonCode::SUCCESS => 0,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION => 1,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID => 2,
            ReasonCode::SERVER_UNAVAILABLE => 3,
            ReasonCode::BAD_USER_NAME_OR_PASSWORD => 4,
            ReasonCode::NOT_AUTHORIZED => 5,
            _ => return None,
        })
    }

    /// The reason code equivalent to an MQTT 3.1.1 CONNACK return code (0-5).
    pub fn from_v311_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => return None,
        })
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "ReasonCode({:#04x} {name})", self.0),
            None => write!(f, "ReasonCode({:#04x})", self.0),
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#04x})", self.0),
            None => write!(f, "reason code {:#04x}", self.0),
        }
    }
}
