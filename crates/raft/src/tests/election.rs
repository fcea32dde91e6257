//! Leader election, after TinyKV's 2AA/2AB tests and etcd's raft_test.go: who wins, who
//! steps down, and which messages a node must ignore.

use raftkv_proto::eraftpb::MessageType;

use super::harness::*;
use crate::{INVALID_ID, MemStorage, Raft, StateRole};

/// `n` fresh nodes for a `Network`.
fn fresh(n: usize) -> Vec<Option<Raft<MemStorage>>> {
    (0..n).map(|_| None).collect()
}

/// A member of `peers` whose log holds entries of `terms` (indexes 1..) and whose current
/// term is the last of them, as if it had just heard of that term.
fn node_with_log(id: u64, peers: Vec<u64>, terms: &[u64]) -> Raft<MemStorage> {
    let mut s = storage_with_terms(peers, terms);
    s.set_hard_state(hard_state(terms.last().copied().unwrap_or(0), 0, INVALID_ID));
    new_test_raft_with_storage(id, 10, 1, s)
}

/// A member of `peers` with an empty log that voted for `vote` in `term`.
fn node_that_voted(id: u64, peers: Vec<u64>, term: u64, vote: u64) -> Raft<MemStorage> {
    let mut s = MemStorage::new_with_conf_state(peers, vec![]);
    s.set_hard_state(hard_state(term, 0, vote));
    new_test_raft_with_storage(id, 10, 1, s)
}

/// (index, term) of every entry in `r`'s log.
fn log_of(r: &Raft<MemStorage>) -> Vec<(u64, u64)> {
    r.raft_log.all_entries().iter().map(|e| (e.index, e.term)).collect()
}

#[test]
fn leader_election_needs_a_majority_of_live_voters() {
    // (group size, black-holed peers, what node 1 ends up as)
    let cases: [(usize, &[u64], StateRole); 5] = [
        (3, &[], StateRole::Leader),
        (3, &[3], StateRole::Leader),
        (3, &[2, 3], StateRole::Candidate),
        (4, &[2, 3], StateRole::Candidate),
        (5, &[2, 3], StateRole::Leader),
    ];
    for (size, black_holes, want) in cases {
        let mut nt = Network::new(fresh(size)).with_black_holes(black_holes);
        nt.send(vec![hup(1)]);
        let r = nt.peer(1);
        assert_eq!(r.state, want, "size {size}, black holes {black_holes:?}");
        assert_eq!(r.term, 1, "size {size}, black holes {black_holes:?}");
    }
}

#[test]
fn candidate_with_an_older_log_loses_and_becomes_follower() {
    // Nodes 2..4 have logs further along than node 1's in the same term, so they reject
    // (rather than ignore) its request; with only node 5's vote it loses.
    let peers = vec![1, 2, 3, 4, 5];
    let mut nt = Network::new(vec![
        None,
        Some(node_with_log(2, peers.clone(), &[1])),
        Some(node_with_log(3, peers.clone(), &[1])),
        Some(node_with_log(4, peers.clone(), &[1, 1])),
        None,
    ]);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).term, 1);
    for id in 2..=5 {
        assert_role(nt.peer(id), StateRole::Follower);
    }
}

#[test]
fn leader_cycle_each_node_can_take_over() {
    let mut nt = Network::new(fresh(3));
    for campaigner in 1..=3u64 {
        nt.send(vec![hup(campaigner)]);
        for id in 1..=3 {
            let want = if id == campaigner { StateRole::Leader } else { StateRole::Follower };
            assert_eq!(nt.peer(id).state, want, "campaigner {campaigner}, node {id}");
            assert_eq!(nt.peer(id).leader_id, campaigner, "campaigner {campaigner}, node {id}");
        }
    }
}

