//! Everything a node is configured with; checked once by `validate`.

use crate::errors::{Error, Result};

/// "No node": node ids start at 1.
pub const INVALID_ID: u64 = 0;
/// No limit on a size in bytes.
pub const NO_LIMIT: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id; never 0.
    pub id: u64,
    /// Ticks without hearing from a leader before a follower campaigns. The actual timeout
    /// is drawn from `[election_tick, 2 * election_tick)` at every reset.
    pub election_tick: usize,
    /// Ticks between a leader's heartbeats; must be below `election_tick`.
    pub heartbeat_tick: usize,
    /// The last index the application applied before this start (0 for a fresh node).
    pub applied: u64,
    /// Upper bound on the bytes of entries in one append message.
    pub max_size_per_msg: u64,
    /// Max append messages in flight to one follower in the replicate state.
    pub max_inflight_msgs: usize,
    /// Max bytes of entries in flight to one follower (one append always goes): with large
    /// entries, `max_inflight_msgs` full appends could otherwise mean gigabytes read and
    /// queued at once for a follower catching up.
    pub max_inflight_bytes: u64,
    /// Upper bound on the bytes of committed entries handed out in one `Ready`.
    pub max_committed_size_per_ready: u64,
    /// A leader steps down when it has not heard from a quorum for an election timeout, and
    /// followers ignore vote requests while they have a live leader (a lease).
    pub check_quorum: bool,
    /// Before a real election a candidate asks whether it would win (thesis §9.6), so a
    /// partitioned node does not inflate the term when it comes back.
    pub pre_vote: bool,
    /// Seed of the node's election-jitter generator; mixed with `id`.
    pub seed: u64,
    /// Do not send an extra (possibly empty) append to every follower each time the
    /// commit index moves: followers learn it from the next append or heartbeat. Saves a
    /// message per follower per commit under load; followers apply a little later.
    pub skip_bcast_commit: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: INVALID_ID,
            election_tick: 10,
            heartbeat_tick: 2,
            applied: 0,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            max_inflight_bytes: NO_LIMIT,
            max_committed_size_per_ready: NO_LIMIT,
            check_quorum: false,
            pre_vote: false,
            seed: 0,
            skip_bcast_commit: false,
        }
    }
}

impl Config {
    pub fn new(id: u64) -> Self {
        Config { id, ..Default::default() }
    }

    pub fn validate(&self) -> Result<()> {
        if self.id == INVALID_ID {
            return Err(Error::ConfigInvalid("id must not be 0".into()));
        }
        if self.heartbeat_tick == 0 {
            return Err(Error::ConfigInvalid("heartbeat_tick must be greater than 0".into()));
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(Error::ConfigInvalid(
                "election_tick must be greater than heartbeat_tick".into(),
            ));
        }
        if self.max_inflight_msgs == 0 {
            return Err(Error::ConfigInvalid("max_inflight_msgs must be greater than 0".into()));
        }
        Ok(())
    }
}
