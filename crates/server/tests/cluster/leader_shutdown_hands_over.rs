//! SPEC: SIGTERM shuts down cleanly — a leader first hands leadership to a caught-up peer,
//! so a new leader appears at once (not after an election timeout) and no acknowledged
//! write is lost.

use std::time::Duration;

use tokio::time::Instant;

use crate::harness::{Cluster, eventually, fast_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_hands_over_before_it_stops() {
    // Slow elections (1-2 s of silence): without a handover the old leader would lead until
    // its shutdown deadline (2 election timeouts) and then the others would wait out an
    // election timeout; with one, the transferee campaigns at once.
    let mut config = fast_config();
    config.raft.election_tick = 100;
    let election_timeout = Duration::from_millis(10 * 100);
    let mut cluster = Cluster::start_with(3, config).await;
    let keys: Vec<Vec<u8>> = (0..20).map(|i| format!("key-{i:02}").into_bytes()).collect();
    for key in &keys {
        cluster.put("", key, b"acknowledged").await;
    }
    let (old_leader, old_term) = cluster.await_leader().await;

    let begun = Instant::now();
    cluster.stop_node(old_leader).await;
    let (new_leader, new_term) = cluster.await_leader().await;
    let took = begun.elapsed();
    assert_ne!(new_leader, old_leader);
    assert!(new_term > old_term);
    assert!(took < election_timeout, "a new leader took {took:?}: leadership was not handed over");

    for key in &keys {
        assert_eq!(cluster.get("", key).await.as_deref(), Some(&b"acknowledged"[..]));
    }
    // The two survivors are a quorum: writes go on.
    cluster.put("", b"after", b"handover").await;
    eventually("the new leader serves reads", || {
        let cluster = &cluster;
        async move { cluster.get("", b"after").await }
    })
    .await;
    cluster.stop_all().await;
}
