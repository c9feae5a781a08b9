//! Heavy hitters with bounded memory: the Space-Saving algorithm
//! (Metwally, Agrawal, El Abbadi 2005) over 64-bit keys, with a payload
//! per key (the name or network to print).
//!
//! `capacity` slots are allocated up front. A new key takes the slot of the
//! current minimum and inherits its count (recorded as the error bound), so
//! every key whose true count exceeds total/capacity is guaranteed to be in
//! the table, and reported counts overestimate by at most `error`. Slots
//! are kept in an indexed min-heap, so both an increment and an eviction
//! cost O(log capacity); the query path never allocates once the table is
//! full.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are already well-mixed 64-bit hashes; hashing them again would
/// only cost instructions.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

type KeyIndex = HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>;

#[derive(Clone, Debug)]
struct Slot<P> {
    key: u64,
    count: u64,
    error: u64,
    /// Position of this slot in `heap`.
    heap_pos: usize,
    payload: P,
}

/// One Space-Saving summary.
#[derive(Debug)]
pub(crate) struct SpaceSaving<P> {
    capacity: usize,
    index: KeyIndex,
    slots: Vec<Slot<P>>,
    /// Slot numbers, ordered as a binary min-heap by count.
    heap: Vec<usize>,
}

/// One reported entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hitter<P> {
    pub(crate) key: u64,
    pub(crate) count: u64,
    pub(crate) error: u64,
    pub(crate) payload: P,
}

impl<P: Clone> SpaceSaving<P> {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            // Twice the slots so removals and inserts never trigger a grow.
            index: KeyIndex::with_capacity_and_hasher(capacity * 2, BuildHasherDefault::default()),
            slots: Vec::with_capacity(capacity),
            heap: Vec::with_capacity(capacity),
        }
    }

    /// Counts `weight` occurrences of `key`; `payload` is called only when
    /// the key enters the table.
    pub(crate) fn observe(&mut self, key: u64, weight: u64, payload: impl FnOnce() -> P) {
        if let Some(&slot) = self.index.get(&key) {
            self.slots[slot].count = self.slots[slot].count.saturating_add(weight);
            self.sift_down(self.slots[slot].heap_pos);
            return;
        }
        if self.slots.len() < self.capacity {
            let slot = self.slots.len();
            let heap_pos = self.heap.len();
            self.slots.push(Slot {
                key,
                count: weight,
                error: 0,
                heap_pos,
                payload: payload(),
            });
            self.heap.push(slot);
            self.index.insert(key, slot);
            self.sift_up(heap_pos);
            return;
        }
        // Replace the minimum: the newcomer may have been seen up to `min`
        // times while it was not tracked.
        let slot = self.heap[0];
        let old = &mut self.slots[slot];
        let min = old.count;
        let old_key = old.key;
        old.key = key;
        old.error = min;
        old.count = min.saturating_add(weight);
        old.payload = payload();
        self.index.remove(&old_key);
        self.index.insert(key, slot);
        self.sift_down(0);
    }

    /// Halves every count (exponential decay). Halving keeps the heap
    /// order, so no re-sort is needed.
    pub(crate) fn decay(&mut self) {
        for slot in &mut self.slots {
            slot.count /= 2;
            slot.error /= 2;
        }
    }

    /// Every tracked entry with a non-zero count, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = Hitter<P>> + '_ {
        self.slots.iter().filter(|s| s.count > 0).map(|s| Hitter {
            key: s.key,
            count: s.count,
            error: s.error,
            payload: s.payload.clone(),
        })
    }

    fn count_at(&self, heap_pos: usize) -> u64 {
        self.slots[self.heap[heap_pos]].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (slot_a, slot_b) = (self.heap[a], self.heap[b]);
        self.slots[slot_a].heap_pos = a;
        self.slots[slot_b].heap_pos = b;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.count_at(parent) <= self.count_at(pos) {
                return;
            }
            self.swap(parent, pos);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let left = 2 * pos + 1;
            if left >= self.heap.len() {
                return;
            }
            let right = left + 1;
            let mut smallest = left;
            if right < self.heap.len() && self.count_at(right) < self.count_at(left) {
                smallest = right;
            }
            if self.count_at(pos) <= self.count_at(smallest) {
                return;
            }
            self.swap(pos, smallest);
            pos = smallest;
        }
    }
}

