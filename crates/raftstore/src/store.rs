//! The store: opening it, its raft worker's start and end, and the handle everyone else
//! uses. The loop itself is `store_loop.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft::Config as RaftConfig;
use raftkv_proto::eraftpb::MessageType;
use raftkv_proto::errorpb;
use raftkv_proto::metapb::Region;
use raftkv_proto::raft_serverpb::{PeerState, RaftMessage};

use crate::bootstrap;
use crate::config::StoreConfig;
use crate::errors::{self, Result, StoreError};
use crate::log_gc::{self, GcTask};
use crate::mailbox::Mailbox;
use crate::metrics;
use crate::msg::{Modify, ReadCallback, RequestContext, StoreMsg, WriteCallback};
use crate::peer::{Incarnations, Peer, PeerLimits};
use crate::peer_storage::{PeerStorage, SnapContext};
use crate::raft_writer::RaftWriter;
use crate::region_worker;
use crate::snap::{IncomingSnapshot, OutgoingSnapshot, SnapError, SnapManager};
use crate::status::StoreStatus;
use crate::store_loop::StoreLoop;
use crate::transport::Transport;

/// Why a raft message from another store was refused (it changed nothing).
#[derive(Debug, thiserror::Error)]
pub enum RejectedMessage {
    #[error("message is from cluster {got}, this store belongs to cluster {expected}")]
    WrongCluster { expected: u64, got: u64 },
    #[error("message is for store {to}, this is store {me}")]
    WrongStore { to: u64, me: u64 },
    #[error("malformed raft message: {0}")]
    Malformed(&'static str),
    #[error("region {0} is not on this store")]
    UnknownRegion(u64),
    #[error("store {0} is not a member of region {1}")]
    UnknownPeer(u64, u64),
    #[error(
        "store {0} came back with a new incarnation (its data directory was lost or replaced): \
         it is refused until it is replaced through a membership change"
    )]
    LostData(u64),
    #[error("message carries a stale region epoch")]
    StaleEpoch,
    #[error("store is busy: raft message queue is full")]
    Busy,
    #[error("store is stopped")]
    Stopped,
}

pub(crate) struct Shared {
    pub(crate) store_id: u64,
    pub(crate) cluster_id: u64,
    pub(crate) tx: Mailbox,
    pub(crate) pending_commands: AtomicUsize,
    pub(crate) pending_raft: AtomicUsize,
    pub(crate) max_pending_commands: usize,
    pub(crate) max_pending_raft: usize,
    pub(crate) regions: RwLock<HashMap<u64, Region>>,
    /// region -> member store -> recorded incarnation.
    pub(crate) incarnations: RwLock<HashMap<u64, BTreeMap<u64, u64>>>,
    pub(crate) status: Mutex<StoreStatus>,
    pub(crate) stopped: AtomicBool,
    /// How the raft worker ended: set once it is gone (its engines closed, its lock
    /// released); taken by the first `join`.
    pub(crate) exit: Mutex<Option<Result<()>>>,
    pub(crate) exited: Condvar,
    pub(crate) snap_mgr: Arc<SnapManager>,
}

/// The store's public face: cheap to clone, safe to use from any thread.
#[derive(Clone)]
pub struct StoreHandle {
    shared: Arc<Shared>,
}

pub struct Store;

/// An opened store whose raft worker has not started yet: run it on a thread or a task.
pub struct StoreRunner {
    worker: StoreLoop,
}

impl Store {
    /// Opens (or bootstraps) the store in `cfg.data_dir` and starts its raft worker on a
    /// thread of its own.
    pub fn start(cfg: StoreConfig, transport: Arc<dyn Transport>) -> Result<StoreHandle> {
        let (handle, runner) = Store::open(cfg, transport)?;
        runner.spawn_thread()?;
        Ok(handle)
    }

