//! A tiny seedable pseudo-random generator (SplitMix64) owned by each node.
//!
//! The core must be deterministic: no global or OS randomness. Election jitter needs only a
//! few well-spread bits, which SplitMix64 gives with no dependency.

#[derive(Debug, Clone)]
pub(crate) struct NodeRng {
    state: u64,
}

impl NodeRng {
    /// Seeds from the node id as well, so nodes sharing a config seed still draw apart.
    /// The id is hashed, not multiplied by the stream's increment: states `id·γ` apart
    /// would make node `k + 1`'s draws node `k`'s shifted by one, and two nodes whose draw
    /// counts line up would time out together in every election.
    pub(crate) fn new(seed: u64, id: u64) -> Self {
        let id_hash = NodeRng { state: id }.next_u64();
        NodeRng { state: seed ^ id_hash }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[low, high)`; `high > low`.
    pub(crate) fn in_range(&mut self, low: usize, high: usize) -> usize {
        debug_assert!(high > low);
        low + (self.next_u64() % (high - low) as u64) as usize
    }
}
