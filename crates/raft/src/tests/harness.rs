//! A synchronous test network of `Raft` nodes over `MemStorage`, after etcd's raft tests.
//!
//! Every node persists its unstable state before its messages are read, as a well-behaved
//! application would, so tests see a message only once its sender could really send it.

use std::collections::{BTreeMap, HashSet, VecDeque};

use raftkv_proto::eraftpb::{ConfState, Entry, HardState, Message, MessageType, Snapshot};

use crate::log_unstable::snapshot_index;
use crate::{Config, MemStorage, Raft, StateRole};

pub fn new_test_config(id: u64, election_tick: usize, heartbeat_tick: usize) -> Config {
    Config {
        id,
        election_tick,
        heartbeat_tick,
        max_size_per_msg: crate::NO_LIMIT,
        max_inflight_msgs: 256,
        ..Default::default()
    }
}

/// A fresh node of a group whose members are `peers`.
pub fn new_test_raft(
    id: u64,
    peers: Vec<u64>,
    election: usize,
    heartbeat: usize,
) -> Raft<MemStorage> {
    let store = MemStorage::new_with_conf_state(peers, vec![]);
    new_test_raft_with_storage(id, election, heartbeat, store)
}

pub fn new_test_raft_with_storage(
    id: u64,
    election: usize,
    heartbeat: usize,
    store: MemStorage,
) -> Raft<MemStorage> {
    new_test_raft_with_config(&new_test_config(id, election, heartbeat), store)
}

pub fn new_test_raft_with_config(config: &Config, store: MemStorage) -> Raft<MemStorage> {
    Raft::new(config, store).expect("test raft")
}

/// A storage whose log already holds entries with these terms (indexes 1..), membership
/// `peers`.
pub fn storage_with_terms(peers: Vec<u64>, terms: &[u64]) -> MemStorage {
    let mut s = MemStorage::new_with_conf_state(peers, vec![]);
    let ents: Vec<Entry> = terms.iter().enumerate().map(|(i, &t)| entry(i as u64 + 1, t)).collect();
    s.append(&ents).expect("append");
    s
}

pub fn entry(index: u64, term: u64) -> Entry {
    Entry { index, term, ..Default::default() }
}

pub fn entry_with_data(index: u64, term: u64, data: &'static [u8]) -> Entry {
    Entry { index, term, data: bytes::Bytes::from_static(data), ..Default::default() }
}

pub fn hard_state(term: u64, commit: u64, vote: u64) -> HardState {
    HardState { term, vote, commit }
}

pub fn msg(from: u64, to: u64, t: MessageType) -> Message {
    Message { from, to, msg_type: t as i32, ..Default::default() }
}

pub fn msg_with_term(from: u64, to: u64, t: MessageType, term: u64) -> Message {
    Message { term, ..msg(from, to, t) }
}

/// A local proposal of `data`.
pub fn propose(to: u64, data: &'static [u8]) -> Message {
    let mut m = msg(to, to, MessageType::MsgPropose);
    m.entries = vec![Entry { data: bytes::Bytes::from_static(data), ..Default::default() }];
    m
}

pub fn hup(to: u64) -> Message {
    msg(to, to, MessageType::MsgHup)
}

pub fn snapshot(index: u64, term: u64, voters: Vec<u64>) -> Snapshot {
    Snapshot {
        data: Default::default(),
        metadata: Some(raftkv_proto::eraftpb::SnapshotMetadata {
            conf_state: Some(ConfState { voters, learners: vec![] }),
            index,
            term,
        }),
    }
}

/// Persists what `r` holds unstable, as the application handles a Ready.
pub fn persist(r: &mut Raft<MemStorage>) {
    r.flush_appends();
    if let Some(snap) = r.raft_log.unstable_snapshot().cloned() {
        let index = snapshot_index(&snap);
        r.raft_log.store.apply_snapshot(snap).expect("apply snapshot");
        r.on_persist_snapshot(index);
        r.raft_log.applied_to(index);
    }
    let ents = r.raft_log.unstable_entries().to_vec();
    if let Some(last) = ents.last() {
        r.raft_log.store.append(&ents).expect("append");
        r.on_persist_entries(last.index, last.term);
    }
    let hs = r.hard_state();
    r.raft_log.store.set_hard_state(hs);
}

/// Persists, then takes every message `r` wants sent (both lists).
pub fn read_messages(r: &mut Raft<MemStorage>) -> Vec<Message> {
    persist(r);
    let mut msgs = std::mem::take(&mut r.msgs);
    msgs.append(&mut r.msgs_after_persist);
    msgs
}

