//! The application's view, after etcd's rawnode_test.go: `RawNode`, `Ready` and `advance`
//! used only through the public API, with `MemStorage` standing for the disk.

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use raftkv_proto::eraftpb::{
    ConfChange, ConfChangeType, Entry, EntryType, HardState, Message, MessageType,
};

use super::harness::{entry, entry_with_data, hard_state, new_test_config, snapshot};
use crate::{
    Error, MemStorage, ProgressState, RawNode, ReadState, Ready, SoftState, StateRole, Storage,
};

fn new_node(id: u64, peers: Vec<u64>) -> RawNode<MemStorage> {
    RawNode::new(&new_test_config(id, 10, 1), MemStorage::new_with_conf_state(peers, vec![]))
        .expect("raw node")
}

/// Persists what `rd` asks to (snapshot, entries, hard state) and advances.
fn persist_and_advance(node: &mut RawNode<MemStorage>, rd: Ready) {
    let store = node.store_mut();
    if let Some(snap) = rd.snapshot() {
        store.apply_snapshot(snap.clone()).expect("apply snapshot");
    }
    store.append(rd.entries()).expect("append");
    if let Some(hs) = rd.hs() {
        store.set_hard_state(*hs);
    }
    node.advance(rd);
}

/// Handles every Ready `node` has; returns the committed entries it applied.
fn drain_readies(node: &mut RawNode<MemStorage>) -> Vec<Entry> {
    let mut applied = Vec::new();
    while node.has_ready() {
        let mut rd = node.ready();
        applied.extend(rd.take_committed_entries());
        persist_and_advance(node, rd);
    }
    applied
}

fn data_of(ents: &[Entry]) -> Vec<&[u8]> {
    ents.iter().filter(|e| !e.data.is_empty()).map(|e| e.data.as_ref()).collect()
}

/// RawNodes talking over a perfect network, each handling its Readies in the documented
/// order: send `messages`, persist, send `persisted_messages`, apply, advance.
struct Cluster {
    nodes: BTreeMap<u64, RawNode<MemStorage>>,
    applied: BTreeMap<u64, Vec<Entry>>,
    read_states: BTreeMap<u64, Vec<ReadState>>,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        let ids: Vec<u64> = (1..=size).collect();
        let nodes = ids.iter().map(|&id| (id, new_node(id, ids.clone()))).collect();
        Cluster { nodes, applied: BTreeMap::new(), read_states: BTreeMap::new() }
    }

    fn node(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).expect("node")
    }

    /// Handles Readies and delivers messages until nothing is left to do.
    fn stabilize(&mut self) {
        loop {
            let mut outbox = Vec::new();
            for (id, node) in self.nodes.iter_mut() {
                while node.has_ready() {
                    let mut rd = node.ready();
                    outbox.extend(rd.take_messages());
                    let persisted = rd.take_persisted_messages();
                    self.read_states.entry(*id).or_default().extend(rd.take_read_states());
                    let committed = rd.take_committed_entries();
                    persist_and_advance(node, rd);
                    outbox.extend(persisted);
                    self.applied.entry(*id).or_default().extend(committed);
                }
            }
            if outbox.is_empty() {
                return;
            }
            for m in outbox {
                if let Some(node) = self.nodes.get_mut(&m.to) {
                    let _ = node.step(m);
                }
            }
        }
    }
}

