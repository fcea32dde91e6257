//! The scheduler: picks one action per step from the seed's generator, runs every node's
//! Ready loop, and checks the invariants after each step.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType, Message, MessageType};
use raft::{StateRole, Storage};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::invariants::{
    CommittedLog, ElectionSafety, Monotonic, ReadIndexCheck, Violation, check_log_matching,
};
use crate::network::Network;
use crate::node::{CrashPoint, PendingWrite, SimNode};
use crate::options::Options;
use crate::state_machine::encode_id;

/// What a run did, so a test can show that it exercised something.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub proposals_committed: usize,
    pub reads_answered: usize,
    pub crashes: usize,
    pub snapshots_applied: usize,
    pub leader_changes: usize,
    pub conf_changes: usize,
    pub liveness_ticks: usize,
}

/// Runs one seed to the end; panics with the seed and a replay command on a violation.
pub fn run_seed(opts: &Options) -> Outcome {
    let mut c = Cluster::new(opts.clone());
    for _ in 0..opts.steps {
        c.step();
    }
    c.heal_and_check_liveness();
    c.outcome.reads_answered = c.reads.answered;
    c.outcome
}

struct Cluster {
    opts: Options,
    rng: StdRng,
    nodes: BTreeMap<u64, SimNode>,
    net: Network,
    next_id: u64,
    /// The index of the last membership change the simulation reacted to.
    conf_acted_index: u64,
    election: ElectionSafety,
    committed: CommittedLog,
    monotonic: Monotonic,
    reads: ReadIndexCheck,
    last_leader: u64,
    steps: usize,
    outcome: Outcome,
}

impl Cluster {
    fn new(opts: Options) -> Self {
        let voters: Vec<u64> = (1..=opts.nodes).collect();
        let nodes =
            voters.iter().map(|&id| (id, SimNode::new(id, voters.clone(), &opts))).collect();
        Cluster {
            rng: StdRng::seed_from_u64(opts.seed),
            opts,
            nodes,
            net: Network::default(),
            next_id: 1,
            conf_acted_index: 0,
            election: ElectionSafety::default(),
            committed: CommittedLog::default(),
            monotonic: Monotonic::default(),
            reads: ReadIndexCheck::default(),
            last_leader: 0,
            steps: 0,
            outcome: Outcome::default(),
        }
    }

    fn fail(&self, v: Violation) -> ! {
        panic!(
            "raft simulation violated an invariant (seed {seed}, {n} nodes, step {step}): {v}\n\
             replay: RAFT_SIM_SEED={seed} RAFT_SIM_NODES={n} cargo test --release -p \
             raftkv-raft-sim --test simulation -- --ignored --nocapture replay",
            seed = self.opts.seed,
            n = self.opts.nodes,
            step = self.steps,
        )
    }

