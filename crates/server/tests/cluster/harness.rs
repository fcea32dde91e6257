//! A real cluster in one process: N `RunningServer`s on 127.0.0.1 ephemeral ports with
//! temporary data dirs and small ticks, driven through real tonic clients.
//!
//! Waiting is always polling for a condition with a generous deadline, never a bare sleep.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use raftkv_proto::errorpb;
use raftkv_proto::kvrpcpb::{RawDeleteRequest, RawGetRequest, RawPutRequest, RawScanRequest};
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use raftkv_proto::raftkvpb::{StatusRequest, StatusResponse};
use raftkv_server::{FileConfig, RunningServer, ServerArgs};
use tempfile::TempDir;
use tokio::time::Instant;
use tonic::transport::Channel;

pub const TOKEN: &str = "server-tests";
/// Generous: a loaded CI machine (two cores, other builds) elects slowly.
pub const DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

pub struct Cluster {
    pub peers: BTreeMap<u64, String>,
    pub config: FileConfig,
    dirs: BTreeMap<u64, TempDir>,
    nodes: BTreeMap<u64, RunningServer>,
}

/// Logs go to the test's captured output (shown when it fails); `RUST_LOG` filters.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Distinct free ports: all bound at once, then released for the servers to take.
pub fn free_addrs(n: usize) -> Vec<String> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").to_string()).collect()
}

/// Fast ticks: heartbeats every 20 ms, elections after 200-400 ms of silence.
pub fn fast_config() -> FileConfig {
    let mut config = FileConfig::default();
    config.raft.base_tick_ms = 10;
    config.raft.election_tick = 20;
    config.raft.heartbeat_tick = 2;
    config
}

impl Cluster {
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, fast_config()).await
    }

    pub async fn start_with(n: u64, config: FileConfig) -> Cluster {
        init_logging();
        let addrs = free_addrs(n as usize);
        let peers: BTreeMap<u64, String> = (1..=n).zip(addrs).collect();
        let dirs = (1..=n).map(|id| (id, TempDir::new().expect("temp dir"))).collect();
        let mut cluster = Cluster { peers, config, dirs, nodes: BTreeMap::new() };
        for id in 1..=n {
            cluster.start_node(id).await;
        }
        cluster
    }

    pub fn args(&self, id: u64) -> ServerArgs {
        ServerArgs {
            id,
            peers: self.peers.clone(),
            data_dir: self.dirs[&id].path().to_path_buf(),
            cluster_token: TOKEN.to_string(),
            config: self.config.clone(),
        }
    }

    /// Starts (or restarts, on its data dir and port) store `id`.
    pub async fn start_node(&mut self, id: u64) {
        let server = RunningServer::start(self.args(id)).await.expect("server starts");
        self.nodes.insert(id, server);
    }

    /// Shuts store `id` down cleanly; panics if the shutdown reports an error.
    pub async fn stop_node(&mut self, id: u64) {
        let server = self.nodes.remove(&id).expect("node is running");
        server.shutdown().await.expect("clean shutdown");
    }

    pub async fn stop_all(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }

    pub fn node(&self, id: u64) -> &RunningServer {
        &self.nodes[&id]
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub async fn client(&self, id: u64) -> RaftKvClient<Channel> {
        RaftKvClient::connect(format!("http://{}", self.peers[&id])).await.expect("connect")
    }

    pub async fn status(&self, id: u64) -> Option<StatusResponse> {
        let mut client = RaftKvClient::connect(format!("http://{}", self.peers[&id])).await.ok()?;
        client.status(StatusRequest {}).await.ok().map(|r| r.into_inner())
    }

    /// Waits until every running store names the same leader in the same term, and that
    /// leader says it leads. Returns (leader, term).
    pub async fn await_leader(&self) -> (u64, u64) {
        eventually("all running stores agree on a leader", || async move {
            let mut seen = Vec::new();
            for id in self.running() {
                seen.push(self.status(id).await?);
            }
            let first = seen.first()?;
            let (leader, term) = (first.leader_id, first.term);
            let agreed = seen.iter().all(|s| s.leader_id == leader && s.term == term);
            let leads = seen.iter().any(|s| s.store_id == leader && s.role == "leader");
            (leader != 0 && agreed && leads).then_some((leader, term))
        })
        .await
    }

    /// Writes through whichever store leads, retrying what certainly did not happen.
    pub async fn put(&self, cf: &str, key: &[u8], value: &[u8]) {
        eventually("a put is acknowledged", || async move {
            let (leader, _) = self.await_leader().await;
            let req = RawPutRequest {
                key: key.to_vec().into(),
                value: value.to_vec().into(),
                cf: cf.into(),
                ..Default::default()
            };
            let resp = self.client(leader).await.raw_put(req).await.ok()?.into_inner();
            assert!(resp.error.is_empty(), "put rejected: {}", resp.error);
            match resp.region_error {
                None => Some(()),
                Some(e) => retry_or_panic(&e),
            }
        })
        .await
    }

    /// Deletes through whichever store leads, retrying what certainly did not happen.
    pub async fn delete(&self, cf: &str, key: &[u8]) {
        eventually("a delete is acknowledged", || async move {
            let (leader, _) = self.await_leader().await;
            let req =
                RawDeleteRequest { key: key.to_vec().into(), cf: cf.into(), ..Default::default() };
            let resp = self.client(leader).await.raw_delete(req).await.ok()?.into_inner();
            assert!(resp.error.is_empty(), "delete rejected: {}", resp.error);
            match resp.region_error {
                None => Some(()),
                Some(e) => retry_or_panic(&e),
            }
        })
        .await
    }

    /// Reads through the leader: `None` for a missing key.
    pub async fn get(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        eventually("a get is answered", || async move {
            let (leader, _) = self.await_leader().await;
            let req =
                RawGetRequest { key: key.to_vec().into(), cf: cf.into(), ..Default::default() };
            let resp = self.client(leader).await.raw_get(req).await.ok()?.into_inner();
            assert!(resp.error.is_empty(), "get rejected: {}", resp.error);
            if let Some(e) = resp.region_error {
                return retry_or_panic(&e);
            }
            Some((!resp.not_found).then(|| resp.value.to_vec()))
        })
        .await
    }

    /// Every pair of `cf` (up to 1000), through the leader.
    pub async fn scan_all(&self, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        eventually("a scan is answered", || async move {
            let (leader, _) = self.await_leader().await;
            let req = RawScanRequest { limit: 1000, cf: cf.into(), ..Default::default() };
            let resp = self.client(leader).await.raw_scan(req).await.ok()?.into_inner();
            assert!(resp.error.is_empty(), "scan rejected: {}", resp.error);
            if let Some(e) = resp.region_error {
                return retry_or_panic(&e);
            }
            Some(resp.kvs.into_iter().map(|p| (p.key.to_vec(), p.value.to_vec())).collect())
        })
        .await
    }
}

/// Leadership moved or the store was busy: the request did not happen, try again. Anything
/// else (an outcome-unknown `stale_command`) must not happen in these tests.
fn retry_or_panic<T>(e: &errorpb::Error) -> Option<T> {
    if e.not_leader.is_some() || e.server_is_busy.is_some() {
        return None;
    }
    panic!("unexpected region error: {e:?}");
}

/// Polls `check` every few milliseconds until it yields a value; panics after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {DEADLINE:?} waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}
