//! The simulated network between stores, with fault filters. Every send goes through
//! `route`; a delayed message waits in a queue served by one delivery thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use raftkv_proto::eraftpb::MessageType;
use raftkv_proto::raft_serverpb::RaftMessage;
use raftstore::{StoreHandle, Transport};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Default, Clone)]
struct Filters {
    drop_rate: f64,
    max_delay: Duration,
    /// store -> group; stores talk only within a group.
    groups: Option<HashMap<u64, u8>>,
    isolated: HashSet<u64>,
}

struct Delayed {
    at: Instant,
    seq: u64,
    msg: RaftMessage,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct SimNetwork {
    stores: RwLock<HashMap<u64, StoreHandle>>,
    filters: RwLock<Filters>,
    rng: Mutex<StdRng>,
    delayed: Mutex<(BinaryHeap<Reverse<Delayed>>, u64)>,
    stop: AtomicBool,
    /// Why receivers refused messages, in order (tests assert on them).
    rejections: Mutex<Vec<String>>,
    /// Every snapshot stream that reached its receiver, in start order.
    transfers: Mutex<Vec<SnapshotTransfer>>,
}

/// One snapshot stream between two stores, as the network saw it.
#[derive(Debug, Clone)]
pub struct SnapshotTransfer {
    pub from: u64,
    pub to: u64,
    /// The snapshot's index.
    pub index: u64,
    pub size_bytes: u64,
    /// When the receiver accepted the stream's first chunk.
    pub started: Instant,
    /// When the stream ended (delivered or not); `None` while it runs.
    pub finished: Option<Instant>,
    /// The receiver got the whole file, verified it and queued the MsgSnapshot for Raft.
    pub delivered: bool,
}

impl SimNetwork {
    pub fn new(seed: u64) -> Arc<Self> {
        let net = Arc::new(SimNetwork {
            stores: RwLock::new(HashMap::new()),
            filters: RwLock::new(Filters::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            delayed: Mutex::new((BinaryHeap::new(), 0)),
            stop: AtomicBool::new(false),
            rejections: Mutex::new(Vec::new()),
            transfers: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&net);
        std::thread::Builder::new()
            .name("sim-network-delay".into())
            .spawn(move || deliver_delayed(weak))
            .ok();
        net
    }

    pub fn transport(self: &Arc<Self>, store_id: u64) -> Arc<dyn Transport> {
        Arc::new(SimTransport { from: store_id, net: self.clone() })
    }

    pub fn register(&self, handle: StoreHandle) {
        if let Ok(mut s) = self.stores.write() {
            s.insert(handle.store_id(), handle);
        }
    }

    pub fn unregister(&self, store_id: u64) -> Option<StoreHandle> {
        self.stores.write().ok()?.remove(&store_id)
    }

    pub fn handle(&self, store_id: u64) -> Option<StoreHandle> {
        self.stores.read().ok()?.get(&store_id).cloned()
    }

    /// Drops `rate` of the messages and delays the rest by up to `max_delay`.
    pub fn set_unreliable(&self, rate: f64, max_delay: Duration) {
        if let Ok(mut f) = self.filters.write() {
            f.drop_rate = rate;
            f.max_delay = max_delay;
        }
    }

    /// Splits stores into groups; only stores of one group can talk.
    pub fn partition(&self, groups: &[Vec<u64>]) {
        let mut map = HashMap::new();
        for (g, members) in groups.iter().enumerate() {
            for &s in members {
                map.insert(s, g as u8);
            }
        }
        if let Ok(mut f) = self.filters.write() {
            f.groups = Some(map);
        }
    }

    pub fn isolate(&self, store_id: u64) {
        if let Ok(mut f) = self.filters.write() {
            f.isolated.insert(store_id);
        }
    }

    /// Removes partitions and isolation (the unreliable setting stays).
    pub fn heal(&self) {
        if let Ok(mut f) = self.filters.write() {
            f.groups = None;
            f.isolated.clear();
        }
    }

    pub fn random_u64(&self, below: u64) -> u64 {
        self.rng.lock().map(|mut r| r.random_range(0..below.max(1))).unwrap_or(0)
    }

    fn connected(f: &Filters, a: u64, b: u64) -> bool {
        if f.isolated.contains(&a) || f.isolated.contains(&b) {
            return false;
        }
        match &f.groups {
            Some(g) => g.get(&a).is_some() && g.get(&a) == g.get(&b),
            None => true,
        }
    }

    fn route(&self, from: u64, msg: RaftMessage) {
        let to = msg.to_peer.map_or(0, |p| p.store_id);
        let Ok(f) = self.filters.read().map(|f| f.clone()) else { return };
        if !Self::connected(&f, from, to) {
            return;
        }
        let (dropped, delay) = match self.rng.lock() {
            Ok(mut rng) => {
                let dropped = f.drop_rate > 0.0 && rng.random_bool(f.drop_rate);
                let delay = if f.max_delay.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_micros(rng.random_range(0..f.max_delay.as_micros() as u64))
                };
                (dropped, delay)
            }
            Err(_) => (true, Duration::ZERO),
        };
        if dropped {
            return;
        }
        if delay.is_zero() {
            self.deliver(from, msg);
        } else if let Ok(mut q) = self.delayed.lock() {
            q.1 += 1;
            let seq = q.1;
            q.0.push(Reverse(Delayed { at: Instant::now() + delay, seq, msg }));
        }
    }

    fn deliver(&self, from: u64, msg: RaftMessage) {
        let to = msg.to_peer.map_or(0, |p| p.store_id);
        match self.handle(to) {
            Some(h) => {
                if let Err(e) = h.step_raft_message(msg)
                    && !matches!(e, raftstore::RejectedMessage::Busy)
                    && let Ok(mut r) = self.rejections.lock()
                {
                    r.push(format!("store {to} refused a message from store {from}: {e}"));
                }
            }
            None => {
                if let Some(sender) = self.handle(from) {
                    sender.report_unreachable(to);
                }
            }
        }
    }

    /// Streams a snapshot chunk by chunk through the stores' real transfer ends, as the
    /// gRPC `Snapshot` stream does. The filters apply at the start (a dropped snapshot) and
    /// to every chunk (a partition cuts the transfer); the sender's Raft always learns the
    /// outcome from `OutgoingSnapshot`.
    fn transfer_snapshot(&self, from: u64, msg: RaftMessage) {
        let to = msg.to_peer.map_or(0, |p| p.store_id);
        let Some(sender) = self.handle(from) else { return };
        let Ok(mut out) = sender.outgoing_snapshot(msg) else { return };
        let reachable = || {
            let Ok(f) = self.filters.read().map(|f| f.clone()) else { return false };
            Self::connected(&f, from, to)
        };
        let rate = self.filters.read().map(|f| f.drop_rate).unwrap_or(0.0);
        let dropped = rate > 0.0 && self.rng.lock().is_ok_and(|mut r| r.random_bool(rate));
        if dropped || !reachable() {
            return;
        }
        let Some(receiver) = self.handle(to) else {
            sender.report_unreachable(to);
            return;
        };
        let mut incoming = match receiver.incoming_snapshot(out.message().clone()) {
            Ok(incoming) => incoming,
            Err(e) => return self.note_refusal(to, from, &e.to_string()),
        };
        let slot = self.transfers.lock().ok().map(|mut t| {
            t.push(SnapshotTransfer {
                from,
                to,
                index: out.key().index,
                size_bytes: out.size_bytes(),
                started: Instant::now(),
                finished: None,
                delivered: false,
            });
            t.len() - 1
        });
        let delivered = self.stream_snapshot(from, to, &mut out, &mut incoming, reachable);
        let delivered = delivered && {
            match incoming.finish() {
                Ok(()) => true,
                Err(e) => {
                    self.note_refusal(to, from, &e.to_string());
                    false
                }
            }
        };
        if let (Some(i), Ok(mut t)) = (slot, self.transfers.lock()) {
            t[i].finished = Some(Instant::now());
            t[i].delivered = delivered;
        }
        if delivered {
            out.finish(true);
        }
    }

    /// Copies every chunk; false if the stream was cut or failed.
    fn stream_snapshot(
        &self,
        from: u64,
        to: u64,
        out: &mut raftstore::OutgoingSnapshot,
        incoming: &mut raftstore::IncomingSnapshot,
        reachable: impl Fn() -> bool,
    ) -> bool {
        loop {
            match out.next_chunk() {
                Ok(Some(chunk)) if reachable() => {
                    if let Err(e) = incoming.write(&chunk) {
                        self.note_refusal(to, from, &e.to_string());
                        return false;
                    }
                }
                Ok(Some(_)) => return false,
                Ok(None) => return true,
                Err(e) => {
                    self.note_refusal(from, to, &e.to_string());
                    return false;
                }
            }
        }
    }

    fn note_refusal(&self, at: u64, peer: u64, why: &str) {
        if why.contains("busy") || why.contains("in progress") {
            return;
        }
        if let Ok(mut r) = self.rejections.lock() {
            r.push(format!("store {at} refused a snapshot from store {peer}: {why}"));
        }
    }

    /// Every refusal so far, e.g. "store 1 refused a message from store 3: ...".
    pub fn rejections(&self) -> Vec<String> {
        self.rejections.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Every snapshot stream so far (started, running or ended).
    pub fn snapshot_transfers(&self) -> Vec<SnapshotTransfer> {
        self.transfers.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// How many snapshots reached store `to` whole (verified and handed to its Raft).
    pub fn snapshots_delivered_to(&self, to: u64) -> usize {
        self.snapshot_transfers().iter().filter(|t| t.to == to && t.delivered).count()
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn deliver_delayed(net: Weak<SimNetwork>) {
    loop {
        let Some(net) = net.upgrade() else { return };
        if net.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        if let Ok(mut q) = net.delayed.lock() {
            while q.0.peek().is_some_and(|Reverse(d)| d.at <= now) {
                if let Some(Reverse(d)) = q.0.pop() {
                    due.push(d.msg);
                }
            }
        }
        for msg in due {
            let from = msg.from_peer.map_or(0, |p| p.store_id);
            net.deliver(from, msg);
        }
        drop(net);
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct SimTransport {
    from: u64,
    net: Arc<SimNetwork>,
}

impl Transport for SimTransport {
    fn send(&self, msg: RaftMessage) {
        let is_snapshot =
            msg.message.as_ref().is_some_and(|m| m.msg_type() == MessageType::MsgSnapshot);
        if is_snapshot {
            let net = self.net.clone();
            let from = self.from;
            let spawned = std::thread::Builder::new()
                .name("sim-snapshot".into())
                .spawn(move || net.transfer_snapshot(from, msg));
            if spawned.is_err() {
                tracing::warn!("cannot spawn a snapshot transfer thread");
            }
        } else {
            self.net.route(self.from, msg);
        }
    }
}
