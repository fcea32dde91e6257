//! Leader election as the Raft paper's §5.1-5.2 and §5.4.1 state it, after etcd's
//! raft_paper_test.go: terms, timeouts, votes and the up-to-date rule.

use std::collections::BTreeSet;

use raftkv_proto::eraftpb::{Message, MessageType};

use super::harness::*;
use crate::{INVALID_ID, MemStorage, Raft, StateRole};

/// Puts a fresh node of group {1, 2, 3} in `role` at term 1.
fn node_in_role(role: StateRole, election: usize) -> Raft<MemStorage> {
    let mut r = new_test_raft(1, vec![1, 2, 3], election, 1);
    match role {
        StateRole::Follower => r.become_follower(1, 2),
        StateRole::PreCandidate => r.become_pre_candidate(),
        StateRole::Candidate => r.become_candidate(),
        StateRole::Leader => {
            r.become_candidate();
            r.become_leader();
        }
    }
    read_messages(&mut r);
    r
}

fn vote_request(from: u64, to: u64, term: u64, index: u64, log_term: u64) -> Message {
    let mut m = msg_with_term(from, to, MessageType::MsgRequestVote, term);
    m.index = index;
    m.log_term = log_term;
    m
}

fn vote_response(from: u64, to: u64, term: u64, granted: bool) -> Message {
    let mut m = msg_with_term(from, to, MessageType::MsgRequestVoteResponse, term);
    m.reject = !granted;
    m
}

#[test]
fn update_term_from_message_and_become_follower() {
    // §5.1: a server that sees a larger term adopts it; a candidate or leader reverts to
    // follower.
    for role in [StateRole::Follower, StateRole::Candidate, StateRole::Leader] {
        let mut r = node_in_role(role, 10);
        r.step(msg_with_term(2, 1, MessageType::MsgAppend, 2)).expect("append");
        assert_eq!(r.term, 2, "{role:?}");
        assert_eq!(r.state, StateRole::Follower, "{role:?}");
        assert_eq!(r.leader_id, 2, "{role:?}");
    }
}

#[test]
fn stale_term_request_is_rejected_without_effect() {
    // §5.1: a request with a stale term is not acted upon.
    let mut s = storage_with_terms(vec![1, 2, 3], &[1]);
    s.set_hard_state(hard_state(2, 0, INVALID_ID));
    let mut r = new_test_raft_with_storage(1, 10, 1, s);
    let mut m = msg_with_term(3, 1, MessageType::MsgAppend, 1);
    m.entries = vec![entry(2, 1)];
    m.index = 1;
    m.log_term = 1;
    m.commit = 1;
    r.step(m).expect("stale append");
    r.step(vote_request(3, 1, 1, 5, 1)).expect("stale vote request");
    assert!(read_messages(&mut r).is_empty());
    assert_eq!((r.term, r.vote, r.leader_id), (2, INVALID_ID, INVALID_ID));
    assert_eq!((r.raft_log.last_index(), r.raft_log.committed), (1, 0));
}

#[test]
fn start_as_follower_at_term_zero() {
    let r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    assert_role(&r, StateRole::Follower);
    assert_eq!((r.term, r.vote, r.leader_id), (0, INVALID_ID, INVALID_ID));
}

#[test]
fn leader_broadcasts_beat_every_heartbeat_interval() {
    let heartbeat = 1;
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, heartbeat);
    r.become_candidate();
    r.become_leader();
    for _ in 0..10 {
        r.step(propose(1, b"x")).expect("propose");
    }
    read_messages(&mut r);
    for _ in 0..heartbeat {
        r.tick();
    }
    let msgs = read_messages(&mut r);
    let got: Vec<(u64, u64, u64, MessageType)> =
        msgs.iter().map(|m| (m.from, m.to, m.term, m.msg_type())).collect();
    assert_eq!(
        got,
        vec![(1, 2, 1, MessageType::MsgHeartbeat), (1, 3, 1, MessageType::MsgHeartbeat)]
    );
}

/// §5.2: a follower or candidate that hears nothing for an election timeout starts an
/// election: it increments its term, votes for itself and asks every other server.
fn nonleader_starts_election(role: StateRole) {
    let et = 10;
    let mut r = node_in_role(role, et);
    for _ in 1..2 * et {
        r.tick();
    }
    assert_eq!(r.term, 2, "{role:?}");
    assert_eq!(r.state, StateRole::Candidate, "{role:?}");
    assert_eq!(r.vote, 1, "{role:?}");
    assert_eq!(r.prs.vote_counts(), (1, 0), "{role:?}: its own vote");
    let msgs = read_messages(&mut r);
    let got: Vec<(u64, u64, u64, MessageType)> =
        msgs.iter().map(|m| (m.from, m.to, m.term, m.msg_type())).collect();
    assert_eq!(
        got,
        vec![(1, 2, 2, MessageType::MsgRequestVote), (1, 3, 2, MessageType::MsgRequestVote)],
        "{role:?}"
    );
}