#[test]
fn raw_node_start_campaign_propose_and_apply() {
    let mut node = new_node(1, vec![1]);
    assert!(!node.has_ready(), "a fresh node has nothing to do");

    node.campaign().expect("campaign");
    let rd = node.ready();
    assert_eq!(rd.ss(), Some(&SoftState { leader_id: 1, raft_state: StateRole::Leader }));
    assert_eq!(rd.hs(), Some(&hard_state(1, 0, 1)));
    assert_eq!(rd.entries(), &[entry(1, 1)]);
    assert!(rd.committed_entries().is_empty(), "nothing is committed before it is durable");
    assert!(rd.messages().is_empty() && rd.persisted_messages().is_empty());
    assert!(rd.must_sync());
    persist_and_advance(&mut node, rd);

    // Durable on the only voter: the no-op commits.
    let rd = node.ready();
    assert_eq!(rd.hs(), Some(&hard_state(1, 1, 1)));
    assert_eq!(rd.committed_entries(), &[entry(1, 1)]);
    assert!(rd.entries().is_empty());
    assert!(!rd.must_sync(), "a commit index alone need not be synced");
    persist_and_advance(&mut node, rd);

    node.propose(Bytes::from_static(b"foo")).expect("propose");
    let rd = node.ready();
    assert_eq!(rd.entries(), &[entry_with_data(2, 1, b"foo")]);
    persist_and_advance(&mut node, rd);
    let rd = node.ready();
    assert_eq!(rd.hs(), Some(&hard_state(1, 2, 1)));
    assert_eq!(rd.committed_entries(), &[entry_with_data(2, 1, b"foo")]);
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());
    assert_eq!(node.status().applied, 2);
}

#[test]
fn raw_node_readies_are_numbered_in_order() {
    let mut node = new_node(1, vec![1]);
    node.campaign().expect("campaign");
    let mut numbers = Vec::new();
    while node.has_ready() {
        let rd = node.ready();
        numbers.push(rd.number());
        persist_and_advance(&mut node, rd);
    }
    assert_eq!(numbers, vec![1, 2]);
}

#[test]
fn raw_node_restart_restores_state_and_applies_committed_entries() {
    let entries = [entry(1, 1), entry_with_data(2, 1, b"foo")];
    let mut store = MemStorage::new_with_conf_state(vec![1], vec![]);
    store.append(&entries).expect("append");
    store.set_hard_state(hard_state(1, 1, 1));
    let mut node = RawNode::new(&new_test_config(1, 10, 1), store).expect("restart");

    let status = node.status();
    assert_eq!(status.hs, hard_state(1, 1, 1));
    assert_eq!(status.ss.raft_state, StateRole::Follower);
    assert_eq!(node.raft().raft_log().last_index(), 2);

    let rd = node.ready();
    assert_eq!(rd.hs(), None, "the hard state is already durable");
    assert_eq!(rd.ss(), None, "a follower with no leader, as before");
    assert!(rd.entries().is_empty());
    assert_eq!(rd.committed_entries(), &entries[..1], "committed but not applied");
    assert!(!rd.must_sync());
    assert!(rd.messages().is_empty() && rd.persisted_messages().is_empty());
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());
}

#[test]
fn raw_node_restart_with_applied_hands_out_only_unapplied_entries() {
    let entries = [entry(1, 1), entry_with_data(2, 1, b"a"), entry_with_data(3, 1, b"b")];
    let mut store = MemStorage::new_with_conf_state(vec![1], vec![]);
    store.append(&entries).expect("append");
    store.set_hard_state(hard_state(1, 3, 1));
    let config = crate::Config { applied: 1, ..new_test_config(1, 10, 1) };
    let mut node = RawNode::new(&config, store).expect("restart");
    let rd = node.ready();
    assert_eq!(rd.committed_entries(), &entries[1..]);
    persist_and_advance(&mut node, rd);
    assert_eq!(node.status().applied, 3);
}

#[test]
fn raw_node_restart_from_snapshot() {
    let entries = [entry_with_data(3, 1, b"foo")];
    let mut store = MemStorage::new();
    store.apply_snapshot(snapshot(2, 1, vec![1, 2])).expect("apply snapshot");
    store.append(&entries).expect("append");
    store.set_hard_state(hard_state(1, 3, 0));
    let mut node = RawNode::new(&new_test_config(1, 10, 1), store).expect("restart");

    assert_eq!(node.status().applied, 2, "the snapshot is applied");
    let voters: Vec<u64> = node.raft().prs().voters().iter().copied().collect();
    assert_eq!(voters, vec![1, 2]);
    let rd = node.ready();
    assert_eq!(rd.hs(), None);
    assert!(rd.snapshot().is_none() && rd.entries().is_empty());
    assert_eq!(rd.committed_entries(), &entries);
    persist_and_advance(&mut node, rd);
    assert!(!node.has_ready());
}

