//! The status HTTP server (`server.status_addr`): `GET /metrics` in Prometheus' text format
//! and `GET /health` for load balancers and orchestrators.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use raftstore::StoreHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves until `stopping` becomes true.
pub async fn serve(
    listener: TcpListener,
    store: StoreHandle,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(store);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        })
        .await
}

async fn metrics() -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&prometheus::gather(), &mut body) {
        Ok(()) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, encoder.format_type().to_string())], body)
        }
        Err(e) => {
            let text = format!("cannot encode metrics: {e}").into_bytes();
            (StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain".into())], text)
        }
    }
}

/// 200 with the store's view of the group while the store runs; 503 once it stopped.
async fn health(State(store): State<StoreHandle>) -> impl IntoResponse {
    let json = [(header::CONTENT_TYPE, "application/json")];
    if store.is_stopped() {
        let body = format!(r#"{{"status":"stopped","store_id":{}}}"#, store.store_id());
        return (StatusCode::SERVICE_UNAVAILABLE, json, body);
    }
    let s = store.status();
    // Every field is a number or a fixed role name: no escaping needed.
    let body = format!(
        concat!(
            r#"{{"status":"ok","store_id":{},"role":"{}","term":{},"#,
            r#""commit":{},"applied":{},"leader":{}}}"#
        ),
        s.store_id, s.role, s.term, s.commit, s.applied, s.leader_id
    );
    (StatusCode::OK, json, body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use raftkv_proto::raft_serverpb::RaftMessage;
    use raftstore::{Store, StoreConfig, Transport};

    use super::*;

    struct Nowhere;

    impl Transport for Nowhere {
        fn send(&self, _: RaftMessage) {}
    }

    async fn health_of(store: &StoreHandle) -> (StatusCode, String) {
        let resp = health(State(store.clone())).await.into_response();
        let code = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.expect("body");
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn health_is_ok_while_the_store_runs_and_503_once_it_stopped() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let peers = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let mut cfg = StoreConfig::new(1, peers, dir.path().to_path_buf());
        cfg.base_tick = Duration::from_millis(10);
        let store = Store::start(cfg, Arc::new(Nowhere)).expect("store starts");
        let (code, body) = health_of(&store).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains(r#""status":"ok","store_id":1,"role":"#), "{body}");

        store.shutdown();
        let joined = store.clone();
        tokio::task::spawn_blocking(move || joined.join()).await.expect("join").expect("clean");
        let (code, body) = health_of(&store).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("stopped"), "{body}");
    }
}
