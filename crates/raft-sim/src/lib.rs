//! A deterministic, seeded simulation of a Raft group driven through the full Ready loop.
//!
//! One seed fixes everything: the group's options, the order of every action, which
//! messages are dropped, duplicated, reordered or delayed, when nodes crash and restart,
//! partitions, compactions, leader transfers, membership changes, proposals and reads.
//! After every step the checkers in `invariants/` run; a violation panics with the seed.
//!
//! Code map: `options.rs` (what a seed chooses), `network.rs` (in-flight messages and
//! faults), `node.rs` (a node: its RawNode or, while crashed, only its durable storage),
//! `state_machine.rs` (the replicated application), `cluster.rs` (the scheduler and the
//! Ready loop), `invariants/` (one safety property per file).

mod cluster;
mod invariants;
mod network;
mod node;
mod options;
mod state_machine;

pub use cluster::{Outcome, run_seed};
pub use options::Options;
