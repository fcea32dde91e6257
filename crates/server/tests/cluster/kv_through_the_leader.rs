//! Put, get, delete and scan through the leader; followers refuse with `not_leader` naming
//! the leader, and what they refused did not happen.

use raftkv_proto::kvrpcpb::{RawDeleteRequest, RawGetRequest, RawPutRequest, RawScanRequest};
use raftkv_proto::raftkvpb::StatusRequest;

use crate::harness::{Cluster, eventually};

fn b(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_scan_through_the_leader() {
    let mut cluster = Cluster::start(3).await;
    for (k, v) in [("k1", "v1"), ("k3", "v3"), ("k2", "v2")] {
        cluster.put("", k.as_bytes(), v.as_bytes()).await;
    }
    cluster.put("lock", b"k1", b"lock-value").await;

    assert_eq!(cluster.get("", b"k1").await.as_deref(), Some(&b"v1"[..]));
    assert_eq!(cluster.get("default", b"k2").await.as_deref(), Some(&b"v2"[..]));
    assert_eq!(cluster.get("lock", b"k1").await.as_deref(), Some(&b"lock-value"[..]));
    assert_eq!(cluster.get("", b"missing").await, None, "a missing key is not_found");
    assert_eq!(cluster.get("write", b"k1").await, None, "column families are separate");

    let (leader, _) = cluster.await_leader().await;
    let mut client = cluster.client(leader).await;
    let scan =
        |start: &str, limit| RawScanRequest { start_key: b(start), limit, ..Default::default() };
    let kvs = client.raw_scan(scan("", 10)).await.expect("scan").into_inner().kvs;
    let keys: Vec<_> = kvs.iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys, [b("k1"), b("k2"), b("k3")], "in key order, default cf only");
    assert_eq!(kvs[1].value, b("v2"));
    let kvs = client.raw_scan(scan("k2", 1)).await.expect("scan").into_inner().kvs;
    assert_eq!(kvs.len(), 1, "at most `limit` pairs");
    assert_eq!(kvs[0].key, b("k2"), "keys >= start_key");

    let del = RawDeleteRequest { key: b("k2"), ..Default::default() };
    let resp = client.raw_delete(del).await.expect("delete").into_inner();
    assert!(resp.error.is_empty() && resp.region_error.is_none(), "{resp:?}");
    assert_eq!(cluster.get("", b"k2").await, None);
    let kvs = cluster.scan_all("").await;
    let keys: Vec<_> = kvs.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"k1"[..], b"k3"]);
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_answer_not_leader_and_change_nothing() {
    let mut cluster = Cluster::start(3).await;
    let (leader, _) = cluster.await_leader().await;
    for follower in cluster.running().into_iter().filter(|&id| id != leader) {
        let mut client = cluster.client(follower).await;
        // Retried while leadership settles: the answer must name the leader of the moment.
        eventually("a follower names the leader", || {
            let mut client = client.clone();
            let cluster = &cluster;
            async move {
                let (leader, _) = cluster.await_leader().await;
                let put = RawPutRequest { key: b("fk"), value: b("fv"), ..Default::default() };
                let resp = client.raw_put(put).await.ok()?.into_inner();
                let named = resp.region_error?.not_leader?.leader?.store_id;
                (named == leader).then_some(())
            }
        })
        .await;
        let get = RawGetRequest { key: b("fk"), ..Default::default() };
        let resp = client.raw_get(get).await.expect("get").into_inner();
        let not_leader = resp.region_error.and_then(|e| e.not_leader).expect("not_leader");
        assert_eq!(not_leader.leader.map(|p| p.store_id), Some(leader));
        let scan = RawScanRequest { limit: 1, ..Default::default() };
        let resp = client.raw_scan(scan).await.expect("scan").into_inner();
        assert!(resp.region_error.and_then(|e| e.not_leader).is_some());

        let status = client.status(StatusRequest {}).await.expect("status").into_inner();
        assert_eq!(status.store_id, follower);
        assert_eq!(status.address, cluster.peers[&follower]);
        assert_eq!(status.role, "follower");
        assert_eq!(status.leader_id, leader);
    }
    assert_eq!(cluster.get("", b"fk").await, None, "a refused write did not happen");
    cluster.stop_all().await;
}
