//! `RawNode`: the application's handle on a Raft node, and the `Ready` it hands out.
//!
//! The loop (see docs/ready-contract.md): feed the node with `tick`, `step`, `propose`, ...;
//! when `has_ready`, take a `Ready`, then in order:
//! 1. send `messages()` (they may leave before anything is durable);
//! 2. persist `snapshot()`, `entries()` and `hs()` atomically (fsync);
//! 3. send `persisted_messages()`;
//! 4. apply `committed_entries()` (and the snapshot) to the state machine;
//! 5. call `advance(ready)`. Do not step the node between `ready()` and `advance()`.
//!
//! Or, persisting in the background: do 1 and 4, stage 2, call `advance_async(ready)`, and
//! go on stepping the node; once the write of 2 is durable, send 3 and call
//! `on_persist_ready(ready.number())`. Writes complete in the order their Readies were
//! handed out.

use std::collections::VecDeque;

use bytes::Bytes;
use prost::Message as _;
use raftkv_proto::eraftpb::{
    ConfChange, ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot,
};

use crate::config::Config;
use crate::errors::{Error, Result};
use crate::log_unstable::snapshot_index;
use crate::raft::{Raft, SoftState};
use crate::read_only::ReadState;
use crate::status::Status;
use crate::storage::Storage;

/// Everything the application must do, in the order the module docs give.
#[derive(Debug, Default)]
pub struct Ready {
    number: u64,
    ss: Option<SoftState>,
    hs: Option<HardState>,
    read_states: Vec<ReadState>,
    entries: Vec<Entry>,
    snapshot: Option<Snapshot>,
    committed_entries: Vec<Entry>,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    must_sync: bool,
    /// What `advance` records, fixed when the Ready is built (the lists above may be taken);
    /// what it persists is recorded in `RawNode::in_flight`.
    snapshot_index: Option<u64>,
    apply_to: Option<u64>,
}

impl Ready {
    /// Readies are numbered from 1, in the order they were handed out.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The leader or role changed. Not persisted.
    pub fn ss(&self) -> Option<&SoftState> {
        self.ss.as_ref()
    }

    /// Term, vote or commit changed: persist with the entries.
    pub fn hs(&self) -> Option<&HardState> {
        self.hs.as_ref()
    }

    /// ReadIndex answers: serve each read once `index` is applied.
    pub fn read_states(&self) -> &[ReadState] {
        &self.read_states
    }

    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.read_states)
    }

    /// New entries to persist, replacing any stored at or after the first one's index.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn take_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.entries)
    }

    /// A snapshot from the leader to persist and apply before `committed_entries`.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Committed entries to apply, in order, after the persist.
    pub fn committed_entries(&self) -> &[Entry] {
        &self.committed_entries
    }

    pub fn take_committed_entries(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.committed_entries)
    }

    /// Messages that may be sent before the persist (a leader's appends and heartbeats).
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn take_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    /// Messages that must wait until `entries`, `hs` and `snapshot` are durable (votes,
    /// append responses: thesis §3.8).
    pub fn persisted_messages(&self) -> &[Message] {
        &self.persisted_messages
    }

    pub fn take_persisted_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.persisted_messages)
    }

    /// Whether the persist must be synced to disk: entries, a term or a vote changed. A
    /// commit-index-only change may be written lazily (it is recovered from the leader).
    pub fn must_sync(&self) -> bool {
        self.must_sync
    }
}

pub struct RawNode<S: Storage> {
    raft: Raft<S>,
    prev_ss: SoftState,
    prev_hs: HardState,
    ready_number: u64,
    /// Readies handed out whose persistence was not reported yet, oldest first.
    in_flight: VecDeque<InFlight>,
}

/// What `on_persist_ready` records of a Ready once its write is durable.
#[derive(Debug)]
struct InFlight {
    number: u64,
    persist_to: Option<(u64, u64)>,
    snapshot_index: Option<u64>,
}

impl<S: Storage> RawNode<S> {
    /// Starts (or restarts, from what `store` holds) a node.
    pub fn new(config: &Config, store: S) -> Result<Self> {
        let raft = Raft::new(config, store)?;
        let prev_ss = raft.soft_state();
        let prev_hs = raft.hard_state();
        Ok(RawNode { raft, prev_ss, prev_hs, ready_number: 0, in_flight: VecDeque::new() })
    }

    pub fn raft(&self) -> &Raft<S> {
        &self.raft
    }

    pub fn store(&self) -> &S {
        self.raft.raft_log.store()
    }

