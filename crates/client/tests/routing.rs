//! The client against fake stores: leader hints, the leader cache, retries of what did
//! not happen, no retry of what may have, and deadlines.

mod fake;

use std::time::{Duration, Instant};

use client::{Client, ClientOptions, Error};
use fake::{FakeCluster, dead_endpoint};

fn options(deadline_ms: u64) -> ClientOptions {
    ClientOptions {
        deadline: Duration::from_millis(deadline_ms),
        read_attempt_timeout: Duration::from_millis(deadline_ms / 2),
        ..ClientOptions::default()
    }
}

fn client(addrs: Vec<String>, deadline_ms: u64) -> Client {
    Client::new(addrs, options(deadline_ms)).expect("valid endpoints")
}

#[tokio::test]
async fn follows_the_leader_hint_then_goes_straight_to_the_cached_leader() {
    let cluster = FakeCluster::start(3, Some(3)).await;
    let client = client(cluster.addrs(), 5_000);

    client.put("k", "v", "").await.expect("put");
    assert_eq!(cluster.store(1).calls().writes(), 1, "first try: endpoint 1, which refuses");
    assert_eq!(cluster.store(3).calls().writes(), 1, "then the hinted leader");
    assert_eq!(cluster.total_writes(), 2);

    assert_eq!(client.get("k", "").await.expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(cluster.store(1).calls().reads(), 0, "the cached leader serves the read");
    assert_eq!(cluster.store(3).calls().reads(), 1);
}

#[tokio::test]
async fn follows_a_leader_change() {
    let cluster = FakeCluster::start(3, Some(1)).await;
    let client = client(cluster.addrs(), 5_000);
    client.put("a", "1", "").await.expect("put to the first leader");
    cluster.elect(Some(2));
    client.put("a", "2", "").await.expect("put after the leader changed");
    assert_eq!(cluster.store(2).calls().writes(), 1);
    assert_eq!(cluster.value("a").as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn a_stale_command_write_is_unknown_and_not_retried() {
    let cluster = FakeCluster::start(3, Some(1)).await;
    cluster.store(1).behave(|b| b.stale_writes = 1);
    let client = client(cluster.addrs(), 5_000);

    let err = client.put("k", "v", "").await.expect_err("stale command");
    assert!(matches!(err, Error::Unknown(_)), "got {err:?}");
    assert_eq!(err.exit_code(), 4);
    assert_eq!(cluster.total_writes(), 1, "a write of unknown outcome is sent once");

    cluster.store(1).behave(|b| b.stale_writes = 1);
    let err = client.delete("k", "").await.expect_err("stale command");
    assert!(matches!(err, Error::Unknown(_)), "got {err:?}");
    assert_eq!(cluster.total_writes(), 2);
}

#[tokio::test]
async fn a_write_unanswered_at_the_deadline_is_unknown_and_not_retried() {
    let cluster = FakeCluster::start(1, Some(1)).await;
    cluster.store(1).behave(|b| b.write_delay = Some(Duration::from_secs(10)));
    let client = client(cluster.addrs(), 300);

    let started = Instant::now();
    let err = client.put("k", "v", "").await.expect_err("deadline");
    assert!(matches!(err, Error::Unknown(_)), "got {err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(cluster.total_writes(), 1);
}

#[tokio::test]
async fn a_stale_read_is_retried() {
    let cluster = FakeCluster::start(3, Some(1)).await;
    cluster.store(1).behave(|b| b.stale_reads = 1);
    let client = client(cluster.addrs(), 5_000);
    assert_eq!(client.get("missing", "").await.expect("get"), None);
    assert_eq!(cluster.store(1).calls().reads(), 2);
}

#[tokio::test]
async fn busy_is_retried_on_the_same_store() {
    let cluster = FakeCluster::start(3, Some(1)).await;
    cluster.store(1).behave(|b| b.busy = 2);
    let client = client(cluster.addrs(), 5_000);
    client.put("k", "v", "").await.expect("put after busy");
    assert_eq!(cluster.store(1).calls().writes(), 3);
    assert_eq!(cluster.total_writes(), 3);
}

#[tokio::test]
async fn a_refused_connection_moves_on_to_the_next_endpoint() {
    let cluster = FakeCluster::start(1, Some(1)).await;
    let client = client(vec![dead_endpoint(), cluster.store(1).addr()], 5_000);
    client.put("k", "v", "").await.expect("the second endpoint serves the write");
    assert_eq!(cluster.total_writes(), 1);
}

#[tokio::test]
async fn without_a_leader_the_call_gives_up_at_the_deadline() {
    let cluster = FakeCluster::start(3, None).await;
    let client = client(cluster.addrs(), 500);

    let started = Instant::now();
    let err = client.put("k", "v", "").await.expect_err("no leader");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(500), "gave up early, after {elapsed:?}");
    // Generous: only a call that ignored its deadline takes this long.
    assert!(elapsed < Duration::from_secs(5), "gave up late, after {elapsed:?}");
    match &err {
        Error::Unavailable { attempts, tried, .. } => {
            assert!(*attempts >= 3, "{attempts} attempts");
            for addr in cluster.addrs() {
                assert!(tried.contains(&addr), "{tried} names {addr}");
            }
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 3);
    assert_eq!(cluster.value("k"), None);
}

#[tokio::test]
async fn with_every_store_down_a_write_is_unavailable_not_unknown() {
    let client = client(vec![dead_endpoint(), dead_endpoint()], 300);
    let err = client.put("k", "v", "").await.expect_err("nobody listens");
    assert!(matches!(err, Error::Unavailable { .. }), "got {err:?}");
    assert!(err.to_string().contains("refused") || err.to_string().contains("connect"), "{err}");
}

#[tokio::test]
async fn an_invalid_request_is_reported_once() {
    let cluster = FakeCluster::start(1, Some(1)).await;
    let client = client(cluster.addrs(), 5_000);
    let err = client.put("", "v", "").await.expect_err("empty key");
    assert_eq!(err, Error::InvalidRequest("key must not be empty".into()));
    assert_eq!(err.exit_code(), 2);
    assert_eq!(cluster.total_writes(), 1);
}

#[tokio::test]
async fn scan_returns_pairs_in_order_up_to_the_limit() {
    let cluster = FakeCluster::start(1, Some(1)).await;
    let client = client(cluster.addrs(), 5_000);
    for key in ["c", "a", "b", "d"] {
        client.put(key, key.to_uppercase(), "").await.expect("put");
    }
    client.put("a", "other cf", "lock").await.expect("put to lock");
    let pairs = client.scan("b", 2, "").await.expect("scan");
    let pairs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    assert_eq!(pairs, vec![(&b"b"[..], &b"B"[..]), (&b"c"[..], &b"C"[..])]);
}

#[tokio::test]
async fn status_all_answers_for_every_endpoint_in_order() {
    let cluster = FakeCluster::start(2, Some(2)).await;
    let dead = dead_endpoint();
    let client =
        client(vec![cluster.store(1).addr(), dead.clone(), cluster.store(2).addr()], 2_000);
    let answers = client.status_all().await;
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[1].0, dead);
    assert!(matches!(answers[1].1, Err(Error::Unavailable { .. })));
    let first = answers[0].1.as_ref().expect("store 1 answers");
    assert_eq!((first.store_id, first.role.as_str(), first.leader_id), (1, "follower", 2));
    let third = answers[2].1.as_ref().expect("store 2 answers");
    assert_eq!((third.store_id, third.role.as_str()), (2, "leader"));
}

#[tokio::test]
async fn malformed_endpoints_are_configuration_errors() {
    for bad in [vec![], vec!["".to_string()], vec!["127.0.0.1".to_string()], vec!["a b:1".into()]] {
        let err = Client::new(bad.clone(), ClientOptions::default()).expect_err("invalid");
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad:?}: {err:?}");
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn a_client_needs_a_runtime() {
    let err =
        Client::new(vec!["127.0.0.1:1".into()], ClientOptions::default()).expect_err("no runtime");
    assert!(matches!(err, Error::InvalidConfig(_)));
}

#[tokio::test]
async fn a_write_whose_connection_breaks_after_sending_is_unknown() {
    let cluster = FakeCluster::start(2, Some(1)).await;
    cluster.store(1).behave(|b| b.crash_after_write = true);
    let client = client(cluster.addrs(), 5_000);
    let err = client.put("k", "v", "").await.expect_err("connection breaks");
    assert!(matches!(err, Error::Unknown(_)), "got {err:?}");
    assert_eq!(cluster.total_writes(), 1);
    assert_eq!(cluster.value("k").as_deref(), Some(&b"v"[..]), "it did happen");
}

#[tokio::test]
async fn a_stopped_leader_is_skipped_once_its_connection_is_gone() {
    let cluster = FakeCluster::start(3, Some(1)).await;
    let client = client(cluster.addrs(), 5_000);
    client.put("a", "1", "").await.expect("put to store 1");
    cluster.store(1).stop().await;
    cluster.elect(Some(2));
    client.put("a", "2", "").await.expect("store 1 refuses connections; store 2 leads");
    assert_eq!(cluster.value("a").as_deref(), Some(&b"2"[..]));
}
