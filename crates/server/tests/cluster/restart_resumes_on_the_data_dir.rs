//! SPEC: a restart with the same data dir resumes — a stopped follower catches up on what
//! it missed, and a whole cluster stopped and started again still has its data.

use crate::harness::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up() {
    let mut cluster = Cluster::start(3).await;
    cluster.put("", b"before", b"1").await;
    let (leader, _) = cluster.await_leader().await;
    let follower = cluster.running().into_iter().find(|&id| id != leader).expect("a follower");
    cluster.stop_node(follower).await;
    cluster.put("", b"while-down", b"2").await;

    cluster.start_node(follower).await;
    let (leader, _) = cluster.await_leader().await;
    let commit = cluster.status(leader).await.expect("leader status").commit;
    eventually("the restarted follower applies what it missed", || {
        let cluster = &cluster;
        async move { (cluster.status(follower).await?.applied >= commit).then_some(()) }
    })
    .await;
    assert_eq!(cluster.get("", b"while-down").await.as_deref(), Some(&b"2"[..]));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarts_with_its_data() {
    let mut cluster = Cluster::start(3).await;
    for i in 0..10u8 {
        cluster.put("", &[b'k', i], &[i]).await;
    }
    cluster.put("write", b"w", b"x").await;
    for i in 1..10u8 {
        cluster.delete("", &[b'k', i]).await;
    }
    let (_, term) = cluster.await_leader().await;
    cluster.stop_all().await;

    for id in 1..=3 {
        cluster.start_node(id).await;
    }
    let (_, new_term) = cluster.await_leader().await;
    assert!(new_term > term, "terms survive restarts");
    let pairs = cluster.scan_all("").await;
    assert_eq!(pairs, [(vec![b'k', 0], vec![0])], "puts and deletes survive");
    assert_eq!(cluster.get("write", b"w").await.as_deref(), Some(&b"x"[..]));
    cluster.stop_all().await;
}
