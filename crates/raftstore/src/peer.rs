//! A peer: one region's Raft node on this store, with its pending proposals and reads.
//!
//! The store loop drives it in phases each iteration (see `store.rs`): commands and
//! messages in, `before_ready`, then `collect_ready` (send + stage the persist), the
//! group-commit write, `send_persisted` (acknowledgements), and `apply_and_advance`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use engine::{CF_DEFAULT, WriteBatch};
use prost::Message as _;
use raft::eraftpb::{Message, Snapshot};
use raft::{Config, ProgressState, RawNode, Ready, StateRole};
use raftkv_proto::errorpb;
use raftkv_proto::metapb::{Peer as PeerMeta, Region};
use raftkv_proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, CmdType, CompactLogRequest, DeleteRequest, PutRequest,
    RaftCmdRequest, RaftRequestHeader, RecordIncarnationRequest, Request,
};
use raftkv_proto::raft_serverpb::{
    ApplyingSnapshotState, PeerState, RaftMessage, RaftSnapshotData, RegionLocalState, SnapshotMeta,
};

use crate::errors::{self, Result, StoreError};
use crate::msg::{Modify, ReadCallback, RequestContext, WriteCallback};
use crate::peer_storage::PeerStorage;
use crate::read::ReadQueue;
use crate::region_snapshot::RegionSnapshot;
use crate::region_worker::RegionTask;
use crate::snap::SnapKey;
use crate::status::StoreStatus;
use crate::transport::Transport;
use crate::{apply, keys, metrics};

pub(crate) struct Proposal {
    pub index: u64,
    pub term: u64,
    pub size_bytes: u64,
    pub cb: WriteCallback,
}

/// A Ready whose raft state is staged into the loop's batch (`Peer::collect_ready`).
pub struct CollectedReady {
    pub ready: Ready,
    /// The staged write must be fsynced before the Ready's persisted messages leave.
    pub must_sync: bool,
    /// Messages left at once, before the raft write (a leader's appends).
    pub sent_early: bool,
}

pub struct Peer {
    store_id: u64,
    cluster_id: u64,
    pub(crate) raw: RawNode<PeerStorage>,
    pub(crate) proposals: VecDeque<Proposal>,
    proposal_bytes: u64,
    max_proposal_bytes: u64,
    reads: ReadQueue,
    leader_id: u64,
    /// The term in which this peer leads; proposals of another term are stale.
    leader_term: u64,
    /// This store's incarnation, stamped on every message it sends.
    incarnation: u64,
    /// Member store -> incarnation, as recorded through the log.
    pub(crate) store_incarnations: BTreeMap<u64, u64>,
    /// Stores whose incarnation this leader proposed to record and that did not apply yet.
    pub(crate) recording: HashSet<u64>,
    record_own_incarnation: bool,
    /// Set by apply when the region or the recorded incarnations changed.
    pub(crate) meta_changed: bool,
    /// Set by apply when a CompactLog (or a snapshot) moved the truncated index: the log
    /// entries up to it are to be deleted.
    pub(crate) compacted: Option<Compacted>,
    /// A snapshot whose Ready is being handled, to hand to the region worker after its
    /// raft write.
    snapshot_to_apply: Option<Install>,
    /// The region worker is installing this snapshot: no Ready, no tick until it is done.
    applying_snapshot: Option<SnapKey>,
}

/// Log entries that became garbage: `first..=last`, or everything up to `last` when
/// `first` is unknown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compacted {
    pub first: Option<u64>,
    pub last: u64,
}

/// A received snapshot being installed: what the region worker needs.
pub(crate) struct Install {
    pub key: SnapKey,
    pub meta: SnapshotMeta,
    /// The file was checked against `meta` since it was last written (on receipt); a
    /// restart checks it again before the region's old data goes.
    pub verified: bool,
    pub region: Region,
    pub incarnations: BTreeMap<u64, u64>,
}

pub struct PeerLimits {
    pub max_proposal_bytes: u64,
}

/// Who this store is, for the incarnation check (see `RecordIncarnation`).
pub struct Incarnations {
    pub mine: u64,
    pub recorded: BTreeMap<u64, u64>,
}

