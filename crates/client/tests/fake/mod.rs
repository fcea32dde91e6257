//! A fake raftkv cluster for tests: N in-process `RaftKv` servers on 127.0.0.1 sharing one
//! in-memory map, each scripted to lead, refuse, stall or fail as a test needs.
//!
//! Used by the client's routing tests and, through `#[path]`, by the `raftkv` CLI tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use raftkv_proto::errorpb;
use raftkv_proto::kvrpcpb::{
    KvPair, RawDeleteRequest, RawDeleteResponse, RawGetRequest, RawGetResponse, RawPutRequest,
    RawPutResponse, RawScanRequest, RawScanResponse,
};
use raftkv_proto::metapb::Peer;
use raftkv_proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use raftkv_proto::raftkvpb::raft_kv_server::{RaftKv, RaftKvServer};
use raftkv_proto::raftkvpb::{StatusRequest, StatusResponse};
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// What one fake store does with the next requests.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    pub leader: bool,
    /// The leader a non-leader names in `not_leader`.
    pub leader_hint: Option<u64>,
    /// The next N KV requests get `server_is_busy`.
    pub busy: u32,
    /// The next N writes get `stale_command` (and are not applied).
    pub stale_writes: u32,
    /// The next N reads get `stale_command`.
    pub stale_reads: u32,
    /// Writes are applied, then answered after this long.
    pub write_delay: Option<Duration>,
    /// Writes are applied, then the handler panics, which breaks the connection.
    pub crash_after_write: bool,
}

/// How many requests of each kind a store received.
#[derive(Debug, Default)]
pub struct Calls {
    pub get: AtomicU32,
    pub put: AtomicU32,
    pub delete: AtomicU32,
    pub scan: AtomicU32,
    pub status: AtomicU32,
}

impl Calls {
    pub fn writes(&self) -> u32 {
        self.put.load(Ordering::SeqCst) + self.delete.load(Ordering::SeqCst)
    }
    pub fn reads(&self) -> u32 {
        self.get.load(Ordering::SeqCst) + self.scan.load(Ordering::SeqCst)
    }
}

type Data = Arc<Mutex<BTreeMap<(String, Bytes), Bytes>>>;

pub struct StoreState {
    pub id: u64,
    pub addr: String,
    pub calls: Calls,
    behavior: Mutex<Behavior>,
    data: Data,
}

pub struct FakeStore {
    pub state: Arc<StoreState>,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    stopped: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FakeStore {
    pub fn addr(&self) -> String {
        self.state.addr.clone()
    }
    pub fn calls(&self) -> &Calls {
        &self.state.calls
    }
    pub fn behave(&self, f: impl FnOnce(&mut Behavior)) {
        f(&mut lock(&self.state.behavior));
    }

    /// Shuts the store's server down gracefully and waits until it stopped listening.
    pub async fn stop(&self) {
        if let Some(shutdown) = lock(&self.shutdown).take() {
            let _ = shutdown.send(());
        }
        let server = lock(&self.stopped).take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}

pub struct FakeCluster {
    pub stores: Vec<FakeStore>,
}

impl FakeCluster {
    /// Stores 1..=n; `leader` leads and every other store names it in `not_leader`.
    pub async fn start(n: u64, leader: Option<u64>) -> FakeCluster {
        let data = Data::default();
        let mut stores = Vec::new();
        for id in 1..=n {
            let behavior =
                Behavior { leader: leader == Some(id), leader_hint: leader, ..Default::default() };
            stores.push(start_store(id, behavior, data.clone()).await);
        }
        FakeCluster { stores }
    }

    /// Store `id` (1-based).
    pub fn store(&self, id: u64) -> &FakeStore {
        &self.stores[id as usize - 1]
    }

    pub fn addrs(&self) -> Vec<String> {
        self.stores.iter().map(FakeStore::addr).collect()
    }

    /// Makes `leader` the leader (or nobody) and points every store's hint at it.
    pub fn elect(&self, leader: Option<u64>) {
        for store in &self.stores {
            store.behave(|b| {
                b.leader = leader == Some(store.state.id);
                b.leader_hint = leader;
            });
        }
    }

    pub fn total_writes(&self) -> u32 {
        self.stores.iter().map(|s| s.calls().writes()).sum()
    }

    pub fn value(&self, key: &str) -> Option<Bytes> {
        let data = self.stores[0].state.data.clone();
        lock(&data).get(&(String::new(), Bytes::copy_from_slice(key.as_bytes()))).cloned()
    }
}

/// An address nothing listens on: connecting to it is refused.
pub fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    let addr = listener.local_addr().expect("probe address");
    drop(listener);
    addr.to_string()
}

async fn start_store(id: u64, behavior: Behavior, data: Data) -> FakeStore {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake store");
    let addr = listener.local_addr().expect("fake store address").to_string();
    let state = Arc::new(StoreState {
        id,
        addr,
        calls: Calls::default(),
        behavior: Mutex::new(behavior),
        data,
    });
    let (shutdown, stopped) = oneshot::channel::<()>();
    let service = RaftKvServer::new(Service(state.clone()));
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    FakeStore { state, shutdown: Mutex::new(Some(shutdown)), stopped: Mutex::new(Some(server)) }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Service(Arc<StoreState>);

/// Which of a store's stale-command counters a request draws on.
enum Kind {
    Read,
    Write,
}

impl Service {
    /// Why the scripted store refuses a request, as a region error; `None`: serve it.
    fn refusal(&self, kind: Kind) -> Option<errorpb::Error> {
        let mut b = lock(&self.0.behavior);
        if !b.leader {
            let leader = b.leader_hint.filter(|&id| id != self.0.id);
            return Some(errorpb::Error {
                message: format!("store {} is not leader", self.0.id),
                not_leader: Some(errorpb::NotLeader {
                    region_id: 1,
                    leader: leader.map(|id| Peer { id, store_id: id }),
                }),
                ..Default::default()
            });
        }
        if b.busy > 0 {
            b.busy -= 1;
            return Some(errorpb::Error {
                server_is_busy: Some(errorpb::ServerIsBusy {
                    reason: "fake queue full".into(),
                    backoff_ms: 0,
                }),
                ..Default::default()
            });
        }
        let stale = match kind {
            Kind::Read => &mut b.stale_reads,
            Kind::Write => &mut b.stale_writes,
        };
        if *stale > 0 {
            *stale -= 1;
            return Some(errorpb::Error {
                stale_command: Some(errorpb::StaleCommand {}),
                ..Default::default()
            });
        }
        None
    }

    /// Stalls or crashes an applied write as scripted.
    async fn after_write(&self) {
        let b = lock(&self.0.behavior).clone();
        if let Some(delay) = b.write_delay {
            tokio::time::sleep(delay).await;
        }
        assert!(
            !b.crash_after_write,
            "fake store {} crashes after a write, as scripted",
            self.0.id
        );
    }

    fn data(&self) -> MutexGuard<'_, BTreeMap<(String, Bytes), Bytes>> {
        lock(&self.0.data)
    }
}

/// The server's input checks, in miniature.
fn invalid(key: &[u8], cf: &str) -> Option<String> {
    if key.is_empty() {
        return Some("key must not be empty".into());
    }
    if !matches!(cf, "" | "default" | "lock" | "write") {
        return Some(format!("unknown column family `{cf}`"));
    }
    None
}

fn cf_name(cf: &str) -> String {
    if cf == "default" { String::new() } else { cf.to_string() }
}

#[tonic::async_trait]
impl RaftKv for Service {
    async fn raw_get(&self, r: Request<RawGetRequest>) -> Result<Response<RawGetResponse>, Status> {
        self.0.calls.get.fetch_add(1, Ordering::SeqCst);
        let r = r.into_inner();
        let mut resp = RawGetResponse::default();
        if let Some(e) = self.refusal(Kind::Read) {
            resp.region_error = Some(e);
        } else if let Some(e) = invalid(&r.key, &r.cf) {
            resp.error = e;
        } else {
            match self.data().get(&(cf_name(&r.cf), r.key)) {
                Some(v) => resp.value = v.clone(),
                None => resp.not_found = true,
            }
        }
        Ok(Response::new(resp))
    }

