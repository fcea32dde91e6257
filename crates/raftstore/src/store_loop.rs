//! The raft worker's loop: one iteration waits for a message or the next tick, drains
//! everything queued (bounded), ticks if due (a stall skips missed ticks instead of firing
//! a burst), starts one ReadIndex round per peer for the reads that arrived, then for every
//! peer with a Ready: sends what may leave at once, stages entries and hard state into ONE
//! raft write batch (group commit), applies what is committed and serves reads.
//!
//! The batch is written one of two ways:
//! - **in the background** by the raft writer (`raft_writer.rs`), which sends the
//!   acknowledgements once it is durable: the loop goes on meanwhile, so a leader commits on
//!   its followers' acknowledgements while its own fsync is still running (a quorum needs
//!   no particular member), and a follower answers heartbeats (ReadIndex rounds) and takes
//!   the next appends without waiting for its disk;
//! - **inline**, when nothing is in flight and the loop was quiet, or the batch installs a
//!   snapshot: a lone request then costs no thread hand-off.
//!
//! It runs on its own thread (`run_blocking`) or as a task on the server's async runtime
//! (`run_async`), where a request, its append, the acknowledgement and the answer pass
//! between tasks of one thread instead of waking other threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::WriteBatch;
use raft::{ProgressState, Ready};
use raftkv_proto::errorpb;
use raftkv_proto::raft_serverpb::{RaftMessage, StoreIdent};
use tokio::sync::Notify;

use crate::bootstrap::{self, DirLock, Engines};
use crate::errors::{self, Result, StoreError};
use crate::failpoints::{FailPoints, points};
use crate::log_gc::GcTask;
use crate::metrics;
use crate::msg::{RequestContext, StoreMsg};
use crate::peer::Peer;
use crate::raft_writer::{RaftWriter, WriteTask, write_raft};
use crate::region_worker::RegionTask;
use crate::status::StoreStatus;
use crate::store::Shared;
use crate::transport::Transport;
use crate::worker::Worker;

/// Messages drained per loop before the Readies are handled: bounds a loop's latency.
const MAX_MSGS_PER_LOOP: usize = 4096;
/// A loop that handled at least this many messages hands its raft write to the writer.
const BACKGROUND_WRITE_AFTER_MSGS: usize = 8;

pub(crate) struct StoreLoop {
    pub(crate) base_tick: Duration,
    pub(crate) election_timeout: Duration,
    pub(crate) engines: Engines,
    pub(crate) _lock: DirLock,
    pub(crate) _ident: StoreIdent,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) rx: Receiver<StoreMsg>,
    /// Woken by every send to `rx`: what the loop awaits when it runs as a task.
    pub(crate) wake: Arc<Notify>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) peers: HashMap<u64, Peer>,
    pub(crate) next_tick: Instant,
    pub(crate) shutdown_deadline: Option<Instant>,
    pub(crate) killed: bool,
    pub(crate) fatal: Option<String>,
    pub(crate) log_gc: Option<Worker<GcTask>>,
    pub(crate) gc_interval: Duration,
    pub(crate) next_gc_check: Instant,
    pub(crate) gc_count_limit: u64,
    pub(crate) gc_size_limit: u64,
    pub(crate) failpoints: FailPoints,
    /// Persists raft write batches in the background, in order.
    pub(crate) writer: RaftWriter,
    /// Batches handed to `writer` and not yet reported persisted.
    pub(crate) writes_in_flight: usize,
    /// Declared after `peers`: dropped (and joined) once the peers, which hold senders to
    /// it, are gone.
    pub(crate) _region_worker: Worker<RegionTask>,
}

/// Whether the loop goes on after an iteration.
enum Flow {
    Continue,
    Stop,
}

/// One iteration's Readies and the raftdb batch that persists them (one group commit).
struct Collected {
    wb: WriteBatch,
    sync: bool,
    /// Messages were queued to leave before the raft write.
    sent_early: bool,
    /// A Ready installs a snapshot.
    installs: bool,
    readies: Vec<(u64, Ready)>,
    /// Messages the iteration took in: how busy the store is.
    handled: usize,
    /// When the Ready handling began (the ready-loop metric).
    start: Instant,
}

/// A peer's Ready may be taken: not while its snapshot is being installed, and a Ready
/// that installs one waits until no raft write is in flight.
fn may_handle_ready(peer: &Peer, writes_in_flight: usize) -> bool {
    !(peer.is_applying_snapshot() || writes_in_flight > 0 && peer.snapshot_next())
}

impl StoreLoop {
    /// The loop on a thread of its own, blocking in `recv` between iterations.
    pub(crate) fn run_blocking(mut self) -> Result<()> {
        loop {
            let first = match self.rx.recv_timeout(self.idle_timeout()) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            if let Flow::Stop = self.iterate(first)? {
                return Ok(());
            }
        }
    }

