//! A pure, deterministic, tick-based Raft consensus state machine, in the shape of
//! etcd's raft and TiKV's raft-rs.
//!
//! No I/O, no clock, no threads, no global randomness: time moves when the application
//! calls [`RawNode::tick`], messages come in through [`RawNode::step`], and everything the
//! application must do (persist, send, apply) comes out in a [`Ready`]. See
//! `docs/ready-contract.md` for the contract and `docs/log-pointers.md` for the log's
//! indexes.
//!
//! ```
//! use raft::{Config, MemStorage, RawNode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemStorage::new_with_conf_state(vec![1], vec![]);
//! let mut node = RawNode::new(&Config::new(1), store)?;
//! node.campaign()?;
//! node.propose(b"hello".to_vec())?;
//! let mut applied = Vec::new();
//! while node.has_ready() {
//!     let mut rd = node.ready();
//!     // A single node has no peers: nothing to send.
//!     node.store_mut().append(rd.entries())?;
//!     if let Some(hs) = rd.hs() {
//!         node.store_mut().set_hard_state(*hs);
//!     }
//!     for entry in rd.take_committed_entries() {
//!         if !entry.data.is_empty() {
//!             applied.push(entry.data);
//!         }
//!     }
//!     node.advance(rd);
//! }
//! assert_eq!(applied, vec![bytes::Bytes::from_static(b"hello")]);
//! # Ok(())
//! # }
//! ```
//!
//! Where things live: `raft.rs` (terms, roles, elections, follower side), `raft/leader.rs`
//! (replication, commit, ReadIndex, transfer), `raft/conf_change.rs`, `raft_log.rs` and
//! `log_unstable.rs` (the log), `tracker/` (per-follower progress and flow control),
//! `quorum.rs` (majority maths), `read_only.rs` (pending ReadIndex requests).

mod config;
mod errors;
mod log_unstable;
mod quorum;
mod raft;
mod raft_log;
mod raw_node;
mod read_only;
mod rng;
mod status;
mod storage;
mod tracker;
mod util;

#[cfg(test)]
mod tests;

pub use crate::config::{Config, INVALID_ID, NO_LIMIT};
pub use crate::errors::{Error, Result, StorageError};
pub use crate::raft::{CAMPAIGN_TRANSFER, Raft, SoftState, StateRole};
pub use crate::raft_log::RaftLog;
pub use crate::raw_node::{RawNode, Ready};
pub use crate::read_only::ReadState;
pub use crate::status::{PeerProgress, Status};
pub use crate::storage::{MemStorage, RaftState, Storage, StorageResult};
pub use crate::tracker::ProgressState;
pub use crate::util::entry_size;
pub use raftkv_proto::eraftpb;
