//! The replicated state machine of raftkv: a store runs one peer per region it holds, and
//! drives every peer through the Ready loop over two embedded engines.
//!
//! Where to look (after tikv's raftstore-v2 placement guide):
//! - `store.rs`: opening a store, starting its raft worker (thread or async task), and
//!   `StoreHandle`, the API the server and tests use; incoming raft messages are validated
//!   there. `store_loop.rs`: the raft worker's loop (group commit); `mailbox.rs`: its inbox;
//!   `raft_writer.rs`: raftdb writes in the background, in order.
//! - `peer.rs`: one region's Raft node, proposals and their callbacks, role changes.
//! - `apply.rs`: committed entries into kvdb, atomically with `applied_index`.
//! - `read.rs`: batched ReadIndex reads; `region_snapshot.rs`: what a read gets.
//! - `peer_storage.rs`: `raft::Storage` over raftdb/kvdb; `keys.rs`: the key layout.
//! - `bootstrap.rs`: data dir lock, format marker, store identity, first-region bootstrap,
//!   recovery of a snapshot install a crash cut short.
//! - `log_gc.rs`: the raftlog-gc worker (physical deletion of compacted entries).
//! - `snap/`: snapshot files, their format, transfer ends and limits;
//!   `region_worker.rs`: snapshot generation and install off the raft thread.
//! - `failpoints.rs`: crash points for tests.
//! - `transport.rs`: the `Transport` trait (gRPC in the server, in-memory in tests).
//!
//! It knows nothing of gRPC.

// Region errors travel as the wire type `errorpb::Error` (264 bytes) on cold paths only;
// boxing them would buy nothing but noise.
#![allow(clippy::result_large_err)]

mod apply;
mod bootstrap;
mod config;
mod errors;
pub mod failpoints;
pub mod keys;
mod log_gc;
mod mailbox;
mod metrics;
mod msg;
mod peer;
mod peer_storage;
mod raft_writer;
mod read;
mod region_snapshot;
mod region_worker;
mod snap;
mod status;
mod store;
mod store_loop;
mod transport;
mod worker;

pub use crate::apply::cf_name;
pub use crate::bootstrap::FIRST_REGION_ID;
pub use crate::config::{StoreConfig, cluster_id_from_token};
pub use crate::errors::{StoreError, not_leader};
pub use crate::failpoints::FailPoints;
pub use crate::msg::{Modify, ReadCallback, RequestContext, WriteCallback};
pub use crate::peer_storage::{RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
pub use crate::region_snapshot::RegionSnapshot;
pub use crate::snap::{IncomingSnapshot, OutgoingSnapshot, SnapConfig, SnapError, SnapKey};
pub use crate::status::StoreStatus;
pub use crate::store::{RejectedMessage, Store, StoreHandle, StoreRunner};
pub use crate::transport::Transport;
