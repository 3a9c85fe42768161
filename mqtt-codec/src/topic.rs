//! Topic names, topic filters, matching and shared subscriptions (MQTT 5, 4.7-4.8).
//!
//! ```
//! use mqtt_codec::topic::{filter_matches, SharedSubscription};
//!
//! assert!(filter_matches("sensors/+/temp", "sensors/k1/temp"));
//! assert!(filter_matches("sport/#", "sport")); // '#' includes the parent level
//! assert!(!filter_matches("#", "$SYS/uptime")); // [MQTT-4.7.2-1]
//!
//! let shared = SharedSubscription::parse("$share/ingest/sensors/#").unwrap().unwrap();
//! assert_eq!(shared.group, "ingest");
//! assert_eq!(shared.filter, "sensors/#");
//! ```

use crate::error::DecodeError;

/// The prefix of a shared subscription's topic filter (MQTT 5, 4.8.2).
pub const SHARED_PREFIX: &str = "$share/";

/// Checks a topic name: not empty [MQTT-4.7.3-1] and free of the wildcards `+` and `#`
/// [MQTT-3.3.2-2] [MQTT-4.7.0-1]. (UTF-8 and U+0000 are checked by
/// [`MqttString`](crate::MqttString).)
#[inline]
pub fn check_topic_name(topic: &str) -> Result<(), DecodeError> {
    if topic.is_empty() {
        return Err(DecodeError::EmptyTopicName);
    }
    check_no_wildcards(topic)
}

#[inline]
pub(crate) fn check_no_wildcards(topic: &str) -> Result<(), DecodeError> {
    if classify(topic.as_bytes()) & WILDCARD != 0 {
        Err(DecodeError::WildcardInTopicName)
    } else {
        Ok(())
    }
}

/// [`classify`] bit: the bytes hold U+0000.
pub(crate) const NUL: u8 = 0b001;
/// [`classify`] bit: the bytes hold `+` or `#`.
pub(crate) const WILDCARD: u8 = 0b010;

/// One pass over a topic: which of [`NUL`] and [`WILDCARD`] occur. Eight bytes at a
/// time (the "has zero byte" test on the word, the word xor `+`, the word xor `#`),
/// with no early exit: topics are short and almost always clean.
#[inline]
pub(crate) fn classify(bytes: &[u8]) -> u8 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const PLUS: u64 = u64::from_ne_bytes([b'+'; 8]);
    const HASH: u64 = u64::from_ne_bytes([b'#'; 8]);
    // Non-zero exactly when some byte of `w` is zero.
    let zero_bytes = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut nul = 0u64;
    let mut wild = 0u64;
    let mut scan = |w: u64| {
        nul |= zero_bytes(w);
        wild |= zero_bytes(w ^ PLUS) | zero_bytes(w ^ HASH);
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        scan(u64::from_ne_bytes(word));
    }
    // The tail, padded with a byte that is none of NUL, '+', '#'.
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut word = [b'a'; 8];
        if let Some(head) = word.get_mut(..tail.len()) {
            head.copy_from_slice(tail);
        }
        scan(u64::from_ne_bytes(word));
    }
    (u8::from(nul != 0) * NUL) | (u8::from(wild != 0) * WILDCARD)
}

/// Checks a topic filter: not empty [MQTT-4.7.3-1], `#` only as the whole last level
/// [MQTT-4.7.1-1], `+` only as a whole level [MQTT-4.7.1-2].
pub fn check_topic_filter(filter: &str) -> Result<(), DecodeError> {
    let bytes = filter.as_bytes();
    if bytes.is_empty() {
        return Err(DecodeError::InvalidTopicFilter);
    }
    // Eight bytes at a time: a mask with 0x80 in exactly the bytes that are '+' or
    // '#', and only those positions are looked at.
    for (n, chunk) in bytes.chunks(8).enumerate() {
        let mut word = [b'a'; 8];
        if let Some(head) = word.get_mut(..chunk.len()) {
            head.copy_from_slice(chunk);
        }
        let word = u64::from_le_bytes(word);
        let mut wildcards = exact_zero_bytes(word ^ u64::from_le_bytes([b'+'; 8]))
            | exact_zero_bytes(word ^ u64::from_le_bytes([b'#'; 8]));
        while wildcards != 0 {
            let at = n * 8 + (wildcards.trailing_zeros() / 8) as usize;
            check_wildcard_at(bytes, at)?;
            wildcards &= wildcards - 1;
        }
    }
    Ok(())
}

