//! What one seed decides about a run before it starts.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub nodes: u64,
    /// Scheduler steps before the final heal-and-check phase.
    pub steps: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg: u64,
    /// Probability that a delivered message is lost / delivered twice.
    pub drop_rate: f64,
    pub duplicate_rate: f64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub skip_bcast_commit: bool,
    pub max_inflight_bytes: u64,
    /// Readies are persisted in the background (`advance_async`), completing later in
    /// their own scheduler steps; a crash loses the writes not completed.
    pub async_persist: bool,
}

impl Options {
    /// Draws the options of a run from its seed; `nodes` is fixed by the caller.
    pub fn from_seed(seed: u64, nodes: u64, steps: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_0F0F_7105);
        let unreliable = rng.random_bool(0.5);
        Options {
            seed,
            nodes,
            steps,
            pre_vote: rng.random_bool(0.5),
            check_quorum: rng.random_bool(0.5),
            max_inflight_msgs: rng.random_range(1..=8),
            max_size_per_msg: if rng.random_bool(0.5) { 64 } else { 1024 * 1024 },
            drop_rate: if unreliable { 0.1 } else { 0.0 },
            duplicate_rate: if unreliable { 0.05 } else { 0.0 },
            election_tick: 10,
            heartbeat_tick: rng.random_range(1..=3),
            skip_bcast_commit: rng.random_bool(0.5),
            // Drawn last, so the draws above mean what they meant for older seeds.
            max_inflight_bytes: if rng.random_bool(0.5) {
                u64::MAX
            } else {
                rng.random_range(64..=1024)
            },
            async_persist: rng.random_bool(0.5),
        }
    }
}