#[test]
fn raw_node_crash_and_restart_resumes_from_storage() {
    let mut c = Cluster::new(3);
    c.node(1).campaign().expect("campaign");
    c.stabilize();
    c.node(1).propose(Bytes::from_static(b"x")).expect("propose");
    c.stabilize();
    let before = c.node(2).status();
    let last = c.node(2).raft().raft_log().last_index();
    assert_eq!((before.hs.term, before.hs.commit), (1, 2));

    let store = c.nodes.remove(&2).expect("node 2").into_store();
    let mut node = RawNode::new(&new_test_config(2, 10, 1), store).expect("restart");
    let after = node.status();
    assert_eq!(after.hs, before.hs, "term, vote and commit survive");
    assert_eq!(node.raft().raft_log().last_index(), last);
    assert_eq!(after.applied, 0, "nothing was applied since the restart");
    let applied = drain_readies(&mut node);
    assert_eq!(data_of(&applied), vec![b"x".as_slice()], "committed entries are applied again");
}

#[test]
fn raw_node_propose_and_conf_change() {
    let mut node = new_node(1, vec![1]);
    node.campaign().expect("campaign");
    drain_readies(&mut node);

    node.propose(Bytes::from_static(b"somedata")).expect("propose");
    let cc = ConfChange {
        change_type: ConfChangeType::AddNode as i32,
        node_id: 2,
        ..Default::default()
    };
    node.propose_conf_change(&cc).expect("propose conf change");
    // One membership change at a time: the next waits until this one is applied.
    let err = node.propose_conf_change(&cc).expect_err("second change must wait");
    assert!(matches!(err, Error::ProposalDropped), "got {err:?}");

    let applied = drain_readies(&mut node);
    let (last, before) = applied.split_last().expect("entries");
    assert_eq!(data_of(before), vec![b"somedata".as_slice()]);
    assert_eq!(last.entry_type(), EntryType::EntryConfChange);
    let decoded = ConfChange::decode(last.data.as_ref()).expect("decode conf change");
    assert_eq!(decoded, cc);

    let cs = node.apply_conf_change(&decoded);
    assert_eq!(cs.voters, vec![1, 2]);
    let progress = node.status().progress.expect("leader progress");
    assert!(progress.contains_key(&2));
    // Applied: another change may now be proposed.
    node.propose_conf_change(&ConfChange {
        change_type: ConfChangeType::AddLearnerNode as i32,
        node_id: 3,
        ..Default::default()
    })
    .expect("next change");
}

