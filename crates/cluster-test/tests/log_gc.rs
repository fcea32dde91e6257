//! Raft log GC: the log stays bounded once the cluster is quiet, compaction survives
//! restarts, and a member that was down is never cut off (it catches up from the log).

use std::time::{Duration, Instant};

use raftkv_cluster_test::{Cluster, ClusterClient};

const LIMIT: u64 = 10;

fn small_gc_cluster(seed: u64) -> Cluster {
    Cluster::new(3, seed, |cfg| {
        cfg.raft_log_gc_count_limit = LIMIT;
        cfg.raft_log_gc_tick_interval = Duration::from_millis(20);
    })
}

/// Waits until every running store applied the leader's index and keeps at most twice
/// the limit of applied entries in its log.
fn await_bounded_log(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<_> = cluster
            .ids()
            .into_iter()
            .filter_map(|id| cluster.handle(id))
            .map(|h| h.status())
            .collect();
        let max_applied = statuses.iter().map(|s| s.applied).max().unwrap_or(0);
        let quiet = statuses.iter().all(|s| s.applied == max_applied);
        let bounded = statuses.iter().all(|s| s.applied - s.truncated <= 2 * LIMIT);
        if quiet && bounded {
            return;
        }
        assert!(Instant::now() < deadline, "log never bounded: {statuses:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn log_stays_within_twice_the_limit_and_survives_restart() {
    raftkv_cluster_test::init_logging();
    let cluster = small_gc_cluster(21);
    cluster.start_all();
    cluster.wait_leader(Duration::from_secs(10));
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    for i in 0..300 {
        client.must_put(format!("k{i:04}").as_bytes(), format!("v{i}").as_bytes());
    }
    await_bounded_log(&cluster);
    let truncated: Vec<u64> = cluster
        .ids()
        .iter()
        .filter_map(|&id| cluster.handle(id))
        .map(|h| h.status().truncated)
        .collect();
    assert!(truncated.iter().all(|&t| t > 250), "the log was not compacted: {truncated:?}");

    for id in cluster.ids() {
        cluster.crash(id);
    }
    cluster.start_all();
    cluster.wait_leader(Duration::from_secs(10));
    for i in (0..300).step_by(7) {
        let v = client.must_get(format!("k{i:04}").as_bytes());
        assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    cluster.shutdown();
}

#[test]
fn member_that_was_down_catches_up_from_the_log() {
    raftkv_cluster_test::init_logging();
    let cluster = small_gc_cluster(22);
    cluster.start_all();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.must_put(b"before", b"1");
    let down = cluster.ids().into_iter().find(|&id| id != leader).expect("a follower");
    cluster.crash(down);
    for i in 0..200 {
        client.must_put(format!("k{i:04}").as_bytes(), b"v");
    }
    cluster.start(down);
    await_bounded_log(&cluster);
    let applied = cluster.handle(leader).map_or(0, |h| h.status().applied);
    cluster.wait_applied(applied, Duration::from_secs(10));
    cluster.shutdown();
}