    async fn raw_put(&self, r: Request<RawPutRequest>) -> Result<Response<RawPutResponse>, Status> {
        self.0.calls.put.fetch_add(1, Ordering::SeqCst);
        let r = r.into_inner();
        let mut resp = RawPutResponse::default();
        if let Some(e) = self.refusal(Kind::Write) {
            resp.region_error = Some(e);
        } else if let Some(e) = invalid(&r.key, &r.cf) {
            resp.error = e;
        } else {
            self.data().insert((cf_name(&r.cf), r.key), r.value);
            self.after_write().await;
        }
        Ok(Response::new(resp))
    }

    async fn raw_delete(
        &self,
        r: Request<RawDeleteRequest>,
    ) -> Result<Response<RawDeleteResponse>, Status> {
        self.0.calls.delete.fetch_add(1, Ordering::SeqCst);
        let r = r.into_inner();
        let mut resp = RawDeleteResponse::default();
        if let Some(e) = self.refusal(Kind::Write) {
            resp.region_error = Some(e);
        } else if let Some(e) = invalid(&r.key, &r.cf) {
            resp.error = e;
        } else {
            self.data().remove(&(cf_name(&r.cf), r.key));
            self.after_write().await;
        }
        Ok(Response::new(resp))
    }

    async fn raw_scan(
        &self,
        r: Request<RawScanRequest>,
    ) -> Result<Response<RawScanResponse>, Status> {
        self.0.calls.scan.fetch_add(1, Ordering::SeqCst);
        let r = r.into_inner();
        let mut resp = RawScanResponse::default();
        if let Some(e) = self.refusal(Kind::Read) {
            resp.region_error = Some(e);
        } else if let Some(e) = invalid(b"-", &r.cf) {
            resp.error = e;
        } else if r.limit == 0 {
            resp.error = "scan limit must be greater than 0".into();
        } else {
            let cf = cf_name(&r.cf);
            resp.kvs = self
                .data()
                .range((cf.clone(), r.start_key)..)
                .take_while(|((c, _), _)| *c == cf)
                .take(r.limit as usize)
                .map(|((_, k), v)| KvPair { error: None, key: k.clone(), value: v.clone() })
                .collect();
        }
        Ok(Response::new(resp))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.0.calls.status.fetch_add(1, Ordering::SeqCst);
        let b = lock(&self.0.behavior).clone();
        let applied = u64::try_from(self.data().len()).unwrap_or(u64::MAX) + 5;
        Ok(Response::new(StatusResponse {
            store_id: self.0.id,
            address: self.0.addr.clone(),
            role: if b.leader { "leader" } else { "follower" }.into(),
            term: 6,
            commit: applied,
            applied,
            leader_id: b.leader_hint.unwrap_or(0),
        }))
    }

    async fn raft(&self, _: Request<Streaming<RaftMessage>>) -> Result<Response<Done>, Status> {
        Err(Status::unimplemented("a fake store takes no raft messages"))
    }

    async fn snapshot(
        &self,
        _: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Done>, Status> {
        Err(Status::unimplemented("a fake store takes no snapshots"))
    }
}
