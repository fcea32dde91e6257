//! Prometheus metrics of the server, registered in the process-wide default registry (the
//! one `/metrics` gathers). Registered once per process, so several in-process servers (the
//! tests' clusters) share them.

use std::sync::LazyLock;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, Opts, register_histogram_vec,
    register_int_counter_vec,
};

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Client RPC latency per RPC, from request to response.
pub static GRPC_DURATION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let buckets = prometheus::exponential_buckets(0.000_1, 2.0, 18).unwrap_or_default();
    let opts = HistogramOpts::new(
        "raftkv_grpc_request_duration_seconds",
        "Time to answer one client RPC, by RPC.",
    )
    .buckets(buckets);
    register_histogram_vec!(opts, &["rpc"])
        .unwrap_or_else(|e| panic!("metric raftkv_grpc_request_duration_seconds: {e}"))
});

/// Client RPCs by outcome: `ok`, `not_found`, `invalid` (the `error` field), `region_error`,
/// `failed` (a gRPC status).
pub static GRPC_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "raftkv_grpc_requests_total",
        "Client RPCs answered, by RPC and outcome.",
        &["rpc", "outcome"],
    )
});

/// Raft messages received on `Raft` streams: `accepted`, `busy` (dropped: the store's queue
/// was full), `rejected` (the stream was ended).
pub static RAFT_MESSAGES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "raftkv_server_raft_messages_received_total",
        "Raft messages received from other stores, by outcome.",
        &["outcome"],
    )
});

/// Raft messages handed to the wire, by lane (`bulk`: appends and snapshots; `control`:
/// everything else).
pub static RAFT_MESSAGES_SENT: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "raftkv_transport_messages_sent_total",
        "Raft messages written to a peer's stream, by lane.",
        &["lane"],
    )
});

/// Raft messages the transport dropped, by reason: `queue_full`, `peer_down`,
/// `unknown_store`, `closed`.
pub static RAFT_MESSAGES_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "raftkv_transport_messages_dropped_total",
        "Raft messages the transport dropped instead of queueing without bound, by reason.",
        &["reason"],
    )
});

/// Streams to peers that ended in an error (connect failure, peer restart, rejection).
pub static RAFT_STREAM_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "raftkv_transport_stream_failures_total",
        "Raft streams to peers that failed and were re-opened after a backoff, by lane.",
        &["lane"],
    )
});
