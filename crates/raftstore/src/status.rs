//! What `raftkv status` shows of a store.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    pub store_id: u64,
    /// "leader", "follower", "candidate", "pre-candidate" or "learner".
    pub role: &'static str,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    /// The last compacted log index: entries up to it are gone from the log.
    pub truncated: u64,
    /// The leader's store id, 0 when unknown.
    pub leader_id: u64,
}