    /// Opens (or bootstraps) the store in `cfg.data_dir`; nothing runs until the runner is
    /// started. Blocking: reads (and may replay) the data dir.
    pub fn open(
        cfg: StoreConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<(StoreHandle, StoreRunner)> {
        let (engines, lock) = bootstrap::open_engines(&cfg.data_dir)?;
        let ident = bootstrap::load_or_bootstrap(&cfg, &engines)?;
        let raft_cfg = RaftConfig {
            id: cfg.store_id,
            election_tick: cfg.election_tick,
            heartbeat_tick: cfg.heartbeat_tick,
            max_size_per_msg: cfg.max_size_per_msg_bytes,
            max_inflight_msgs: cfg.max_inflight_msgs,
            max_inflight_bytes: cfg.max_inflight_bytes,
            max_committed_size_per_ready: cfg.max_apply_bytes_per_ready,
            check_quorum: cfg.check_quorum,
            pre_vote: cfg.pre_vote,
            seed: ident.incarnation,
            // Under load the next append carries the commit index anyway; reads are served
            // by the leader, so followers applying a heartbeat later costs nothing.
            skip_bcast_commit: true,
            ..Default::default()
        };
        let (tx, rx, wake) = Mailbox::new();
        let snap_mgr = SnapManager::open(&cfg.data_dir.join("snap"), cfg.snap.clone())?;
        let region_worker = region_worker::start(
            engines.kv.clone(),
            snap_mgr.clone(),
            tx.clone(),
            cfg.failpoints.clone(),
        )
        .map_err(spawn_error)?;
        let snap_ctx = SnapContext { mgr: snap_mgr.clone(), worker: region_worker.sender() };
        let mut peers = HashMap::new();
        let mut regions = HashMap::new();
        let mut incarnations = HashMap::new();
        let mut installing = HashSet::new();
        for state in bootstrap::load_regions(&engines)? {
            let recorded = state.store_incarnations.clone();
            let applying = state.state() == PeerState::Applying;
            let region = state.region.unwrap_or_default();
            let install = if applying {
                Some(bootstrap::recover_applying(&engines, &region, recorded.clone())?)
            } else {
                None
            };
            if !region.peers.iter().any(|p| p.store_id == cfg.store_id) {
                return Err(StoreError::Corrupt(format!(
                    "region {} does not list this store as a member",
                    region.id
                )));
            }
            let storage = PeerStorage::load(
                region.clone(),
                engines.raft.clone(),
                engines.kv.clone(),
                snap_ctx.clone(),
            )?;
            let limits = PeerLimits { max_proposal_bytes: cfg.max_inflight_proposal_bytes };
            let ids = Incarnations { mine: ident.incarnation, recorded: recorded.clone() };
            let mut peer =
                Peer::new(cfg.store_id, cfg.cluster_id, &raft_cfg, storage, limits, ids)?;
            if let Some(install) = install {
                tracing::info!(key = %install.key, "finishing a snapshot install cut short");
                installing.insert(install.key);
                peer.start_applying(install)?;
            }
            incarnations.insert(region.id, recorded);
            regions.insert(region.id, region);
            peers.insert(peer.region_id(), peer);
        }
        snap_mgr.remove_received_except(&installing);
        let shared = Arc::new(Shared {
            store_id: cfg.store_id,
            cluster_id: cfg.cluster_id,
            tx,
            pending_commands: AtomicUsize::new(0),
            pending_raft: AtomicUsize::new(0),
            max_pending_commands: cfg.max_pending_commands,
            max_pending_raft: cfg.max_pending_raft_messages,
            regions: RwLock::new(regions),
            incarnations: RwLock::new(incarnations),
            status: Mutex::new(StoreStatus {
                store_id: cfg.store_id,
                role: "follower",
                ..Default::default()
            }),
            stopped: AtomicBool::new(false),
            exit: Mutex::new(None),
            exited: Condvar::new(),
            snap_mgr,
        });
        let writer = RaftWriter::start(
            cfg.store_id,
            engines.raft.clone(),
            transport.clone(),
            shared.tx.clone(),
        )
        .map_err(spawn_error)?;
        let worker = StoreLoop {
            base_tick: cfg.base_tick,
            election_timeout: cfg.base_tick * cfg.election_tick as u32,
            engines,
            _lock: lock,
            _ident: ident,
            transport,
            rx,
            wake,
            shared: shared.clone(),
            peers,
            next_tick: Instant::now() + cfg.base_tick,
            shutdown_deadline: None,
            killed: false,
            fatal: None,
            log_gc: None,
            gc_interval: cfg.raft_log_gc_tick_interval,
            next_gc_check: Instant::now() + cfg.raft_log_gc_tick_interval,
            gc_count_limit: cfg.raft_log_gc_count_limit,
            gc_size_limit: cfg.raft_log_gc_size_limit_bytes,
            failpoints: cfg.failpoints.clone(),
            writer,
            writes_in_flight: 0,
            _region_worker: region_worker,
        };
        let log_gc = log_gc::start(
            worker.engines.raft.clone(),
            worker.engines.kv.clone(),
            shared.tx.clone(),
        )
        .map_err(spawn_error)?;
        // Entries a crash left behind below the truncated index are garbage.
        for peer in worker.peers.values() {
            let truncated = peer.raw.store().truncated_index();
            log_gc.schedule(GcTask {
                region_id: peer.region_id(),
                start: None,
                end: truncated + 1,
            });
        }
        let mut worker = worker;
        worker.log_gc = Some(log_gc);
        Ok((StoreHandle { shared }, StoreRunner { worker }))
    }
}

impl StoreRunner {
    /// Runs the raft worker on a thread of its own.
    pub fn spawn_thread(self) -> Result<()> {
        let StoreRunner { worker } = self;
        let exit = ExitGuard::new(worker.shared.clone());
        std::thread::Builder::new()
            .name(format!("raftstore-{}", worker.shared.store_id))
            .spawn(move || {
                // `run_blocking` consumes the loop: everything it owns is dropped on return.
                let result = worker.run_blocking();
                exit.finish(result);
            })
            .map(drop)
            .map_err(spawn_error)
    }

