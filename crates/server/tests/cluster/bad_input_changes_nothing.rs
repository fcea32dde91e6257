//! SPEC: bad input gets a clear error and changes nothing — empty key, key or value over
//! its limit, unknown column family, scan limit of zero or over the limit.

use bytes::Bytes;
use raftkv_proto::kvrpcpb::{RawDeleteRequest, RawGetRequest, RawPutRequest, RawScanRequest};

use crate::harness::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_error_and_change_nothing() {
    let mut cluster = Cluster::start(3).await;
    cluster.put("", b"present", b"v").await;
    let (leader, _) = cluster.await_leader().await;
    let mut client = cluster.client(leader).await;
    let limits = cluster.config.server.clone();
    let long_key = Bytes::from(vec![b'k'; limits.max_key_bytes + 1]);
    let big_value = Bytes::from(vec![b'v'; limits.max_value_bytes + 1]);
    let key = Bytes::from_static(b"present");

    let put = |key: Bytes, value: Bytes, cf: &str| RawPutRequest {
        key,
        value,
        cf: cf.into(),
        ..Default::default()
    };
    let puts = [
        (put(Bytes::new(), "x".into(), ""), "empty"),
        (put(long_key.clone(), "x".into(), ""), "max_key_bytes"),
        (put(key.clone(), big_value, ""), "max_value_bytes"),
        (put(key.clone(), "x".into(), "nope"), "unknown column family"),
        (put(key.clone(), "x".into(), "raft"), "unknown column family"),
    ];
    for (req, why) in puts {
        let resp = client.raw_put(req).await.expect("rpc").into_inner();
        assert!(resp.error.contains(why), "put: expected {why:?}, got {:?}", resp.error);
        assert!(resp.region_error.is_none());
    }

    let del = |key: Bytes, cf: &str| RawDeleteRequest { key, cf: cf.into(), ..Default::default() };
    let dels = [
        (del(Bytes::new(), ""), "empty"),
        (del(long_key.clone(), ""), "max_key_bytes"),
        (del(key.clone(), "nope"), "unknown column family"),
    ];
    for (req, why) in dels {
        let resp = client.raw_delete(req).await.expect("rpc").into_inner();
        assert!(resp.error.contains(why), "delete: expected {why:?}, got {:?}", resp.error);
        assert!(resp.region_error.is_none());
    }

    let get = |key: Bytes, cf: &str| RawGetRequest { key, cf: cf.into(), ..Default::default() };
    for (req, why) in [
        (get(Bytes::new(), ""), "empty"),
        (get(long_key.clone(), ""), "max_key_bytes"),
        (get(key.clone(), "nope"), "unknown column family"),
    ] {
        let resp = client.raw_get(req).await.expect("rpc").into_inner();
        assert!(resp.error.contains(why), "get: expected {why:?}, got {:?}", resp.error);
        assert!(resp.value.is_empty() && !resp.not_found && resp.region_error.is_none());
    }

    let scan = |start: Bytes, limit, cf: &str| RawScanRequest {
        start_key: start,
        limit,
        cf: cf.into(),
        ..Default::default()
    };
    for (req, why) in [
        (scan(Bytes::new(), 0, ""), "at least 1"),
        (scan(Bytes::new(), limits.max_scan_limit + 1, ""), "max_scan_limit"),
        (scan(long_key, 1, ""), "max_key_bytes"),
        (scan(Bytes::new(), 1, "nope"), "unknown column family"),
    ] {
        let resp = client.raw_scan(req).await.expect("rpc").into_inner();
        assert!(resp.error.contains(why), "scan: expected {why:?}, got {:?}", resp.error);
        assert!(resp.kvs.is_empty() && resp.region_error.is_none());
    }

    // Nothing changed: the one key is intact and no column family gained anything.
    assert_eq!(cluster.get("", b"present").await.as_deref(), Some(&b"v"[..]));
    assert_eq!(cluster.scan_all("default").await, [(b"present".to_vec(), b"v".to_vec())]);
    assert!(cluster.scan_all("lock").await.is_empty());
    assert!(cluster.scan_all("write").await.is_empty());
    // The largest valid key and value are accepted.
    let max_key = vec![b'k'; limits.max_key_bytes];
    cluster.put("", &max_key, &vec![b'v'; limits.max_value_bytes]).await;
    assert_eq!(cluster.get("", &max_key).await.map(|v| v.len()), Some(limits.max_value_bytes));
    cluster.stop_all().await;
}
