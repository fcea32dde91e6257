//! `GrpcTransport`: raftstore's `Transport` over the `Raft` client-streaming RPC.
//!
//! The raft thread must never block on the network, and a down peer must not make
//! messages pile up without bound. So:
//! - `send` only appends to a per-peer, per-lane buffer (a short mutex, no I/O);
//! - `flush` (once per raft loop) hands each non-empty buffer to the lane's task as ONE
//!   item of a bounded queue, so a loop's messages to a peer cost one wakeup; a full queue
//!   or a lane that is down drops the batch, counts it and reports the peer unreachable
//!   (Raft retransmits; the leader probes the peer again);
//! - each peer has two lanes, each its own connection and stream (`peer_stream.rs`):
//!   `bulk` for appends, `control` for the rest, so heartbeats and votes never wait behind
//!   megabytes of entries;
//! - a snapshot goes on its own `Snapshot` stream (`snapshot_stream.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use raftkv_proto::eraftpb::MessageType;
use raftkv_proto::raft_serverpb::RaftMessage;
use raftstore::{StoreHandle, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::peer_stream::{self, LaneTask};
use crate::{metrics, snapshot_stream};

/// Messages one lane may hold queued before new ones are dropped.
const LANE_QUEUE_MESSAGES: usize = 4096;
/// The queue's bound in items (batches); `LANE_QUEUE_MESSAGES` is the binding limit.
const LANE_QUEUE_BATCHES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneKind {
    /// Appends: large, throughput-bound.
    Bulk,
    /// Heartbeats, votes, responses, ReadIndex, TimeoutNow: small, latency-bound.
    Control,
}

impl LaneKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            LaneKind::Bulk => "bulk",
            LaneKind::Control => "control",
        }
    }

    fn of(msg: &RaftMessage) -> LaneKind {
        match &msg.message {
            Some(m) if m.msg_type() == MessageType::MsgAppend => LaneKind::Bulk,
            _ => LaneKind::Control,
        }
    }
}

/// What the raft thread and a lane's task share.
pub(crate) struct LaneState {
    pub(crate) store_id: u64,
    pub(crate) kind: LaneKind,
    /// Messages in the queue, not yet taken by the task.
    pub(crate) queued: AtomicUsize,
    /// True while the task backs off after a failure: batches are dropped at `flush`.
    pub(crate) down: AtomicBool,
    pub(crate) store: Arc<OnceLock<StoreHandle>>,
}

impl LaneState {
    /// Tells the store its messages to this peer are being lost, so a leader probes it.
    pub(crate) fn report_unreachable(&self) {
        if let Some(store) = self.store.get() {
            store.report_unreachable(self.store_id);
        }
    }

    pub(crate) fn dropped(&self, reason: &str, count: usize) {
        metrics::RAFT_MESSAGES_DROPPED.with_label_values(&[reason]).inc_by(count as u64);
    }
}

struct Lane {
    state: Arc<LaneState>,
    buf: Mutex<LaneBuf>,
}

struct LaneBuf {
    /// Messages `send` collected since the last `flush`.
    pending: Vec<RaftMessage>,
    /// `None` once the transport is closed.
    tx: Option<mpsc::Sender<Vec<RaftMessage>>>,
}

impl Lane {
    fn push(&self, msg: RaftMessage) {
        if let Ok(mut buf) = self.buf.lock() {
            buf.pending.push(msg);
        }
    }

    fn flush(&self) {
        let (batch, tx) = match self.buf.lock() {
            Ok(mut buf) if !buf.pending.is_empty() => {
                (std::mem::take(&mut buf.pending), buf.tx.clone())
            }
            _ => return,
        };
        let state = &self.state;
        let n = batch.len();
        let Some(tx) = tx else { return state.dropped("closed", n) };
        if state.down.load(Ordering::SeqCst) {
            state.dropped("peer_down", n);
            return state.report_unreachable();
        }
        if state.queued.fetch_add(n, Ordering::SeqCst) + n > LANE_QUEUE_MESSAGES {
            state.queued.fetch_sub(n, Ordering::SeqCst);
            state.dropped("queue_full", n);
            return state.report_unreachable();
        }
        if tx.try_send(batch).is_err() {
            state.queued.fetch_sub(n, Ordering::SeqCst);
            state.dropped("queue_full", n);
            state.report_unreachable();
        }
    }

    fn close(&self) {
        if let Ok(mut buf) = self.buf.lock() {
            buf.tx = None;
        }
    }
}

