//! CheckQuorum: a leader that cannot reach a quorum steps down, and a follower that heard
//! from a live leader within the election timeout ignores vote requests (a lease), so a node
//! that cannot hear the leader cannot depose it (thesis §4.2.3, §6.2).

use raftkv_proto::eraftpb::{Message, MessageType};

use super::harness::*;
use crate::{INVALID_ID, MemStorage, Raft, StateRole};

fn cq_network(n: usize, pre_vote: bool) -> Network {
    Network::new_with_config(
        (0..n).map(|_| None).collect(),
        NetworkConfig { pre_vote, check_quorum: true },
    )
}

fn cq_raft(id: u64, voters: Vec<u64>, learners: Vec<u64>) -> Raft<MemStorage> {
    let mut c = new_test_config(id, 10, 1);
    c.check_quorum = true;
    new_test_raft_with_config(&c, MemStorage::new_with_conf_state(voters, learners))
}

/// Ticks `id` for a full election timeout without letting it campaign, delivering nothing:
/// its lease on the leader runs out.
fn expire_lease(nt: &mut Network, id: u64) {
    let r = nt.peer_mut(id);
    r.randomized_election_timeout = r.election_timeout + 1;
    for _ in 0..r.election_timeout {
        r.tick();
    }
    assert_ne!(r.state, StateRole::Candidate);
}

/// A 3-node CheckQuorum group whose leader, node 1, was cut off and stepped down after
/// hearing from no quorum for an election timeout.
fn isolated_leader_stepped_down() -> Network {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    nt.isolate(1);
    let timeout = nt.peer(1).election_timeout;
    nt.tick_peer(1, 2 * timeout);
    assert_role(nt.peer(1), StateRole::Follower);
    nt
}

fn vote_request(from: u64, to: u64, term: u64, index: u64, log_term: u64) -> Message {
    Message { index, log_term, ..msg_with_term(from, to, MessageType::MsgRequestVote, term) }
}

#[test]
fn leader_steps_down_when_it_hears_from_no_quorum() {
    let nt = isolated_leader_stepped_down();
    assert_eq!(nt.peer(1).term, 1, "stepping down does not start a new term");
    assert_eq!(nt.peer(1).leader_id, INVALID_ID);
}

#[test]
fn leader_with_responsive_quorum_keeps_leading() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.tick_peer(1, 100);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 1);
}

#[test]
fn learners_do_not_count_toward_check_quorum() {
    let peers = (1..=3).map(|id| Some(cq_raft(id, vec![1, 2], vec![3]))).collect();
    let mut nt = Network::new(peers);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);

    // The learner keeps answering, the other voter does not.
    nt.cut(1, 2);
    nt.tick_peer(1, 20);
    assert_role(nt.peer(1), StateRole::Follower);
}

#[test]
fn follower_in_lease_ignores_higher_term_vote_request() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());

    let r2 = nt.peer_mut(2);
    r2.step(vote_request(3, 2, 2, last, last_term)).expect("vote request");
    assert!(read_messages(r2).is_empty(), "no answer while the leader's lease holds");
    assert_eq!(r2.term, 1, "the request's higher term is not adopted");
    assert_eq!(r2.vote, 1);
    assert_eq!(r2.leader_id, 1);
}

#[test]
fn follower_votes_once_lease_expires() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());
    expire_lease(&mut nt, 2);

    let r2 = nt.peer_mut(2);
    r2.step(vote_request(3, 2, 2, last, last_term)).expect("vote request");
    let msgs = read_messages(r2);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestVoteResponse);
    assert!(!msgs[0].reject);
    assert_eq!(r2.term, 2);
    assert_eq!(r2.vote, 3);
}

#[test]
fn without_check_quorum_follower_votes_despite_leader() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());

    let r2 = nt.peer_mut(2);
    r2.step(vote_request(3, 2, 2, last, last_term)).expect("vote request");
    let msgs = read_messages(r2);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(!msgs[0].reject);
    assert_eq!(r2.term, 2);
}

