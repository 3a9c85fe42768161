//! The packet tree: one type per MQTT control packet, for both protocol versions.
//!
//! Each packet module holds the packet's struct, its decoder (from the body of one
//! packet, after the fixed header) and its encoder. The version is a parameter of
//! both, never a second tree.

use bytes::{Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::wire::{Head, Reader};
use crate::{varint, ProtocolVersion};

mod auth;
mod connack;
mod connect;
mod disconnect;
mod puback;
mod publish;
mod suback;
mod subscribe;
mod unsubscribe;

pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use puback::PubAck;
pub use publish::Publish;
pub use suback::{SubAck, UnsubAck};
pub use subscribe::{RetainHandling, Subscribe, SubscriptionOptions};
pub use unsubscribe::Unsubscribe;

/// The control packet type: the high four bits of the first byte (MQTT 5, 2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// CONNECT (1), client to server.
    Connect = 1,
    /// CONNACK (2), server to client.
    ConnAck = 2,
    /// PUBLISH (3), both directions.
    Publish = 3,
    /// PUBACK (4), both directions.
    PubAck = 4,
    /// PUBREC (5), both directions.
    PubRec = 5,
    /// PUBREL (6), both directions.
    PubRel = 6,
    /// PUBCOMP (7), both directions.
    PubComp = 7,
    /// SUBSCRIBE (8), client to server.
    Subscribe = 8,
    /// SUBACK (9), server to client.
    SubAck = 9,
    /// UNSUBSCRIBE (10), client to server.
    Unsubscribe = 10,
    /// UNSUBACK (11), server to client.
    UnsubAck = 11,
    /// PINGREQ (12), client to server.
    PingReq = 12,
    /// PINGRESP (13), server to client.
    PingResp = 13,
    /// DISCONNECT (14), both directions (server to client only in MQTT 5).
    Disconnect = 14,
    /// AUTH (15), both directions, MQTT 5 only.
    Auth = 15,
}

impl PacketType {
    fn from_u8(value: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 if version == ProtocolVersion::V5 => Self::Auth,
            _ => return Err(DecodeError::InvalidPacketType(value)),
        })
    }

    /// The flag bits every packet of this type must carry; `None` for PUBLISH, whose
    /// flags carry DUP, QoS and RETAIN (MQTT 5, 2.1.3 table 2-2).
    fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0b0000),
        }
    }
}

/// A decoded fixed header (MQTT 5, 2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The four flag bits, already checked against the packet type.
    pub flags: u8,
    /// The remaining length: the size of the body after the fixed header.
    pub remaining_length: u32,
    /// The size of the fixed header itself (2 to 5 bytes).
    pub header_length: u8,
}

impl FixedHeader {
    /// Parses a fixed header from the front of `buf`. `Ok(None)` if `buf` ends before
    /// the header does. Checks the packet type, the reserved flags [MQTT-2.1.3-1],
    /// the Remaining Length encoding [MQTT-1.5.5-1] and that the whole packet fits
    /// within `max_packet_size`, before any of the body is needed.
    #[inline]
    pub fn parse(
        buf: &[u8],
        version: ProtocolVersion,
        max_packet_size: u32,
    ) -> Result<Option<Self>, DecodeError> {
        let Some((&first, rest)) = buf.split_first() else {
            return Ok(None);
        };
        let packet_type = PacketType::from_u8(first >> 4, version)?;
        let flags = first & 0x0F;
        if let Some(required) = packet_type.required_flags() {
            if flags != required {
                return Err(DecodeError::InvalidHeaderFlags { packet_type, flags });
            }
        }
        let (remaining_length, n) = match varint::read(rest)? {
            varint::VarInt::Complete(value, n) => (value, n),
            varint::VarInt::Incomplete => return Ok(None),
        };
        // n <= 4, so this never truncates.
        let header_length = u8::try_from(1 + n).unwrap_or(u8::MAX);
        let size = u64::from(remaining_length) + u64::from(header_length);
        if size > u64::from(max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: max_packet_size,
            });
        }
        Ok(Some(Self {
            packet_type,
            flags,
            remaining_length,
            header_length,
        }))
    }

    /// The size of the whole packet: header and body.
    pub fn packet_length(&self) -> usize {
        usize::from(self.header_length) + self.remaining_length as usize
    }
}

