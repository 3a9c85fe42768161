//! Variable Byte Integers (MQTT 5, 1.5.5; MQTT 3.1.1, 2.2.3).
//!
//! Seven bits per byte, least significant group first, the top bit set on every byte
//! but the last. At most four bytes, so the largest value is 268,435,455.

use bytes::BufMut;

use crate::error::{DecodeError, EncodeError};

/// The largest value a Variable Byte Integer can hold (`0xFFF_FFFF`).
pub const MAX: u32 = 268_435_455;

/// Result of reading a Variable Byte Integer from the front of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and the number of bytes it took.
    Complete(u32, usize),
    /// The slice ends before the last byte of the integer.
    Incomplete,
}

/// Reads a Variable Byte Integer from the front of `buf`. Refuses a fifth byte and a
/// non-minimal encoding (a last byte of zero after the first) [MQTT-1.5.5-1].
#[inline]
pub(crate) fn read(buf: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A continuation byte followed by 0x00 encodes the same value in fewer
            // bytes: not the minimum number of bytes [MQTT-1.5.5-1].
            if i > 0 && byte == 0 {
                return Err(DecodeError::VarIntNotMinimal);
            }
            return Ok(VarInt::Complete(value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::VarIntTooLong)
    } else {
        Ok(VarInt::Incomplete)
    }
}

/// Number of bytes `value` takes when encoded.
#[inline]
pub fn len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Checks that `value` fits a Variable Byte Integer and returns its encoded length.
#[inline]
pub(crate) fn checked_len(value: usize) -> Result<usize, EncodeError> {
    match u32::try_from(value) {
        Ok(v) if v <= MAX => Ok(len(v)),
        _ => Err(EncodeError::PacketTooLarge),
    }
}

/// Writes `value`, which the caller has checked is at most [`MAX`].
#[inline]
pub(crate) fn write(buf: &mut impl BufMut, mut value: u32) {
    debug_assert!(value <= MAX);
    loop {
        // Truncation intended: the low seven bits.
        #[allow(clippy::cast_possible_truncation)]
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, v);
        out
    }

    #[test]
    fn boundaries_from_the_specification() {
        // MQTT 5 table 1-1: Size of Variable Byte Integer.
        let cases: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in cases {
            assert_eq!(enc(value), bytes);
            assert_eq!(len(value), bytes.len());
            assert_eq!(read(bytes), Ok(VarInt::Complete(value, bytes.len())));
            for cut in 0..bytes.len() {
                assert_eq!(read(&bytes[..cut]), Ok(VarInt::Incomplete));
            }
        }
    }

    #[test]
    fn rejects_five_byte_integer() {
        assert_eq!(
            read(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
            Err(DecodeError::VarIntTooLong)
        );
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::VarIntTooLong)
        );
    }

    #[test]
    fn rejects_non_minimal_integer() {
        assert_eq!(read(&[0x80, 0x00]), Err(DecodeError::VarIntNotMinimal));
        assert_eq!(
            read(&[0xFF, 0x80, 0x00]),
            Err(DecodeError::VarIntNotMinimal)
        );
    }

    #[test]
    fn checked_len_refuses_too_large() {
        assert_eq!(checked_len(MAX as usize), Ok(4));
        assert_eq!(
            checked_len(MAX as usize + 1),
            Err(EncodeError::PacketTooLarge)
        );
    }
}