#[test]
fn follower_starts_election_after_timeout() {
    nonleader_starts_election(StateRole::Follower);
}

#[test]
fn candidate_starts_new_election_after_timeout() {
    nonleader_starts_election(StateRole::Candidate);
}

/// Vote responses a candidate receives: (voter, granted).
type Votes<'a> = &'a [(u64, bool)];

#[test]
fn leader_election_in_one_round_rpc() {
    // (group size, votes received, resulting role)
    #[rustfmt::skip]
    let cases: [(u64, Votes<'_>, StateRole); 13] = [
        // A majority of votes wins.
        (1, &[], StateRole::Leader),
        (3, &[(2, true), (3, true)], StateRole::Leader),
        (3, &[(2, true)], StateRole::Leader),
        (5, &[(2, true), (3, true), (4, true), (5, true)], StateRole::Leader),
        (5, &[(2, true), (3, true), (4, true)], StateRole::Leader),
        (5, &[(2, true), (3, true)], StateRole::Leader),
        // A majority of denials loses: back to follower.
        (3, &[(2, false), (3, false)], StateRole::Follower),
        (5, &[(2, false), (3, false), (4, false), (5, false)], StateRole::Follower),
        (5, &[(2, true), (3, false), (4, false), (5, false)], StateRole::Follower),
        // Otherwise it stays a candidate.
        (3, &[], StateRole::Candidate),
        (5, &[(2, true)], StateRole::Candidate),
        (5, &[(2, false), (3, false)], StateRole::Candidate),
        (5, &[], StateRole::Candidate),
    ];
    for (size, votes, want) in cases {
        let mut r = new_test_raft(1, (1..=size).collect(), 10, 1);
        r.step(hup(1)).expect("hup");
        read_messages(&mut r);
        for &(from, granted) in votes {
            r.step(vote_response(from, 1, r.term, granted)).expect("vote response");
        }
        assert_eq!(r.state, want, "size {size}, votes {votes:?}");
        assert_eq!(r.term, 1, "size {size}, votes {votes:?}");
    }
}

#[test]
fn follower_votes_first_come_first_served_once_per_term() {
    // (vote already cast in term 1, candidate asking, rejected?)
    let cases = [
        (INVALID_ID, 2, false),
        (INVALID_ID, 3, false),
        (2, 2, false),
        (3, 3, false),
        (2, 3, true),
        (3, 2, true),
    ];
    for (vote, candidate, want_reject) in cases {
        let mut s = MemStorage::new_with_conf_state(vec![1, 2, 3], vec![]);
        s.set_hard_state(hard_state(1, 0, vote));
        let mut r = new_test_raft_with_storage(1, 10, 1, s);
        r.step(vote_request(candidate, 1, 1, 0, 0)).expect("vote request");
        let msgs = read_messages(&mut r);
        let got: Vec<(u64, u64, u64, MessageType, bool)> =
            msgs.iter().map(|m| (m.from, m.to, m.term, m.msg_type(), m.reject)).collect();
        assert_eq!(
            got,
            vec![(1, candidate, 1, MessageType::MsgRequestVoteResponse, want_reject)],
            "voted {vote}, asked by {candidate}"
        );
    }
}

#[test]
fn candidate_falls_back_to_follower_on_append_from_a_leader() {
    // §5.2: a candidate that hears from a leader of at least its term steps down.
    for term in [1, 2] {
        let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
        r.step(hup(1)).expect("hup");
        assert_role(&r, StateRole::Candidate);
        r.step(msg_with_term(2, 1, MessageType::MsgAppend, term)).expect("append");
        assert_role(&r, StateRole::Follower);
        assert_eq!(r.term, term);
        assert_eq!(r.leader_id, 2);
    }
}

/// Ticks until `r` sends something; returns how many ticks that took.
fn ticks_until_campaign(r: &mut Raft<MemStorage>) -> usize {
    let mut ticks = 0;
    loop {
        r.tick();
        ticks += 1;
        if !read_messages(r).is_empty() {
            return ticks;
        }
        assert!(ticks < 1000, "node never campaigned");
    }
}

/// §5.2: election timeouts are drawn at random from [et, 2·et), and every value occurs.
fn election_timeout_randomized(role: StateRole) {
    let et = 10;
    let mut r = new_test_raft(1, vec![1, 2, 3], et, 1);
    let mut seen = BTreeSet::new();
    for _ in 0..50 * et {
        match role {
            StateRole::Follower => {
                let term = r.term + 1;
                r.become_follower(term, 2);
            }
            _ => r.become_candidate(),
        }
        read_messages(&mut r);
        let timeout = r.randomized_election_timeout;
        assert!((et..2 * et).contains(&timeout), "{role:?}: timeout {timeout}");
        assert_eq!(ticks_until_campaign(&mut r), timeout, "{role:?}");
        seen.insert(timeout);
    }
    assert_eq!(seen, (et..2 * et).collect::<BTreeSet<_>>(), "{role:?}: every timeout occurs");
}

#[test]
fn follower_election_timeout_randomized() {
    election_timeout_randomized(StateRole::Follower);
}

#[test]
fn candidate_election_timeout_randomized() {
    election_timeout_randomized(StateRole::Candidate);
}

/// §5.2: randomized timeouts make it rare for several servers to time out at once.
fn election_timeouts_nonconflicting(role: StateRole) {
    let et = 10;
    let ids: Vec<u64> = (1..=5).collect();
    let mut rs: Vec<Raft<MemStorage>> =
        ids.iter().map(|&id| new_test_raft(id, ids.clone(), et, 1)).collect();
    let rounds = 1000;
    let mut conflicts = 0;
    for _ in 0..rounds {
        for r in rs.iter_mut() {
            match role {
                StateRole::Follower => {
                    let term = r.term + 1;
                    r.become_follower(term, INVALID_ID);
                }
                _ => r.become_candidate(),
            }
            read_messages(r);
        }
        let mut timed_out = 0;
        while timed_out == 0 {
            for r in rs.iter_mut() {
                r.tick();
                if !read_messages(r).is_empty() {
                    timed_out += 1;
                }
            }
        }
        if timed_out > 1 {
            conflicts += 1;
        }
    }
    let rate = f64::from(conflicts) / f64::from(rounds);
    assert!(rate <= 0.3, "{role:?}: {conflicts} of {rounds} rounds had simultaneous timeouts");
}

#[test]
fn followers_election_timeouts_nonconflicting() {
    election_timeouts_nonconflicting(StateRole::Follower);
}

#[test]
fn candidates_election_timeouts_nonconflicting() {
    election_timeouts_nonconflicting(StateRole::Candidate);
}

#[test]
fn voter_grants_only_to_a_log_at_least_as_up_to_date() {
    // §5.4.1. (voter's log terms, candidate's last term, candidate's last index, rejected?)
    #[rustfmt::skip]
    let cases: [(&[u64], u64, u64, bool); 9] = [
        // Same last term: the longer or equal log wins.
        (&[1], 1, 1, false),
        (&[1], 1, 2, false),
        (&[1, 1], 1, 1, true),
        // The candidate's last term is higher.
        (&[1], 2, 1, false),
        (&[1], 2, 2, false),
        (&[1, 1], 2, 1, false),
        // The voter's last term is higher.
        (&[2], 1, 1, true),
        (&[2], 1, 2, true),
        (&[2, 1], 1, 1, true),
    ];
    for (terms, log_term, index, want_reject) in cases {
        let mut r = new_test_raft_with_storage(1, 10, 1, storage_with_terms(vec![1, 2], terms));
        r.step(vote_request(2, 1, 3, index, log_term)).expect("vote request");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "{terms:?} vs ({index}, {log_term})");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestVoteResponse);
        assert_eq!(msgs[0].reject, want_reject, "{terms:?} vs ({index}, {log_term})");
    }
}

#[test]
fn vote_request_carries_the_candidates_last_entry() {
    // (entries the follower got from the leader of term `want_term - 1`, want_term)
    let cases: [(&[u64], u64); 2] = [(&[1], 2), (&[1, 2], 3)];
    for (terms, want_term) in cases {
        let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
        let mut m = msg_with_term(2, 1, MessageType::MsgAppend, want_term - 1);
        m.entries = terms.iter().enumerate().map(|(i, &t)| entry(i as u64 + 1, t)).collect();
        r.step(m).expect("append");
        read_messages(&mut r);

        for _ in 1..2 * r.election_timeout {
            r.tick();
        }
        let msgs = read_messages(&mut r);
        let last = (terms.len() as u64, *terms.last().expect("entries"));
        let got: Vec<(u64, MessageType, u64, u64, u64)> =
            msgs.iter().map(|m| (m.to, m.msg_type(), m.term, m.index, m.log_term)).collect();
        let want: Vec<(u64, MessageType, u64, u64, u64)> = [2, 3]
            .into_iter()
            .map(|to| (to, MessageType::MsgRequestVote, want_term, last.0, last.1))
            .collect();
        assert_eq!(got, want, "{terms:?}");
    }
}
