//! PreVote (thesis §9.6): before a real election a node asks whether it could win, so a
//! node that was cut off does not inflate the term and depose a healthy leader on return.

use raftkv_proto::eraftpb::{Message, MessageType};

use super::harness::*;
use crate::{INVALID_ID, MemStorage, Raft, StateRole};

fn pre_vote_raft(id: u64, peers: Vec<u64>) -> Raft<MemStorage> {
    let mut c = new_test_config(id, 10, 1);
    c.pre_vote = true;
    new_test_raft_with_config(&c, MemStorage::new_with_conf_state(peers, vec![]))
}

fn pre_vote_raft_with_storage(id: u64, store: MemStorage) -> Raft<MemStorage> {
    let mut c = new_test_config(id, 10, 1);
    c.pre_vote = true;
    new_test_raft_with_config(&c, store)
}

fn pre_vote_network(n: usize) -> Network {
    Network::new_with_config(
        (0..n).map(|_| None).collect(),
        NetworkConfig { pre_vote: true, check_quorum: false },
    )
}

fn of_type(msgs: &[Message], t: MessageType) -> Vec<Message> {
    msgs.iter().filter(|m| m.msg_type() == t).cloned().collect()
}

/// A vote request from `from` to `to` for `term`, for a candidate whose log ends at
/// (`index`, `log_term`).
fn vote_request(
    from: u64,
    to: u64,
    t: MessageType,
    term: u64,
    index: u64,
    log_term: u64,
) -> Message {
    Message { index, log_term, ..msg_with_term(from, to, t, term) }
}

#[test]
fn pre_candidate_asks_for_next_term_without_raising_its_own() {
    let mut r = pre_vote_raft(1, vec![1, 2, 3]);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::PreCandidate);
    assert_eq!(r.term, 0, "a pre-vote does not raise the term");
    assert_eq!(r.vote, INVALID_ID, "a pre-vote does not cast a vote");
    let msgs = read_messages(&mut r);
    let mut to: Vec<u64> = msgs.iter().map(|m| m.to).collect();
    to.sort_unstable();
    assert_eq!(to, vec![2, 3]);
    for m in &msgs {
        assert_eq!(m.msg_type(), MessageType::MsgRequestPreVote);
        assert_eq!(m.term, 1, "the pre-vote is for the next term");
    }
    assert_eq!(r.raft_log.store.hard_state().term, 0, "nothing new was persisted");
}

#[test]
fn pre_candidate_that_wins_campaigns_for_real() {
    let mut r = pre_vote_raft(1, vec![1, 2, 3]);
    r.step(hup(1)).expect("hup");
    read_messages(&mut r);

    let grant = msg_with_term(2, 1, MessageType::MsgRequestPreVoteResponse, 1);
    r.step(grant).expect("pre-vote response");
    assert_role(&r, StateRole::Candidate);
    assert_eq!(r.term, 1);
    assert_eq!(r.vote, 1);
    let msgs = read_messages(&mut r);
    let votes = of_type(&msgs, MessageType::MsgRequestVote);
    assert_eq!(votes.len(), 2, "real vote requests to both peers: {msgs:?}");
    assert!(votes.iter().all(|m| m.term == 1));

    r.step(msg_with_term(3, 1, MessageType::MsgRequestVoteResponse, 1)).expect("vote");
    assert_role(&r, StateRole::Leader);
    assert_eq!(r.term, 1);
}

#[test]
fn pre_vote_network_elects_leader_in_one_term() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).term, 1, "node {id}");
        assert_eq!(nt.peer(id).leader_id, 1, "node {id}");
    }
}

#[test]
fn single_node_with_pre_vote_becomes_leader_at_once() {
    let mut r = pre_vote_raft(1, vec![1]);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::Leader);
    assert_eq!(r.term, 1);
}

#[test]
fn pre_vote_rejected_by_nodes_with_newer_logs() {
    let stores: Vec<MemStorage> = [&[1][..], &[1, 1], &[1, 1]]
        .iter()
        .map(|terms| {
            let mut s = storage_with_terms(vec![1, 2, 3], terms);
            s.set_hard_state(hard_state(1, 0, 0));
            s
        })
        .collect();
    let peers = stores
        .into_iter()
        .enumerate()
        .map(|(i, s)| Some(pre_vote_raft_with_storage(i as u64 + 1, s)))
        .collect();
    let mut nt = Network::new(peers);

    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Follower);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).term, 1, "node {id}: a lost pre-vote changes no term");
        assert_eq!(nt.peer(id).vote, INVALID_ID, "node {id}");
    }

    // A node holding the newest log wins, and its election costs a single term.
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_eq!(nt.peer(2).term, 2);
}

