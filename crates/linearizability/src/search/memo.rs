//! Lowe's memoization: the configurations — (set of linearized operations, state) — the
//! search has already reached. Two paths reaching the same configuration have the same
//! futures, so the second one is cut.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::register::{KeyOp, Value};

/// The configurations seen, and the current linearized set.
pub(super) struct Memo {
    /// Each operation's bit in the set (see `bit_numbers`).
    bits: Vec<usize>,
    linearized: Linearized,
    seen: HashSet<CacheKey>,
}

impl Memo {
    pub(super) fn new(ops: &[KeyOp]) -> Self {
        Memo {
            bits: bit_numbers(ops),
            linearized: Linearized::new(ops.len()),
            seen: HashSet::new(),
        }
    }

    /// Adds `op` to the linearized set if absent, removes it if present.
    pub(super) fn flip(&mut self, op: usize) {
        self.linearized.flip(self.bits[op]);
    }

    /// Records the current set with `state`; false if that configuration was seen before.
    pub(super) fn insert(&mut self, state: Value) -> bool {
        self.seen.insert(self.linearized.cache_key(state))
    }
}

/// The bit each operation gets in the linearized set: operations with a known outcome
/// first, in invocation order, then those with an unknown outcome.
///
/// The order does not matter for correctness; it makes cache keys small. Known operations
/// get linearized roughly in invocation order, so their bits form a full prefix plus a few
/// bits past it, which `Linearized::cache_key` stores compactly; an unknown operation left
/// out would otherwise pin a hole in that prefix forever.
fn bit_numbers(ops: &[KeyOp]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&op| (ops[op].returned_at.is_none(), ops[op].invoked_at, op));
    let mut bits = vec![0; ops.len()];
    for (bit, op) in order.into_iter().enumerate() {
        bits[op] = bit;
    }
    bits
}

/// The set of linearized operations as a bitset, with an incremental Zobrist hash.
struct Linearized {
    words: Vec<u64>,
    /// XOR of `zobrist(bit)` over the set bits.
    hash: u64,
}

impl Linearized {
    fn new(bits: usize) -> Self {
        Linearized { words: vec![0; bits.div_ceil(64)], hash: 0 }
    }

    /// Adds the bit if absent, removes it if present.
    fn flip(&mut self, bit: usize) {
        self.words[bit / 64] ^= 1 << (bit % 64);
        self.hash ^= zobrist(bit);
    }

    /// The cache entry for this set and `state`: the number of leading full words, then
    /// the set bits past them — a canonical form, so equal sets give equal keys.
    fn cache_key(&self, state: Value) -> CacheKey {
        let full_words = self.words.iter().take_while(|&&word| word == u64::MAX).count();
        let mut tail = Vec::new();
        for (index, &word) in self.words.iter().enumerate().skip(full_words) {
            let mut rest = word;
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                tail.push(index * 64 + bit);
                rest &= rest - 1;
            }
        }
        CacheKey { hash: self.hash, state, full_words, tail: tail.into_boxed_slice() }
    }
}

/// A configuration: (linearized set, state). Equality compares the whole set; hashing
/// uses only the incremental hash and the state, so it costs O(1).
#[derive(PartialEq, Eq)]
struct CacheKey {
    hash: u64,
    state: Value,
    full_words: usize,
    tail: Box<[usize]>,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        hasher.write_u64(self.hash);
        hasher.write_u32(self.state);
    }
}

/// A well-mixed 64-bit value for a bit number (SplitMix64's finalizer).
fn zobrist(bit: usize) -> u64 {
    let mut z = (bit as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_equal_exactly_for_equal_sets() {
        let mut a = Linearized::new(130);
        let mut b = Linearized::new(130);
        for bit in (0..64).chain([70, 129]) {
            a.flip(bit);
        }
        for bit in [129, 70].into_iter().chain(0..64) {
            b.flip(bit);
        }
        assert!(a.cache_key(1) == b.cache_key(1));
        assert!(a.cache_key(1) != b.cache_key(2));
        b.flip(70);
        assert!(a.cache_key(1) != b.cache_key(1));
        assert_eq!(a.cache_key(1).full_words, 1);
        assert_eq!(&*a.cache_key(1).tail, &[70, 129]);
    }
}
