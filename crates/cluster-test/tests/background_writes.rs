//! The raft writer under load: with many clients the stores' raft loops hand their raftdb
//! batches to the writer (the loop goes on while the fsync runs), and crashes in the middle
//! of that — writes queued, in flight, their acknowledgements not yet sent — still lose no
//! acknowledged write (`run_scenario` checks every round).

use raftkv_cluster_test::{Scenario, run_scenario};

fn counter(name: &str) -> u64 {
    let text = prometheus::TextEncoder::new().encode_to_string(&prometheus::gather());
    let text = text.unwrap_or_else(|e| panic!("encoding the metrics: {e}"));
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn crashes_during_background_raft_writes_lose_no_acknowledged_write() {
    run_scenario(&Scenario {
        crash: true,
        ..Scenario::new("persist, many clients, background raft writes", 20)
    });
    let batches = counter("raftkv_raftstore_background_raft_batches_total");
    let writes = counter("raftkv_raftstore_background_raft_writes_total");
    eprintln!("background raft batches: {batches}, in {writes} writes");
    assert!(batches > 0, "no raft write went through the raft writer: the test tested nothing");
    assert!(writes > 0 && writes <= batches, "{writes} writes for {batches} batches");
}
