//! ReadIndex (thesis §6.4): a linearizable read point without a log entry. The leader
//! records its commit index, proves it still leads with a heartbeat round a quorum acks,
//! then answers with a `ReadState` carrying the request's context.

use bytes::Bytes;
use raftkv_proto::eraftpb::{Entry, Message, MessageType};

use super::harness::*;
use crate::{Config, Error, MemStorage, RawNode, ReadState, StateRole};

fn read_index(to: u64, ctx: &'static [u8]) -> Message {
    Message { context: Bytes::from_static(ctx), ..msg(to, to, MessageType::MsgReadIndex) }
}

fn read_state(index: u64, ctx: &'static [u8]) -> ReadState {
    ReadState { index, request_ctx: Bytes::from_static(ctx) }
}

/// Delivers `m` to its target and returns what the target answers, without going further.
fn deliver(nt: &mut Network, m: Message) -> Vec<Message> {
    let p = nt.peer_mut(m.to);
    p.step(m).expect("step");
    read_messages(p)
}

/// Handles one Ready as an application would; returns its read states and committed entries.
fn handle_ready(node: &mut RawNode<MemStorage>) -> (Vec<ReadState>, Vec<Entry>) {
    let mut rd = node.ready();
    if let Some(hs) = rd.hs() {
        node.store_mut().set_hard_state(*hs);
    }
    node.store_mut().append(rd.entries()).expect("append");
    let reads = rd.take_read_states();
    let committed = rd.take_committed_entries();
    node.advance(rd);
    (reads, committed)
}

#[test]
fn single_node_answers_at_once_with_its_commit() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    r.step(hup(1)).expect("hup");
    persist(&mut r);
    assert_eq!(r.raft_log.committed, 1);

    r.step(read_index(1, b"ctx")).expect("read index");
    assert_eq!(r.read_states, vec![read_state(1, b"ctx")]);
    assert!(read_messages(&mut r).is_empty(), "no heartbeat round needed");
}

#[test]
fn leader_answers_only_after_quorum_acks_heartbeat() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"x")]);
    let committed = nt.peer(1).raft_log.committed;
    assert_eq!(committed, 2);

    let beats = deliver(&mut nt, read_index(1, b"ctx"));
    assert!(nt.peer(1).read_states.is_empty(), "leadership not confirmed yet");
    assert_eq!(beats.len(), 2, "{beats:?}");
    for m in &beats {
        assert_eq!(m.msg_type(), MessageType::MsgHeartbeat);
        assert_eq!(m.context.as_ref(), b"ctx", "the heartbeat carries the request");
    }

    // One follower's ack plus the leader's own make a quorum of three.
    let ack = deliver(&mut nt, beats[0].clone());
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].msg_type(), MessageType::MsgHeartbeatResponse);
    deliver(&mut nt, ack[0].clone());
    assert_eq!(nt.peer_mut(1).take_read_states(), vec![read_state(committed, b"ctx")]);

    // The second ack answers nothing twice.
    let ack = deliver(&mut nt, beats[1].clone());
    deliver(&mut nt, ack[0].clone());
    assert!(nt.peer(1).read_states.is_empty());
}

#[test]
fn leader_cut_off_from_quorum_never_answers() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.isolate(1);
    let beats = deliver(&mut nt, read_index(1, b"ctx"));
    nt.send_filtered(beats);
    nt.tick_peer(1, 20);
    assert!(nt.peer(1).read_states.is_empty());
}

#[test]
fn deposed_leader_cannot_confirm_reads() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.isolate(1);
    nt.send(vec![hup(2)]);
    nt.send(vec![propose(2, b"written under the new leader")]);
    assert_role(nt.peer(2), StateRole::Leader);
    nt.recover();

    // Node 1 still believes it leads term 1; the others moved on and ignore its heartbeats.
    assert_role(nt.peer(1), StateRole::Leader);
    let beats = deliver(&mut nt, read_index(1, b"stale"));
    assert_eq!(beats.len(), 2);
    for m in beats {
        let answers = deliver(&mut nt, m);
        assert!(answers.is_empty(), "{answers:?}");
    }
    assert!(nt.peer(1).read_states.is_empty(), "a stale read must not be served");
}

