//! One simulated node: a live RawNode, or only its durable storage while crashed.

use std::collections::VecDeque;

use raft::eraftpb::{Entry, HardState, Message};
use raft::{Config, MemStorage, RawNode};

use crate::options::Options;
use crate::state_machine::StateMachine;

/// Where in the Ready loop a crash strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The immediate messages left, nothing was persisted.
    BeforePersist,
    /// Persisted, but the messages that waited for it never left and nothing was applied.
    AfterPersist,
}

/// A Ready's write handed to the background (`Options::async_persist`), not yet durable.
pub struct PendingWrite {
    pub number: u64,
    pub entries: Vec<Entry>,
    pub hs: Option<HardState>,
    /// Leave only once the write is durable.
    pub persisted_messages: Vec<Message>,
}

pub struct SimNode {
    pub id: u64,
    pub raw: Option<RawNode<MemStorage>>,
    /// The durable storage while the node is down.
    down_store: Option<MemStorage>,
    /// Durable with the application's data (see `state_machine.rs`).
    pub sm: StateMachine,
    /// Removed from the group by a membership change (and stopped) until re-added.
    pub removed: bool,
    /// Crash in the middle of the next Ready.
    pub crash_in_next_ready: Option<CrashPoint>,
    pub restarts: u64,
    /// Background writes in the order their Readies were handed out.
    pub pending: VecDeque<PendingWrite>,
}

impl SimNode {
    pub fn new(id: u64, voters: Vec<u64>, opts: &Options) -> Self {
        let store = MemStorage::new_with_conf_state(voters.clone(), vec![]);
        let sm = StateMachine::new(raft::eraftpb::ConfState { voters, learners: vec![] });
        let mut node = SimNode {
            id,
            raw: None,
            down_store: Some(store),
            sm,
            removed: false,
            crash_in_next_ready: None,
            restarts: 0,
            pending: VecDeque::new(),
        };
        node.start(opts);
        node
    }

    pub fn config(&self, opts: &Options) -> Config {
        Config {
            id: self.id,
            election_tick: opts.election_tick,
            heartbeat_tick: opts.heartbeat_tick,
            applied: self.sm.applied_index,
            max_size_per_msg: opts.max_size_per_msg,
            max_inflight_msgs: opts.max_inflight_msgs,
            max_inflight_bytes: opts.max_inflight_bytes,
            check_quorum: opts.check_quorum,
            pre_vote: opts.pre_vote,
            seed: opts.seed.wrapping_add(self.restarts),
            skip_bcast_commit: opts.skip_bcast_commit,
            ..Default::default()
        }
    }

    pub fn is_up(&self) -> bool {
        self.raw.is_some()
    }

    /// Drops everything volatile, background writes not yet durable included; only the
    /// storage and the state machine remain.
    pub fn crash(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.down_store = Some(raw.into_store());
        }
        self.crash_in_next_ready = None;
        self.pending.clear();
    }

    /// Makes the oldest background write durable and tells the node; returns the messages
    /// that waited for it.
    pub fn complete_oldest_write(&mut self, seed: u64) -> Option<Vec<Message>> {
        let raw = self.raw.as_mut()?;
        let w = self.pending.pop_front()?;
        let store = raw.store_mut();
        if let Err(e) = store.append(&w.entries) {
            panic!("seed {seed}: node {}: persisting entries failed: {e}", self.id);
        }
        if let Some(hs) = w.hs {
            store.set_hard_state(hs);
        }
        raw.on_persist_ready(w.number);
        Some(w.persisted_messages)
    }

    /// Restarts from the durable state.
    pub fn start(&mut self, opts: &Options) {
        let Some(store) = self.down_store.take() else { return };
        self.restarts += 1;
        let config = self.config(opts);
        match RawNode::new(&config, store) {
            Ok(raw) => self.raw = Some(raw),
            Err(e) => panic!("seed {}: node {} failed to restart: {e}", opts.seed, self.id),
        }
    }

    pub fn store(&self) -> &MemStorage {
        match (&self.raw, &self.down_store) {
            (Some(raw), _) => raw.store(),
            (None, Some(s)) => s,
            (None, None) => unreachable!("a node always has its storage"),
        }
    }
}