    fn check(&self, r: Result<(), Violation>) {
        if let Err(v) = r {
            self.fail(v);
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        let n = self.opts.nodes;
        match self.rng.random_range(0..1000u32) {
            0..450 => self.deliver_one(),
            450..600 => self.tick_all(),
            600..740 => self.propose(),
            740..820 => self.read(),
            820..830 if n > 1 => self.net.partition(n, &mut self.rng),
            830..870 => self.net.heal(),
            870..874 => self.crash_one(),
            874..920 => self.restart_one(),
            920..950 => self.compact_one(),
            950..965 => self.transfer_leader(),
            965..980 => self.change_membership(),
            _ => {}
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.rng.random_bool(0.6) {
                self.handle_ready(id);
            }
            if self.rng.random_bool(0.4) {
                let n = self.rng.random_range(1..=3);
                self.complete_writes(id, n);
            }
        }
        self.check_invariants(self.steps.is_multiple_of(20));
    }

    fn up_ids(&self) -> Vec<u64> {
        self.nodes.values().filter(|n| n.is_up()).map(|n| n.id).collect()
    }

    fn pick<T: Copy>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())])
    }

    fn leader(&self) -> Option<u64> {
        self.nodes.values().find_map(|n| {
            let raw = n.raw.as_ref()?;
            (raw.raft().state() == StateRole::Leader).then_some(n.id)
        })
    }

    fn deliver_one(&mut self) {
        let Some(m) = self.net.take_random(&mut self.rng) else { return };
        let lost = !self.net.connected(m.from, m.to)
            || !self.nodes.get(&m.to).is_some_and(|n| n.is_up())
            || self.rng.random_bool(self.opts.drop_rate);
        if lost {
            self.report_lost(&m);
            return;
        }
        if self.rng.random_bool(self.opts.duplicate_rate) {
            self.net.push(m.clone(), &mut self.rng);
        }
        self.deliver(m);
    }

    fn deliver(&mut self, m: Message) {
        let (from, to, is_snapshot) = (m.from, m.to, m.msg_type() == MessageType::MsgSnapshot);
        if let Some(raw) = self.nodes.get_mut(&to).and_then(|n| n.raw.as_mut()) {
            let _ = raw.step(m);
        }
        if is_snapshot && let Some(raw) = self.nodes.get_mut(&from).and_then(|n| n.raw.as_mut()) {
            raw.report_snapshot(to, true);
        }
    }

    /// Tells the sender what a real transport would: the peer is unreachable.
    fn report_lost(&mut self, m: &Message) {
        let Some(raw) = self.nodes.get_mut(&m.from).and_then(|n| n.raw.as_mut()) else { return };
        if m.msg_type() == MessageType::MsgSnapshot {
            raw.report_snapshot(m.to, false);
        } else if self.rng.random_bool(0.3) {
            raw.report_unreachable(m.to);
        }
    }

    fn tick_all(&mut self) {
        self.net.now += 1;
        for n in self.nodes.values_mut() {
            if let Some(raw) = n.raw.as_mut() {
                raw.tick();
            }
        }
    }

    fn propose(&mut self) {
        let target = match self.leader() {
            Some(l) if self.rng.random_bool(0.9) => Some(l),
            _ => self.pick(&self.up_ids()),
        };
        let Some(id) = target else { return };
        let batch = if self.rng.random_bool(0.2) { self.rng.random_range(2..6) } else { 1 };
        let data: Vec<Bytes> = (0..batch)
            .map(|_| {
                self.next_id += 1;
                encode_id(self.next_id)
            })
            .collect();
        if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut()) {
            let _ = raw.propose_batch(data);
        }
    }

    /// The highest commit index any node knows or made durable: every acknowledged entry
    /// is at or below it.
    fn known_commit(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| {
                let durable = n.store().hard_state().commit;
                n.raw.as_ref().map_or(durable, |r| r.raft().raft_log().committed().max(durable))
            })
            .max()
            .unwrap_or(0)
    }

    fn read(&mut self) {
        let Some(id) = self.pick(&self.up_ids()) else { return };
        self.next_id += 1;
        let ctx = encode_id(self.next_id);
        let known = self.known_commit();
        if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut())
            && raw.read_index(ctx.clone()).is_ok()
        {
            self.reads.issued(ctx, known);
        }
    }

    fn crash_one(&mut self) {
        let Some(id) = self.pick(&self.up_ids()) else { return };
        self.outcome.crashes += 1;
        let point = match self.rng.random_range(0..3) {
            0 => Some(CrashPoint::BeforePersist),
            1 => Some(CrashPoint::AfterPersist),
            _ => None,
        };
        if let Some(n) = self.nodes.get_mut(&id) {
            match point {
                Some(p) => n.crash_in_next_ready = Some(p),
                None => n.crash(),
            }
        }
    }

    fn restart_one(&mut self) {
        let down: Vec<u64> =
            self.nodes.values().filter(|n| !n.is_up() && !n.removed).map(|n| n.id).collect();
        let Some(id) = self.pick(&down) else { return };
        let opts = self.opts.clone();
        if let Some(n) = self.nodes.get_mut(&id) {
            n.start(&opts);
        }
    }

    /// Snapshots a node's state machine at its applied index and drops log entries up to
    /// a random point at or below it.
    fn compact_one(&mut self) {
        let Some(id) = self.pick(&self.up_ids()) else { return };
        let Some(first) = self.snapshot_state_machine(id) else { return };
        let applied = self.nodes[&id].sm.applied_index;
        let compact_to = self.rng.random_range(first..=applied);
        let seed = self.opts.seed;
        if let Some(raw) = self.nodes.get_mut(&id).and_then(|n| n.raw.as_mut())
            && let Err(e) = raw.store_mut().compact(compact_to)
        {
            panic!("seed {seed}: node {id}: compact to {compact_to} failed: {e}");
        }
    }

    /// Records a snapshot of the node's state machine in its storage, as a real store
    /// generates one when asked. Returns the storage's first index, or None if nothing
    /// newer than the last snapshot was applied.
    fn snapshot_state_machine(&mut self, id: u64) -> Option<u64> {
        let seed = self.opts.seed;
        let n = self.nodes.get_mut(&id)?;
        let (applied, cs, data) =
            (n.sm.applied_index, n.sm.conf_state.clone(), n.sm.snapshot_data());
        let store = n.raw.as_mut()?.store_mut();
        let snap_index = store.snapshot(0, 0).ok().and_then(|s| s.metadata).map_or(0, |m| m.index);
        if applied <= snap_index {
            return None;
        }
        let first = store.first_index().unwrap_or(1);
        if let Err(e) = store.create_snapshot(applied, cs, data) {
            panic!("seed {seed}: node {id}: snapshot at {applied} failed: {e}");
        }
        Some(first)
    }

    fn transfer_leader(&mut self) {
        let Some(leader) = self.leader() else { return };
        let others: Vec<u64> = self.nodes.keys().copied().filter(|&id| id != leader).collect();
        let Some(to) = self.pick(&others) else { return };
        if let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) {
            let _ = raw.transfer_leader(to);
        }
    }

    /// Removes a follower (keeping at least three voters), or adds a removed one back.
    fn change_membership(&mut self) {
        if self.opts.nodes < 3 {
            return;
        }
        let Some(leader) = self.leader() else { return };
        let removed: Vec<u64> = self.nodes.values().filter(|n| n.removed).map(|n| n.id).collect();
        let conf = self.nodes[&leader].sm.conf_state.clone();
        let change = |change_type: ConfChangeType, node_id: u64| ConfChange {
            change_type: change_type as i32,
            node_id,
            ..Default::default()
        };
        let cc = if let Some(&learner) = conf.learners.first() {
            // A learner that caught up (or not) is promoted to voter.
            change(ConfChangeType::AddNode, learner)
        } else if let Some(&id) = removed.first() {
            // A removed node comes back, sometimes first as a learner.
            let as_learner = self.rng.random_bool(0.5);
            change(
                if as_learner { ConfChangeType::AddLearnerNode } else { ConfChangeType::AddNode },
                id,
            )
        } else {
            if conf.voters.len() < 3 {
                return;
            }
            let candidates: Vec<u64> = conf.voters.into_iter().filter(|&v| v != leader).collect();
            let Some(id) = self.pick(&candidates) else { return };
            change(ConfChangeType::RemoveNode, id)
        };
        if let Some(raw) = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut()) {
            let _ = raw.propose_conf_change(&cc);
        }
    }

    /// Completes up to `n` of the node's background writes, oldest first: durable, then
    /// the messages that waited leave.
    fn complete_writes(&mut self, id: u64, n: usize) {
        let seed = self.opts.seed;
        let Some(node) = self.nodes.get_mut(&id) else { return };
        for _ in 0..n {
            let Some(msgs) = node.complete_oldest_write(seed) else { return };
            for m in msgs {
                self.net.push(m, &mut self.rng);
            }
        }
    }

    /// The application's Ready loop for one node: send, persist, send, apply, advance; or,
    /// with `async_persist`, send, hand the write to the background, apply, advance. A
    /// snapshot is always installed in the foreground, after the writes before it.
    fn handle_ready(&mut self, id: u64) {
        let seed = self.opts.seed;
        let background_writes = self.opts.async_persist;
        let snapshot_next =
            self.nodes.get(&id).and_then(|n| n.raw.as_ref()).is_some_and(|r| {
                r.has_ready() && r.raft().raft_log().snapshot_to_persist().is_some()
            });
        if snapshot_next {
            self.complete_writes(id, usize::MAX);
        }
        let Some(node) = self.nodes.get_mut(&id) else { return };
        let Some(raw) = node.raw.as_mut() else { return };
        if !raw.has_ready() {
            return;
        }
        let mut rd = raw.ready();
        for m in rd.take_messages() {
            self.net.push(m, &mut self.rng);
        }
        if node.crash_in_next_ready == Some(CrashPoint::BeforePersist) {
            node.crash();
            return;
        }
        let background = background_writes && rd.snapshot().is_none();
        if background {
            node.pending.push_back(PendingWrite {
                number: rd.number(),
                entries: rd.take_entries(),
                hs: rd.hs().copied(),
                persisted_messages: rd.take_persisted_messages(),
            });
            if node.crash_in_next_ready == Some(CrashPoint::AfterPersist) {
                while node.complete_oldest_write(seed).is_some() {}
                node.crash();
                return;
            }
        } else {
            if let Some(snap) = rd.snapshot().cloned() {
                if let Err(e) = raw.store_mut().apply_snapshot(snap.clone()) {
                    panic!(
                        "seed {seed}: node {id}: applying a snapshot from the leader failed: {e}"
                    );
                }
                node.sm.restore(&snap);
                self.outcome.snapshots_applied += 1;
            }
            if let Err(e) = raw.store_mut().append(rd.entries()) {
                panic!("seed {seed}: node {id}: persisting entries failed: {e}");
            }
            if let Some(hs) = rd.hs() {
                raw.store_mut().set_hard_state(*hs);
            }
            if node.crash_in_next_ready == Some(CrashPoint::AfterPersist) {
                node.crash();
                return;
            }
            for m in rd.take_persisted_messages() {
                self.net.push(m, &mut self.rng);
            }
        }
        let mut membership_events = Vec::new();
        for e in rd.take_committed_entries() {
            if let Err(v) = node.sm.apply(&e) {
                self.fail_with(format!("node {id}: {v}"));
            }
            if e.entry_type() == EntryType::EntryConfChange {
                membership_events.push(Self::apply_conf_change(node, &e, seed));
            } else if !e.data.is_empty() {
                self.outcome.proposals_committed += usize::from(
                    node.raw.as_ref().is_some_and(|r| r.raft().state() == StateRole::Leader),
                );
            }
        }
        let read_states = rd.take_read_states();
        if let Some(raw) = node.raw.as_mut() {
            if background {
                raw.advance_async(rd);
            } else {
                raw.advance(rd);
            }
        }
        for rs in read_states {
            let r = self.reads.answered(id, &rs.request_ctx, rs.index);
            self.check(r);
        }
        for (index, cc) in membership_events {
            self.react_to_membership(index, &cc);
        }
    }

    /// Every node's state, for a failure report.
    fn describe(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.values() {
            let line = match &n.raw {
                Some(raw) => {
                    let st = raw.status();
                    let log = raw.raft().raft_log();
                    format!(
                        "node {}: {} term {} vote {} commit {} applied {} first {} last {} \
                         persisted {} conf {:?} progress {:?}",
                        n.id,
                        st.role_name(),
                        st.hs.term,
                        st.hs.vote,
                        st.hs.commit,
                        st.applied,
                        log.first_index(),
                        log.last_index(),
                        log.persisted(),
                        n.sm.conf_state,
                        st.progress
                    )
                }
                None => format!("node {}: down (removed: {})", n.id, n.removed),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn fail_with(&self, v: Violation) -> ! {
        self.fail(v)
    }

    fn apply_conf_change(node: &mut SimNode, e: &Entry, seed: u64) -> (u64, ConfChange) {
        let cc = ConfChange::decode(e.data.as_ref())
            .unwrap_or_else(|err| panic!("seed {seed}: undecodable conf change: {err}"));
        if let Some(raw) = node.raw.as_mut() {
            let cs = raw.apply_conf_change(&cc);
            raw.store_mut().set_conf_state(cs.clone());
            node.sm.conf_state = cs;
        }
        (e.index, cc)
    }

    /// The first node to apply a membership change makes it happen in the world: a removed
    /// node is stopped (it would only disrupt), a re-added one is started again.
    fn react_to_membership(&mut self, index: u64, cc: &ConfChange) {
        if index <= self.conf_acted_index {
            return;
        }
        self.conf_acted_index = index;
        self.outcome.conf_changes += 1;
        let opts = self.opts.clone();
        let Some(n) = self.nodes.get_mut(&cc.node_id) else { return };
        match cc.change_type() {
            ConfChangeType::RemoveNode => {
                n.removed = true;
                n.crash();
            }
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                n.removed = false;
                n.start(&opts);
            }
        }
    }

    fn check_invariants(&mut self, full: bool) {
        let mut results = Vec::new();
        for n in self.nodes.values() {
            results.push(self.monotonic.observe_durable(n.id, n.store().hard_state()));
            let Some(raw) = n.raw.as_ref() else { continue };
            let r = raw.raft();
            if r.state() == StateRole::Leader {
                results.push(self.election.observe_leader(n.id, r.term()));
                if self.last_leader != n.id {
                    self.last_leader = n.id;
                    self.outcome.leader_changes += 1;
                }
            }
            let committed = r.raft_log().committed();
            results.push(self.monotonic.observe_live(n.id, n.restarts, r.term(), committed));
            results.push(self.committed.observe(n.id, r.raft_log()));
            if full {
                results.push(self.committed.observe_all(n.id, r.raft_log()));
            }
        }
        if full {
            let up: Vec<&SimNode> = self.nodes.values().filter(|n| n.is_up()).collect();
            for (i, a) in up.iter().enumerate() {
                for b in &up[i + 1..] {
                    let (ra, rb) = (a.raw.as_ref(), b.raw.as_ref());
                    if let (Some(ra), Some(rb)) = (ra, rb) {
                        results.push(check_log_matching(
                            a.id,
                            ra.raft().raft_log(),
                            b.id,
                            rb.raft().raft_log(),
                        ));
                    }
                }
            }
        }
        for r in results {
            self.check(r);
        }
    }

    /// Heals everything, restarts every member, and requires a fresh proposal to commit
    /// within a bounded number of ticks.
    fn heal_and_check_liveness(&mut self) {
        const MAX_TICKS: usize = 400;
        self.net.heal();
        let opts = self.opts.clone();
        for n in self.nodes.values_mut() {
            n.crash_in_next_ready = None;
            if !n.removed {
                n.start(&opts);
            }
        }
        let mut final_id = None;
        for tick in 0..MAX_TICKS {
            self.tick_all();
            if tick % 10 == 0 {
                // A stored snapshot may predate a membership change that re-added the
                // follower it is for; a real store would generate a fresh one.
                for id in self.up_ids() {
                    self.snapshot_state_machine(id);
                }
            }
            // Deliver until quiet: a reliable network in the healed phase.
            for _ in 0..50 {
                let ids: Vec<u64> = self.nodes.keys().copied().collect();
                for id in ids {
                    self.handle_ready(id);
                    self.complete_writes(id, usize::MAX);
                }
                let msgs = self.net.take_all();
                if msgs.is_empty() {
                    break;
                }
                for m in msgs {
                    if self.nodes.get(&m.to).is_some_and(|n| n.is_up()) {
                        self.deliver(m);
                    }
                }
            }
            self.check_invariants(tick % 20 == 0);
            if let Some(leader) = self.leader() {
                let done = final_id.is_some_and(|id| self.nodes[&leader].sm.contains(id));
                if done {
                    self.outcome.liveness_ticks = tick;
                    self.check_invariants(true);
                    return;
                }
                // (Re)propose every few ticks: a leader change may drop a proposal.
                if final_id.is_none() || tick % 20 == 0 {
                    self.next_id += 1;
                    let id = self.next_id;
                    let raw = self.nodes.get_mut(&leader).and_then(|n| n.raw.as_mut());
                    if raw.is_some_and(|r| r.propose(encode_id(id)).is_ok()) {
                        final_id = Some(id);
                    }
                }
            }
        }
        self.fail(format!(
            "liveness: no proposal committed within {MAX_TICKS} ticks after healing \
             (leader: {:?}, messages in flight: {})\n{}",
            self.leader(),
            self.net.len(),
            self.describe()
        ));
    }
}
