//! Log replication and commit, after TinyKV's 2AB tests and etcd's raft_test.go: what the
//! leader tracks, what followers accept, and when entries commit.

use raftkv_proto::eraftpb::{Entry, Message, MessageType};

use super::harness::*;
use crate::{Error, INVALID_ID, MemStorage, ProgressState, Raft, StateRole};

fn fresh(n: usize) -> Vec<Option<Raft<MemStorage>>> {
    (0..n).map(|_| None).collect()
}

/// (index, term) of every entry in `r`'s log.
fn log_of(r: &Raft<MemStorage>) -> Vec<(u64, u64)> {
    r.raft_log.all_entries().iter().map(|e| (e.index, e.term)).collect()
}

/// A node of `peers` whose log holds entries of `terms` and whose term is `term`.
fn node_with_log(id: u64, peers: Vec<u64>, terms: &[u64], term: u64) -> Raft<MemStorage> {
    let mut s = storage_with_terms(peers, terms);
    s.set_hard_state(hard_state(term, 0, INVALID_ID));
    new_test_raft_with_storage(id, 10, 1, s)
}

fn append_response(from: u64, to: u64, term: u64, index: u64) -> Message {
    let mut m = msg_with_term(from, to, MessageType::MsgAppendResponse, term);
    m.index = index;
    m
}

#[test]
fn progress_leader_tracks_its_persisted_log_and_peer_acks() {
    let mut r = new_test_raft(1, vec![1, 2], 5, 1);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    let me = r.prs.get(1).expect("own progress");
    assert_eq!((me.state, me.matched, me.next_idx), (ProgressState::Replicate, 1, 2));

    for i in 0..5u64 {
        r.step(propose(1, b"foo")).expect("propose");
        // Its own entry counts only once it is durable.
        assert_eq!(r.prs.get(1).expect("own progress").matched, i + 1);
        persist(&mut r);
        let me = r.prs.get(1).expect("own progress");
        assert_eq!((me.matched, me.next_idx), (i + 2, i + 3));
    }
    // Two voters: nothing commits until the peer acknowledges.
    assert_eq!(r.raft_log.committed, 0);
    let peer = r.prs.get(2).expect("peer progress");
    assert_eq!((peer.state, peer.matched), (ProgressState::Probe, 0));

    let last = r.raft_log.last_index();
    r.step(append_response(2, 1, r.term, last)).expect("ack");
    let peer = r.prs.get(2).expect("peer progress");
    assert_eq!(
        (peer.state, peer.matched, peer.next_idx),
        (ProgressState::Replicate, last, last + 1)
    );
    assert_eq!(r.raft_log.committed, last);
}

#[test]
fn leader_counts_its_own_entry_only_once_durable() {
    let mut r = new_test_raft(1, vec![1, 2], 5, 1);
    r.become_candidate();
    r.become_leader();
    assert_eq!(r.prs.get(1).expect("own progress").matched, 0, "the no-op is not durable");
    // The peer acknowledges the no-op before the leader's own write finished: one durable
    // copy of two is no majority.
    r.step(append_response(2, 1, r.term, 1)).expect("ack");
    assert_eq!(r.raft_log.committed, 0);
    persist(&mut r);
    assert_eq!(r.raft_log.committed, 1);
}

#[test]
fn log_replication_commits_on_every_node() {
    let cases: Vec<(Vec<Message>, u64)> = vec![
        (vec![propose(1, b"somedata")], 2),
        (vec![propose(1, b"somedata"), hup(2), propose(2, b"somedata")], 4),
    ];
    for (i, (msgs, want_commit)) in cases.into_iter().enumerate() {
        let mut nt = Network::new(fresh(3));
        nt.send(vec![hup(1)]);
        let proposals = msgs.iter().filter(|m| m.msg_type() == MessageType::MsgPropose).count();
        for m in msgs {
            nt.send(vec![m]);
        }
        for id in 1..=3 {
            let r = nt.peer_mut(id);
            assert_eq!(r.raft_log.committed, want_commit, "case {i}, node {id}");
            let data: Vec<Vec<u8>> = next_ents(r)
                .into_iter()
                .filter(|e| !e.data.is_empty())
                .map(|e| e.data.to_vec())
                .collect();
            assert_eq!(data, vec![b"somedata".to_vec(); proposals], "case {i}, node {id}");
        }
    }
}

#[test]
fn single_node_commits_at_once() {
    let mut nt = Network::new(fresh(1));
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"some data")]);
    nt.send(vec![propose(1, b"some data")]);
    assert_eq!(nt.peer(1).raft_log.committed, 3);
}

