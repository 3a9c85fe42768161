//! Packet identifiers: one pool shared by PUBLISH, SUBSCRIBE, UNSUBSCRIBE and PUBREL.

use mqtt_codec::PacketId;

/// The identifiers in use, as a bitmap of 65,536 bits (8 KiB), and a cursor.
///
/// Allocation takes the next free identifier after the last one handed out, so a
/// released identifier is reused as late as possible (a server that is slow to
/// forget one never sees it again soon), and an identifier in use is never handed
/// out twice. The cost is one bit scan from the cursor: with at most a window of
/// identifiers in use, the scan almost always stops at the first word.
pub(crate) struct PacketIds {
    used: Box<[u64; 1024]>,
    cursor: u16,
    in_use: u32,
}

impl std::fmt::Debug for PacketIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketIds")
            .field("in_use", &self.in_use)
            .field("cursor", &self.cursor)
            .finish()
    }
}

const USABLE: u32 = 65_535;

impl PacketIds {
    pub(crate) fn new() -> Self {
        let mut used = Box::new([0u64; 1024]);
        // Identifier 0 does not exist [MQTT-2.2.1-3]: mark it used forever.
        if let Some(first) = used.first_mut() {
            *first = 1;
        }
        Self {
            used,
            cursor: 0,
            in_use: 0,
        }
    }

    /// Identifiers in use.
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    /// True when at least one identifier is free.
    pub(crate) fn available(&self) -> bool {
        self.in_use < USABLE
    }

    /// Takes the next free identifier after the cursor.
    pub(crate) fn alloc(&mut self) -> Option<PacketId> {
        if !self.available() {
            return None;
        }
        let start = usize::from(self.cursor) + 1;
        for step in 0..=65_536usize {
            let id = (start + step) & 0xFFFF;
            let (word, bit) = (id >> 6, id & 63);
            let w = self.used.get_mut(word)?;
            if *w & (1 << bit) == 0 {
                *w |= 1 << bit;
                self.in_use += 1;
                let id = u16::try_from(id).ok()?;
                self.cursor = id;
                return PacketId::new(id);
            }
        }
        None
    }

    /// Marks `id` in use (an identifier of a restored session); false if it was.
    pub(crate) fn reserve(&mut self, id: PacketId) -> bool {
        let i = usize::from(id.get());
        match self.used.get_mut(i >> 6) {
            Some(w) if *w & (1 << (i & 63)) == 0 => {
                *w |= 1 << (i & 63);
                self.in_use += 1;
                self.cursor = id.get();
                true
            }
            _ => false,
        }
    }

    /// Returns an identifier to the pool; freeing a free identifier is a no-op.
    pub(crate) fn free(&mut self, id: PacketId) {
        let i = usize::from(id.get());
        if let Some(w) = self.used.get_mut(i >> 6) {
            if *w & (1 << (i & 63)) != 0 {
                *w &= !(1 << (i & 63));
                self.in_use -= 1;
            }
        }
    }
}

/// A set of packet identifiers (incoming flows), as a bitmap.
pub(crate) struct IdSet {
    bits: Box<[u64; 1024]>,
    len: u32,
}

impl std::fmt::Debug for IdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdSet").field("len", &self.len).finish()
    }
}

impl IdSet {
    pub(crate) fn new() -> Self {
        Self {
            bits: Box::new([0u64; 1024]),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn contains(&self, id: PacketId) -> bool {
        let i = usize::from(id.get());
        self.bits
            .get(i >> 6)
            .is_some_and(|w| w & (1 << (i & 63)) != 0)
    }

    /// Inserts; false when already present.
    pub(crate) fn insert(&mut self, id: PacketId) -> bool {
        let i = usize::from(id.get());
        match self.bits.get_mut(i >> 6) {
            Some(w) if *w & (1 << (i & 63)) == 0 => {
                *w |= 1 << (i & 63);
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    /// Removes; false when absent.
    pub(crate) fn remove(&mut self, id: PacketId) -> bool {
        let i = usize::from(id.get());
        match self.bits.get_mut(i >> 6) {
            Some(w) if *w & (1 << (i & 63)) != 0 => {
                *w &= !(1 << (i & 63));
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// The identifiers in the set, in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, &bits)| {
            (0..64u16)
                .filter(move |bit| bits & (1 << bit) != 0)
                .filter_map(move |bit| {
                    u16::try_from(word)
                        .ok()
                        .and_then(|w| PacketId::new(w * 64 + bit))
                })
        })
    }

    pub(crate) fn clear(&mut self) {
        if self.len > 0 {
            self.bits.fill(0);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_hands_out_an_identifier_in_use_and_exhausts_at_65535() {
        let mut ids = PacketIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..65_535 {
            let id = ids.alloc().unwrap();
            assert!(seen.insert(id.get()));
        }
        assert!(ids.alloc().is_none());
        let five = PacketId::new(5).unwrap();
        ids.free(five);
        assert_eq!(ids.alloc(), Some(five));
        assert!(ids.alloc().is_none());
    }

    #[test]
    fn reuses_a_freed_identifier_as_late_as_possible() {
        let mut ids = PacketIds::new();
        let a = ids.alloc().unwrap();
        ids.free(a);
        let b = ids.alloc().unwrap();
        assert_ne!(a, b, "the cursor moves on");
        assert_eq!(ids.in_use(), 1);
        ids.free(b);
        ids.free(b);
        assert_eq!(ids.in_use(), 0);
    }

    #[test]
    fn wraps_around_past_65535_skipping_zero() {
        let mut ids = PacketIds::new();
        ids.cursor = 65_534;
        assert_eq!(ids.alloc().unwrap().get(), 65_535);
        assert_eq!(ids.alloc().unwrap().get(), 1);
    }
}

/// Hashes a packet identifier to itself: the keys are identifiers the engine
/// hands out, so a keyed hash (SipHash) protects nothing and costs a sixth of an
/// outgoing QoS 1 flow.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Spread the 16 bits over the word hashbrown takes its control bits from.
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = u64::from(n);
    }
}

/// A map keyed by packet identifier.
pub(crate) type IdMap<V> =
    std::collections::HashMap<u16, V, std::hash::BuildHasherDefault<IdHasher>>;
