//! Dev-only: a whole raftkv cluster in one process. Stores run on real engines in temp
//! dirs; their raft messages cross a simulated network that can drop, delay, partition and
//! isolate; a crash kills a store (its unsynced state is lost, its data dir stays) and a
//! restart reopens it from disk.
//!
//! `network.rs` (the filtered transport), `cluster.rs` (stores: start, crash, restart),
//! `client.rs` (a client with leader cache and retries that reports unknown outcomes),
//! `scenario.rs` (SPEC's scenario matrix runner with its checks).

mod client;
mod cluster;
mod network;
mod scenario;

pub use client::{ClusterClient, OpResult};
pub use cluster::Cluster;
pub use network::{SimNetwork, SnapshotTransfer};
pub use scenario::{Scenario, run_scenario, test_seed};

/// Logs to the test's output when RUST_LOG is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