/// Persists, then applies and returns the committed entries.
pub fn next_ents(r: &mut Raft<MemStorage>) -> Vec<Entry> {
    persist(r);
    let ents = r.raft_log.next_entries().unwrap_or_default();
    if let Some(last) = ents.last() {
        r.raft_log.applied_to(last.index);
    }
    ents
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Connection {
    from: u64,
    to: u64,
}

/// Nodes by id (`None` is a black hole that swallows messages), with drop and cut filters.
pub struct Network {
    pub peers: BTreeMap<u64, Option<Raft<MemStorage>>>,
    dropped: BTreeMap<Connection, f64>,
    ignored: HashSet<i32>,
    /// Deterministic "randomness" for percentage drops.
    drop_counter: u64,
}

pub struct NetworkConfig {
    pub pre_vote: bool,
    pub check_quorum: bool,
}

impl Network {
    /// `peers[i]` has id `i + 1`; `None` creates a fresh default node.
    pub fn new(peers: Vec<Option<Raft<MemStorage>>>) -> Network {
        Self::new_with_config(peers, NetworkConfig { pre_vote: false, check_quorum: false })
    }

    pub fn new_with_config(peers: Vec<Option<Raft<MemStorage>>>, nc: NetworkConfig) -> Network {
        let ids: Vec<u64> = (1..=peers.len() as u64).collect();
        let mut map = BTreeMap::new();
        for (i, p) in peers.into_iter().enumerate() {
            let id = ids[i];
            let node = match p {
                Some(r) => r,
                None => {
                    let mut c = new_test_config(id, 10, 1);
                    c.pre_vote = nc.pre_vote;
                    c.check_quorum = nc.check_quorum;
                    new_test_raft_with_config(
                        &c,
                        MemStorage::new_with_conf_state(ids.clone(), vec![]),
                    )
                }
            };
            map.insert(id, Some(node));
        }
        Network { peers: map, dropped: BTreeMap::new(), ignored: HashSet::new(), drop_counter: 0 }
    }

    /// A network where `black_holes` ids swallow every message.
    pub fn with_black_holes(mut self, black_holes: &[u64]) -> Network {
        for id in black_holes {
            self.peers.insert(*id, None);
        }
        self
    }

    pub fn peer(&self, id: u64) -> &Raft<MemStorage> {
        self.peers[&id].as_ref().expect("peer is a black hole")
    }

    pub fn peer_mut(&mut self, id: u64) -> &mut Raft<MemStorage> {
        self.peers.get_mut(&id).and_then(|p| p.as_mut()).expect("peer is a black hole")
    }

    /// Delivers `msgs` and everything they cause, until the network is quiet.
    pub fn send(&mut self, msgs: Vec<Message>) {
        let mut queue: VecDeque<Message> = msgs.into();
        while let Some(m) = queue.pop_front() {
            let Some(Some(p)) = self.peers.get_mut(&m.to) else { continue };
            let _ = p.step(m);
            let out = read_messages(p);
            let kept = self.filter(out);
            queue.extend(kept);
        }
    }

    fn filter(&mut self, msgs: Vec<Message>) -> Vec<Message> {
        msgs.into_iter()
            .filter(|m| {
                if self.ignored.contains(&m.msg_type) {
                    return false;
                }
                let perc = self.dropped.get(&Connection { from: m.from, to: m.to }).copied();
                match perc {
                    Some(p) if p >= 1.0 => false,
                    Some(p) => {
                        self.drop_counter = self.drop_counter.wrapping_add(1);
                        let sample = (self.drop_counter.wrapping_mul(2_654_435_761) % 1000) as f64;
                        sample >= p * 1000.0
                    }
                    None => true,
                }
            })
            .collect()
    }

    pub fn drop(&mut self, from: u64, to: u64, perc: f64) {
        self.dropped.insert(Connection { from, to }, perc);
    }

    pub fn cut(&mut self, one: u64, other: u64) {
        self.drop(one, other, 1.0);
        self.drop(other, one, 1.0);
    }

    pub fn isolate(&mut self, id: u64) {
        let ids: Vec<u64> = self.peers.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    pub fn ignore(&mut self, t: MessageType) {
        self.ignored.insert(t as i32);
    }

    pub fn recover(&mut self) {
        self.dropped.clear();
        self.ignored.clear();
    }
}

pub fn assert_role(r: &Raft<MemStorage>, role: StateRole) {
    assert_eq!(r.state, role, "node {} role", r.id);
}

impl Network {
    /// Ticks `id` `n` times; what each tick makes it send goes through the filters, then is
    /// delivered with everything it causes.
    pub fn tick_peer(&mut self, id: u64, n: usize) {
        for _ in 0..n {
            let p = self.peer_mut(id);
            p.tick();
            let out = read_messages(p);
            let kept = self.filter(out);
            self.send(kept);
        }
    }

    /// Like `send`, but `msgs` themselves also go through the filters.
    pub fn send_filtered(&mut self, msgs: Vec<Message>) {
        let kept = self.filter(msgs);
        self.send(kept);
    }
}