#[test]
fn vote_from_any_state_for_a_higher_term() {
    for role in
        [StateRole::Follower, StateRole::PreCandidate, StateRole::Candidate, StateRole::Leader]
    {
        let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
        r.term = 1;
        match role {
            StateRole::Follower => r.become_follower(1, 3),
            StateRole::PreCandidate => r.become_pre_candidate(),
            StateRole::Candidate => r.become_candidate(),
            StateRole::Leader => {
                r.become_candidate();
                r.become_leader();
            }
        }
        read_messages(&mut r);
        let new_term = r.term + 1;
        let mut m = msg_with_term(2, 1, MessageType::MsgRequestVote, new_term);
        m.index = 42;
        m.log_term = new_term;
        r.step(m).expect("step vote request");

        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "{role:?}: {msgs:?}");
        let resp = &msgs[0];
        assert_eq!(resp.msg_type(), MessageType::MsgRequestVoteResponse, "{role:?}");
        assert_eq!(resp.to, 2, "{role:?}");
        assert_eq!(resp.term, new_term, "{role:?}");
        assert!(!resp.reject, "{role:?} should grant");
        assert_eq!(r.state, StateRole::Follower, "{role:?}");
        assert_eq!(r.term, new_term, "{role:?}");
        assert_eq!(r.vote, 2, "{role:?}");
    }
}

#[test]
fn single_node_candidate_elects_itself_at_once() {
    let mut nt = Network::new(fresh(1));
    nt.send(vec![hup(1)]);
    let r = nt.peer(1);
    assert_role(r, StateRole::Leader);
    assert_eq!(r.term, 1);
    assert_eq!(r.raft_log.committed, 1, "its no-op commits with no one else to ask");
}

/// A candidate isolated while the others moved to a later term returns to follower when
/// the current leader's `t` message reaches it.
fn candidate_resets_term_on(t: MessageType) {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.send(vec![hup(2)]);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 3);

    let c = nt.peer_mut(3);
    for _ in 0..c.randomized_election_timeout {
        c.tick();
    }
    read_messages(c); // its vote requests are lost
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(3).term, 2);

    nt.recover();
    nt.send(vec![msg_with_term(1, 3, t, 3)]);
    let c = nt.peer(3);
    assert_role(c, StateRole::Follower);
    assert_eq!(c.term, 3);
    assert_eq!(c.leader_id, 1);
}

#[test]
fn candidate_resets_term_on_heartbeat() {
    candidate_resets_term_on(MessageType::MsgHeartbeat);
}

#[test]
fn candidate_resets_term_on_append() {
    candidate_resets_term_on(MessageType::MsgAppend);
}

#[test]
fn disruptive_follower_deposes_leader_without_check_quorum() {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);

    // Node 3 misses the heartbeats and times out; its vote requests are delayed.
    let c = nt.peer_mut(3);
    for _ in 0..c.randomized_election_timeout {
        c.tick();
    }
    let delayed_votes = read_messages(c);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_eq!(nt.peer(3).term, 2);

    // The leader's heartbeat, of the older term, reaches it at last: ignored, unanswered.
    nt.send(vec![msg_with_term(1, 3, MessageType::MsgHeartbeat, 1)]);
    assert_role(nt.peer(3), StateRole::Candidate);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 1);

    // The delayed vote requests depose the healthy leader (what CheckQuorum and PreVote
    // exist to prevent); with an equally long log, node 3 wins.
    nt.send(delayed_votes);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).term, 2);
    assert_role(nt.peer(3), StateRole::Leader);
    assert_eq!(nt.peer(3).term, 2);
}

#[test]
fn rejoining_node_with_stale_log_deposes_leader_but_cannot_win() {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.send(vec![propose(1, b"x")]);
    nt.send(vec![hup(3)]);
    assert_eq!(nt.peer(1).raft_log.committed, 2);
    assert_eq!(nt.peer(3).term, 2);

    nt.recover();
    nt.send(vec![hup(3)]);
    for id in 1..=3 {
        let r = nt.peer(id);
        assert_role(r, StateRole::Follower);
        assert_eq!(r.term, 3, "node {id}");
        assert_eq!(r.leader_id, INVALID_ID, "node {id}");
    }

    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 4);
    assert_eq!(log_of(nt.peer(3)), log_of(nt.peer(1)));
    assert_eq!(nt.peer(3).raft_log.committed, nt.peer(1).raft_log.committed);
}

#[test]
fn recv_beat_makes_only_a_leader_send_heartbeats() {
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
        match role {
            StateRole::Follower => {}
            StateRole::Candidate => r.become_candidate(),
            _ => {
                r.become_candidate();
                r.become_leader();
            }
        }
        read_messages(&mut r);
        r.step(msg(1, 1, MessageType::MsgBeat)).expect("step beat");
        let msgs = read_messages(&mut r);
        if role == StateRole::Leader {
            let to: Vec<u64> = msgs.iter().map(|m| m.to).collect();
            assert_eq!(to, vec![2, 3]);
            for m in &msgs {
                assert_eq!(m.msg_type(), MessageType::MsgHeartbeat);
                assert_eq!(m.term, r.term);
            }
        } else {
            assert!(msgs.is_empty(), "{role:?} sent {msgs:?}");
        }
    }
}

