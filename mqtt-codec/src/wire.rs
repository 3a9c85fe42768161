//! Reading and writing the MQTT data types (MQTT 5, 1.5) on a packet body.
//!
//! [`Reader`] walks a `Bytes` holding exactly one packet body: every field it returns
//! that holds bytes is a slice of that buffer, and every read checks that the field
//! stays inside the body (a field that runs past the end is [`DecodeError::Truncated`]).

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::string::MqttString;
use crate::varint;

/// Cursor over one packet body.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    #[inline]
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Succeeds only when every byte was consumed.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b, ..] = self.buf[..] else {
            return Err(DecodeError::Truncated);
        };
        self.buf.advance(1);
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let [hi, lo, ..] = self.buf[..] else {
            return Err(DecodeError::Truncated);
        };
        self.buf.advance(2);
        Ok(u16::from_be_bytes([hi, lo]))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u32())
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u32, DecodeError> {
        match varint::read(&self.buf)? {
            varint::VarInt::Complete(value, n) => {
                self.buf.advance(n);
                Ok(value)
            }
            varint::VarInt::Incomplete => Err(DecodeError::Truncated),
        }
    }

    /// The next `n` bytes, shared with the packet buffer.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.split_to(n))
    }

    /// Everything left, shared with the packet buffer.
    #[inline]
    pub(crate) fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.buf)
    }

    /// Binary Data: a two-byte length and that many bytes (MQTT 5, 1.5.6).
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// UTF-8 Encoded String (MQTT 5, 1.5.4).
    #[inline]
    pub(crate) fn string(&mut self) -> Result<MqttString, DecodeError> {
        MqttString::from_bytes(self.binary()?)
    }

    /// A PUBLISH topic name: one pass finds U+0000 [MQTT-1.5.4-2] and wildcards
    /// [MQTT-3.3.2-2], then the UTF-8 check [MQTT-1.5.4-1]. Emptiness is the caller's
    /// to judge (MQTT 5 allows it with a Topic Alias).
    #[inline]
    pub(crate) fn topic_name(&mut self) -> Result<MqttString, DecodeError> {
        let raw = self.binary()?;
        let class = crate::topic::classify(&raw);
        if class & crate::topic::NUL != 0 {
            return Err(DecodeError::NullCharacter);
        }
        if class & crate::topic::WILDCARD != 0 {
            return Err(DecodeError::WildcardInTopicName);
        }
        MqttString::from_bytes_without_nul(raw)
    }

    /// How many length-prefixed fields, each followed by `gap` more bytes, the unread
    /// bytes hold (stopping at the first that does not fit): sizes a `Vec` before a
    /// list is decoded, so that it is allocated once.
    pub(crate) fn count_fields(&self, gap: usize) -> usize {
        let mut rest: &[u8] = &self.buf;
        let mut count = 0;
        while let [hi, lo, tail @ ..] = rest {
            let skip = usize::from(u16::from_be_bytes([*hi, *lo])) + gap;
            match tail.get(skip..) {
                Some(next) => rest = next,
                None => break,
            }
            count += 1;
        }
        count
    }

    /// The unread bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The packet identifier; 0 is refused [MQTT-2.2.1-3].
    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<crate::PacketId, DecodeError> {
        crate::PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }
}

/// Encoded size of a string or binary field: two length bytes and the content.
#[inline]
pub(crate) fn binary_len(len: usize) -> Result<usize, EncodeError> {
    if len > usize::from(u16::MAX) {
        Err(EncodeError::FieldTooLong)
    } else {
        Ok(2 + len)
    }
}

/// Writes a string or binary field whose length was checked by [`binary_len`].
#[inline]
pub(crate) fn put_binary(buf: &mut impl BufMut, data: &[u8]) {
    // Checked by `binary_len` during `encoded_len`, which every encode runs first.
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    buf.put_slice(&len.to_be_bytes());
    buf.put_slice(data);
}

/// A few header bytes gathered on the stack and written with one `put_slice`: each
/// `put_*` call on a `BytesMut` checks capacity and copies on its own, which costs
/// more than the bytes themselves for small packets.
#[derive(Debug, Default)]
pub(crate) struct Head {
    bytes: [u8; 16],
    len: usize,
}

impl Head {
    #[inline]
    pub(crate) fn u8(&mut self, byte: u8) {
        // Callers write at most 11 bytes (fixed header 5, two-byte fields, a
        // property length 4); a write past 16 would be a bug and is dropped.
        debug_assert!(self.len < self.bytes.len());
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    #[inline]
    pub(crate) fn u16(&mut self, value: u16) {
        let [hi, lo] = value.to_be_bytes();
        self.u8(hi);
        self.u8(lo);
    }

    /// A Variable Byte Integer the caller checked is at most [`varint::MAX`].
    #[inline]
    pub(crate) fn varint(&mut self, mut value: u32) {
        loop {
            // Truncation intended: the low seven bits.
            #[allow(clippy::cast_possible_truncation)]
            let byte = (value & 0x7F) as u8;
            value >>= 7;
            if value == 0 {
                self.u8(byte);
                break;
            }
            self.u8(byte | 0x80);
        }
    }

    /// Writes the gathered bytes and empties the head.
    #[inline]
    pub(crate) fn flush(&mut self, buf: &mut impl BufMut) {
        buf.put_slice(self.bytes.get(..self.len).unwrap_or_default());
        self.len = 0;
    }
}