#[test]
fn pre_vote_is_granted_without_changing_voters_term_or_vote() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());

    let r2 = nt.peer_mut(2);
    r2.step(vote_request(3, 2, MessageType::MsgRequestPreVote, 2, last, last_term))
        .expect("pre-vote");
    let msgs = read_messages(r2);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestPreVoteResponse);
    assert_eq!(msgs[0].to, 3);
    assert_eq!(msgs[0].term, 2, "a grant echoes the term asked about");
    assert!(!msgs[0].reject);
    assert_eq!(r2.term, 1);
    assert_eq!(r2.vote, 1);
    assert_eq!(r2.leader_id, 1);
    assert_role(r2, StateRole::Follower);
}

#[test]
fn pre_vote_for_current_term_is_rejected_after_voting() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());

    let r2 = nt.peer_mut(2);
    r2.step(vote_request(3, 2, MessageType::MsgRequestPreVote, 1, last, last_term))
        .expect("pre-vote");
    let msgs = read_messages(r2);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestPreVoteResponse);
    assert!(msgs[0].reject, "node 2 already voted for 1 in term 1");
    assert_eq!(msgs[0].term, 1);
    assert_eq!(r2.vote, 1);
}

#[test]
fn stale_pre_vote_is_rejected_and_teaches_the_newer_term() {
    let mut voter = pre_vote_raft(2, vec![1, 2, 3]);
    voter.become_follower(3, INVALID_ID);
    let mut candidate = pre_vote_raft(1, vec![1, 2, 3]);
    candidate.become_follower(1, INVALID_ID);
    candidate.step(hup(1)).expect("hup");
    let req = of_type(&read_messages(&mut candidate), MessageType::MsgRequestPreVote)
        .into_iter()
        .find(|m| m.to == 2)
        .expect("pre-vote to 2");
    assert_eq!(req.term, 2);

    voter.step(req).expect("stale pre-vote");
    let msgs = read_messages(&mut voter);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestPreVoteResponse);
    assert!(msgs[0].reject);
    assert_eq!(msgs[0].term, 3);
    assert_eq!(voter.term, 3, "a stale pre-vote changes nothing on the voter");

    candidate.step(msgs[0].clone()).expect("rejection");
    assert_role(&candidate, StateRole::Follower);
    assert_eq!(candidate.term, 3, "the pre-candidate learns the newer term");
}

#[test]
fn partitioned_node_does_not_raise_its_term() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    // Two full randomized election timeouts: node 3 campaigns at least once.
    nt.tick_peer(3, 40);
    assert_role(nt.peer(3), StateRole::PreCandidate);
    assert_eq!(nt.peer(3).term, 1, "pre-votes that get no answer keep the term");
}

#[test]
fn rejoining_node_does_not_disrupt_leader() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.send(vec![propose(1, b"while 3 is away")]);
    nt.tick_peer(3, 40);
    nt.recover();

    // Node 3 keeps campaigning after it rejoined; its log is behind, so nobody agrees.
    nt.tick_peer(3, 40);
    assert_role(nt.peer(1), StateRole::Leader);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).term, 1, "node {id}");
    }
    assert_ne!(nt.peer(3).state, StateRole::Candidate);

    // The next heartbeat brings it back in line and up to date.
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).leader_id, 1);
    assert_eq!(nt.peer(3).raft_log.committed, nt.peer(1).raft_log.committed);
}

#[test]
fn without_pre_vote_rejoining_node_deposes_leader() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.tick_peer(3, 40);
    assert!(nt.peer(3).term > 1, "without PreVote the isolated node inflates its term");
    nt.recover();
    nt.tick_peer(3, 40);
    assert_ne!(nt.peer(1).state, StateRole::Leader, "the healthy leader was deposed");
    assert!(nt.peer(1).term > 1);
}

#[test]
fn pre_candidate_steps_down_on_higher_term_append() {
    let mut r = pre_vote_raft(1, vec![1, 2, 3]);
    r.become_follower(1, INVALID_ID);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::PreCandidate);
    read_messages(&mut r);

    r.step(msg_with_term(2, 1, MessageType::MsgAppend, 2)).expect("append");
    assert_role(&r, StateRole::Follower);
    assert_eq!(r.term, 2);
    assert_eq!(r.leader_id, 2);
    let resps = of_type(&read_messages(&mut r), MessageType::MsgAppendResponse);
    assert_eq!(resps.len(), 1, "the append is answered");
}

#[test]
fn pre_candidate_steps_down_on_same_term_heartbeat() {
    let mut r = pre_vote_raft(1, vec![1, 2, 3]);
    r.become_follower(1, INVALID_ID);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::PreCandidate);
    read_messages(&mut r);

    r.step(msg_with_term(2, 1, MessageType::MsgHeartbeat, 1)).expect("heartbeat");
    assert_role(&r, StateRole::Follower);
    assert_eq!(r.term, 1);
    assert_eq!(r.leader_id, 2);
}