/// 0x80 in exactly the bytes of `x` that are zero, 0 elsewhere (no false positives,
/// unlike the cheaper test in [`classify`], which only tells whether one exists).
#[inline]
fn exact_zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = u64::from_ne_bytes([0x7F; 8]);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The wildcard at `at` is preceded by a level separator (or the start) and followed
/// by one (or the end); '#' must moreover be the last character [MQTT-4.7.1-1]
/// [MQTT-4.7.1-2].
#[inline]
fn check_wildcard_at(bytes: &[u8], at: usize) -> Result<(), DecodeError> {
    let after_separator = at == 0 || bytes.get(at - 1) == Some(&b'/');
    let next = bytes.get(at + 1);
    let before_separator = match bytes.get(at) {
        Some(b'#') => next.is_none(),
        _ => next.is_none_or(|&n| n == b'/'),
    };
    if after_separator && before_separator {
        Ok(())
    } else {
        Err(DecodeError::InvalidTopicFilter)
    }
}

/// Checks a topic filter as a SUBSCRIBE or UNSUBSCRIBE in MQTT 5 carries it: a
/// plain filter, or a shared subscription `$share/{group}/{filter}` whose group is
/// not empty and holds no `/`, `+` or `#` [MQTT-4.8.2-1] [MQTT-4.8.2-2].
pub fn check_subscription_filter(filter: &str) -> Result<(), DecodeError> {
    match SharedSubscription::parse(filter)? {
        Some(_) => Ok(()),
        None => check_topic_filter(filter),
    }
}

/// A shared subscription filter, `$share/{group}/{filter}` (MQTT 5, 4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSubscription<'a> {
    /// The share name.
    pub group: &'a str,
    /// The topic filter after the share name.
    pub filter: &'a str,
}

impl<'a> SharedSubscription<'a> {
    /// Parses `filter`: `Ok(None)` if it does not start with `$share/`, an error if it
    /// does but is not a valid shared subscription.
    pub fn parse(filter: &'a str) -> Result<Option<Self>, DecodeError> {
        let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
            return Ok(None);
        };
        let Some((group, inner)) = rest.split_once('/') else {
            return Err(DecodeError::InvalidTopicFilter);
        };
        if group.is_empty() || group.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(DecodeError::InvalidTopicFilter);
        }
        check_topic_filter(inner)?;
        Ok(Some(Self {
            group,
            filter: inner,
        }))
    }
}

