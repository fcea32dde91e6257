//! What the raft worker receives, and how it answers.

use bytes::Bytes;
use raftkv_proto::errorpb;
use raftkv_proto::metapb::{Peer, RegionEpoch};
use raftkv_proto::raft_serverpb::RaftMessage;

use crate::region_snapshot::RegionSnapshot;
use crate::snap::SnapKey;
use crate::status::StoreStatus;

/// Called exactly once with the write's result: `Ok` once it is applied.
pub type WriteCallback = Box<dyn FnOnce(Result<(), errorpb::Error>) + Send>;
/// Called exactly once: a view of the region at or after the read's ReadIndex.
pub type ReadCallback = Box<dyn FnOnce(Result<RegionSnapshot, errorpb::Error>) + Send>;

/// Where a request is going: a region (0: route by key) and what the client believes of it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub region_id: u64,
    pub region_epoch: Option<RegionEpoch>,
    pub peer: Option<Peer>,
    /// The term the client saw; 0 for "any".
    pub term: u64,
}

/// One mutation of a write command.
#[derive(Debug, Clone, PartialEq)]
pub enum Modify {
    Put { cf: String, key: Bytes, value: Bytes },
    Delete { cf: String, key: Bytes },
}

impl Modify {
    pub fn key(&self) -> &[u8] {
        match self {
            Modify::Put { key, .. } | Modify::Delete { key, .. } => key,
        }
    }

    pub fn cf(&self) -> &str {
        match self {
            Modify::Put { cf, .. } | Modify::Delete { cf, .. } => cf,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        let value = match self {
            Modify::Put { value, .. } => value.len(),
            Modify::Delete { .. } => 0,
        };
        (self.cf().len() + self.key().len() + value) as u64
    }
}

pub(crate) enum StoreMsg {
    Raft(Box<RaftMessage>),
    Write {
        ctx: RequestContext,
        ops: Vec<Modify>,
        cb: WriteCallback,
    },
    /// `key` routes the read when the context names no region.
    Read {
        ctx: RequestContext,
        key: Bytes,
        cb: ReadCallback,
    },
    Unreachable {
        store_id: u64,
    },
    Status(Box<dyn FnOnce(StoreStatus) + Send>),
    /// Hand leadership to a caught-up peer if leading, then stop.
    Shutdown,
    /// Stop at once, as a crash would: nothing more is sent, written or answered.
    Kill,
    /// A background worker hit a disk failure: the store must stop.
    Fatal(String),
    /// The region worker installed a received snapshot: the peer may run again.
    SnapshotApplied {
        key: SnapKey,
    },
    /// How sending a snapshot to `to_peer` ended (Raft retries after a failure).
    SnapshotStatus {
        region_id: u64,
        to_peer: u64,
        delivered: bool,
    },
    /// The raft writer made `writes` submitted batches durable: (region id, Ready number)
    /// of each Ready they persisted (`raft_writer.rs`).
    Persisted {
        readies: Vec<(u64, u64)>,
        writes: usize,
    },
}
