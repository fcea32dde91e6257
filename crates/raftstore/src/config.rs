//! What a store is configured with (the server maps its TOML and flags onto this).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::failpoints::FailPoints;
use crate::snap::SnapConfig;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub store_id: u64,
    /// Derived from the cluster token; every raft message carries it.
    pub cluster_id: u64,
    /// The initial members: store id -> address (peer id = store id, one region).
    pub initial_peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub base_tick: Duration,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg_bytes: u64,
    /// Bytes of entries in flight to one follower: bounds what a leader reads from its log
    /// and queues for a follower catching up, whatever the entries' size.
    pub max_inflight_bytes: u64,
    /// Commands queued for the raft worker beyond which new ones get `server_is_busy`.
    pub max_pending_commands: usize,
    /// Raft messages queued for the raft worker beyond which new ones are dropped.
    pub max_pending_raft_messages: usize,
    /// Bytes of proposed-but-unapplied commands beyond which writes get `server_is_busy`.
    pub max_inflight_proposal_bytes: u64,
    /// Bytes of committed entries applied per Ready (bounds memory of a catching-up peer).
    pub max_apply_bytes_per_ready: u64,
    /// How often a leader checks whether to compact its log.
    pub raft_log_gc_tick_interval: Duration,
    /// Compact once more than this many applied entries are kept...
    pub raft_log_gc_count_limit: u64,
    /// ... or once the kept entries take about this many bytes.
    pub raft_log_gc_size_limit_bytes: u64,
    /// Snapshot transfer: chunk size, bytes per second, concurrent sends and receives.
    pub snap: SnapConfig,
    /// Crash points for tests; none armed in production.
    pub failpoints: FailPoints,
}

impl StoreConfig {
    /// Production defaults (SPEC's config table) for a store of `initial_peers`.
    pub fn new(store_id: u64, initial_peers: BTreeMap<u64, String>, data_dir: PathBuf) -> Self {
        StoreConfig {
            store_id,
            cluster_id: cluster_id_from_token("raftkv"),
            initial_peers,
            data_dir,
            base_tick: Duration::from_millis(50),
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            max_inflight_msgs: 256,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_bytes: 8 * 1024 * 1024,
            max_pending_commands: 16 * 1024,
            max_pending_raft_messages: 64 * 1024,
            max_inflight_proposal_bytes: 256 * 1024 * 1024,
            max_apply_bytes_per_ready: 64 * 1024 * 1024,
            raft_log_gc_tick_interval: Duration::from_secs(10),
            raft_log_gc_count_limit: 100_000,
            raft_log_gc_size_limit_bytes: 256 * 1024 * 1024,
            snap: SnapConfig {
                chunk_bytes: 1024 * 1024,
                max_bytes_per_sec: 100 * 1024 * 1024,
                max_concurrent_send: 4,
                max_concurrent_recv: 4,
            },
            failpoints: FailPoints::default(),
        }
    }
}

/// A stable 64-bit id for a cluster token (FNV-1a; never 0).
pub fn cluster_id_from_token(token: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}