/// Whether `topic` (a topic name) matches `filter` (a valid topic filter, not a shared
/// subscription). A filter starting with a wildcard does not match a topic starting
/// with `$` [MQTT-4.7.2-1].
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        match f {
            // '#' matches the parent level and any number of child levels.
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            _ => match topic_levels.next() {
                Some(t) if t == f => {}
                _ => return false,
            },
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_examples_from_the_specification() {
        // MQTT 5, 4.7.1.2 and 4.7.1.3.
        assert!(filter_matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1"
        ));
        assert!(filter_matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking"
        ));
        assert!(filter_matches(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(filter_matches("sport/#", "sport"));
        assert!(filter_matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!filter_matches(
            "sport/tennis/+",
            "sport/tennis/player1/ranking"
        ));
        assert!(!filter_matches("sport/+", "sport"));
        assert!(filter_matches("sport/+", "sport/"));
        assert!(filter_matches("+/+", "/finance"));
        assert!(filter_matches("/+", "/finance"));
        assert!(!filter_matches("+", "/finance"));
        assert!(filter_matches("#", "a/b/c"));
        assert!(!filter_matches("a/b", "a/b/c"));
        assert!(!filter_matches("a/b/c", "a/b"));
    }

    #[test]
    fn rejects_wildcard_match_of_dollar_topics() {
        // [MQTT-4.7.2-1]
        assert!(!filter_matches("#", "$SYS/monitor/Clients"));
        assert!(!filter_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(filter_matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(filter_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
    }

    #[test]
    fn rejects_malformed_filters() {
        // [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1]
        for bad in [
            "",
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "a/+b",
            "#/a",
            "##",
        ] {
            assert_eq!(
                check_topic_filter(bad),
                Err(DecodeError::InvalidTopicFilter),
                "{bad}"
            );
        }
        for good in [
            "#",
            "+",
            "+/tennis/#",
            "sport/+/player1",
            "/",
            "//",
            "a//b",
            "+/+",
        ] {
            assert_eq!(check_topic_filter(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn classify_finds_every_position() {
        for len in 0..40 {
            let clean = vec![b'x'; len];
            assert_eq!(classify(&clean), 0, "{len}");
            for at in 0..len {
                for (byte, class) in [(0u8, NUL), (b'+', WILDCARD), (b'#', WILDCARD)] {
                    let mut t = clean.clone();
                    t[at] = byte;
                    assert_eq!(classify(&t), class, "{len} {at} {byte}");
                }
                let mut t = clean.clone();
                t[at] = 0x80;
                assert_eq!(classify(&t), 0, "high bytes are not flagged");
            }
        }
    }

    #[test]
    fn filter_check_agrees_with_a_level_by_level_reference() {
        // The rule stated level by level: each level holding a wildcard is exactly
        // "+" or "#", and "#" is the last level.
        fn reference(filter: &str) -> bool {
            let levels: Vec<&str> = filter.split('/').collect();
            !filter.is_empty()
                && levels.iter().enumerate().all(|(i, level)| {
                    !level.contains(['+', '#'])
                        || *level == "+"
                        || (*level == "#" && i == levels.len() - 1)
                })
        }
        // Every string of up to 5 characters over an alphabet that matters, so that
        // wildcards fall at every position of a word and across word boundaries too.
        let alphabet = ['a', '/', '+', '#'];
        let mut filters = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = filters
                .iter()
                .flat_map(|f| alphabet.iter().map(move |c| format!("{f}{c}")))
                .collect();
            filters.extend(longer);
        }
        filters.sort();
        filters.dedup();
        for f in &filters {
            for padded in [f.clone(), format!("abcdefg{f}"), format!("{f}/abcdefghij")] {
                assert_eq!(
                    check_topic_filter(&padded).is_ok(),
                    reference(&padded),
                    "{padded:?}"
                );
            }
        }
    }

    #[test]
    fn rejects_wildcards_in_topic_names() {
        // [MQTT-3.3.2-2]
        assert_eq!(
            check_topic_name("a/+/b"),
            Err(DecodeError::WildcardInTopicName)
        );
        assert_eq!(
            check_topic_name("a/#"),
            Err(DecodeError::WildcardInTopicName)
        );
        assert_eq!(check_topic_name(""), Err(DecodeError::EmptyTopicName));
        assert_eq!(check_topic_name("/"), Ok(()));
    }

    #[test]
    fn shared_subscriptions() {
        let s = SharedSubscription::parse("$share/g1/a/+/c")
            .unwrap()
            .unwrap();
        assert_eq!((s.group, s.filter), ("g1", "a/+/c"));
        assert_eq!(SharedSubscription::parse("a/b"), Ok(None));
        assert_eq!(SharedSubscription::parse("$sharex/g/a"), Ok(None));
        // [MQTT-4.8.2-1] group not empty, [MQTT-4.8.2-2] no wildcards in the group,
        // and a filter must follow.
        for bad in [
            "$share/",
            "$share//a",
            "$share/g",
            "$share/g+/a",
            "$share/#/a",
            "$share/g/",
        ] {
            assert_eq!(
                SharedSubscription::parse(bad),
                Err(DecodeError::InvalidTopicFilter),
                "{bad}"
            );
        }
    }
}