#[test]
fn raw_node_leader_appends_leave_before_persist_acks_and_votes_after() {
    let mut n1 = new_node(1, vec![1, 2]);
    let mut n2 = new_node(2, vec![1, 2]);

    // The candidate voted for itself: its requests wait for that vote to be durable.
    n1.campaign().expect("campaign");
    let mut rd = n1.ready();
    assert!(rd.messages().is_empty());
    let votes = rd.take_persisted_messages();
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].msg_type(), MessageType::MsgRequestVote);
    persist_and_advance(&mut n1, rd);

    // The voter's grant waits for its vote to be durable.
    n2.step(votes[0].clone()).expect("vote request");
    let mut rd = n2.ready();
    assert!(rd.messages().is_empty());
    assert_eq!(rd.hs().map(|hs| hs.vote), Some(1));
    assert!(rd.must_sync(), "a vote must be durable before it is announced");
    let grants = rd.take_persisted_messages();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].msg_type(), MessageType::MsgRequestVoteResponse);
    persist_and_advance(&mut n2, rd);

    // The new leader's append may leave while it persists the same entries.
    n1.step(grants[0].clone()).expect("vote response");
    let mut rd = n1.ready();
    assert_eq!(rd.entries(), &[entry(1, 1)]);
    assert!(rd.persisted_messages().is_empty());
    let appends = rd.take_messages();
    assert_eq!(appends.len(), 1);
    assert_eq!(appends[0].msg_type(), MessageType::MsgAppend);
    persist_and_advance(&mut n1, rd);

    // The follower acknowledges only once the entries are durable.
    n2.step(appends[0].clone()).expect("append");
    let mut rd = n2.ready();
    assert_eq!(rd.entries(), &[entry(1, 1)]);
    assert!(rd.messages().is_empty());
    let acks = rd.take_persisted_messages();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].msg_type(), MessageType::MsgAppendResponse);
    persist_and_advance(&mut n2, rd);

    n1.step(acks[0].clone()).expect("ack");
    assert_eq!(n1.status().hs.commit, 1);
    // Heartbeats, too, leave at once.
    n1.tick();
    let rd = n1.ready();
    let types: Vec<MessageType> = rd.messages().iter().map(Message::msg_type).collect();
    assert!(types.contains(&MessageType::MsgHeartbeat), "{types:?}");
    assert!(rd.persisted_messages().is_empty());
}

#[test]
fn raw_node_read_index_on_a_single_node_answers_at_once() {
    let mut node = new_node(1, vec![1]);
    node.campaign().expect("campaign");
    drain_readies(&mut node);
    node.read_index(Bytes::from_static(b"ctx")).expect("read index");
    assert!(node.has_ready());
    let rd = node.ready();
    assert_eq!(
        rd.read_states(),
        &[ReadState { index: 1, request_ctx: Bytes::from_static(b"ctx") }]
    );
    persist_and_advance(&mut node, rd);
}

#[test]
fn raw_node_read_index_after_restart_waits_for_the_new_terms_commit() {
    // A single node applied and acknowledged entries 2 and 3, then crashed before its
    // commit index (a commit-only change is written lazily) reached the disk.
    let entries = [entry(1, 1), entry_with_data(2, 1, b"a"), entry_with_data(3, 1, b"b")];
    let mut store = MemStorage::new_with_conf_state(vec![1], vec![]);
    store.append(&entries).expect("append");
    store.set_hard_state(hard_state(1, 1, 1));
    let mut node = RawNode::new(&new_test_config(1, 10, 1), store).expect("restart");
    node.campaign().expect("campaign");
    node.read_index(Bytes::from_static(b"ctx")).expect("read index");
    let rd = node.ready();
    assert!(rd.read_states().is_empty(), "index 1 would miss acknowledged writes 2 and 3");
    persist_and_advance(&mut node, rd);

    // Its no-op is durable: everything before it is committed, and the read is answered.
    let rd = node.ready();
    assert_eq!(
        rd.read_states(),
        &[ReadState { index: 4, request_ctx: Bytes::from_static(b"ctx") }]
    );
    persist_and_advance(&mut node, rd);
}

#[test]
fn raw_node_read_index_from_a_follower_goes_through_the_leader() {
    let mut c = Cluster::new(3);
    c.node(1).campaign().expect("campaign");
    c.stabilize();
    c.node(2).read_index(Bytes::from_static(b"r1")).expect("read index");
    c.stabilize();
    let commit = c.node(1).status().hs.commit;
    assert_eq!(
        c.read_states.get(&2).cloned().unwrap_or_default(),
        vec![ReadState { index: commit, request_ctx: Bytes::from_static(b"r1") }]
    );
}

#[test]
fn raw_node_read_index_without_a_leader_is_refused() {
    let mut node = new_node(1, vec![1, 2, 3]);
    let err = node.read_index(Bytes::from_static(b"ctx")).expect_err("no leader");
    assert!(matches!(err, Error::ProposalDropped), "got {err:?}");
    assert!(!node.has_ready());
}