/// An MQTT control packet, either version.
///
/// Packets that are rare on a connection (CONNECT, CONNACK, SUBACK, UNSUBACK,
/// DISCONNECT, AUTH) are boxed, so that a `Packet` stays small (under 100 bytes) for
/// the PUBLISH and acknowledgement traffic that dominates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// PUBREC.
    PubRec(PubAck),
    /// PUBREL.
    PubRel(PubAck),
    /// PUBCOMP.
    PubComp(PubAck),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(Box<SubAck>),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(Box<UnsubAck>),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Box<Disconnect>),
    /// AUTH (MQTT 5 only).
    Auth(Box<Auth>),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes the body of one packet whose fixed header is `header`. `body` must hold
    /// exactly `header.remaining_length` bytes; every byte must be used.
    pub fn decode_body(
        header: &FixedHeader,
        body: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let packet = match header.packet_type {
            PacketType::Connect => Self::Connect(Box::new(Connect::decode(&mut r)?)),
            PacketType::ConnAck => Self::ConnAck(Box::new(ConnAck::decode(&mut r, version)?)),
            PacketType::Publish => Self::Publish(Publish::decode(&mut r, header.flags, version)?),
            PacketType::PubAck => {
                Self::PubAck(PubAck::decode(&mut r, PacketType::PubAck, version)?)
            }
            PacketType::PubRec => {
                Self::PubRec(PubAck::decode(&mut r, PacketType::PubRec, version)?)
            }
            PacketType::PubRel => {
                Self::PubRel(PubAck::decode(&mut r, PacketType::PubRel, version)?)
            }
            PacketType::PubComp => {
                Self::PubComp(PubAck::decode(&mut r, PacketType::PubComp, version)?)
            }
            PacketType::Subscribe => Self::Subscribe(Subscribe::decode(&mut r, version)?),
            PacketType::SubAck => Self::SubAck(Box::new(SubAck::decode(&mut r, version)?)),
            PacketType::Unsubscribe => Self::Unsubscribe(Unsubscribe::decode(&mut r, version)?),
            PacketType::UnsubAck => Self::UnsubAck(Box::new(UnsubAck::decode(&mut r, version)?)),
            PacketType::PingReq => Self::PingReq,
            PacketType::PingResp => Self::PingResp,
            PacketType::Disconnect => {
                Self::Disconnect(Box::new(Disconnect::decode(&mut r, version)?))
            }
            PacketType::Auth => Self::Auth(Box::new(Auth::decode(&mut r)?)),
        };
        r.finish()?;
        Ok(packet)
    }

    /// Decodes one whole packet from the front of `buf`, advancing `buf` past it.
    /// `Ok(None)` (and `buf` untouched) when `buf` does not yet hold the whole packet.
    ///
    /// This is the stateless form: it parses the fixed header again on each call.
    /// A stream reader should use [`Decoder`], which parses it once.
    pub fn decode(
        buf: &mut BytesMut,
        version: ProtocolVersion,
        max_packet_size: u32,
    ) -> Result<Option<Self>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, version, max_packet_size)? else {
            return Ok(None);
        };
        if buf.len() < header.packet_length() {
            return Ok(None);
        }
        let frame = buf.split_to(header.packet_length()).freeze();
        Self::decode_frame(&header, frame, version).map(Some)
    }

    /// Decodes a whole packet, fixed header included, whose header is `header`.
    #[inline]
    fn decode_frame(
        header: &FixedHeader,
        mut frame: Bytes,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        bytes::Buf::advance(&mut frame, usize::from(header.header_length));
        Self::decode_body(header, frame, version)
    }

    /// Like [`Packet::decode`], from a `Bytes` (for input that is already frozen).
    pub fn decode_bytes(
        buf: &mut Bytes,
        version: ProtocolVersion,
        max_packet_size: u32,
    ) -> Result<Option<Self>, DecodeError> {
        let Some(header) = FixedHeader::parse(buf, version, max_packet_size)? else {
            return Ok(None);
        };
        if buf.len() < header.packet_length() {
            return Ok(None);
        }
        let frame = buf.split_to(header.packet_length());
        Self::decode_frame(&header, frame, version).map(Some)
    }

    /// Fixed-header flags and body length; validates the whole packet for `version`.
    fn flags_and_body_len(&self, version: ProtocolVersion) -> Result<(u8, usize), EncodeError> {
        Ok(match self {
            // A CONNECT carries its own protocol level: it must be the one asked for.
            Self::Connect(p) if p.protocol_version != version => {
                return Err(EncodeError::NotInVersion);
            }
            Self::Connect(p) => (0, p.body_len()?),
            Self::ConnAck(p) => (0, p.body_len(version)?),
            Self::Publish(p) => (p.flags(), p.body_len(version)?),
            Self::PubAck(p) => (0, p.body_len(PacketType::PubAck, version)?),
            Self::PubRec(p) => (0, p.body_len(PacketType::PubRec, version)?),
            Self::PubRel(p) => (0b0010, p.body_len(PacketType::PubRel, version)?),
            Self::PubComp(p) => (0, p.body_len(PacketType::PubComp, version)?),
            Self::Subscribe(p) => (0b0010, p.body_len(version)?),
            Self::SubAck(p) => (0, p.body_len(version)?),
            Self::Unsubscribe(p) => (0b0010, p.body_len(version)?),
            Self::UnsubAck(p) => (0, p.body_len(version)?),
            Self::PingReq | Self::PingResp => (0, 0),
            Self::Disconnect(p) => (0, p.body_len(version)?),
            Self::Auth(p) => (0, p.body_len(version)?),
        })
    }

    /// The exact number of bytes [`Packet::encode`] writes for `version`. Fails when
    /// the packet cannot be encoded (see [`EncodeError`]).
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let (_, body) = self.flags_and_body_len(version)?;
        Ok(1 + varint::checked_len(body)? + body)
    }

    /// Appends the packet to `buf` for `version`: validates and measures it first,
    /// reserves once, writes once. On error nothing is written.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if let Self::Publish(p) = self {
            // The hot path: writes its header bytes in two batches (see `Publish::encode`).
            return p.encode(version, buf);
        }
        let (flags, body) = self.flags_and_body_len(version)?;
        let body_u32 = u32::try_from(body).map_err(|_| EncodeError::PacketTooLarge)?;
        let total = 1 + varint::checked_len(body)? + body;
        buf.reserve(total);
        let start = buf.len();
        let mut head = Head::default();
        head.u8(((self.packet_type() as u8) << 4) | flags);
        head.varint(body_u32);
        head.flush(buf);
        match self {
            Self::Connect(p) => p.encode_body(buf)?,
            Self::ConnAck(p) => p.encode_body(buf, version)?,
            Self::Publish(p) => p.encode_body(buf, version)?,
            Self::PubAck(p) | Self::PubRec(p) | Self::PubRel(p) | Self::PubComp(p) => {
                p.encode_body(buf, version)?;
            }
            Self::Subscribe(p) => p.encode_body(buf, version)?,
            Self::SubAck(p) => p.encode_body(buf, version)?,
            Self::Unsubscribe(p) => p.encode_body(buf, version)?,
            Self::UnsubAck(p) => p.encode_body(buf, version)?,
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(p) => p.encode_body(buf, version)?,
            Self::Auth(p) => p.encode_body(buf)?,
        }
        debug_assert_eq!(
            buf.len() - start,
            total,
            "encoded_len disagrees with encode"
        );
        Ok(())
    }

    /// Encodes into a new buffer of exactly the right size.
    pub fn to_bytes(&self, version: ProtocolVersion) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::new();
        self.encode(version, &mut buf)?;
        Ok(buf.freeze())
    }
}