    /// The loop as an async task: it awaits a message or its next deadline between
    /// iterations, and runs each iteration on the polling worker thread.
    pub(crate) async fn run_async(&mut self) -> Result<()> {
        loop {
            let timeout = self.idle_timeout();
            if !timeout.is_zero() {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(timeout) => {}
                }
            }
            // Tasks woken together with this one (requests, raft messages) queue theirs
            // first, so they share this iteration's one raft write.
            tokio::task::yield_now().await;
            let Some(collected) = self.prepare(None)? else { return Ok(()) };
            let flow = if self.write_inline(&collected) {
                if collected.sent_early {
                    // The appends just queued are sent by transport tasks of this thread:
                    // let them go first, so followers write in parallel with our fsync.
                    tokio::task::yield_now().await;
                }
                self.finish_inline(collected)?
            } else {
                self.finish_in_background(collected)?
            };
            if let Flow::Stop = flow {
                return Ok(());
            }
        }
    }

    /// How long the loop may wait for a message: not at all while a peer has a Ready, else
    /// until the next tick or until waiting reads may start their round.
    fn idle_timeout(&self) -> Duration {
        let in_flight = self.writes_in_flight;
        let busy = self.peers.values().any(|p| may_handle_ready(p, in_flight) && p.raw.has_ready());
        if busy {
            return Duration::ZERO;
        }
        let wake_at = self
            .peers
            .values()
            .filter_map(Peer::next_read_round_at)
            .fold(self.next_tick, Instant::min);
        wake_at.saturating_duration_since(Instant::now())
    }

    /// One iteration: `first` (if the wait returned one) and whatever else is queued, the
    /// tick, then every Ready.
    fn iterate(&mut self, first: Option<StoreMsg>) -> Result<Flow> {
        let Some(collected) = self.prepare(first)? else { return Ok(Flow::Stop) };
        if self.write_inline(&collected) {
            self.finish_inline(collected)
        } else {
            self.finish_in_background(collected)
        }
    }

    /// Whether this iteration writes raftdb itself rather than through the writer: never
    /// while a write is in flight (writes must land in order); always for a snapshot's
    /// Ready (the install starts once its raft state is durable) or for nothing to write;
    /// else when the loop was quiet, where a hand-off to the writer costs more than it
    /// overlaps.
    fn write_inline(&self, c: &Collected) -> bool {
        if self.writes_in_flight > 0 {
            return false;
        }
        if c.installs || c.wb.is_empty() {
            return true;
        }
        c.handled < BACKGROUND_WRITE_AFTER_MSGS
    }

    /// Writes the batch here, then acknowledgements leave and committed entries apply.
    fn finish_inline(&mut self, c: Collected) -> Result<Flow> {
        write_raft(&self.engines.raft, c.wb, c.sync)?;
        self.finish_readies(c.readies, true)?;
        Ok(self.after_readies(c.start))
    }

    /// Hands the batch, with the acknowledgements that wait for it, to the writer, then
    /// applies committed entries (durable here already) without waiting for it.
    fn finish_in_background(&mut self, mut c: Collected) -> Result<Flow> {
        let mut messages = Vec::new();
        let mut readies = Vec::with_capacity(c.readies.len());
        for (region_id, rd) in c.readies.iter_mut() {
            if let Some(peer) = self.peers.get_mut(region_id) {
                messages.extend(peer.take_persisted(rd));
                readies.push((*region_id, rd.number()));
            }
        }
        // Messages of a Ready that wrote nothing still wait for the writes before them.
        if !c.wb.is_empty() || !messages.is_empty() {
            self.writer.submit(WriteTask { wb: c.wb, sync: c.sync, messages, readies });
            self.writes_in_flight += 1;
        }
        self.finish_readies(c.readies, false)?;
        Ok(self.after_readies(c.start))
    }

    /// An iteration up to the raft write: messages, tick, and every Ready collected (what
    /// may leave at once is sent). `None` if the store was killed.
    fn prepare(&mut self, first: Option<StoreMsg>) -> Result<Option<Collected>> {
        let handled = self.take_messages(first);
        if !self.before_readies()? {
            return Ok(None);
        }
        let start = Instant::now();
        self.collect_readies(handled, start)
    }

    /// Handles `first` and whatever else is queued (bounded); returns how many.
    fn take_messages(&mut self, first: Option<StoreMsg>) -> usize {
        let mut handled = 0;
        if let Some(msg) = first {
            self.handle(msg);
            handled += 1;
        }
        for _ in 0..MAX_MSGS_PER_LOOP {
            match self.rx.try_recv() {
                Ok(msg) => self.handle(msg),
                Err(_) => break,
            }
            handled += 1;
        }
        handled
    }

    /// Ticks and lets peers start read rounds; false if the store was killed, an error if
    /// it hit a fatal one.
    fn before_readies(&mut self) -> Result<bool> {
        if self.killed {
            // Pending callbacks are dropped unanswered: their outcome is unknown.
            return Ok(false);
        }
        if let Some(why) = self.fatal.take() {
            return Err(StoreError::Corrupt(why));
        }
        self.maybe_tick();
        self.maybe_compact_logs();
        for peer in self.peers.values_mut() {
            peer.before_ready();
        }
        Ok(true)
    }

    fn after_readies(&mut self, start: Instant) -> Flow {
        if self.killed {
            return Flow::Stop;
        }
        metrics::READY_LOOP_SECONDS.observe(start.elapsed().as_secs_f64());
        self.publish_status();
        if self.shutdown_done() {
            for peer in self.peers.values_mut() {
                peer.fail_pending("store is shutting down");
            }
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn handle(&mut self, msg: StoreMsg) {
        match msg {
            StoreMsg::Raft(m) => {
                self.shared.pending_raft.fetch_sub(1, Ordering::SeqCst);
                let RaftMessage { region_id, message, from_peer, from_incarnation, .. } = *m;
                if let (Some(peer), Some(message)) = (self.peers.get_mut(&region_id), message) {
                    peer.step(message);
                    if let Some(from) = from_peer {
                        peer.observe_incarnation(from.store_id, from_incarnation);
                    }
                }
            }
            StoreMsg::Write { ctx, ops, cb } => {
                self.shared.pending_commands.fetch_sub(1, Ordering::SeqCst);
                let key = ops.first().map(|m| Bytes::copy_from_slice(m.key())).unwrap_or_default();
                match self.route(&ctx, &key) {
                    Ok(peer) => peer.propose_write(ctx, ops, cb),
                    Err(e) => cb(Err(e)),
                }
            }
            StoreMsg::Read { ctx, key, cb } => {
                self.shared.pending_commands.fetch_sub(1, Ordering::SeqCst);
                match self.route(&ctx, &key) {
                    Ok(peer) => peer.read(ctx, &key, cb),
                    Err(e) => cb(Err(e)),
                }
            }
            StoreMsg::Unreachable { store_id } => {
                for peer in self.peers.values_mut() {
                    peer.report_unreachable(store_id);
                }
            }
            StoreMsg::Status(cb) => cb(self.current_status()),
            StoreMsg::Shutdown => self.begin_shutdown(),
            StoreMsg::Kill => {
                self.killed = true;
                self.writer.kill();
            }
            StoreMsg::Fatal(why) => self.fatal = Some(why),
            StoreMsg::SnapshotApplied { key } => {
                if let Some(peer) = self.peers.get_mut(&key.region_id) {
                    peer.on_snapshot_applied(key);
                }
            }
            StoreMsg::SnapshotStatus { region_id, to_peer, delivered } => {
                if let Some(peer) = self.peers.get_mut(&region_id) {
                    peer.report_snapshot(to_peer, delivered);
                }
            }
            StoreMsg::Persisted { readies, writes } => {
                self.writes_in_flight = self.writes_in_flight.saturating_sub(writes);
                for (region_id, number) in readies {
                    if let Some(peer) = self.peers.get_mut(&region_id) {
                        peer.on_persisted(number);
                    }
                }
            }
        }
    }

    /// The peer a request goes to: the named region, or the one holding `key`.
    fn route(
        &mut self,
        ctx: &RequestContext,
        key: &[u8],
    ) -> std::result::Result<&mut Peer, errorpb::Error> {
        if self.shutdown_deadline.is_some() {
            return Err(errors::store_stopped());
        }
        if ctx.region_id != 0 {
            return self
                .peers
                .get_mut(&ctx.region_id)
                .ok_or_else(|| errors::region_not_found(ctx.region_id));
        }
        self.peers
            .values_mut()
            .find(|p| {
                let r = p.region();
                key >= r.start_key.as_ref() && (r.end_key.is_empty() || key < r.end_key.as_ref())
            })
            .ok_or_else(|| errors::region_not_found(0))
    }

    fn maybe_compact_logs(&mut self) {
        let now = Instant::now();
        if now < self.next_gc_check {
            return;
        }
        self.next_gc_check = now + self.gc_interval;
        for peer in self.peers.values_mut() {
            peer.maybe_propose_compact(self.gc_count_limit, self.gc_size_limit);
            if !peer.is_applying_snapshot() {
                // Received snapshots Raft refused as stale, or that a crash left behind.
                let applied = peer.raw.store().applied_index();
                self.shared.snap_mgr.remove_received_through(peer.region_id(), applied);
            }
        }
    }

    fn maybe_tick(&mut self) {
        let now = Instant::now();
        if now < self.next_tick {
            return;
        }
        for peer in self.peers.values_mut().filter(|p| !p.is_applying_snapshot()) {
            peer.tick();
        }
        // One tick however long we stalled: a burst would fire elections at once.
        self.next_tick = now + self.base_tick;
    }

    /// Every peer's Ready: what may leave at once is sent, entries and hard states are
    /// staged into one raftdb batch. `None` if a failpoint killed the store.
    fn collect_readies(&mut self, handled: usize, start: Instant) -> Result<Option<Collected>> {
        let mut wb = WriteBatch::new();
        let mut sync = false;
        let mut sent_early = false;
        let mut readies = Vec::new();
        let mut installs = false;
        let in_flight = self.writes_in_flight;
        for (&region_id, peer) in self.peers.iter_mut() {
            if !may_handle_ready(peer, in_flight) {
                continue;
            }
            if let Some(c) = peer.collect_ready(&mut wb, self.transport.as_ref())? {
                sync |= c.must_sync;
                sent_early |= c.sent_early;
                installs |= c.ready.snapshot().is_some();
                readies.push((region_id, c.ready));
            }
        }
        if installs && self.failpoints.fire(points::SNAPSHOT_BEFORE_RAFT_WRITE) {
            self.killed = true;
            return Ok(None);
        }
        // A leader's appends leave before its own fsync: followers write in parallel
        // (thesis §10.2.1); it counts its own copy only once durable.
        self.transport.flush();
        Ok(Some(Collected { wb, sync, sent_early, installs, readies, handled, start }))
    }

    /// Acknowledgements leave if `persisted` (else the writer sends them), then committed
    /// entries are applied.
    fn finish_readies(&mut self, mut readies: Vec<(u64, Ready)>, persisted: bool) -> Result<()> {
        if persisted {
            for (region_id, rd) in readies.iter_mut() {
                if let Some(peer) = self.peers.get_mut(region_id) {
                    peer.send_persisted(rd, self.transport.as_ref());
                }
            }
            // Acknowledgements leave before this store spends time applying.
            self.transport.flush();
        }
        for (region_id, rd) in readies {
            let Some(peer) = self.peers.get_mut(&region_id) else { continue };
            let meta_changed = peer.apply_and_advance(rd, persisted)?;
            if let (Some(c), Some(gc)) = (peer.compacted.take(), &self.log_gc) {
                // The apply state recording the compaction is written (not yet synced):
                // the worker syncs it before deleting anything.
                gc.schedule(GcTask { region_id, start: c.first, end: c.last + 1 });
            }
            if meta_changed {
                if let Ok(mut regions) = self.shared.regions.write() {
                    regions.insert(region_id, peer.region().clone());
                }
                if let Ok(mut incarnations) = self.shared.incarnations.write() {
                    incarnations.insert(region_id, peer.store_incarnations.clone());
                }
            }
        }
        Ok(())
    }

    fn current_status(&self) -> StoreStatus {
        self.peers.get(&bootstrap::FIRST_REGION_ID).map(Peer::status).unwrap_or(StoreStatus {
            store_id: self.shared.store_id,
            role: "follower",
            ..Default::default()
        })
    }

    fn publish_status(&self) {
        let status = self.current_status();
        if let Ok(mut s) = self.shared.status.lock()
            && *s != status
        {
            *s = status;
        }
    }

    /// A leader hands leadership to its most caught-up peer before stopping, so clients see
    /// a new leader at once instead of waiting out an election timeout.
    fn begin_shutdown(&mut self) {
        // Without a peer to hand over to there is nothing to wait for.
        self.shutdown_deadline = Some(Instant::now());
        for peer in self.peers.values_mut() {
            if !peer.is_leader() {
                continue;
            }
            let last = peer.raw.raft().raft_log().last_index();
            let status = peer.raw.status();
            let target = status
                .progress
                .iter()
                .flatten()
                .filter(|(id, p)| **id != peer.peer_id() && p.state == ProgressState::Replicate)
                .max_by_key(|(_, p)| p.matched)
                .map(|(id, p)| (*id, p.matched));
            if let Some((id, matched)) = target {
                tracing::info!(to = id, matched, last, "handing over leadership before shutdown");
                if peer.raw.transfer_leader(id).is_ok() {
                    self.shutdown_deadline = Some(Instant::now() + 2 * self.election_timeout);
                }
            }
        }
    }

    fn shutdown_done(&self) -> bool {
        match self.shutdown_deadline {
            None => false,
            Some(deadline) => {
                Instant::now() >= deadline || !self.peers.values().any(Peer::is_leader)
            }
        }
    }
}
