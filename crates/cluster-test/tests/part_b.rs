//! Every part-B row of SPEC's scenario matrix, on five stores. A failure prints the seed;
//! `RAFTKV_TEST_SEED=N` replays the same fault schedule and client choices (thread timing
//! still varies).

use std::time::Duration;

use raftkv_cluster_test::{Cluster, ClusterClient, OpResult, Scenario, run_scenario};

#[test]
fn basic() {
    run_scenario(&Scenario::new("basic", 1));
}

#[test]
fn concurrent() {
    run_scenario(&Scenario::new("concurrent", 5));
}

#[test]
fn unreliable() {
    run_scenario(&Scenario { unreliable: true, ..Scenario::new("unreliable", 5) });
}

#[test]
fn many_partitions_one_client() {
    run_scenario(&Scenario { partitions: true, ..Scenario::new("many partitions, one client", 1) });
}

#[test]
fn many_partitions_many_clients() {
    run_scenario(&Scenario {
        partitions: true,
        ..Scenario::new("many partitions, many clients", 5)
    });
}

#[test]
fn persist_one_client() {
    run_scenario(&Scenario { crash: true, ..Scenario::new("persist, one client", 1) });
}

#[test]
fn persist_concurrent() {
    run_scenario(&Scenario { crash: true, ..Scenario::new("persist, concurrent", 5) });
}

#[test]
fn persist_concurrent_unreliable() {
    run_scenario(&Scenario {
        crash: true,
        unreliable: true,
        ..Scenario::new("persist, concurrent, unreliable", 5)
    });
}

#[test]
fn persist_partition() {
    run_scenario(&Scenario {
        crash: true,
        partitions: true,
        ..Scenario::new("persist, partition", 5)
    });
}

#[test]
fn persist_partition_unreliable() {
    run_scenario(&Scenario {
        crash: true,
        partitions: true,
        unreliable: true,
        ..Scenario::new("persist, partition, unreliable", 5)
    });
}

/// The leader serves while in the majority; cut into a minority it cannot commit (its
/// client's write never succeeds) while the majority elects a new leader and serves; after
/// healing, the minority's write is gone and everything acknowledged is there.
#[test]
fn one_partition_leader_in_majority_then_minority_then_heal() {
    raftkv_cluster_test::init_logging();
    let cluster = Cluster::new(5, 11, |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let others: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != leader).collect();

    // Leader with two followers: the majority side.
    let majority = vec![leader, others[0], others[1]];
    cluster.net.partition(&[majority.clone(), vec![others[2], others[3]]]);
    let mut client = ClusterClient::new(cluster.net.clone(), majority);
    client.must_put(b"k1", b"v1");

    // Leader with one follower: the minority side cannot commit.
    let minority = vec![leader, others[2]];
    let majority = vec![others[0], others[1], others[3]];
    cluster.net.partition(&[minority.clone(), majority.clone()]);
    let mut stuck = ClusterClient::new(cluster.net.clone(), minority);
    stuck.deadline = Duration::from_secs(1);
    let attempt = stuck.put(b"k2", b"from the minority");
    assert!(!matches!(attempt, OpResult::Ok(())), "a minority acknowledged a write: {attempt:?}");
    let mut client = ClusterClient::new(cluster.net.clone(), majority);
    client.must_put(b"k3", b"v3");
    assert_eq!(client.must_get(b"k1").as_deref(), Some(&b"v1"[..]));

    cluster.net.heal();
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    cluster.wait_leader(Duration::from_secs(10));
    assert_eq!(client.must_get(b"k1").as_deref(), Some(&b"v1"[..]));
    assert_eq!(client.must_get(b"k3").as_deref(), Some(&b"v3"[..]));
    assert_eq!(client.must_get(b"k2"), None, "the minority's uncommitted write survived");
    cluster.shutdown();
}