macro_rules! packet_from {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for Packet {
            fn from(p: $ty) -> Self {
                Self::$variant(p)
            }
        })*
    };
}
packet_from!(
    Publish(Publish),
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe)
);

macro_rules! packet_from_boxed {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for Packet {
            fn from(p: $ty) -> Self {
                Self::$variant(Box::new(p))
            }
        })*
    };
}
packet_from_boxed!(
    Connect(Connect),
    ConnAck(ConnAck),
    SubAck(SubAck),
    UnsubAck(UnsubAck),
    Disconnect(Disconnect),
    Auth(Auth)
);

#[derive(Debug, Clone, Copy)]
enum DecodeState {
    Head,
    Body(FixedHeader),
}

/// A stream decoder: feed it a growing `BytesMut`, get packets out.
///
/// Like tokio-util's `LengthDelimitedCodec`: `Ok(None)` means "need more bytes"; the
/// fixed header is parsed once per packet, however many calls the body takes to
/// arrive; a packet larger than the maximum is refused as soon as its header is read,
/// before its body is buffered; each packet consumes exactly its remaining length.
///
/// ```
/// use bytes::BytesMut;
/// use mqtt_codec::{Decoder, Packet, ProtocolVersion};
///
/// let mut decoder = Decoder::new(ProtocolVersion::V5);
/// let mut buf = BytesMut::from(&[0xC0u8][..]); // half a PINGREQ
/// assert_eq!(decoder.decode(&mut buf).unwrap(), None);
/// buf.extend_from_slice(&[0x00]);
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(Packet::PingReq));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    version: ProtocolVersion,
    max_packet_size: u32,
    state: DecodeState,
}

