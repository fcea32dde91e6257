//! The safety rails of part B that a cluster can see: a store whose data was lost is
//! refused rather than quietly rejoining as a voter.

use std::time::{Duration, Instant};

use raftkv_cluster_test::{Cluster, ClusterClient};

/// A store that comes back with an empty data dir could vote twice in a term; the others
/// recognize its new incarnation and refuse it, while the cluster keeps serving.
#[test]
fn store_with_lost_data_is_refused_not_rejoined() {
    raftkv_cluster_test::init_logging();
    let cluster = Cluster::new(3, 5, |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    for i in 0..20 {
        client.must_put(format!("k{i}").as_bytes(), b"v");
    }
    let victim = cluster.ids().into_iter().find(|&id| id != leader).expect("a follower");
    let applied = cluster.handle(leader).map_or(0, |h| h.status().applied);
    cluster.wait_applied(applied, Duration::from_secs(10));

    cluster.crash(victim);
    cluster.wipe(victim);
    cluster.start(victim);

    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r: Vec<String> = cluster
            .net
            .rejections()
            .into_iter()
            .filter(|r| {
                r.contains(&format!("from store {victim}")) && r.contains("new incarnation")
            })
            .collect();
        if !r.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "the wiped store was never refused");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(refused[0].contains("membership change"), "unclear refusal: {}", refused[0]);

    // The cluster keeps serving with the two intact stores, and the wiped one never
    // catches up: none of its acknowledgements or votes count.
    client.must_put(b"after", b"wipe");
    assert_eq!(client.must_get(b"k3").as_deref(), Some(&b"v"[..]));
    let status = cluster.handle(victim).map(|h| h.status()).expect("victim runs");
    assert_ne!(status.role, "leader");
    assert!(
        status.applied <= raftstore::RAFT_INIT_LOG_INDEX,
        "the wiped store rejoined: {status:?}"
    );
    cluster.shutdown();
}

/// A member of the initial peers that starts for the first time late joins normally.
#[test]
fn late_first_start_of_an_initial_member_joins() {
    raftkv_cluster_test::init_logging();
    let cluster = Cluster::new(3, 9, |_| {});
    cluster.start(1);
    cluster.start(2);
    cluster.wait_leader(Duration::from_secs(10));
    let mut client = ClusterClient::new(cluster.net.clone(), vec![1, 2]);
    client.must_put(b"early", b"1");
    cluster.start(3);
    let applied = cluster
        .handle(1)
        .map_or(0, |h| h.status().applied)
        .max(cluster.handle(2).map_or(0, |h| h.status().applied));
    cluster.wait_applied(applied, Duration::from_secs(10));
    assert!(cluster.net.rejections().is_empty(), "{:?}", cluster.net.rejections());
    cluster.shutdown();
}

/// A store whose command queue is full answers `server_is_busy` at once (the write did
/// not happen) instead of queueing without bound; what it accepted is all applied.
#[test]
fn full_command_queue_answers_server_is_busy() {
    use std::sync::mpsc;

    use bytes::Bytes;
    use raftstore::{Modify, RequestContext};

    raftkv_cluster_test::init_logging();
    let cluster = Cluster::new(3, 13, |cfg| cfg.max_pending_commands = 4);
    cluster.start_all();
    let leader = cluster.wait_leader(Duration::from_secs(10));
    let handle = cluster.handle(leader).expect("leader handle");
    let (tx, rx) = mpsc::channel();
    const WRITES: usize = 2000;
    for i in 0..WRITES {
        let tx = tx.clone();
        let key = Bytes::from(format!("busy-{i:05}"));
        let op =
            Modify::Put { cf: String::new(), key: key.clone(), value: Bytes::from_static(b"v") };
        handle.write(
            RequestContext::default(),
            vec![op],
            Box::new(move |r| {
                let _ = tx.send((key, r));
            }),
        );
    }
    drop(tx);
    let (mut ok, mut busy) = (Vec::new(), 0usize);
    for (key, result) in rx.iter().take(WRITES) {
        match result {
            Ok(()) => ok.push(key),
            Err(e) if e.server_is_busy.is_some() => busy += 1,
            Err(e) => panic!("unexpected answer: {e:?}"),
        }
    }
    assert!(busy > 0, "a queue of 4 absorbed {WRITES} writes sent at once");
    assert!(!ok.is_empty(), "nothing got through");
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    for key in &ok {
        assert_eq!(client.must_get(key).as_deref(), Some(&b"v"[..]), "accepted write lost");
    }
    cluster.shutdown();
}