#[test]
fn later_quorum_ack_releases_all_earlier_reads_in_order() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    assert_eq!(nt.peer(1).raft_log.committed, 1);

    // Each request's own heartbeats are lost; a proposal commits between two of them.
    deliver(&mut nt, read_index(1, b"a"));
    nt.send(vec![propose(1, b"x")]);
    assert_eq!(nt.peer(1).raft_log.committed, 2);
    deliver(&mut nt, read_index(1, b"b"));
    deliver(&mut nt, read_index(1, b"c"));
    assert!(nt.peer(1).read_states.is_empty());

    // The next heartbeat carries the newest request; its acks confirm all of them.
    nt.tick_peer(1, 1);
    assert_eq!(
        nt.peer(1).read_states,
        vec![read_state(1, b"a"), read_state(2, b"b"), read_state(2, b"c")]
    );
}

#[test]
fn new_leader_holds_reads_until_its_noop_commits() {
    let mut nt = Network::new(vec![None, None, None]);
    // The followers' acknowledgements of the new leader's no-op are lost.
    nt.ignore(MessageType::MsgAppendResponse);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).raft_log.committed, 0);

    // Its commit index may lag the previous leader's: the read waits, no round starts.
    let out = deliver(&mut nt, read_index(1, b"ctx"));
    assert!(out.is_empty(), "{out:?}");
    assert!(nt.peer(1).read_states.is_empty());

    nt.recover();
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_eq!(nt.peer(1).raft_log.committed, 1);
    assert_eq!(nt.peer(1).read_states, vec![read_state(1, b"ctx")]);
}

#[test]
fn follower_forwards_read_index_to_leader() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"x")]);

    let fwd = deliver(&mut nt, read_index(2, b"ctx"));
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].msg_type(), MessageType::MsgReadIndex);
    assert_eq!(fwd[0].to, 1);

    nt.send(fwd);
    assert!(nt.peer(1).read_states.is_empty(), "the answer goes to the follower");
    assert_eq!(nt.peer(2).read_states, vec![read_state(2, b"ctx")]);
}

#[test]
fn reads_on_any_node_return_leaders_commit() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    let cases: [(u64, usize, &'static [u8]); 6] = [
        (1, 10, b"ctx1"),
        (2, 10, b"ctx2"),
        (3, 10, b"ctx3"),
        (1, 5, b"ctx4"),
        (2, 5, b"ctx5"),
        (3, 5, b"ctx6"),
    ];
    for (id, proposals, ctx) in cases {
        for _ in 0..proposals {
            nt.send(vec![propose(1, b"")]);
        }
        nt.send(vec![read_index(id, ctx)]);
        let committed = nt.peer(1).raft_log.committed;
        let reads = nt.peer_mut(id).take_read_states();
        assert_eq!(reads, vec![read_state(committed, ctx)], "read on node {id}");
    }
}

#[test]
fn follower_without_leader_refuses_read_index() {
    let mut r = new_test_raft(2, vec![1, 2, 3], 10, 1);
    let res = r.step(read_index(2, b"ctx"));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert!(read_messages(&mut r).is_empty());
}

#[test]
fn candidate_refuses_read_index() {
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::Candidate);
    let res = r.step(read_index(1, b"ctx"));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
}

#[test]
fn raw_node_read_index_answers_in_ready() {
    let store = MemStorage::new_with_conf_state(vec![1], vec![]);
    let mut node =
        RawNode::new(&Config { election_tick: 10, heartbeat_tick: 1, ..Config::new(1) }, store)
            .expect("raw node");
    node.campaign().expect("campaign");
    while node.has_ready() {
        handle_ready(&mut node);
    }
    assert_eq!(node.raft().raft_log.committed, 1);

    node.read_index("req-1").expect("read index");
    assert!(node.has_ready());
    let (reads, _) = handle_ready(&mut node);
    assert_eq!(reads, vec![read_state(1, b"req-1")]);
    assert!(!node.has_ready(), "a read state is handed out once");
}