impl Decoder {
    /// A decoder for `version` accepting packets up to the protocol maximum
    /// (268,435,460 bytes including the fixed header).
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            max_packet_size: crate::MAX_PACKET_SIZE,
            state: DecodeState::Head,
        }
    }

    /// Sets the largest packet (fixed header included) this decoder accepts, the
    /// Maximum Packet Size this side advertises.
    pub fn with_max_packet_size(mut self, max: u32) -> Self {
        self.max_packet_size = max;
        self
    }

    /// Changes the maximum packet size (for instance after a CONNACK).
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// The protocol version packets are decoded as.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Changes the protocol version (a server learns it from CONNECT).
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = version;
    }

    /// Decodes the next packet from the front of `buf`, or returns `Ok(None)` when
    /// more bytes are needed. After an error the stream is unusable: the connection
    /// must be closed (after sending DISCONNECT with the error's reason code).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let header = match self.state {
            DecodeState::Body(header) => header,
            DecodeState::Head => {
                let Some(header) = FixedHeader::parse(buf, self.version, self.max_packet_size)?
                else {
                    return Ok(None);
                };
                if buf.len() >= header.packet_length() {
                    // The whole packet is here (the common case): one split, and the
                    // header is skipped on the cheaper `Bytes`.
                    let frame = buf.split_to(header.packet_length()).freeze();
                    return Packet::decode_frame(&header, frame, self.version).map(Some);
                }
                bytes::Buf::advance(buf, usize::from(header.header_length));
                header
            }
        };
        let body_len = header.remaining_length as usize;
        if buf.len() < body_len {
            self.state = DecodeState::Body(header);
            return Ok(None);
        }
        self.state = DecodeState::Head;
        let body = buf.split_to(body_len).freeze();
        Packet::decode_body(&header, body, self.version).map(Some)
    }
}