#[test]
fn stale_leader_learns_newer_term_from_lower_term_append_or_heartbeat() {
    for t in [MessageType::MsgAppend, MessageType::MsgHeartbeat] {
        let mut old_leader = pre_vote_raft(1, vec![1, 2, 3]);
        old_leader.become_candidate();
        old_leader.become_leader();
        assert_eq!(old_leader.term, 1);
        let mut follower = pre_vote_raft(2, vec![1, 2, 3]);
        follower.become_follower(2, 3);

        follower.step(msg_with_term(1, 2, t, 1)).expect("stale message");
        let msgs = read_messages(&mut follower);
        assert_eq!(msgs.len(), 1, "{t:?}: {msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgAppendResponse);
        assert_eq!(msgs[0].to, 1);
        assert_eq!(msgs[0].term, 2);
        assert_eq!(follower.term, 2, "{t:?}");
        assert_eq!(follower.leader_id, 3, "{t:?}: the stale message changes nothing");

        old_leader.step(msgs[0].clone()).expect("response");
        assert_role(&old_leader, StateRole::Follower);
        assert_eq!(old_leader.term, 2, "{t:?}");
    }
}

#[test]
fn without_pre_vote_or_check_quorum_lower_term_messages_are_ignored() {
    let mut follower = new_test_raft(2, vec![1, 2, 3], 10, 1);
    follower.become_follower(2, 3);
    for t in [MessageType::MsgAppend, MessageType::MsgHeartbeat] {
        follower.step(msg_with_term(1, 2, t, 1)).expect("stale message");
        assert!(read_messages(&mut follower).is_empty(), "{t:?}");
    }
    assert_eq!(follower.term, 2);
}

#[test]
fn pre_vote_with_split_vote() {
    let mut nt = pre_vote_network(3);
    nt.send(vec![hup(1)]);
    nt.isolate(1);

    // Nodes 2 and 3 time out together: each grants the other's pre-vote, then each votes
    // for itself, and the real election splits.
    nt.send(vec![hup(2), hup(3)]);
    for id in [2, 3] {
        assert_eq!(nt.peer(id).term, 2, "node {id}");
        assert_role(nt.peer(id), StateRole::Candidate);
    }

    // The next timeout settles it, one term later.
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(2).term, 3);
    assert_eq!(nt.peer(3).term, 3);
}

/// Nodes 1 and 2 run PreVote, node 3 (an old version, during a rolling upgrade) does not.
/// Node 1 leads in term 1 with an entry node 3 missed while partitioned, when node 3 raised
/// its term to 3 by campaigning. Then node 3 is upgraded and the network heals.
fn pre_vote_migration_cluster() -> Network {
    let n1 = pre_vote_raft(1, vec![1, 2, 3]);
    let n2 = pre_vote_raft(2, vec![1, 2, 3]);
    let n3 = new_test_raft(3, vec![1, 2, 3], 10, 1);
    let mut nt = Network::new(vec![Some(n1), Some(n2), Some(n3)]);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.send(vec![propose(1, b"some data")]);
    nt.send(vec![hup(3)]);
    nt.send(vec![hup(3)]);

    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 1);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_eq!(nt.peer(2).term, 1);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(3).term, 3);

    nt.peer_mut(3).pre_vote = true;
    nt.recover();
    nt
}

#[test]
fn pre_vote_migration_can_complete_election() {
    let mut nt = pre_vote_migration_cluster();
    // The leader goes down.
    nt.isolate(1);

    nt.send(vec![hup(3)]);
    nt.send(vec![hup(2)]);
    // Node 3's log is behind; node 2's pre-vote is for a term below node 3's.
    assert_role(nt.peer(2), StateRole::Follower);
    assert_eq!(nt.peer(2).term, 3, "node 2 learned the higher term from the rejection");
    assert_role(nt.peer(3), StateRole::PreCandidate);

    nt.send(vec![hup(3)]);
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).leader_id, 2);
}

#[test]
fn pre_vote_migration_frees_stuck_pre_candidate() {
    let mut nt = pre_vote_migration_cluster();

    nt.send(vec![hup(3)]);
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_role(nt.peer(3), StateRole::PreCandidate);
    assert_eq!(nt.peer(3).term, 3);

    // The leader's heartbeat, at its lower term, is answered with node 3's term: the leader
    // steps down, which frees the stuck pre-candidate.
    let term = nt.peer(1).term;
    nt.send(vec![msg_with_term(1, 3, MessageType::MsgHeartbeat, term)]);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).term, nt.peer(3).term);

    // A node with the full log now wins, and node 3 catches up.
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 4);
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_eq!(nt.peer(3).leader_id, 1);
    assert_eq!(nt.peer(3).raft_log.committed, nt.peer(1).raft_log.committed);
}