#[test]
fn commit_without_new_term_entry_waits_for_the_new_leaders_noop() {
    let mut nt = Network::new(fresh(5));
    nt.send(vec![hup(1)]);
    // Only node 2 receives the two proposals: no majority.
    for id in 3..=5 {
        nt.cut(1, id);
    }
    nt.send(vec![propose(1, b"some data")]);
    nt.send(vec![propose(1, b"some data")]);
    assert_eq!(nt.peer(1).raft_log.committed, 1);

    nt.recover();
    nt.ignore(MessageType::MsgAppend);
    nt.send(vec![hup(2)]);
    // Node 2 leads term 2 with the term-1 entries: counting replicas of an older term's
    // entries is not enough (Raft Figure 8), and its own no-op has not spread.
    let r = nt.peer(2);
    assert_role(r, StateRole::Leader);
    assert_eq!(r.raft_log.committed, 1);

    nt.recover();
    nt.send(vec![msg(2, 2, MessageType::MsgBeat)]);
    // The no-op of term 2 reaches a majority and commits everything before it.
    assert_eq!(nt.peer(2).raft_log.committed, 4);
    nt.send(vec![propose(2, b"some data")]);
    for id in 1..=5 {
        assert_eq!(nt.peer(id).raft_log.committed, 5, "node {id}");
    }
}

#[test]
fn figure_8_older_term_entry_on_a_majority_is_not_committed_and_may_be_overwritten() {
    // Raft Figure 8 (c): node 1, leader again in term 4, has brought its term-2 entry at
    // index 2 to nodes 2 and 3, a majority, while node 5 holds a term-3 entry there.
    let peers = vec![1, 2, 3, 4, 5];
    let mut n1 = node_with_log(1, peers.clone(), &[1, 2], 3);
    n1.step(hup(1)).expect("hup");
    read_messages(&mut n1);
    for voter in [2, 3] {
        let mut grant = msg_with_term(voter, 1, MessageType::MsgRequestVoteResponse, 4);
        grant.reject = false;
        n1.step(grant).expect("vote");
    }
    assert_role(&n1, StateRole::Leader);
    read_messages(&mut n1);
    for follower in [2, 3] {
        n1.step(append_response(follower, 1, 4, 2)).expect("ack of index 2");
    }
    // Counting replicas commits only entries of the leader's own term.
    assert!(n1.raft_log.committed < 2, "committed {}", n1.raft_log.committed);

    // (d) Node 1 crashes before its no-op spreads; node 5 wins term 5 with the votes of
    // 2, 3 and 4 and replaces index 2 everywhere: committing it would have lost it.
    let voted_for_1 = |id, terms: &[u64]| {
        let mut s = storage_with_terms(peers.clone(), terms);
        s.set_hard_state(hard_state(4, 0, 1));
        Some(new_test_raft_with_storage(id, 10, 1, s))
    };
    let mut nt = Network::new(vec![
        Some(n1),
        voted_for_1(2, &[1, 2]),
        voted_for_1(3, &[1, 2]),
        Some(node_with_log(4, peers.clone(), &[1], 4)),
        Some(node_with_log(5, peers.clone(), &[1, 3], 4)),
    ])
    .with_black_holes(&[1]);
    nt.send(vec![hup(5)]);
    assert_role(nt.peer(5), StateRole::Leader);
    for id in 2..=5 {
        assert_eq!(log_of(nt.peer(id)), vec![(1, 1), (2, 3), (3, 5)], "node {id}");
        assert_eq!(nt.peer(id).raft_log.committed, 3, "node {id}");
    }
}

#[test]
fn commit_with_heartbeat_reaches_a_lagging_follower() {
    let mut nt = Network::new(fresh(5));
    nt.send(vec![hup(1)]);
    nt.isolate(5);
    nt.send(vec![propose(1, b"some data")]);
    nt.send(vec![propose(1, b"some data")]);
    assert_eq!(nt.peer(1).raft_log.committed, 3);
    assert_eq!(nt.peer(5).raft_log.committed, 1);

    nt.recover();
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_eq!(nt.peer(5).raft_log.committed, 3);
}