#[test]
fn raw_node_propose_on_a_follower_is_refused() {
    let mut c = Cluster::new(3);
    c.node(1).campaign().expect("campaign");
    c.stabilize();
    let before = c.node(2).status();
    let err = c.node(2).propose(Bytes::from_static(b"x")).expect_err("follower refuses");
    assert!(matches!(err, Error::ProposalDropped), "got {err:?}");
    assert!(!c.node(2).has_ready());
    assert_eq!(c.node(2).status(), before);
}

#[test]
fn raw_node_status_reports_role_and_progress() {
    let mut c = Cluster::new(3);
    c.node(1).campaign().expect("campaign");
    c.stabilize();
    c.node(1).propose(Bytes::from_static(b"x")).expect("propose");
    c.stabilize();

    let s = c.node(1).status();
    assert_eq!(s.id, 1);
    assert_eq!(s.hs, HardState { term: 1, vote: 1, commit: 2 });
    assert_eq!(s.ss, SoftState { leader_id: 1, raft_state: StateRole::Leader });
    assert_eq!(s.applied, 2);
    assert_eq!(s.role_name(), "leader");
    let progress = s.progress.expect("a leader reports progress");
    assert_eq!(progress.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    for (id, p) in &progress {
        assert_eq!((p.matched, p.next_idx, p.state), (2, 3, ProgressState::Replicate), "peer {id}");
    }

    let s = c.node(2).status();
    assert_eq!((s.id, s.hs.term, s.hs.vote, s.hs.commit), (2, 1, 1, 2));
    assert_eq!(s.ss, SoftState { leader_id: 1, raft_state: StateRole::Follower });
    assert_eq!(s.role_name(), "follower");
    assert!(s.progress.is_none(), "only a leader reports progress");
}

#[test]
fn raw_node_step_refuses_local_messages_and_unknown_responders() {
    let mut node = new_node(1, vec![1, 2, 3]);
    for t in [MessageType::MsgHup, MessageType::MsgBeat] {
        let m = Message { msg_type: t as i32, from: 1, to: 1, ..Default::default() };
        let err = node.step(m).expect_err("local message");
        assert!(matches!(err, Error::StepLocalMsg), "{t:?}: got {err:?}");
    }
    let m = Message {
        msg_type: MessageType::MsgAppendResponse as i32,
        from: 9,
        to: 1,
        term: 1,
        ..Default::default()
    };
    let err = node.step(m).expect_err("unknown peer");
    assert!(matches!(err, Error::StepPeerNotFound), "got {err:?}");
    assert_eq!(node.status().hs, HardState::default(), "nothing changed");
    assert!(!node.has_ready());
}

#[test]
fn raw_node_follower_ready_carries_the_leaders_snapshot() {
    let mut node = new_node(2, vec![1, 2]);
    let m = Message {
        msg_type: MessageType::MsgSnapshot as i32,
        from: 1,
        to: 2,
        term: 3,
        snapshot: Some(Box::new(snapshot(11, 2, vec![1, 2, 3]))),
        ..Default::default()
    };
    node.step(m).expect("snapshot");
    let rd = node.ready();
    let snap = rd.snapshot().expect("the snapshot to persist and apply");
    assert_eq!(snap.metadata.as_ref().map(|m| (m.index, m.term)), Some((11, 2)));
    assert_eq!(rd.hs(), Some(&hard_state(3, 11, 0)));
    assert!(rd.must_sync());
    assert!(rd.committed_entries().is_empty(), "the snapshot replaces them");
    let acks: Vec<(MessageType, u64)> =
        rd.persisted_messages().iter().map(|m| (m.msg_type(), m.index)).collect();
    assert_eq!(acks, vec![(MessageType::MsgAppendResponse, 11)]);
    persist_and_advance(&mut node, rd);

    assert_eq!(node.status().applied, 11);
    assert!(!node.has_ready());
    let state = node.store().initial_state().expect("initial state");
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(node.store().first_index().expect("first index"), 12);
}