#[test]
fn leader_superseded_only_after_followers_lease_expires() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);

    // Node 3 campaigns while node 2 still hears from the leader: ignored.
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(2).term, 1);

    // Once node 2 has not heard from the leader for an election timeout, it votes.
    expire_lease(&mut nt, 2);
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Leader);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).leader_id, 3);
}

#[test]
fn free_stuck_candidate_with_check_quorum() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    nt.isolate(1);

    // Node 2 is in the lease of leader 1: node 3 cannot win and keeps raising its term.
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(3).term, nt.peer(2).term + 1);
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(3).term, nt.peer(2).term + 2);

    nt.recover();
    // The leader's heartbeat, at its lower term, is answered with the candidate's term: the
    // leader steps down, which frees the candidate.
    let term = nt.peer(1).term;
    nt.send(vec![msg_with_term(1, 3, MessageType::MsgHeartbeat, term)]);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).term, nt.peer(3).term);

    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Leader);
}

#[test]
fn learner_does_not_campaign_with_check_quorum() {
    let peers = (1..=3).map(|id| Some(cq_raft(id, vec![1, 2], vec![3]))).collect();
    let mut nt = Network::new(peers);
    assert!(!nt.peer(3).promotable());

    nt.tick_peer(3, 100);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).term, 0, "a learner never campaigns");

    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).leader_id, 1);
}

#[test]
fn disruptive_follower_deposes_leader_with_check_quorum() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);

    // Node 3's election timeout elapses before the leader's heartbeat reaches it (delayed
    // messages, or a restart that fast-forwards ticks): it campaigns.
    {
        let r3 = nt.peer_mut(3);
        r3.randomized_election_timeout = r3.election_timeout + 2;
        for _ in 0..r3.randomized_election_timeout {
            r3.tick();
        }
        assert_role(r3, StateRole::Candidate);
    }
    // Its vote requests reach nodes that still hear from the leader: ignored.
    let votes = read_messages(nt.peer_mut(3));
    nt.send(votes);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(1).term, 1);
    assert_eq!(nt.peer(2).term, 1);
    assert_eq!(nt.peer(3).term, 2);

    // The delayed heartbeat finally arrives, at its lower term: node 3 answers with its
    // term and the leader steps down, which frees the candidate.
    let term = nt.peer(1).term;
    nt.send(vec![msg_with_term(1, 3, MessageType::MsgHeartbeat, term)]);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(1).term, 2);
    assert_eq!(nt.peer(2).term, 1);
    assert_eq!(nt.peer(3).term, 2);

    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Leader);
    assert_eq!(nt.peer(3).term, 3);
}

#[test]
fn disruptive_follower_with_pre_vote_does_not_depose_leader() {
    let mut nt = cq_network(3, true);
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    for data in [b"a", b"b", b"c"] {
        nt.send(vec![propose(1, data)]);
    }
    nt.recover();

    // Node 3 campaigns: a pre-vote, ignored by nodes in lease (and its log is behind).
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_role(nt.peer(3), StateRole::PreCandidate);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).term, 1, "node {id}");
    }

    // A delayed heartbeat at the same term just brings node 3 back.
    nt.send(vec![msg_with_term(1, 3, MessageType::MsgHeartbeat, 1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).leader_id, 1);
}

#[test]
fn leader_in_lease_ignores_higher_term_vote_request() {
    let mut nt = cq_network(3, false);
    nt.send(vec![hup(1)]);
    let (last, last_term) = (nt.peer(3).raft_log.last_index(), nt.peer(3).raft_log.last_term());

    let r1 = nt.peer_mut(1);
    r1.step(vote_request(3, 1, 5, last, last_term)).expect("vote request");
    assert!(read_messages(r1).is_empty());
    assert_role(r1, StateRole::Leader);
    assert_eq!(r1.term, 1);
}

#[test]
fn elections_start_normally_with_check_quorum() {
    // No node has a leader yet, so no lease stands in the way of the first election, nor
    // of the one after the leader stepped down.
    let mut nt = isolated_leader_stepped_down();
    expire_lease(&mut nt, 2);
    expire_lease(&mut nt, 3);
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_eq!(nt.peer(2).term, 2);
}