impl Peer {
    pub fn new(
        store_id: u64,
        cluster_id: u64,
        raft_cfg: &Config,
        storage: PeerStorage,
        limits: PeerLimits,
        incarnations: Incarnations,
    ) -> Result<Self> {
        let mut cfg = raft_cfg.clone();
        cfg.id = store_id;
        cfg.applied = storage.applied_index();
        let raw = RawNode::new(&cfg, storage)?;
        Ok(Peer {
            store_id,
            cluster_id,
            raw,
            proposals: VecDeque::new(),
            proposal_bytes: 0,
            max_proposal_bytes: limits.max_proposal_bytes,
            reads: ReadQueue::default(),
            leader_id: 0,
            leader_term: 0,
            incarnation: incarnations.mine,
            store_incarnations: incarnations.recorded,
            recording: HashSet::new(),
            record_own_incarnation: false,
            meta_changed: false,
            compacted: None,
            snapshot_to_apply: None,
            applying_snapshot: None,
        })
    }

    pub fn region(&self) -> &Region {
        self.raw.store().region()
    }

    pub fn region_id(&self) -> u64 {
        self.region().id
    }

    pub fn peer_id(&self) -> u64 {
        self.store_id
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft().state() == StateRole::Leader
    }

    /// Built every loop, so it reads the node directly rather than through `status()`
    /// (which also copies every follower's progress).
    pub fn status(&self) -> StoreStatus {
        let r = self.raw.raft();
        let role = match r.state() {
            StateRole::Leader => "leader",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre-candidate",
            StateRole::Follower if r.is_learner() => "learner",
            StateRole::Follower => "follower",
        };
        StoreStatus {
            store_id: self.store_id,
            role,
            term: r.term(),
            commit: r.raft_log().committed(),
            applied: self.raw.store().applied_index(),
            truncated: self.raw.store().truncated_index(),
            leader_id: r.leader_id(),
        }
    }

    /// Checks what the client believes of the region; `Err` means it did not happen.
    fn check_request(
        &self,
        ctx: &RequestContext,
        keys: &[&[u8]],
    ) -> std::result::Result<(), errorpb::Error> {
        let region = self.region();
        if let Some(p) = &ctx.peer
            && p.store_id != 0
            && p.store_id != self.store_id
        {
            return Err(errors::store_not_match(p.store_id, self.store_id));
        }
        if let (Some(want), Some(have)) = (&ctx.region_epoch, &region.region_epoch)
            && (want.version != have.version || want.conf_ver > have.conf_ver)
        {
            return Err(errors::epoch_not_match(region));
        }
        for key in keys {
            let after_start = *key >= region.start_key.as_ref();
            let before_end = region.end_key.is_empty() || *key < region.end_key.as_ref();
            if !(after_start && before_end) {
                return Err(errors::key_not_in_region(key, region));
            }
        }
        if !self.is_leader() || (ctx.term != 0 && ctx.term != self.raw.raft().term()) {
            return Err(errors::not_leader(region.id, self.raw.raft().leader_id()));
        }
        Ok(())
    }

    /// The header of a command this peer proposes.
    fn request_header(&self) -> RaftRequestHeader {
        let region = self.region();
        RaftRequestHeader {
            region_id: region.id,
            peer: Some(PeerMeta { id: self.store_id, store_id: self.store_id }),
            region_epoch: region.region_epoch,
            term: self.raw.raft().term(),
        }
    }

    /// Notices that this peer leads in a term it did not lead in before: what is pending
    /// from an earlier term is answered at once (proposals: outcome unknown), before
    /// anything of the new term is queued. Called from every path that queues a proposal
    /// or read, since Raft can make the peer leader in the same loop as a request arrives.
    fn observe_leader_term(&mut self) {
        let term = self.raw.raft().term();
        if self.is_leader() && self.leader_term != term {
            self.fail_pending("leader changed");
            self.leader_term = term;
            self.recording.clear();
            // Proposed before the next Ready: nothing may step the node before `advance`.
            self.record_own_incarnation = true;
        }
    }

