//! Prometheus metrics of the raftstore, registered in the process-wide default registry.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, register_histogram, register_int_counter};

fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register_histogram!(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 16).unwrap_or_default()
}

pub static PROPOSALS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("raftkv_raftstore_proposals_total", "Commands proposed to Raft."));
pub static COMMITTED_ENTRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_committed_entries_total", "Committed entries handed out to apply.")
});
pub static APPLIED_COMMANDS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_applied_commands_total", "Write commands applied to kvdb.")
});
pub static LEADER_CHANGES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_leader_changes_total", "Times a peer saw its leader change.")
});
pub static READ_INDEX_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_read_index_total", "ReadIndex rounds (one serves a batch of reads).")
});
pub static RAFT_MESSAGES_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_raft_messages_dropped_total", "Raft messages dropped: queue full.")
});
pub static FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "raftkv_raftstore_raft_write_seconds",
        "Time to write and fsync one loop's raft log batch (group commit).",
        latency_buckets(),
    )
});
pub static BACKGROUND_RAFT_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "raftkv_raftstore_background_raft_batches_total",
        "Raft write batches handed to the raft writer (the others are written inline).",
    )
});
pub static BACKGROUND_RAFT_WRITES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "raftkv_raftstore_background_raft_writes_total",
        "Writes the raft writer made; batches queued behind one share its write and fsync.",
    )
});
pub static READY_LOOP_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "raftkv_raftstore_ready_loop_seconds",
        "Time to handle all Readies of one loop: persist, send, apply.",
        latency_buckets(),
    )
});
pub static SNAPSHOTS_GENERATED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshots_generated_total", "Region snapshots generated.")
});
pub static SNAPSHOTS_APPLIED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshots_applied_total", "Received region snapshots applied.")
});
pub static SNAPSHOT_BYTES_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshot_sent_bytes_total", "Snapshot file bytes sent.")
});
pub static SNAPSHOT_BYTES_RECEIVED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshot_received_bytes_total", "Snapshot file bytes received.")
});
pub static SNAPSHOTS_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshots_sent_total", "Snapshots delivered to another store.")
});
pub static SNAPSHOT_SEND_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter("raftkv_raftstore_snapshot_send_failures_total", "Snapshot sends that failed.")
});
