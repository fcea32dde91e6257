//! Part C over real gRPC: a follower that was down while the log was compacted far past
//! its last index comes back through a snapshot streamed on the `Snapshot` RPC in small
//! chunks, with every column family, and serves the data once it leads.

use crate::harness::{Cluster, eventually, fast_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_through_a_snapshot() {
    let mut config = fast_config();
    config.raftstore.raft_log_gc_count_limit = 10;
    config.raftstore.raft_log_gc_tick_interval_ms = 20;
    // Many chunks even for a small region.
    config.raftstore.snap_chunk_bytes = 1024;
    let mut cluster = Cluster::start_with(3, config).await;
    cluster.put("", b"before", b"0").await;
    let (leader, _) = cluster.await_leader().await;
    let behind = cluster.running().into_iter().find(|&id| id != leader).expect("a follower");
    cluster.stop_node(behind).await;
    for i in 0..200u32 {
        cluster.put("", format!("k{i:04}").as_bytes(), &[7u8; 100]).await;
    }
    cluster.put("lock", b"l", b"locked").await;
    cluster.put("write", b"w", b"written").await;

    cluster.start_node(behind).await;
    let (leader, _) = cluster.await_leader().await;
    let commit = cluster.status(leader).await.expect("leader status").commit;
    eventually("the store that was down applies the leader's commit", || {
        let cluster = &cluster;
        async move { (cluster.status(behind).await?.applied >= commit).then_some(()) }
    })
    .await;

    // Make the store that came back through the snapshot lead. A stopping leader hands
    // over to its most caught-up peer (ties go to the higher id), so first stop the third
    // store and commit one more write: `behind` is then the only peer that matches the
    // leader's log. Restarting both right away keeps `behind` a quorum.
    for attempt in 0..4 {
        let (leader, _) = cluster.await_leader().await;
        if leader == behind {
            break;
        }
        let third = (1..=3).find(|&id| id != leader && id != behind).expect("a third store");
        cluster.stop_node(third).await;
        cluster.put("lock", format!("handover{attempt}").as_bytes(), b"1").await;
        cluster.stop_node(leader).await;
        cluster.start_node(leader).await;
        cluster.start_node(third).await;
    }
    let (leader, _) = cluster.await_leader().await;
    assert_eq!(leader, behind, "the caught-up store never became leader");
    assert_eq!(cluster.get("lock", b"l").await.as_deref(), Some(&b"locked"[..]));
    assert_eq!(cluster.get("write", b"w").await.as_deref(), Some(&b"written"[..]));
    assert_eq!(cluster.scan_all("").await.len(), 201);
    cluster.stop_all().await;
}
