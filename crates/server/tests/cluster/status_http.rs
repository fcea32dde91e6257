//! The status HTTP server: `/health` shows the store's view of the group, `/metrics` the
//! Prometheus text format with the server's request metrics.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Cluster, eventually, fast_config, free_addrs};

/// A minimal HTTP/1.0 GET: (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the status server");
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read response");
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_are_served() {
    let mut config = fast_config();
    config.server.status_addr = free_addrs(1).remove(0);
    let mut cluster = Cluster::start_with(1, config).await;
    cluster.put("", b"k", b"v").await;
    let addr = cluster.node(1).status_addr().expect("status server runs");

    let body = eventually("/health reports a leader", || async move {
        let (code, body) = http_get(addr, "/health").await;
        assert_eq!(code, 200, "{body}");
        body.contains(r#""role":"leader""#).then_some(body)
    })
    .await;
    assert!(body.contains(r#""store_id":1"#) && body.contains(r#""leader":1"#), "{body}");

    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("raftkv_grpc_request_duration_seconds_bucket{"), "{body}");
    assert!(body.contains(r#"raftkv_grpc_requests_total{outcome="ok",rpc="raw_put"}"#));
    assert!(body.contains("raftkv_raftstore_proposals_total"), "raftstore's metrics too");

    let (code, _) = http_get(addr, "/nope").await;
    assert_eq!(code, 404);
    cluster.stop_all().await;
}