    pub fn propose_write(&mut self, ctx: RequestContext, ops: Vec<Modify>, cb: WriteCallback) {
        let keys: Vec<&[u8]> = ops.iter().map(Modify::key).collect();
        if let Err(e) = self.check_request(&ctx, &keys) {
            return cb(Err(e));
        }
        self.observe_leader_term();
        let size_bytes: u64 = ops.iter().map(Modify::size_bytes).sum();
        if self.proposal_bytes + size_bytes > self.max_proposal_bytes {
            return cb(Err(errors::server_is_busy("too many bytes of writes in flight")));
        }
        let header = self.request_header();
        let requests = ops.into_iter().map(modify_to_request).collect();
        let cmd = RaftCmdRequest { header: Some(header), requests, admin_request: None };
        let index = self.raw.raft().raft_log().last_index() + 1;
        let term = self.raw.raft().term();
        match self.raw.propose(cmd.encode_to_vec()) {
            Ok(()) => {
                metrics::PROPOSALS.inc();
                self.proposal_bytes += size_bytes;
                self.proposals.push_back(Proposal { index, term, size_bytes, cb });
            }
            // Refused by Raft (e.g. a leader transfer is running): nothing was appended.
            Err(_) => cb(Err(errors::not_leader(self.region_id(), self.raw.raft().leader_id()))),
        }
    }

    pub fn read(&mut self, ctx: RequestContext, key: &[u8], cb: ReadCallback) {
        let keys: Vec<&[u8]> = if key.is_empty() { vec![] } else { vec![key] };
        if let Err(e) = self.check_request(&ctx, &keys) {
            return cb(Err(e));
        }
        self.observe_leader_term();
        self.reads.push(cb);
    }

    /// What a loop does to a peer after taking in messages and before its Ready: start a
    /// ReadIndex round for the reads that arrived (see `read.rs`), and record our own
    /// incarnation once we lead.
    pub fn before_ready(&mut self) {
        if std::mem::take(&mut self.record_own_incarnation) {
            let (me, incarnation) = (self.store_id, self.incarnation);
            self.observe_incarnation(me, incarnation);
        }
        self.flush_reads();
    }

    /// When this peer's waiting reads may start a ReadIndex round.
    pub fn next_read_round_at(&self) -> Option<std::time::Instant> {
        self.reads.next_round_at()
    }

    fn flush_reads(&mut self) {
        if !self.reads.should_start_round() {
            return;
        }
        let ctx = self.reads.start_round(self.store_id);
        metrics::READ_INDEX_BATCHES.inc();
        if self.raw.read_index(ctx.clone()).is_err() {
            let err = errors::not_leader(self.region_id(), self.raw.raft().leader_id());
            for cb in self.reads.take_round(&ctx) {
                cb(Err(err.clone()));
            }
        }
    }

    /// A leader records the incarnation of a member store the first time it hears from it,
    /// so that the store coming back with lost data (a new incarnation) is recognized.
    pub fn observe_incarnation(&mut self, store_id: u64, incarnation: u64) {
        self.observe_leader_term();
        if !self.is_leader()
            || self.store_incarnations.contains_key(&store_id)
            || self.recording.contains(&store_id)
        {
            return;
        }
        let header = self.request_header();
        let admin = AdminRequest {
            cmd_type: AdminCmdType::RecordIncarnation as i32,
            record_incarnation: Some(RecordIncarnationRequest { store_id, incarnation }),
            ..Default::default()
        };
        let cmd =
            RaftCmdRequest { header: Some(header), requests: vec![], admin_request: Some(admin) };
        if self.raw.propose(cmd.encode_to_vec()).is_ok() {
            self.recording.insert(store_id);
        }
    }