/// Sums several summaries (one per worker thread) and returns the `n`
/// largest, biggest first; ties broken by key so output is stable.
pub(crate) fn merge_top<P: Clone>(
    tables: impl IntoIterator<Item = Vec<Hitter<P>>>,
    n: usize,
) -> Vec<Hitter<P>> {
    let mut merged: HashMap<u64, Hitter<P>> = HashMap::new();
    for table in tables {
        for hitter in table {
            merged
                .entry(hitter.key)
                .and_modify(|m| {
                    m.count = m.count.saturating_add(hitter.count);
                    m.error = m.error.saturating_add(hitter.error);
                })
                .or_insert(hitter);
        }
    }
    let mut all: Vec<Hitter<P>> = merged.into_values().collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    all.truncate(n);
    all
}

/// A cheap 64-bit hash of a byte string (FxHash-style, 8 bytes a step),
/// used for query names on the query path.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    // Final avalanche so the low bits used by the hash map are mixed.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_while_under_capacity() {
        let mut ss = SpaceSaving::new(8);
        for (key, times) in [(1u64, 5u64), (2, 3), (3, 7)] {
            for _ in 0..times {
                ss.observe(key, 1, || key);
            }
        }
        let top = merge_top([ss.entries().collect()], 3);
        let got: Vec<(u64, u64, u64)> = top.iter().map(|h| (h.key, h.count, h.error)).collect();
        assert_eq!(got, vec![(3, 7, 0), (1, 5, 0), (2, 3, 0)]);
    }

    #[test]
    fn eviction_inherits_the_minimum_as_error() {
        let mut ss = SpaceSaving::new(2);
        ss.observe(1, 5, || 1u64);
        ss.observe(2, 2, || 2);
        ss.observe(3, 1, || 3);
        let mut entries: Vec<_> = ss.entries().map(|h| (h.key, h.count, h.error)).collect();
        entries.sort();
        assert_eq!(entries, vec![(1, 5, 0), (3, 3, 2)]);
        assert_eq!(ss.entries().count(), 2);
    }

    #[test]
    fn decay_halves_and_merge_sums() {
        let mut a = SpaceSaving::new(4);
        let mut b = SpaceSaving::new(4);
        a.observe(7, 10, || "x");
        b.observe(7, 4, || "x");
        b.observe(8, 9, || "y");
        a.decay();
        let top = merge_top([a.entries().collect(), b.entries().collect()], 1);
        assert_eq!(top[0].key, 7);
        assert_eq!(top[0].count, 9);
        assert_eq!(top[0].payload, "x");
    }

    #[test]
    fn hash_differs_for_close_names() {
        assert_ne!(hash_bytes(b"\x01a\x00"), hash_bytes(b"\x01b\x00"));
        assert_ne!(hash_bytes(b"abcdefgh1"), hash_bytes(b"abcdefgh2"));
        assert_eq!(hash_bytes(b"same"), hash_bytes(b"same"));
    }

    proptest! {
        /// The Space-Saving guarantee: any key seen more than total/capacity
        /// times is tracked, and its count is within [true, true + error].
        #[test]
        fn frequent_keys_are_never_lost(stream in proptest::collection::vec(0u64..40, 1..600)) {
            let capacity = 10;
            let mut ss = SpaceSaving::new(capacity);
            let mut truth = HashMap::new();
            for &key in &stream {
                ss.observe(key, 1, || key);
                *truth.entry(key).or_insert(0u64) += 1;
            }
            let entries: HashMap<u64, Hitter<u64>> = ss.entries().map(|h| (h.key, h)).collect();
            let total = stream.len() as u64;
            for (key, &count) in &truth {
                if count * capacity as u64 > total {
                    let hit = entries.get(key).expect("frequent key tracked");
                    prop_assert!(hit.count >= count);
                    prop_assert!(hit.count - hit.error <= count);
                }
            }
            let sum: u64 = entries.values().map(|h| h.count).sum();
            prop_assert_eq!(sum, total);
        }
    }
}
