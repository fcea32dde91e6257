//! The cluster harness itself: elect, write, read, crash and restart.

use std::time::Duration;

use raftkv_cluster_test::{Cluster, ClusterClient};

#[test]
fn three_stores_elect_write_read_and_survive_a_crash() {
    raftkv_cluster_test::init_logging();
    let cluster = Cluster::new(3, 7, |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.must_put(b"k1", b"v1");
    assert_eq!(client.must_get(b"k1").as_deref(), Some(&b"v1"[..]));
    cluster.crash(leader);
    client.must_put(b"k2", b"v2");
    assert_eq!(client.must_get(b"k1").as_deref(), Some(&b"v1"[..]));
    cluster.start(leader);
    let applied = cluster
        .handle(cluster.wait_leader(Duration::from_secs(10)))
        .map_or(0, |h| h.status().applied);
    cluster.wait_applied(applied, Duration::from_secs(10));
    assert_eq!(client.must_get(b"k2").as_deref(), Some(&b"v2"[..]));
    cluster.shutdown();
}