#[test]
fn proposal_commits_only_with_a_live_majority() {
    // (group size, black-holed peers, whether the proposal commits)
    let cases: [(usize, &[u64], bool); 5] = [
        (3, &[], true),
        (3, &[3], true),
        (3, &[2, 3], false),
        (4, &[2, 3], false),
        (5, &[2, 3], true),
    ];
    for (size, black_holes, success) in cases {
        let mut nt = Network::new(fresh(size)).with_black_holes(black_holes);
        nt.send(vec![hup(1)]);
        nt.send(vec![propose(1, b"somedata")]);
        let ctx = format!("size {size}, black holes {black_holes:?}");
        let live: Vec<u64> = (1..=size as u64).filter(|id| !black_holes.contains(id)).collect();
        if success {
            for &id in &live {
                let r = nt.peer(id);
                assert_eq!(log_of(r), vec![(1, 1), (2, 1)], "{ctx}, node {id}");
                assert_eq!(r.raft_log.committed, 2, "{ctx}, node {id}");
            }
        } else {
            // Node 1 never became leader: the proposal was refused and left no trace.
            assert_role(nt.peer(1), StateRole::Candidate);
            assert!(log_of(nt.peer(1)).is_empty(), "{ctx}");
        }
        assert_eq!(nt.peer(1).term, 1, "{ctx}");
    }
}

/// Steps a proposal into `r` and checks it was refused without any effect.
fn assert_proposal_refused(r: &mut Raft<MemStorage>) {
    let before = (r.term, r.vote, r.state, r.raft_log.last_index(), r.raft_log.committed);
    let err = r.step(propose(r.id, b"somedata")).expect_err("proposal must be refused");
    assert!(matches!(err, Error::ProposalDropped), "got {err:?}");
    assert!(read_messages(r).is_empty(), "a refused proposal is not forwarded");
    let after = (r.term, r.vote, r.state, r.raft_log.last_index(), r.raft_log.committed);
    assert_eq!(after, before);
}

#[test]
fn proposal_to_follower_is_refused_and_changes_nothing() {
    // With a known leader...
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    assert_eq!(nt.peer(2).leader_id, 1);
    assert_proposal_refused(nt.peer_mut(2));
    // ... and without one.
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    assert_proposal_refused(&mut r);
}

#[test]
fn proposal_to_candidate_is_refused_and_changes_nothing() {
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    r.step(hup(1)).expect("hup");
    read_messages(&mut r);
    assert_role(&r, StateRole::Candidate);
    assert_proposal_refused(&mut r);
}

/// An append of term 2 from node 2 after (`index`, `log_term`).
fn append_from_2(index: u64, log_term: u64, commit: u64, entries: Vec<Entry>) -> Message {
    let mut m = msg_with_term(2, 1, MessageType::MsgAppend, 2);
    m.index = index;
    m.log_term = log_term;
    m.commit = commit;
    m.entries = entries;
    m
}

#[test]
fn handle_append_checks_the_previous_entry_and_commits_what_matches() {
    // The follower's log is [1@1, 2@2], nothing committed. append(prev index, prev term,
    // leader commit, entries) -> (last index, commit, rejected)
    let cases = [
        // The previous entry does not match, or does not exist.
        (append_from_2(2, 3, 3, vec![]), (2, 0, true)),
        (append_from_2(3, 3, 3, vec![]), (2, 0, true)),
        // It matches: append what is new, commit up to the leader's commit.
        (append_from_2(1, 1, 1, vec![]), (2, 1, false)),
        (append_from_2(0, 0, 1, vec![entry(1, 2)]), (1, 1, false)),
        (append_from_2(2, 2, 3, vec![entry(3, 2), entry(4, 2)]), (4, 3, false)),
        (append_from_2(2, 2, 4, vec![entry(3, 2)]), (3, 3, false)),
        (append_from_2(1, 1, 4, vec![entry(2, 2)]), (2, 2, false)),
        // Commit only up to the last entry the append vouches for.
        (append_from_2(1, 1, 3, vec![]), (2, 1, false)),
        (append_from_2(1, 1, 3, vec![entry(2, 2)]), (2, 2, false)),
        (append_from_2(2, 2, 3, vec![]), (2, 2, false)),
        (append_from_2(2, 2, 4, vec![]), (2, 2, false)),
    ];
    for (i, (m, (want_last, want_commit, want_reject))) in cases.into_iter().enumerate() {
        let mut r = new_test_raft_with_storage(1, 10, 1, storage_with_terms(vec![1], &[1, 2]));
        r.become_follower(2, INVALID_ID);
        r.handle_append_entries(m);
        assert_eq!(r.raft_log.last_index(), want_last, "case {i}");
        assert_eq!(r.raft_log.committed, want_commit, "case {i}");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "case {i}: {msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgAppendResponse, "case {i}");
        assert_eq!(msgs[0].reject, want_reject, "case {i}");
    }
}

