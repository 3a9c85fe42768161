//! [`MqttString`]: a UTF-8 Encoded String (MQTT 5, 1.5.4) backed by [`Bytes`].

use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::DecodeError;

/// A UTF-8 Encoded String as MQTT defines it: well-formed UTF-8, no surrogates, no
/// U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2], at most 65,535 bytes on the wire.
///
/// Decoded strings share the packet's buffer (no copy); validation happens once, when
/// the string is made, and [`Deref`] to `str` is free afterwards.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MqttString(ByteString);

impl MqttString {
    /// An empty string.
    pub const fn new() -> Self {
        Self(ByteString::from_static(""))
    }

    /// Wraps a `'static` string without copying. Fails on U+0000.
    pub fn from_static(s: &'static str) -> Result<Self, DecodeError> {
        check_no_null(s.as_bytes())?;
        Ok(Self(ByteString::from_static(s)))
    }

    /// Validates `bytes` as an MQTT UTF-8 Encoded String without copying.
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        // One pass for the common all-ASCII case: any byte >= 0x80 sends us to the
        // full UTF-8 check, and 0x00 is refused either way.
        check_no_null(&bytes)?;
        match ByteString::try_from(bytes) {
            Ok(s) => Ok(Self(s)),
            // `str` cannot hold surrogates (U+D800..U+DFFF), so Rust's UTF-8 check
            // enforces [MQTT-1.5.4-1] in full.
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }

    /// Like [`MqttString::from_bytes`] for bytes already known to hold no U+0000:
    /// only the UTF-8 check runs.
    #[inline]
    pub(crate) fn from_bytes_without_nul(bytes: Bytes) -> Result<Self, DecodeError> {
        debug_assert!(!bytes.contains(&0));
        ByteString::try_from(bytes)
            .map(Self)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes (shares the buffer).
    #[inline]
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Consumes the string, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

#[inline]
fn check_no_null(bytes: &[u8]) -> Result<(), DecodeError> {
    // Word-at-a-time; cheaper than `contains` (memchr) for the short strings of MQTT.
    if crate::topic::classify(bytes) & crate::topic::NUL != 0 {
        Err(DecodeError::NullCharacter)
    } else {
        Ok(())
    }
}

impl Deref for MqttString {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for MqttString {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for MqttString {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for MqttString {
    type Error = DecodeError;
    fn try_from(s: &str) -> Result<Self, DecodeError> {
        check_no_null(s.as_bytes())?;
        Ok(Self(ByteString::from(s)))
    }
}

impl TryFrom<String> for MqttString {
    type Error = DecodeError;
    fn try_from(s: String) -> Result<Self, DecodeError> {
        check_no_null(s.as_bytes())?;
        Ok(Self(ByteString::from(s)))
    }
}

impl TryFrom<Bytes> for MqttString {
    type Error = DecodeError;
    fn try_from(b: Bytes) -> Result<Self, DecodeError> {
        Self::from_bytes(b)
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_null_character() {
        // [MQTT-1.5.4-2]
        assert_eq!(
            MqttString::from_bytes(Bytes::from_static(b"a\0b")),
            Err(DecodeError::NullCharacter)
        );
    }

    #[test]
    fn rejects_surrogates_and_bad_utf8() {
        // [MQTT-1.5.4-1]: U+D800 encoded as ED A0 80 is not well-formed UTF-8.
        assert_eq!(
            MqttString::from_bytes(Bytes::from_static(&[0xED, 0xA0, 0x80])),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            MqttString::from_bytes(Bytes::from_static(&[0xC3])),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn accepts_non_ascii_without_copying() {
        // MQTT 5, 1.5.4.1 example: "A\u{2A6D4}" is 41 F0 AA 9B 94.
        let b = Bytes::from_static(&[0x41, 0xF0, 0xAA, 0x9B, 0x94]);
        let ptr = b.as_ptr();
        let s = MqttString::from_bytes(b).unwrap();
        assert_eq!(s.as_str(), "A\u{2A6D4}");
        assert_eq!(s.as_bytes().as_ptr(), ptr);
    }
}