#[test]
fn campaign_while_leader_changes_nothing() {
    let mut r = new_test_raft(1, vec![1], 5, 1);
    r.step(hup(1)).expect("hup");
    assert_role(&r, StateRole::Leader);
    let term = r.term;
    r.step(hup(1)).expect("hup again");
    assert_role(&r, StateRole::Leader);
    assert_eq!(r.term, term);
}

#[test]
fn split_vote_elects_no_one_until_a_later_term() {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    // The leader goes silent and both followers campaign at once: each votes for itself.
    nt.isolate(1);
    nt.send(vec![hup(2), hup(3)]);
    for id in [2, 3] {
        assert_role(nt.peer(id), StateRole::Candidate);
        assert_eq!(nt.peer(id).term, 2, "node {id}");
    }
    // The next timeout is not simultaneous: node 2 wins term 3.
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).term, 3);
}

#[test]
fn leader_election_overwrites_newer_logs() {
    // Node 1 won term 1 and replicated one entry to node 2; node 3 then won term 2 with
    // votes from 4 and 5 and wrote one entry only locally.
    let peers = vec![1, 2, 3, 4, 5];
    let mut nt = Network::new(vec![
        Some(node_with_log(1, peers.clone(), &[1])),
        Some(node_with_log(2, peers.clone(), &[1])),
        Some(node_with_log(3, peers.clone(), &[2])),
        Some(node_that_voted(4, peers.clone(), 2, 3)),
        Some(node_that_voted(5, peers, 2, 3)),
    ]);
    // A quorum knows of term 2: node 1 fails but learns the term.
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).term, 2);
    // Its next attempt, in term 3, succeeds.
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_eq!(nt.peer(1).term, 3);
    // Everyone now has term 1 at index 1 and the new no-op at index 2.
    for id in 1..=5 {
        assert_eq!(log_of(nt.peer(id)), vec![(1, 1), (2, 3)], "node {id}");
    }
}

#[test]
fn dueling_candidates_the_one_with_the_shorter_log_loses() {
    let mut nt = Network::new(fresh(3));
    nt.cut(1, 3);
    nt.send(vec![hup(1)]);
    nt.send(vec![hup(3)]);
    // 1 won with 2's vote; 3 got only its own.
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(3), StateRole::Candidate);

    nt.recover();
    // 3 campaigns in a higher term: it disrupts the leader, but 1 and 2 refuse it since its
    // log lacks the committed no-op.
    nt.send(vec![hup(3)]);
    for id in 1..=3 {
        assert_role(nt.peer(id), StateRole::Follower);
        assert_eq!(nt.peer(id).term, 2, "node {id}");
    }
    for id in [1, 2] {
        assert_eq!(log_of(nt.peer(id)), vec![(1, 1)], "node {id}");
        assert_eq!(nt.peer(id).raft_log.committed, 1, "node {id}");
    }
    assert!(log_of(nt.peer(3)).is_empty());
}

#[test]
fn candidate_concedes_to_a_leader_of_its_term() {
    let mut nt = Network::new(fresh(3));
    nt.isolate(1);
    nt.send(vec![hup(1)]);
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(1), StateRole::Candidate);
    assert_role(nt.peer(3), StateRole::Leader);
    assert_eq!(nt.peer(1).term, nt.peer(3).term);

    nt.recover();
    nt.send(vec![msg(3, 3, MessageType::MsgBeat)]);
    nt.send(vec![propose(3, b"force follower")]);
    let r = nt.peer(1);
    assert_role(r, StateRole::Follower);
    assert_eq!(r.term, 1);
    assert_eq!(r.leader_id, 3);
    for id in 1..=3 {
        assert_eq!(log_of(nt.peer(id)), vec![(1, 1), (2, 1)], "node {id}");
        assert_eq!(nt.peer(id).raft_log.committed, 2, "node {id}");
    }
}

