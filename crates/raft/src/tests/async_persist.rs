//! Persisting in the background (`advance_async` + `on_persist_ready`): the node goes on
//! while a Ready's write is in flight, hands out each entry once, and counts nothing as
//! durable here before the application says so.

use bytes::Bytes;
use raftkv_proto::eraftpb::{Entry, Message, MessageType};

use super::harness::{entry, new_test_config};
use crate::{MemStorage, RawNode, Ready, StateRole, Storage};

fn new_node(id: u64, peers: Vec<u64>) -> RawNode<MemStorage> {
    RawNode::new(&new_test_config(id, 10, 1), MemStorage::new_with_conf_state(peers, vec![]))
        .expect("raw node")
}

/// What a background writer holds for one Ready until its write completes.
struct Write {
    number: u64,
    entries: Vec<Entry>,
    hs: Option<raftkv_proto::eraftpb::HardState>,
    persisted_messages: Vec<Message>,
}

/// Takes the Ready's write into the background and advances at once.
fn start_write(node: &mut RawNode<MemStorage>, mut rd: Ready) -> Write {
    let write = Write {
        number: rd.number(),
        entries: rd.take_entries(),
        hs: rd.hs().copied(),
        persisted_messages: rd.take_persisted_messages(),
    };
    node.advance_async(rd);
    write
}

/// The write is durable: it reaches the storage, then the node hears of it.
fn complete(node: &mut RawNode<MemStorage>, w: Write) -> Vec<Message> {
    let store = node.store_mut();
    store.append(&w.entries).expect("append");
    if let Some(hs) = w.hs {
        store.set_hard_state(hs);
    }
    node.on_persist_ready(w.number);
    w.persisted_messages
}

fn data(ents: &[Entry]) -> Vec<&[u8]> {
    ents.iter().filter(|e| !e.data.is_empty()).map(|e| e.data.as_ref()).collect()
}

/// A single-voter leader with its no-op committed and applied.
fn single_leader() -> RawNode<MemStorage> {
    let mut node = new_node(1, vec![1]);
    node.campaign().expect("campaign");
    while node.has_ready() {
        let rd = node.ready();
        let w = start_write(&mut node, rd);
        complete(&mut node, w);
    }
    assert_eq!(node.raft().state(), StateRole::Leader);
    node
}

#[test]
fn entries_in_flight_are_handed_out_once_and_commit_only_once_durable() {
    let mut node = single_leader();
    node.propose(Bytes::from_static(b"a")).expect("propose");
    let rd = node.ready();
    assert_eq!(data(rd.entries()), vec![b"a".as_ref()]);
    let first = start_write(&mut node, rd);

    // While "a" is being written, the node takes a new proposal.
    node.propose(Bytes::from_static(b"b")).expect("propose while a write is in flight");
    let rd = node.ready();
    assert_eq!(data(rd.entries()), vec![b"b".as_ref()], "\"a\" is not handed out again");
    assert!(rd.committed_entries().is_empty(), "nothing is durable on the only voter yet");
    let second = start_write(&mut node, rd);
    assert_eq!(node.writes_in_flight(), 2);
    assert!(!node.has_ready(), "nothing to do until a write completes");

    complete(&mut node, first);
    let mut rd = node.ready();
    assert_eq!(data(&rd.take_committed_entries()), vec![b"a".as_ref()], "a alone is durable");
    let third = start_write(&mut node, rd);
    complete(&mut node, second);
    complete(&mut node, third);
    let mut rd = node.ready();
    assert_eq!(data(&rd.take_committed_entries()), vec![b"b".as_ref()]);
    let w = start_write(&mut node, rd);
    complete(&mut node, w);
    assert_eq!(node.writes_in_flight(), 0);
}

