//! The `raftkvpb.RaftKv` service over a raftstore `StoreHandle`: the raw KV API, `Status`,
//! and the store-to-store `Raft` stream.
//!
//! Every client request is validated before it touches the store (`validate.rs`): an
//! invalid one is answered in `error` and changes nothing. What the store refuses comes
//! back in `region_error`, with SPEC's promise for each kind (see raftstore's `errors.rs`).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use raftkv_proto::errorpb;
use raftkv_proto::kvrpcpb::{
    self, KvPair, RawDeleteRequest, RawDeleteResponse, RawGetRequest, RawGetResponse,
    RawPutRequest, RawPutResponse, RawScanRequest, RawScanResponse,
};
use raftkv_proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use raftkv_proto::raftkvpb::raft_kv_server::RaftKv;
use raftkv_proto::raftkvpb::{StatusRequest, StatusResponse};
use raftstore::{Modify, RegionSnapshot, RejectedMessage, RequestContext, StoreHandle, cf_name};
use tokio::sync::{oneshot, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::validate::{Limits, check_cf};
use crate::{metrics, snapshot_stream};

pub struct KvService {
    store: StoreHandle,
    /// This store's address as listed in `--peers` (what `Status` reports).
    address: String,
    limits: Limits,
    /// Becomes true when the server stops: long-lived `Raft` streams end then, or a
    /// graceful shutdown would wait for peers to hang up.
    stopping: watch::Receiver<bool>,
}

impl KvService {
    pub fn new(
        store: StoreHandle,
        address: String,
        limits: Limits,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        KvService { store, address, limits, stopping }
    }

    async fn get(&self, req: RawGetRequest) -> Result<RawGetResponse, Status> {
        if let Err(error) = self.limits.check_key(&req.key).and_then(|()| check_cf(&req.cf)) {
            return Ok(RawGetResponse { error, ..Default::default() });
        }
        let snap = match self.read(req.context, req.key.clone()).await {
            Ok(snap) => snap,
            Err(e) => return Ok(RawGetResponse { region_error: Some(*e), ..Default::default() }),
        };
        // A point read: cheap enough to run on the async worker.
        match snap.get(cf_name(&req.cf), &req.key) {
            Ok(Some(value)) => Ok(RawGetResponse { value, ..Default::default() }),
            Ok(None) => Ok(RawGetResponse { not_found: true, ..Default::default() }),
            Err(e) => Err(engine_failure("get", &e)),
        }
    }

    async fn scan(&self, req: RawScanRequest) -> Result<RawScanResponse, Status> {
        let valid = self
            .limits
            .check_scan_start(&req.start_key)
            .and_then(|()| self.limits.check_scan_limit(req.limit))
            .and_then(|()| check_cf(&req.cf));
        if let Err(error) = valid {
            return Ok(RawScanResponse { error, ..Default::default() });
        }
        let snap = match self.read(req.context, req.start_key.clone()).await {
            Ok(snap) => snap,
            Err(e) => return Ok(RawScanResponse { region_error: Some(*e), ..Default::default() }),
        };
        let cf = cf_name(&req.cf).to_string();
        let (start, limit) = (req.start_key, req.limit as usize);
        // Up to max_scan_limit pairs read from disk: keep it off the async workers.
        let pairs = tokio::task::spawn_blocking(move || snap.scan(&cf, &start, limit))
            .await
            .map_err(|e| Status::internal(format!("scan task failed: {e}")))?
            .map_err(|e| engine_failure("scan", &e))?;
        let kvs = pairs.into_iter().map(|(key, value)| KvPair { error: None, key, value });
        Ok(RawScanResponse { kvs: kvs.collect(), ..Default::default() })
    }

    async fn put(&self, req: RawPutRequest) -> RawPutResponse {
        let valid = self
            .limits
            .check_key(&req.key)
            .and_then(|()| self.limits.check_value(&req.value))
            .and_then(|()| check_cf(&req.cf));
        if let Err(error) = valid {
            return RawPutResponse { error, ..Default::default() };
        }
        let cf = cf_name(&req.cf).to_string();
        let modify = Modify::Put { cf, key: req.key, value: req.value };
        RawPutResponse { region_error: self.write(req.context, modify).await, error: String::new() }
    }

    async fn delete(&self, req: RawDeleteRequest) -> RawDeleteResponse {
        if let Err(error) = self.limits.check_key(&req.key).and_then(|()| check_cf(&req.cf)) {
            return RawDeleteResponse { error, ..Default::default() };
        }
        let modify = Modify::Delete { cf: cf_name(&req.cf).to_string(), key: req.key };
        RawDeleteResponse {
            region_error: self.write(req.context, modify).await,
            error: String::new(),
        }
    }

    /// A linearizable view of the region holding `key`, after a ReadIndex round.
    async fn read(
        &self,
        ctx: Option<kvrpcpb::Context>,
        key: Bytes,
    ) -> Result<RegionSnapshot, Box<errorpb::Error>> {
        let (tx, rx) = oneshot::channel();
        let cb = Box::new(move |result| {
            // The client may have gone away; nobody to tell then.
            let _ = tx.send(result);
        });
        self.store.read(request_context(ctx), key, cb);
        // A dropped callback means the store died before answering: a read changes
        // nothing, so the client may simply retry.
        match rx.await {
            Ok(result) => result.map_err(Box::new),
            Err(_) => Err(Box::new(read_dropped())),
        }
    }

    /// Proposes one mutation; `None` once it is applied.
    async fn write(&self, ctx: Option<kvrpcpb::Context>, modify: Modify) -> Option<errorpb::Error> {
        let (tx, rx) = oneshot::channel();
        let cb = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.store.write(request_context(ctx), vec![modify], cb);
        match rx.await {
            Ok(result) => result.err(),
            // The store died with the proposal possibly in the log: it may still commit.
            Err(_) => Some(write_dropped()),
        }
    }

    async fn serve_raft_stream(
        &self,
        remote: Option<SocketAddr>,
        mut stream: Streaming<RaftMessage>,
    ) -> Result<Done, Status> {
        let mut stopping = self.stopping.clone();
        loop {
            let next = tokio::select! {
                next = stream.message() => next?,
                _ = stopping.wait_for(|stopping| *stopping) => {
                    return Err(Status::unavailable("store is shutting down"));
                }
            };
            let Some(msg) = next else { return Ok(Done {}) };
            let from = msg.from_peer.as_ref().map_or(0, |p| p.store_id);
            match self.store.step_raft_message(msg) {
                Ok(()) => metrics::RAFT_MESSAGES_RECEIVED.with_label_values(&["accepted"]).inc(),
                // Raft tolerates a lost message; the sender must not block on us.
                Err(RejectedMessage::Busy) => {
                    metrics::RAFT_MESSAGES_RECEIVED.with_label_values(&["busy"]).inc();
                }
                Err(RejectedMessage::Stopped) => {
                    return Err(Status::unavailable("store is stopped"));
                }
                Err(reason) => {
                    metrics::RAFT_MESSAGES_RECEIVED.with_label_values(&["rejected"]).inc();
                    tracing::warn!(
                        from_store = from,
                        remote = ?remote,
                        "rejected a raft message, ending its stream: {reason}"
                    );
                    return Err(rejection_status(&reason));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl RaftKv for KvService {
    async fn raw_get(
        &self,
        request: Request<RawGetRequest>,
    ) -> Result<Response<RawGetResponse>, Status> {
        let start = Instant::now();
        let result = self.get(request.into_inner()).await;
        let outcome = result
            .as_ref()
            .map(|r| if r.not_found { "not_found" } else { outcome(&r.error, &r.region_error) });
        record("raw_get", start, outcome);
        result.map(Response::new)
    }

    async fn raw_put(
        &self,
        request: Request<RawPutRequest>,
    ) -> Result<Response<RawPutResponse>, Status> {
        let start = Instant::now();
        let resp = self.put(request.into_inner()).await;
        record("raw_put", start, Ok(outcome(&resp.error, &resp.region_error)));
        Ok(Response::new(resp))
    }

    async fn raw_delete(
        &self,
        request: Request<RawDeleteRequest>,
    ) -> Result<Response<RawDeleteResponse>, Status> {
        let start = Instant::now();
        let resp = self.delete(request.into_inner()).await;
        record("raw_delete", start, Ok(outcome(&resp.error, &resp.region_error)));
        Ok(Response::new(resp))
    }

    async fn raw_scan(
        &self,
        request: Request<RawScanRequest>,
    ) -> Result<Response<RawScanResponse>, Status> {
        let start = Instant::now();
        let result = self.scan(request.into_inner()).await;
        record("raw_scan", start, result.as_ref().map(|r| outcome(&r.error, &r.region_error)));
        result.map(Response::new)
    }

    async fn status(
        &self,
        _request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let start = Instant::now();
        let result = if self.store.is_stopped() {
            Err(Status::unavailable("store is stopped"))
        } else {
            let s = self.store.status();
            Ok(StatusResponse {
                store_id: s.store_id,
                address: self.address.clone(),
                role: s.role.to_string(),
                term: s.term,
                commit: s.commit,
                applied: s.applied,
                leader_id: s.leader_id,
            })
        };
        record("status", start, result.as_ref().map(|_| "ok"));
        result.map(Response::new)
    }

    async fn raft(
        &self,
        request: Request<Streaming<RaftMessage>>,
    ) -> Result<Response<Done>, Status> {
        let remote = request.remote_addr();
        self.serve_raft_stream(remote, request.into_inner()).await.map(Response::new)
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<Done>, Status> {
        let start = Instant::now();
        let result = snapshot_stream::receive(self.store.clone(), request.into_inner()).await;
        if let Err(status) = &result {
            tracing::info!("refused or lost an incoming snapshot: {}", status.message());
        }
        record("snapshot", start, result.as_ref().map(|_| "ok"));
        result.map(Response::new)
    }
}

fn request_context(ctx: Option<kvrpcpb::Context>) -> RequestContext {
    let ctx = ctx.unwrap_or_default();
    RequestContext {
        region_id: ctx.region_id,
        region_epoch: ctx.region_epoch,
        peer: ctx.peer,
        term: ctx.term,
    }
}

/// The outcome label of an answered request.
fn outcome(error: &str, region_error: &Option<errorpb::Error>) -> &'static str {
    if !error.is_empty() {
        "invalid"
    } else if region_error.is_some() {
        "region_error"
    } else {
        "ok"
    }
}

fn record(rpc: &str, start: Instant, outcome: Result<&'static str, &Status>) {
    metrics::GRPC_DURATION_SECONDS.with_label_values(&[rpc]).observe(start.elapsed().as_secs_f64());
    let outcome = outcome.unwrap_or("failed");
    metrics::GRPC_REQUESTS.with_label_values(&[rpc, outcome]).inc();
}

/// The store stopped before answering a read. `server_is_busy` promises it did not happen,
/// which is true of any read, so the client retries (elsewhere or later).
fn read_dropped() -> errorpb::Error {
    let reason = "store stopped before answering the read";
    errorpb::Error {
        message: reason.to_string(),
        server_is_busy: Some(errorpb::ServerIsBusy { reason: reason.to_string(), backoff_ms: 100 }),
        ..Default::default()
    }
}

/// The store stopped before answering a write: it may have been proposed, so its outcome
/// is unknown (`stale_command`'s promise), never "did not happen".
fn write_dropped() -> errorpb::Error {
    errorpb::Error {
        message: "store stopped before answering the write; outcome unknown".to_string(),
        stale_command: Some(errorpb::StaleCommand {}),
        ..Default::default()
    }
}

fn engine_failure(what: &str, e: &engine::Error) -> Status {
    tracing::error!("{what} failed in the engine: {e}");
    Status::internal(format!("{what} failed in the storage engine: {e}"))
}

/// A malformed message is the sender's bug; the others mean the sender belongs elsewhere
/// (another cluster, another store, an old epoch).
pub(crate) fn rejection_status(reason: &RejectedMessage) -> Status {
    let text = format!("raft message rejected: {reason}");
    match reason {
        RejectedMessage::Malformed(_) => Status::invalid_argument(text),
        _ => Status::failed_precondition(text),
    }
}