#[test]
fn old_messages_from_a_stale_term_are_ignored() {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    nt.send(vec![hup(2)]);
    nt.send(vec![hup(1)]);
    assert_eq!(nt.peer(1).term, 3);
    // An append from the leader of term 2 arrives late.
    let mut stale = msg_with_term(2, 1, MessageType::MsgAppend, 2);
    stale.index = 2;
    stale.log_term = 2;
    stale.entries = vec![entry(3, 2)];
    nt.send(vec![stale]);
    nt.send(vec![propose(1, b"somedata")]);

    let want = vec![entry(1, 1), entry(2, 2), entry(3, 3), entry_with_data(4, 3, b"somedata")];
    for id in 1..=3 {
        let r = nt.peer(id);
        assert_eq!(r.raft_log.all_entries(), want, "node {id}");
        assert_eq!(r.raft_log.committed, 4, "node {id}");
    }
}

#[test]
fn recv_request_vote_obeys_the_up_to_date_rule() {
    // The voter's log is [1@2, 2@2]. (role, candidate last index, last term, prior vote,
    // rejected?)
    #[rustfmt::skip]
    let cases = [
        (StateRole::Follower, 0, 0, INVALID_ID, true),
        (StateRole::Follower, 0, 1, INVALID_ID, true),
        (StateRole::Follower, 0, 2, INVALID_ID, true),
        (StateRole::Follower, 0, 3, INVALID_ID, false),
        (StateRole::Follower, 1, 0, INVALID_ID, true),
        (StateRole::Follower, 1, 1, INVALID_ID, true),
        (StateRole::Follower, 1, 2, INVALID_ID, true),
        (StateRole::Follower, 1, 3, INVALID_ID, false),
        (StateRole::Follower, 2, 0, INVALID_ID, true),
        (StateRole::Follower, 2, 1, INVALID_ID, true),
        (StateRole::Follower, 2, 2, INVALID_ID, false),
        (StateRole::Follower, 2, 3, INVALID_ID, false),
        (StateRole::Follower, 3, 0, INVALID_ID, true),
        (StateRole::Follower, 3, 1, INVALID_ID, true),
        (StateRole::Follower, 3, 2, INVALID_ID, false),
        (StateRole::Follower, 3, 3, INVALID_ID, false),
        // Already voted in this term: only the same candidate gets it again.
        (StateRole::Follower, 3, 2, 2, false),
        (StateRole::Follower, 3, 2, 1, true),
        // Leaders and candidates voted for themselves.
        (StateRole::Leader, 3, 3, 1, true),
        (StateRole::PreCandidate, 3, 3, 1, true),
        (StateRole::Candidate, 3, 3, 1, true),
    ];
    for (i, (role, index, log_term, vote, want_reject)) in cases.into_iter().enumerate() {
        // Same term on both sides: this is about logs and votes, not term changes.
        let term = log_term.max(2);
        let mut s = storage_with_terms(vec![1, 2], &[2, 2]);
        s.set_hard_state(hard_state(term, 0, vote));
        let mut r = new_test_raft_with_storage(1, 10, 1, s);
        r.state = role;
        let mut m = msg_with_term(2, 1, MessageType::MsgRequestVote, term);
        m.index = index;
        m.log_term = log_term;
        r.step(m).expect("step vote request");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "case {i}: {msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestVoteResponse, "case {i}");
        assert_eq!(msgs[0].reject, want_reject, "case {i}");
    }
}

#[test]
fn all_servers_step_down_on_a_higher_term() {
    let higher = 3;
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        for t in [MessageType::MsgRequestVote, MessageType::MsgAppend] {
            let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
            match role {
                StateRole::Follower => r.become_follower(1, INVALID_ID),
                StateRole::Candidate => r.become_candidate(),
                _ => {
                    r.become_candidate();
                    r.become_leader();
                }
            }
            read_messages(&mut r);
            let last_index = r.raft_log.last_index();
            let mut m = msg_with_term(2, 1, t, higher);
            if t == MessageType::MsgRequestVote {
                m.log_term = higher;
                m.index = last_index;
            }
            r.step(m).expect("step");
            let ctx = format!("{role:?} receiving {t:?}");
            assert_eq!(r.state, StateRole::Follower, "{ctx}");
            assert_eq!(r.term, higher, "{ctx}");
            assert_eq!(r.raft_log.last_index(), last_index, "{ctx}: log kept");
            let want_leader = if t == MessageType::MsgAppend { 2 } else { INVALID_ID };
            assert_eq!(r.leader_id, want_leader, "{ctx}");
        }
    }
}