    /// A leader proposes `CompactLog` once the log keeps more than `count_limit` applied
    /// entries or about `size_limit` bytes. Where it cuts, after TiKV:
    /// - not past what a follower still has to fetch (its matched index), so a follower
    ///   that lags a little, or that the leader is still probing after an election,
    ///   catches up from the log rather than through a snapshot;
    /// - a follower being sent a snapshot continues from the log after the snapshot's index,
    ///   and so does one a snapshot is being (or was just) generated for;
    /// - but no follower holds more than `count_limit` entries: one that is down or far
    ///   behind gets a snapshot;
    /// - over the size limit, everything applied goes.
    pub fn maybe_propose_compact(&mut self, count_limit: u64, size_limit: u64) {
        if !self.is_leader() {
            return;
        }
        let store = self.raw.store();
        let (truncated, applied) = (store.truncated_index(), store.applied_index());
        let kept = applied.saturating_sub(truncated);
        let over_size = store.log_bytes() > size_limit;
        if kept <= count_limit && !over_size {
            return;
        }
        let status = self.raw.status();
        // What each follower fetches next from the log: after its matched index, or after
        // the snapshot it is being sent.
        let followers_need = status
            .progress
            .iter()
            .flatten()
            .filter(|(id, _)| **id != self.store_id)
            .map(|(_, p)| match p.state {
                ProgressState::Snapshot => p.pending_snapshot.max(p.matched),
                _ => p.matched,
            })
            .min()
            .unwrap_or(applied);
        let mut compact_index = if over_size {
            applied
        } else {
            followers_need.max(applied.saturating_sub(count_limit)).min(applied)
        };
        // A snapshot being made for a follower: it continues from the log after it.
        if let Some(hold) = store.snap_context().mgr.gc_hold(self.region_id()) {
            compact_index = compact_index.min(hold);
        }
        if compact_index <= truncated {
            return;
        }
        let Ok(compact_term) = self.raw.raft().raft_log().term(compact_index) else { return };
        let admin = AdminRequest {
            cmd_type: AdminCmdType::CompactLog as i32,
            compact_log: Some(CompactLogRequest { compact_index, compact_term }),
            ..Default::default()
        };
        let header = self.request_header();
        let cmd =
            RaftCmdRequest { header: Some(header), requests: vec![], admin_request: Some(admin) };
        if self.raw.propose(cmd.encode_to_vec()).is_ok() {
            tracing::debug!(region_id = self.region_id(), compact_index, "proposed log compaction");
        }
    }

    pub fn step(&mut self, msg: Message) {
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(region_id = self.region_id(), "dropped a raft message: {e}");
        }
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    pub fn report_unreachable(&mut self, store_id: u64) {
        if let Some(p) = self.region().peers.iter().find(|p| p.store_id == store_id) {
            let id = p.id;
            self.raw.report_unreachable(id);
        }
    }