#[test]
fn a_leader_commits_on_its_followers_while_its_own_write_is_in_flight() {
    let mut nodes: Vec<RawNode<MemStorage>> =
        (1..=3).map(|id| new_node(id, vec![1, 2, 3])).collect();
    nodes[0].campaign().expect("campaign");
    // Elect 1 and commit its no-op, everything synchronous.
    for _ in 0..10 {
        let mut outbox = Vec::new();
        for node in nodes.iter_mut() {
            while node.has_ready() {
                let mut rd = node.ready();
                outbox.extend(rd.take_messages());
                let w = start_write(node, rd);
                outbox.extend(complete(node, w));
            }
        }
        for m in outbox {
            let _ = nodes[(m.to - 1) as usize].step(m);
        }
    }
    assert_eq!(nodes[0].raft().state(), StateRole::Leader);
    let committed = nodes[0].raft().raft_log().committed();

    nodes[0].propose(Bytes::from_static(b"x")).expect("propose");
    let mut rd = nodes[0].ready();
    let appends = rd.take_messages();
    assert_eq!(appends.len(), 2, "one append per follower leaves before the leader's write");
    let leader_write = start_write(&mut nodes[0], rd);
    for m in appends {
        let to = (m.to - 1) as usize;
        nodes[to].step(m).expect("append");
        let rd = nodes[to].ready();
        let w = start_write(&mut nodes[to], rd);
        for ack in complete(&mut nodes[to], w) {
            assert_eq!(ack.msg_type(), MessageType::MsgAppendResponse);
            nodes[0].step(ack).expect("ack");
        }
    }
    assert_eq!(
        nodes[0].raft().raft_log().committed(),
        committed + 1,
        "two durable followers are a quorum without the leader's own copy"
    );
    let rd = nodes[0].ready();
    assert!(
        rd.committed_entries().is_empty(),
        "but the leader applies only what is durable on itself"
    );
    let w = start_write(&mut nodes[0], rd);
    complete(&mut nodes[0], leader_write);
    complete(&mut nodes[0], w);
    let mut rd = nodes[0].ready();
    assert_eq!(data(&rd.take_committed_entries()), vec![b"x".as_ref()]);
}

#[test]
fn a_write_of_entries_replaced_meanwhile_marks_nothing_durable() {
    // Follower 2 takes entries 2..=3 of term 1 and starts writing them.
    let mut node = new_node(2, vec![1, 2, 3]);
    let mut app = Message {
        msg_type: MessageType::MsgAppend as i32,
        from: 1,
        to: 2,
        term: 1,
        log_term: 0,
        index: 0,
        entries: vec![entry(1, 1), entry(2, 1), entry(3, 1)],
        commit: 0,
        ..Default::default()
    };
    node.step(app.clone()).expect("append");
    let rd = node.ready();
    let old = start_write(&mut node, rd);

    // A leader of term 2 replaces 2..=3 with its own entry 2 before the write completes.
    app.term = 2;
    app.from = 3;
    app.log_term = 1;
    app.index = 1;
    app.entries = vec![entry(2, 2)];
    node.step(app).expect("conflicting append");
    let rd = node.ready();
    assert_eq!(rd.entries(), &[entry(2, 2)], "only the replacement is to be written");
    let new = start_write(&mut node, rd);

    complete(&mut node, old);
    assert_eq!(node.raft().raft_log().persisted(), 0, "entry 3 of term 1 is gone: nothing counts");
    complete(&mut node, new);
    assert_eq!(node.raft().raft_log().persisted(), 2);
    assert_eq!(node.store().last_index().expect("last"), 2, "the storage dropped the old tail");
}

#[test]
fn a_restart_with_an_apply_durable_before_its_commit_raises_the_commit() {
    let mut node = single_leader();
    node.propose(Bytes::from_static(b"a")).expect("propose");
    while node.has_ready() {
        let rd = node.ready();
        let w = start_write(&mut node, rd);
        complete(&mut node, w);
    }
    let applied = node.raft().raft_log().applied();
    let mut store = node.into_store();
    // The crash lost the hard state write that carried the commit; the apply survived.
    let mut hs = *store.hard_state();
    hs.commit = 1;
    store.set_hard_state(hs);

    let mut cfg = new_test_config(1, 10, 1);
    cfg.applied = applied;
    let node = RawNode::new(&cfg, store).expect("restart");
    assert_eq!(node.raft().raft_log().committed(), applied);
    assert_eq!(node.raft().raft_log().applied(), applied);
}

#[test]
fn a_restart_that_applied_past_its_log_is_refused() {
    let node = single_leader();
    let store = node.into_store();
    let mut cfg = new_test_config(1, 10, 1);
    cfg.applied = store.last_index().expect("last") + 1;
    assert!(RawNode::new(&cfg, store).is_err());
}