#[test]
fn handle_heartbeat_advances_but_never_lowers_commit() {
    for (leader_commit, want) in [(3, 3), (1, 2), (9, 3)] {
        let mut r =
            new_test_raft_with_storage(1, 10, 1, storage_with_terms(vec![1, 2], &[1, 2, 3]));
        r.become_follower(2, 2);
        r.raft_log.commit_to(2);
        let mut m = msg_with_term(2, 1, MessageType::MsgHeartbeat, 2);
        m.commit = leader_commit;
        r.step(m).expect("heartbeat");
        assert_eq!(r.raft_log.committed, want, "leader commit {leader_commit}");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].msg_type(), MessageType::MsgHeartbeatResponse);
    }
}

#[test]
fn leader_heartbeat_carries_commit_capped_by_each_followers_match() {
    let mut nt = Network::new(fresh(3));
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    nt.send(vec![propose(1, b"a")]);
    let r = nt.peer_mut(1);
    assert_eq!(r.raft_log.committed, 2);
    r.step(msg(1, 1, MessageType::MsgBeat)).expect("beat");
    let commits: Vec<(u64, u64)> = read_messages(r)
        .into_iter()
        .filter(|m| m.msg_type() == MessageType::MsgHeartbeat)
        .map(|m| (m.to, m.commit))
        .collect();
    assert_eq!(commits, vec![(2, 2), (3, 1)]);
}

#[test]
fn heartbeat_update_commit_never_commits_a_deposed_leaders_entries() {
    // (proposals to the isolated old leader, proposals to the new one)
    for (fail, success) in [(1, 1), (5, 3), (5, 10)] {
        let mut nt = Network::new(fresh(3));
        nt.send(vec![hup(1)]);
        nt.isolate(1);
        for _ in 0..fail {
            nt.send(vec![propose(1, b"")]);
            nt.send(vec![propose(1, b"lost")]);
        }
        assert_eq!(nt.peer(1).raft_log.committed, 1);

        nt.send(vec![hup(2)]);
        for _ in 0..success {
            nt.send(vec![propose(2, b"kept")]);
        }
        assert_eq!(nt.peer(2).raft_log.committed, 2 + success);

        // The old leader hears the new one's heartbeat but no appends: its log does not
        // match yet, so it must not commit any of its own entries.
        nt.recover();
        nt.ignore(MessageType::MsgRequestVote);
        nt.ignore(MessageType::MsgAppend);
        nt.send(vec![msg(2, 2, MessageType::MsgBeat)]);
        let old = nt.peer(1);
        assert_role(old, StateRole::Follower);
        assert_eq!(old.raft_log.committed, 1, "fail {fail}, success {success}");
    }
}

#[test]
fn leader_increase_next_after_catching_up_a_follower() {
    // Three old entries + the no-op + one proposal: the follower's next is 6.
    let leader = node_with_log(1, vec![1, 2], &[1, 1, 1], 1);
    let mut nt = Network::new(vec![Some(leader), None]);
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"somedata")]);
    let pr = nt.peer(1).prs.get(2).expect("progress of 2");
    assert_eq!((pr.state, pr.matched, pr.next_idx), (ProgressState::Replicate, 5, 6));
    assert_eq!(log_of(nt.peer(2)), log_of(nt.peer(1)));
}

#[test]
fn replicating_progress_sends_optimistically_but_probing_waits() {
    for (state, want_next) in [(ProgressState::Replicate, 5), (ProgressState::Probe, 2)] {
        let mut r = new_test_raft_with_storage(1, 10, 1, storage_with_terms(vec![1, 2], &[1, 1]));
        r.become_candidate();
        r.become_leader();
        read_messages(&mut r);
        let pr = r.prs.get_mut(2).expect("progress of 2");
        pr.matched = 1;
        match state {
            ProgressState::Replicate => pr.become_replicate(),
            _ => pr.become_probe(),
        }
        assert_eq!(pr.next_idx, 2);
        r.step(propose(1, b"somedata")).expect("propose");
        let msgs = read_messages(&mut r);
        let sent: Vec<u64> = msgs[0].entries.iter().map(|e| e.index).collect();
        assert_eq!(sent, vec![2, 3, 4], "{state:?}");
        assert_eq!(r.prs.get(2).expect("progress of 2").next_idx, want_next, "{state:?}");
    }
}