    /// Phase 1 of a Ready: note role changes, send what may leave at once, and stage the
    /// entries and hard state into the loop's raft write batch. Returns the Ready and
    /// whether its write must be synced.
    pub fn collect_ready(
        &mut self,
        wb: &mut WriteBatch,
        transport: &dyn Transport,
    ) -> Result<Option<CollectedReady>> {
        if !self.raw.has_ready() {
            return Ok(None);
        }
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let (leader, role) = (ss.leader_id, ss.raft_state);
            self.on_role_change(leader, role);
        }
        self.observe_leader_term();
        let install = match rd.snapshot() {
            Some(snapshot) => Some(self.begin_snapshot(snapshot, wb)?),
            None => None,
        };
        let early = rd.take_messages();
        let sent_early = !early.is_empty();
        self.send(early, transport);
        let store = self.raw.store_mut();
        store.append(rd.entries(), wb);
        if let Some(hs) = rd.hs() {
            store.set_hard_state(*hs);
        }
        if install.is_some() || !rd.entries().is_empty() || rd.hs().is_some() {
            store.write_raft_state(wb);
        }
        if let Some(install) = install {
            self.persist_applying_state(&install)?;
            self.snapshot_to_apply = Some(install);
        }
        let must_sync = rd.must_sync();
        Ok(Some(CollectedReady { ready: rd, must_sync, sent_early }))
    }

    /// Phase 2, once the raft write is durable: the acknowledgements may leave.
    pub fn send_persisted(&mut self, rd: &mut Ready, transport: &dyn Transport) {
        self.send(rd.take_persisted_messages(), transport);
    }

    /// Phase 2 when the raft write goes to the background: the acknowledgements, addressed,
    /// for the raft writer to send once the write is durable.
    pub fn take_persisted(&mut self, rd: &mut Ready) -> Vec<RaftMessage> {
        rd.take_persisted_messages().into_iter().filter_map(|m| self.wrap(m)).collect()
    }

    /// The next Ready installs a snapshot: it runs only once no raft write is in flight.
    pub fn snapshot_next(&self) -> bool {
        self.raw.has_ready() && self.raw.raft().raft_log().snapshot_to_persist().is_some()
    }

    /// The raft writer made the Readies up to `number` durable.
    pub fn on_persisted(&mut self, number: u64) {
        self.raw.on_persist_ready(number);
    }

    /// Phase 3: apply, serve reads, advance — `persisted` says whether the Ready's raft
    /// write is already durable or still with the raft writer. Returns whether the region's
    /// membership or recorded incarnations changed (the store republishes them).
    pub fn apply_and_advance(&mut self, mut rd: Ready, persisted: bool) -> Result<bool> {
        if let Some(install) = self.snapshot_to_apply.take() {
            self.start_applying(install)?;
        }
        let committed = rd.take_committed_entries();
        if !committed.is_empty() {
            metrics::COMMITTED_ENTRIES.inc_by(committed.len() as u64);
            apply::apply_committed(self, committed)?;
        }
        for rs in rd.take_read_states() {
            self.reads.on_read_state(&rs.request_ctx, rs.index);
        }
        if persisted {
            self.raw.advance(rd);
        } else {
            self.raw.advance_async(rd);
        }
        self.serve_reads()?;
        Ok(std::mem::take(&mut self.meta_changed))
    }

    /// Phase 1 for a Ready that carries a snapshot: the raft side of the install (the log
    /// now ends at the snapshot) is staged into the loop's raft write batch.
    fn begin_snapshot(&mut self, snapshot: &Snapshot, wb: &mut WriteBatch) -> Result<Install> {
        let key = SnapKey::of(self.region_id(), snapshot);
        let corrupt = |what: &str| StoreError::Corrupt(format!("snapshot {key}: {what}"));
        let data = RaftSnapshotData::decode(snapshot.data.as_ref())
            .map_err(|e| corrupt(&format!("undecodable data: {e}")))?;
        let (Some(region), Some(meta)) = (data.region, data.meta) else {
            return Err(corrupt("data without region or file meta"));
        };
        if region.id != self.region_id() {
            return Err(corrupt("of another region"));
        }
        // Checked before the message reached Raft (`IncomingSnapshot::finish`).
        if !self.raw.store().snap_context().mgr.received_path(&key).exists() {
            return Err(corrupt("accepted by Raft but its file is missing"));
        }
        self.raw.store_mut().begin_applying_snapshot(key.index, key.term, region.clone(), wb);
        self.store_incarnations = data.store_incarnations.clone();
        self.meta_changed = true;
        tracing::info!(%key, "installing a snapshot");
        Ok(Install { key, meta, verified: true, region, incarnations: data.store_incarnations })
    }

    /// Before the raft write of a snapshot's Ready: kvdb records, durably, that the region
    /// is `Applying` and what raftdb is about to hold, so a crash at any later point is
    /// finished at the next start (`Store::start`).
    fn persist_applying_state(&self, install: &Install) -> Result<()> {
        let store = self.raw.store();
        let region_id = install.key.region_id;
        let mut wb = WriteBatch::new();
        let state = RegionLocalState {
            state: PeerState::Applying as i32,
            region: Some(install.region.clone()),
            store_incarnations: install.incarnations.clone(),
        };
        wb.put_msg(CF_DEFAULT, &keys::region_state_key(region_id), &state);
        wb.put_msg(CF_DEFAULT, &keys::apply_state_key(region_id), store.apply_state());
        let applying = ApplyingSnapshotState {
            raft_state: Some(*store.raft_state()),
            snapshot_index: install.key.index,
            snapshot_term: install.key.term,
            meta: Some(install.meta.clone()),
        };
        wb.put_msg(CF_DEFAULT, &keys::applying_snapshot_key(region_id), &applying);
        store.kv_engine().write(wb, true)?;
        Ok(())
    }

    /// Hands the install to the region worker; the peer handles no Ready until it is done.
    pub(crate) fn start_applying(&mut self, install: Install) -> Result<()> {
        let Install { key, meta, verified, region, incarnations } = install;
        self.applying_snapshot = Some(key);
        // Which entries the replaced log held is not known here: the worker looks.
        self.compacted = Some(Compacted { first: None, last: key.index });
        let task = RegionTask::Apply { key, meta, verified, region, incarnations };
        self.raw.store().snap_context().worker.send(task).map_err(|_| StoreError::Stopped)
    }

    pub fn is_applying_snapshot(&self) -> bool {
        self.applying_snapshot.is_some()
    }

    /// The region worker finished installing `key`.
    pub(crate) fn on_snapshot_applied(&mut self, key: SnapKey) {
        if self.applying_snapshot == Some(key) {
            self.applying_snapshot = None;
        }
    }

    pub(crate) fn report_snapshot(&mut self, to_peer: u64, delivered: bool) {
        self.raw.report_snapshot(to_peer, delivered);
    }

    fn serve_reads(&mut self) -> Result<()> {
        let applied = self.raw.store().applied_index();
        let ready = self.reads.take_ready(applied);
        if ready.is_empty() {
            return Ok(());
        }
        let snap = Arc::new(self.raw.store().kv_engine().snapshot());
        let region = self.region().clone();
        for cb in ready {
            cb(Ok(RegionSnapshot::new(snap.clone(), region.clone())));
        }
        Ok(())
    }

    fn on_role_change(&mut self, leader_id: u64, role: StateRole) {
        if leader_id != self.leader_id {
            metrics::LEADER_CHANGES.inc();
            tracing::info!(region_id = self.region_id(), leader_id, ?role, "leader changed");
        }
        self.leader_id = leader_id;
        if role != StateRole::Leader {
            self.fail_pending("this peer stopped leading");
        }
    }

    /// Answers every pending proposal and read at once: proposals are in the log and may
    /// still commit (outcome unknown); reads never happened.
    pub fn fail_pending(&mut self, why: &str) {
        for p in self.proposals.drain(..) {
            (p.cb)(Err(errors::stale_command(why)));
        }
        self.proposal_bytes = 0;
        let err = errors::not_leader(self.region_id(), self.leader_id);
        for cb in self.reads.take_all() {
            cb(Err(err.clone()));
        }
    }

    pub(crate) fn proposal_done(&mut self, size_bytes: u64) {
        self.proposal_bytes = self.proposal_bytes.saturating_sub(size_bytes);
    }

    fn send(&self, msgs: Vec<Message>, transport: &dyn Transport) {
        for m in msgs {
            if let Some(m) = self.wrap(m) {
                transport.send(m);
            }
        }
    }

    /// A raft message addressed to the store of its peer; `None` for a peer not in the
    /// region (it left).
    fn wrap(&self, m: Message) -> Option<RaftMessage> {
        let region = self.region();
        let to_peer = region.peers.iter().find(|p| p.id == m.to)?;
        Some(RaftMessage {
            region_id: region.id,
            from_peer: Some(PeerMeta { id: self.store_id, store_id: self.store_id }),
            to_peer: Some(*to_peer),
            message: Some(m),
            region_epoch: region.region_epoch,
            is_tombstone: false,
            start_key: Bytes::new(),
            end_key: Bytes::new(),
            cluster_id: self.cluster_id,
            from_incarnation: self.incarnation,
        })
    }
}

fn modify_to_request(m: Modify) -> Request {
    match m {
        Modify::Put { cf, key, value } => Request {
            cmd_type: CmdType::Put as i32,
            put: Some(PutRequest { cf, key, value }),
            ..Default::default()
        },
        Modify::Delete { cf, key } => Request {
            cmd_type: CmdType::Delete as i32,
            delete: Some(DeleteRequest { cf, key }),
            ..Default::default()
        },
    }
}
