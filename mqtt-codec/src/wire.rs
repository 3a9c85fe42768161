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
        if self.buf.is_empty() {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u8())
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.buf.get_u16())
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
    buf.put_u16(len);
    buf.put_slice(data);
}