/// Delivers messages between leader 1 and follower 2 until both are quiet; returns how
/// many appends the follower rejected.
fn replicate_between(leader: &mut Raft<MemStorage>, follower: &mut Raft<MemStorage>) -> usize {
    let mut rejections = 0;
    let mut to_follower = read_messages(leader);
    while !to_follower.is_empty() {
        for m in to_follower {
            follower.step(m).expect("follower step");
        }
        for resp in read_messages(follower) {
            if resp.msg_type() == MessageType::MsgAppendResponse && resp.reject {
                rejections += 1;
            }
            leader.step(resp).expect("leader step");
        }
        to_follower = read_messages(leader);
    }
    rejections
}

/// A leader of term 5 whose log holds `terms`, in a group {1, 2} where 2 voted for it.
fn leader_with_log(terms: &[u64]) -> Raft<MemStorage> {
    let mut r = node_with_log(1, vec![1, 2], terms, 4);
    r.step(hup(1)).expect("hup");
    read_messages(&mut r);
    let mut vote = msg_with_term(2, 1, MessageType::MsgRequestVoteResponse, 5);
    vote.reject = false;
    r.step(vote).expect("vote");
    assert_role(&r, StateRole::Leader);
    r
}

#[test]
fn fast_backtracking_skips_a_whole_conflicting_term_per_round_trip() {
    // Leader [1,1,1,4,4,4,4] + no-op of term 5; the follower has a longer log of terms 2
    // and 3 after index 3. One rejection points the leader at index 3 directly instead of
    // walking back one entry per round trip.
    let mut leader = leader_with_log(&[1, 1, 1, 4, 4, 4, 4]);
    let mut follower = node_with_log(2, vec![1, 2], &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], 3);
    let rejections = replicate_between(&mut leader, &mut follower);
    assert_eq!(rejections, 1);
    assert_eq!(log_of(&follower), log_of(&leader));
    assert_eq!(follower.raft_log.committed, 8);
    assert_eq!(leader.raft_log.committed, 8);
}

#[test]
fn fast_backtracking_jumps_to_the_end_of_a_shorter_log() {
    let mut leader = leader_with_log(&[1, 1, 1, 4, 4, 4, 4]);
    let mut follower = node_with_log(2, vec![1, 2], &[1, 1], 1);
    let rejections = replicate_between(&mut leader, &mut follower);
    assert_eq!(rejections, 1);
    assert_eq!(log_of(&follower), log_of(&leader));
    assert_eq!(follower.raft_log.committed, 8);
}

/// With `skip_bcast_commit` the leader sends no extra append when the commit index
/// moves: followers learn it from the next heartbeat, which still never commits past
/// what they hold.
#[test]
fn skip_bcast_commit_lets_the_next_heartbeat_carry_the_commit() {
    let peers: Vec<Option<Raft<MemStorage>>> = (1..=3u64)
        .map(|id| {
            let mut c = new_test_config(id, 10, 1);
            c.skip_bcast_commit = true;
            Some(new_test_raft_with_config(
                &c,
                MemStorage::new_with_conf_state(vec![1, 2, 3], vec![]),
            ))
        })
        .collect();
    let mut nt = Network::new(peers);
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"x")]);
    let leader_commit = nt.peer(1).raft_log.committed;
    assert_eq!(leader_commit, 2);
    for id in [2, 3] {
        assert!(nt.peer(id).raft_log.committed < leader_commit, "node {id} was told at once");
    }
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    for id in [2, 3] {
        assert_eq!(nt.peer(id).raft_log.committed, leader_commit, "node {id} after a heartbeat");
    }
}

/// Appends handled before one persist are acknowledged once, by the latest index: the
/// leader frees its whole window up to it. A rejection is never folded away.
#[test]
fn appends_handled_in_one_ready_are_acknowledged_once() {
    let mut r = new_test_raft(2, vec![1, 2, 3], 10, 1);
    r.become_follower(1, 1);
    let append = |index: u64, log_term: u64, ents: Vec<Entry>| {
        let mut m = msg_with_term(1, 2, MessageType::MsgAppend, 1);
        m.index = index;
        m.log_term = log_term;
        m.entries = ents;
        m
    };
    r.step(append(0, 0, vec![entry(1, 1)])).expect("first append");
    r.step(append(1, 1, vec![entry(2, 1), entry(3, 1)])).expect("second append");
    let acks: Vec<&Message> = r
        .msgs_after_persist
        .iter()
        .filter(|m| m.msg_type() == MessageType::MsgAppendResponse)
        .collect();
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!((acks[0].index, acks[0].reject), (3, false));

    r.step(append(7, 1, vec![entry(8, 1)])).expect("a gap is rejected");
    let last = r.msgs_after_persist.last().expect("a rejection");
    assert!(last.reject, "the rejection must be sent, not folded");
    assert_eq!(r.msgs_after_persist.len(), 2);
}
