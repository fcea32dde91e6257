//! raftkv's embedded storage boundary over [fjall] 3, a pure-Rust LSM-tree.
//!
//! An [`Engine`] is one fjall database with a fixed set of column families (fjall
//! keyspaces); a store runs two: *raftdb* (column family [`CF_RAFT`]: the raft log and
//! `RaftLocalState`) and *kvdb* ([`DATA_CFS`] plus apply and region state). This crate knows
//! nothing of Raft: keys and values are bytes, or protobuf messages for convenience.
//!
//! Where things are:
//!
//! - `engine.rs`: [`Engine`] — open, point reads, atomic [`WriteBatch`] writes, `sync`, and
//!   the durability contract (module comment) that the raft layer builds on.
//! - `write_batch.rs`: [`WriteBatch`] — ordered puts and deletes across column families;
//!   how `delete_range` is implemented and what it costs.
//! - `snapshot.rs`: [`Snapshot`] — consistent point-in-time reads and scans.
//! - `options.rs`: [`EngineOptions`] — cache, memtable and journal sizes, and why.
//! - `errors.rs`: [`Error`] — which errors reject input and which must stop the store.

mod engine;
mod errors;
mod options;
mod snapshot;
mod write_batch;

#[cfg(test)]
mod tests;

pub use engine::Engine;
pub use errors::{Error, Result};
pub use options::EngineOptions;
pub use snapshot::Snapshot;
pub use write_batch::WriteBatch;

/// Column family of user values (TiKV's `default`).
pub const CF_DEFAULT: &str = "default";
/// Column family of transaction locks.
pub const CF_LOCK: &str = "lock";
/// Column family of commit records.
pub const CF_WRITE: &str = "write";
/// Column family of the raft engine (raftdb): log entries and raft state.
pub const CF_RAFT: &str = "raft";
/// The column families holding the state machine's data (kvdb).
pub const DATA_CFS: [&str; 3] = [CF_DEFAULT, CF_LOCK, CF_WRITE];

// Engines and snapshots cross threads (raft worker, apply worker, region worker).
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<Snapshot>();
    assert_send_sync::<WriteBatch>();
    assert_send_sync::<Error>();
};