    /// The application writes its persisted state here while handling a Ready.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.raft.raft_log.store
    }

    /// Gives the storage back, dropping everything volatile (a crash, in a simulation).
    pub fn into_store(self) -> S {
        self.raft.raft_log.store
    }

    pub fn tick(&mut self) {
        self.raft.tick();
    }

    pub fn campaign(&mut self) -> Result<()> {
        self.raft.step(crate::raft::new_message(0, MessageType::MsgHup))
    }

    pub fn propose(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let mut m = crate::raft::new_message(0, MessageType::MsgPropose);
        m.entries = vec![Entry { data: data.into(), ..Default::default() }];
        self.raft.step(m)
    }

    /// Proposes several entries at once: one log append, one broadcast.
    pub fn propose_batch(&mut self, data: impl IntoIterator<Item = Bytes>) -> Result<()> {
        let mut m = crate::raft::new_message(0, MessageType::MsgPropose);
        m.entries = data.into_iter().map(|d| Entry { data: d, ..Default::default() }).collect();
        self.raft.step(m)
    }

    /// Proposes a membership change; apply it with `apply_conf_change` once committed.
    pub fn propose_conf_change(&mut self, cc: &ConfChange) -> Result<()> {
        let mut m = crate::raft::new_message(0, MessageType::MsgPropose);
        m.entries = vec![Entry {
            entry_type: EntryType::EntryConfChange as i32,
            data: cc.encode_to_vec().into(),
            ..Default::default()
        }];
        self.raft.step(m)
    }

    /// Applies a committed membership change; returns the membership to persist.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> ConfState {
        self.raft.apply_conf_change(cc)
    }

    /// Asks for a linearizable read point; the answer arrives as a `ReadState` carrying
    /// `ctx`, which must be unique among pending requests.
    pub fn read_index(&mut self, ctx: impl Into<Bytes>) -> Result<()> {
        let mut m = crate::raft::new_message(0, MessageType::MsgReadIndex);
        m.context = ctx.into();
        self.raft.step(m)
    }

    /// Asks the leader to hand leadership to `transferee`.
    pub fn transfer_leader(&mut self, transferee: u64) -> Result<()> {
        let mut m = crate::raft::new_message(0, MessageType::MsgTransferLeader);
        m.from = transferee;
        self.raft.step(m)
    }

    /// Steps a message received from a peer.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        if matches!(t, MessageType::MsgHup | MessageType::MsgBeat) {
            return Err(Error::StepLocalMsg);
        }
        let is_response = matches!(
            t,
            MessageType::MsgAppendResponse
                | MessageType::MsgHeartbeatResponse
                | MessageType::MsgRequestVoteResponse
                | MessageType::MsgRequestPreVoteResponse
                | MessageType::MsgReadIndexResp
        );
        if is_response && self.raft.prs.get(m.from).is_none() {
            return Err(Error::StepPeerNotFound);
        }
        self.raft.step(m)
    }

    pub fn report_unreachable(&mut self, id: u64) {
        self.raft.report_unreachable(id);
    }

    pub fn report_snapshot(&mut self, id: u64, success: bool) {
        self.raft.report_snapshot(id, success);
    }

    pub fn has_ready(&self) -> bool {
        let r = &self.raft;
        r.soft_state() != self.prev_ss
            || r.hard_state() != self.prev_hs
            || r.bcast_pending
            || !r.msgs.is_empty()
            || !r.msgs_after_persist.is_empty()
            || !r.raft_log.entries_to_persist().is_empty()
            || r.raft_log.snapshot_to_persist().is_some()
            || !r.read_states.is_empty()
            || r.raft_log.has_next_entries()
    }

    /// What the application must do now. One Ready at a time: call `advance` (or
    /// `advance_async`) before the next `ready` and before stepping the node again.
    pub fn ready(&mut self) -> Ready {
        self.raft.flush_appends();
        self.ready_number += 1;
        let r = &mut self.raft;
        let mut rd = Ready { number: self.ready_number, ..Default::default() };
        let ss = r.soft_state();
        if ss != self.prev_ss {
            rd.ss = Some(ss);
            self.prev_ss = ss;
        }
        let hs = r.hard_state();
        if hs != self.prev_hs {
            rd.must_sync = hs.term != self.prev_hs.term || hs.vote != self.prev_hs.vote;
            rd.hs = Some(hs);
            self.prev_hs = hs;
        }
        if let Some(snap) = r.raft_log.snapshot_to_persist() {
            rd.snapshot_index = Some(snapshot_index(snap));
            rd.snapshot = Some(snap.clone());
            rd.must_sync = true;
        }
        rd.entries = r.raft_log.entries_to_persist().to_vec();
        let persist_to = rd.entries.last().map(|last| (last.index, last.term));
        rd.must_sync |= persist_to.is_some();
        r.raft_log.accept_in_progress();
        if persist_to.is_some() || rd.snapshot_index.is_some() {
            let snapshot_index = rd.snapshot_index;
            self.in_flight.push_back(InFlight { number: rd.number, persist_to, snapshot_index });
        }
        if let Some(ents) = r.raft_log.next_entries() {
            rd.apply_to = ents.last().map(|e| e.index);
            rd.committed_entries = ents;
        }
        rd.read_states = std::mem::take(&mut r.read_states);
        rd.messages = std::mem::take(&mut r.msgs);
        rd.persisted_messages = std::mem::take(&mut r.msgs_after_persist);
        rd
    }

    /// Records that the Ready was handled: entries and snapshot are durable, committed
    /// entries are applied. May make the node ready again (a leader's commit advanced).
    pub fn advance(&mut self, rd: Ready) {
        let number = rd.number;
        self.advance_async(rd);
        self.on_persist_ready(number);
    }

    /// Records that the Ready's committed entries (and snapshot) are applied while its
    /// entries, hard state and snapshot are still being written: the node may be stepped
    /// again at once, and until `on_persist_ready` it neither counts those entries as
    /// durable here (a leader's own vote toward a commit) nor hands them out to apply.
    pub fn advance_async(&mut self, rd: Ready) {
        if let Some(index) = rd.snapshot_index {
            self.raft.raft_log.applied_to(index);
        }
        if let Some(index) = rd.apply_to {
            self.raft.raft_log.applied_to(index);
        }
    }

    /// Every Ready up to `number` is durable. May make the node ready again (a leader's
    /// commit advanced).
    pub fn on_persist_ready(&mut self, number: u64) {
        while self.in_flight.front().is_some_and(|f| f.number <= number) {
            let Some(done) = self.in_flight.pop_front() else { break };
            if let Some(index) = done.snapshot_index {
                self.raft.on_persist_snapshot(index);
            }
            if let Some((index, term)) = done.persist_to {
                self.raft.on_persist_entries(index, term);
            }
        }
    }

    /// Readies handed out whose persistence was not reported yet.
    pub fn writes_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn status(&self) -> Status {
        Status::new(&self.raft)
    }
}