pub struct GrpcTransport {
    /// Store id -> its two lanes; fixed at construction (part B has no membership change).
    peers: HashMap<u64, [Lane; 2]>,
    /// Store id -> where its snapshots go (one stream per transfer, `snapshot_stream.rs`).
    endpoints: HashMap<u64, tonic::transport::Endpoint>,
    runtime: tokio::runtime::Handle,
    max_message_bytes: usize,
    store: Arc<OnceLock<StoreHandle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl GrpcTransport {
    /// Starts the lane tasks for every peer but `self_id` (they connect lazily, on the first
    /// message). Must be called inside a tokio runtime.
    pub fn new(
        self_id: u64,
        peers: &BTreeMap<u64, String>,
        max_message_bytes: usize,
    ) -> Result<Self, tonic::transport::Error> {
        let store = Arc::new(OnceLock::new());
        let mut lanes = HashMap::new();
        let mut endpoints = HashMap::new();
        let mut tasks = Vec::new();
        for (&store_id, addr) in peers.iter().filter(|(id, _)| **id != self_id) {
            let endpoint = peer_stream::endpoint(addr)?;
            endpoints.insert(store_id, endpoint.clone());
            let mut make_lane = |kind| {
                let state = Arc::new(LaneState {
                    store_id,
                    kind,
                    queued: AtomicUsize::new(0),
                    down: AtomicBool::new(false),
                    store: store.clone(),
                });
                let (tx, rx) = mpsc::channel(LANE_QUEUE_BATCHES);
                let task = LaneTask {
                    state: state.clone(),
                    endpoint: endpoint.clone(),
                    addr: addr.clone(),
                    rx,
                    max_message_bytes,
                };
                tasks.push(tokio::spawn(task.run()));
                Lane { state, buf: Mutex::new(LaneBuf { pending: Vec::new(), tx: Some(tx) }) }
            };
            lanes.insert(store_id, [make_lane(LaneKind::Bulk), make_lane(LaneKind::Control)]);
        }
        Ok(GrpcTransport {
            peers: lanes,
            endpoints,
            runtime: tokio::runtime::Handle::current(),
            max_message_bytes,
            store,
            tasks: Mutex::new(tasks),
        })
    }

    /// The transport exists before the store it reports to; the store is set once started.
    pub fn set_store(&self, store: StoreHandle) {
        let _ = self.store.set(store);
    }

    /// Stops accepting messages, lets each lane finish writing what it holds, and stops the
    /// tasks, aborting those still busy after `timeout`.
    pub async fn close(&self, timeout: Duration) {
        for lane in self.peers.values().flatten() {
            lane.close();
        }
        let mut tasks = self.tasks.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        let drained = tokio::time::timeout(timeout, async {
            for task in tasks.iter_mut() {
                let _ = task.await;
            }
        });
        if drained.await.is_err() {
            for task in &tasks {
                task.abort();
            }
        }
    }
}

impl GrpcTransport {
    /// A snapshot streams on its own RPC, from a task: the raft thread never waits for it.
    fn send_snapshot(&self, to: u64, msg: RaftMessage) {
        let (Some(store), Some(endpoint)) = (self.store.get(), self.endpoints.get(&to)) else {
            // Only before the store is set: nothing can be reported, Raft's snapshot
            // progress would wait for ever; a store sends no snapshot that early.
            return tracing::warn!(to, "dropping a snapshot: transport not ready");
        };
        let send =
            snapshot_stream::send(store.clone(), endpoint.clone(), msg, self.max_message_bytes);
        self.runtime.spawn(send);
    }
}

impl Transport for GrpcTransport {
    fn send(&self, msg: RaftMessage) {
        let to = msg.to_peer.as_ref().map_or(0, |p| p.store_id);
        let is_snapshot =
            msg.message.as_ref().is_some_and(|m| m.msg_type() == MessageType::MsgSnapshot);
        if is_snapshot {
            return self.send_snapshot(to, msg);
        }
        let Some(lanes) = self.peers.get(&to) else {
            metrics::RAFT_MESSAGES_DROPPED.with_label_values(&["unknown_store"]).inc();
            tracing::warn!(to, "dropping a raft message to a store not in --peers");
            return;
        };
        match LaneKind::of(&msg) {
            LaneKind::Bulk => lanes[0].push(msg),
            LaneKind::Control => lanes[1].push(msg),
        }
    }

    fn flush(&self) {
        for lane in self.peers.values().flatten() {
            lane.flush();
        }
    }
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use raftkv_proto::eraftpb::Message;

    use super::*;

    fn msg(t: MessageType) -> RaftMessage {
        RaftMessage {
            message: Some(Message { msg_type: t as i32, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn appends_take_the_bulk_lane() {
        assert_eq!(LaneKind::of(&msg(MessageType::MsgAppend)), LaneKind::Bulk);
        for t in [
            MessageType::MsgHeartbeat,
            MessageType::MsgAppendResponse,
            MessageType::MsgRequestVote,
            MessageType::MsgRequestPreVote,
            MessageType::MsgTimeoutNow,
            MessageType::MsgReadIndex,
        ] {
            assert_eq!(LaneKind::of(&msg(t)), LaneKind::Control, "{t:?}");
        }
    }

    #[tokio::test]
    async fn a_down_peer_never_holds_more_than_the_bound() {
        // Port 1 on localhost: nothing listens, every connect fails.
        let peers = BTreeMap::from([(1, "127.0.0.1:1".to_string()), (2, "127.0.0.1:1".into())]);
        let transport = GrpcTransport::new(1, &peers, 1 << 20).expect("valid addresses");
        let to = raftkv_proto::metapb::Peer { id: 2, store_id: 2 };
        for _ in 0..3 * LANE_QUEUE_MESSAGES {
            let mut m = msg(MessageType::MsgHeartbeat);
            m.to_peer = Some(to);
            transport.send(m);
            transport.flush();
        }
        let control = &transport.peers[&2][1];
        assert!(control.state.queued.load(Ordering::SeqCst) <= LANE_QUEUE_MESSAGES);
        transport.close(Duration::from_secs(5)).await;
    }
}