    /// Runs the raft worker as a task of the calling async runtime, until it stops.
    pub async fn run(self) {
        let StoreRunner { mut worker } = self;
        let exit = ExitGuard::new(worker.shared.clone());
        let result = worker.run_async().await;
        // Dropping the loop joins its worker threads and closes the engines.
        let dropped = tokio::task::spawn_blocking(move || drop(worker)).await;
        exit.finish(result.and(dropped.map_err(|e| StoreError::Corrupt(e.to_string()))));
    }
}

/// Publishes how the raft worker ended, for `join`; a worker that panicked publishes so
/// by being dropped unfinished.
struct ExitGuard {
    shared: Arc<Shared>,
    result: Option<Result<()>>,
}

impl ExitGuard {
    fn new(shared: Arc<Shared>) -> Self {
        ExitGuard { shared, result: None }
    }

    fn finish(mut self, result: Result<()>) {
        self.result = Some(result);
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let shared = &self.shared;
        let result = self.result.take().unwrap_or_else(|| {
            Err(StoreError::Corrupt("raft worker panicked or was cancelled".into()))
        });
        if let Err(e) = &result {
            tracing::error!(store_id = shared.store_id, "store stopped: {e}");
        }
        shared.stopped.store(true, Ordering::SeqCst);
        if let Ok(mut exit) = shared.exit.lock() {
            *exit = Some(result);
        }
        shared.exited.notify_all();
    }
}

impl StoreHandle {
    pub fn store_id(&self) -> u64 {
        self.shared.store_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.shared.cluster_id
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// Proposes a write; `cb` is called exactly once (`Ok` once applied).
    pub fn write(&self, ctx: RequestContext, ops: Vec<Modify>, cb: WriteCallback) {
        if let Err(e) = self.admit_command() {
            return cb(Err(e));
        }
        if let Err(std::sync::mpsc::SendError(msg)) =
            self.shared.tx.send(StoreMsg::Write { ctx, ops, cb })
        {
            self.shared.pending_commands.fetch_sub(1, Ordering::SeqCst);
            if let StoreMsg::Write { cb, .. } = msg {
                cb(Err(errors::store_stopped()));
            }
        }
    }

    /// Asks for a linearizable view of the region holding `key` (or the context's region).
    pub fn read(&self, ctx: RequestContext, key: Bytes, cb: ReadCallback) {
        if let Err(e) = self.admit_command() {
            return cb(Err(e));
        }
        if let Err(std::sync::mpsc::SendError(msg)) =
            self.shared.tx.send(StoreMsg::Read { ctx, key, cb })
        {
            self.shared.pending_commands.fetch_sub(1, Ordering::SeqCst);
            if let StoreMsg::Read { cb, .. } = msg {
                cb(Err(errors::store_stopped()));
            }
        }
    }

    fn admit_command(&self) -> std::result::Result<(), errorpb::Error> {
        if self.is_stopped() {
            return Err(errors::store_stopped());
        }
        let queued = self.shared.pending_commands.fetch_add(1, Ordering::SeqCst);
        if queued >= self.shared.max_pending_commands {
            self.shared.pending_commands.fetch_sub(1, Ordering::SeqCst);
            return Err(errors::server_is_busy("raftstore command queue is full"));
        }
        Ok(())
    }

    /// Validates a raft message from another store and queues it for the raft worker.
    pub fn step_raft_message(&self, msg: RaftMessage) -> std::result::Result<(), RejectedMessage> {
        let is_snapshot =
            msg.message.as_ref().is_some_and(|m| m.msg_type() == MessageType::MsgSnapshot);
        if is_snapshot {
            return Err(RejectedMessage::Malformed(
                "a snapshot must arrive with its data on the Snapshot stream",
            ));
        }
        self.enqueue_raft_message(msg)
    }

    fn enqueue_raft_message(&self, msg: RaftMessage) -> std::result::Result<(), RejectedMessage> {
        self.validate(&msg)?;
        if self.is_stopped() {
            return Err(RejectedMessage::Stopped);
        }
        let queued = self.shared.pending_raft.fetch_add(1, Ordering::SeqCst);
        if queued >= self.shared.max_pending_raft {
            self.shared.pending_raft.fetch_sub(1, Ordering::SeqCst);
            metrics::RAFT_MESSAGES_DROPPED.inc();
            return Err(RejectedMessage::Busy);
        }
        if self.shared.tx.send(StoreMsg::Raft(Box::new(msg))).is_err() {
            return Err(RejectedMessage::Stopped);
        }
        Ok(())
    }

    fn validate(&self, msg: &RaftMessage) -> std::result::Result<(), RejectedMessage> {
        if msg.cluster_id != self.shared.cluster_id {
            return Err(RejectedMessage::WrongCluster {
                expected: self.shared.cluster_id,
                got: msg.cluster_id,
            });
        }
        let (Some(from), Some(to), Some(m)) = (&msg.from_peer, &msg.to_peer, &msg.message) else {
            return Err(RejectedMessage::Malformed("missing from_peer, to_peer or message"));
        };
        if to.store_id != self.shared.store_id || to.id != self.shared.store_id {
            return Err(RejectedMessage::WrongStore { to: to.store_id, me: self.shared.store_id });
        }
        if m.from != from.id || m.to != to.id {
            return Err(RejectedMessage::Malformed("raft message ids disagree with the envelope"));
        }
        let regions = self.shared.regions.read().map_err(|_| RejectedMessage::Stopped)?;
        let region =
            regions.get(&msg.region_id).ok_or(RejectedMessage::UnknownRegion(msg.region_id))?;
        if !region.peers.iter().any(|p| p.id == from.id && p.store_id == from.store_id) {
            return Err(RejectedMessage::UnknownPeer(from.store_id, region.id));
        }
        if msg.from_incarnation == 0 {
            return Err(RejectedMessage::Malformed("missing the sender's incarnation"));
        }
        let incarnations = self.shared.incarnations.read().map_err(|_| RejectedMessage::Stopped)?;
        let known = incarnations.get(&msg.region_id).and_then(|m| m.get(&from.store_id));
        if known.is_some_and(|&k| k != msg.from_incarnation) {
            return Err(RejectedMessage::LostData(from.store_id));
        }
        if let (Some(theirs), Some(ours)) = (&msg.region_epoch, &region.region_epoch)
            && theirs.version < ours.version
        {
            return Err(RejectedMessage::StaleEpoch);
        }
        Ok(())
    }

    /// Opens the snapshot a MsgSnapshot from this store refers to, for a transport to
    /// stream. Raft learns the outcome through `OutgoingSnapshot::finish` (or its drop);
    /// if this fails, it has already been told.
    pub fn outgoing_snapshot(
        &self,
        msg: RaftMessage,
    ) -> std::result::Result<OutgoingSnapshot, SnapError> {
        let (region_id, to_peer) = (msg.region_id, msg.to_peer.map_or(0, |p| p.id));
        let handle = self.clone();
        let report =
            Box::new(move |delivered| handle.report_snapshot(region_id, to_peer, delivered));
        OutgoingSnapshot::open(&self.shared.snap_mgr, msg, report)
    }

    /// Starts receiving the snapshot announced by `msg` (the stream's first chunk); checked
    /// like any raft message first. `finish` steps it into the store once the whole file is
    /// here and verified.
    pub fn incoming_snapshot(
        &self,
        msg: RaftMessage,
    ) -> std::result::Result<IncomingSnapshot, SnapError> {
        self.validate(&msg)?;
        if self.is_stopped() {
            return Err(RejectedMessage::Stopped.into());
        }
        let handle = self.clone();
        let deliver = Box::new(move |msg| handle.enqueue_raft_message(msg));
        IncomingSnapshot::create(&self.shared.snap_mgr, msg, deliver)
    }

    /// How sending a snapshot to `to_peer` of `region_id` ended.
    pub fn report_snapshot(&self, region_id: u64, to_peer: u64, delivered: bool) {
        let _ = self.shared.tx.send(StoreMsg::SnapshotStatus { region_id, to_peer, delivered });
    }

    /// The transport could not deliver to `store_id`.
    pub fn report_unreachable(&self, store_id: u64) {
        let _ = self.shared.tx.send(StoreMsg::Unreachable { store_id });
    }

    /// The latest status, as of the last loop iteration.
    pub fn status(&self) -> StoreStatus {
        self.shared.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The store ids of region 1's members (the single region of part B).
    pub fn member_store_ids(&self) -> Vec<u64> {
        let regions = self.shared.regions.read();
        regions
            .map(|r| {
                r.get(&bootstrap::FIRST_REGION_ID)
                    .map(|r| r.peers.iter().map(|p| p.store_id).collect())
            })
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Asks the store to stop: a leader first hands leadership to a caught-up peer.
    pub fn shutdown(&self) {
        let _ = self.shared.tx.send(StoreMsg::Shutdown);
    }

    /// Stops the store at once, as a crash would (tests; an operator uses `shutdown`).
    pub fn kill(&self) {
        let _ = self.shared.tx.send(StoreMsg::Kill);
    }

    /// Waits for the raft worker to finish; returns its error if it stopped on one (to the
    /// first caller). Blocking.
    pub fn join(&self) -> Result<()> {
        let Ok(mut exit) = self.shared.exit.lock() else { return Ok(()) };
        loop {
            if self.is_stopped() {
                return exit.take().unwrap_or(Ok(()));
            }
            exit = match self.shared.exited.wait(exit) {
                Ok(exit) => exit,
                Err(_) => return Ok(()),
            };
        }
    }

    /// A status round trip through the raft worker (tests await progress with it).
    pub fn status_sync(&self, timeout: Duration) -> Option<StoreStatus> {
        let (tx, rx) = std::sync::mpsc::channel();
        let cb = Box::new(move |s: StoreStatus| {
            let _ = tx.send(s);
        });
        self.shared.tx.send(StoreMsg::Status(cb)).ok()?;
        rx.recv_timeout(timeout).ok()
    }
}

fn spawn_error(e: std::io::Error) -> StoreError {
    StoreError::DataDir { path: "-".into(), message: format!("cannot spawn a thread: {e}") }
}
