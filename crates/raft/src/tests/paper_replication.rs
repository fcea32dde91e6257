//! Log replication and safety as the Raft paper's §5.3-5.4 state them, after etcd's
//! raft_paper_test.go.

use raftkv_proto::eraftpb::{Entry, Message, MessageType};

use super::harness::*;
use crate::{INVALID_ID, MemStorage, Raft, StateRole};

/// What a follower that accepted `m` answers.
fn accept_and_reply(m: &Message) -> Message {
    assert_eq!(m.msg_type(), MessageType::MsgAppend, "{m:?}");
    let mut resp = msg_with_term(m.to, m.from, MessageType::MsgAppendResponse, m.term);
    resp.index = m.index + m.entries.len() as u64;
    resp
}

/// Has a fresh leader replicate and commit its no-op, as every follower accepts it, then
/// applies it and drops the messages that announce the commit.
fn commit_noop_entry(r: &mut Raft<MemStorage>) {
    assert_role(r, StateRole::Leader);
    r.bcast_append();
    for m in read_messages(r) {
        assert!(
            m.msg_type() == MessageType::MsgAppend
                && m.entries.len() == 1
                && m.entries[0].data.is_empty(),
            "expected the no-op append, got {m:?}"
        );
        r.step(accept_and_reply(&m)).expect("ack");
    }
    read_messages(r);
    next_ents(r);
}

/// A leader of group 1..=size at term 1 that has committed its no-op.
fn leader_with_noop_committed(size: u64) -> Raft<MemStorage> {
    let mut r = new_test_raft(1, (1..=size).collect(), 10, 1);
    r.become_candidate();
    r.become_leader();
    commit_noop_entry(&mut r);
    r
}

fn log_of(r: &Raft<MemStorage>) -> Vec<(u64, u64)> {
    r.raft_log.all_entries().iter().map(|e| (e.index, e.term)).collect()
}

#[test]
fn leader_start_replication_appends_then_sends_to_every_follower() {
    // §5.3: the leader appends the command to its log as a new entry, then sends appends
    // to each of the other servers.
    let mut r = leader_with_noop_committed(3);
    let li = r.raft_log.last_index();
    r.step(propose(1, b"some data")).expect("propose");
    assert_eq!(r.raft_log.last_index(), li + 1);
    assert_eq!(r.raft_log.committed, li);
    let want_entries = vec![entry_with_data(li + 1, 1, b"some data")];
    assert_eq!(r.raft_log.unstable_entries(), want_entries.as_slice(), "not yet persisted");

    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    for (m, to) in msgs.iter().zip([2, 3]) {
        assert_eq!(m.msg_type(), MessageType::MsgAppend);
        assert_eq!((m.from, m.to, m.term), (1, to, 1));
        assert_eq!((m.index, m.log_term, m.commit), (li, 1, li));
        assert_eq!(m.entries, want_entries);
    }
}

#[test]
fn leader_commit_entry_once_replicated_and_announces_it() {
    // §5.3: once the entry is safely replicated the leader applies it and tells the
    // followers the new commit index in later appends.
    let mut r = leader_with_noop_committed(3);
    let li = r.raft_log.last_index();
    r.step(propose(1, b"some data")).expect("propose");
    for m in read_messages(&mut r) {
        r.step(accept_and_reply(&m)).expect("ack");
    }
    assert_eq!(r.raft_log.committed, li + 1);
    assert_eq!(next_ents(&mut r), vec![entry_with_data(li + 1, 1, b"some data")]);
    let msgs = read_messages(&mut r);
    let got: Vec<(u64, MessageType, u64)> =
        msgs.iter().map(|m| (m.to, m.msg_type(), m.commit)).collect();
    assert_eq!(got, vec![(2, MessageType::MsgAppend, li + 1), (3, MessageType::MsgAppend, li + 1)]);
}

#[test]
fn leader_acknowledge_commit_once_a_majority_has_the_entry() {
    // (group size, followers that accept, committed?)
    let cases: [(u64, &[u64], bool); 9] = [
        (1, &[], true),
        (3, &[], false),
        (3, &[2], true),
        (3, &[2, 3], true),
        (5, &[], false),
        (5, &[2], false),
        (5, &[2, 3], true),
        (5, &[2, 3, 4], true),
        (5, &[2, 3, 4, 5], true),
    ];
    for (size, acceptors, want) in cases {
        let mut r = leader_with_noop_committed(size);
        let li = r.raft_log.last_index();
        r.step(propose(1, b"some data")).expect("propose");
        for m in read_messages(&mut r) {
            if acceptors.contains(&m.to) {
                r.step(accept_and_reply(&m)).expect("ack");
            }
        }
        assert_eq!(r.raft_log.committed > li, want, "size {size}, acceptors {acceptors:?}");
    }
}

#[test]
fn leader_commit_preceding_entries_with_its_own() {
    // §5.3: committing an entry also commits every preceding one, including entries of
    // earlier leaders.
    let cases: [&[u64]; 4] = [&[], &[2], &[1, 2], &[1]];
    for terms in cases {
        let mut s = storage_with_terms(vec![1, 2, 3], terms);
        s.set_hard_state(hard_state(2, 0, INVALID_ID));
        let mut r = new_test_raft_with_storage(1, 10, 1, s);
        r.become_candidate();
        r.become_leader();
        r.step(propose(1, b"some data")).expect("propose");
        for m in read_messages(&mut r) {
            r.step(accept_and_reply(&m)).expect("ack");
        }
        let li = terms.len() as u64;
        let mut want: Vec<Entry> =
            terms.iter().enumerate().map(|(i, &t)| entry(i as u64 + 1, t)).collect();
        want.push(entry(li + 1, 3));
        want.push(entry_with_data(li + 2, 3, b"some data"));
        assert_eq!(next_ents(&mut r), want, "{terms:?}");
    }
}

#[test]
fn follower_commit_entry_up_to_the_leaders_commit() {
    let ents = [entry_with_data(1, 1, b"some data"), entry_with_data(2, 1, b"some data2")];
    // (entries sent, leader commit)
    let cases: [(&[Entry], u64); 4] =
        [(&ents[..1], 1), (&ents[..], 2), (&ents[..], 1), (&ents[..], 2)];
    for (entries, commit) in cases {
        let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
        r.become_follower(1, 2);
        let mut m = msg_with_term(2, 1, MessageType::MsgAppend, 1);
        m.entries = entries.to_vec();
        m.commit = commit;
        r.step(m).expect("append");
        assert_eq!(r.raft_log.committed, commit);
        assert_eq!(next_ents(&mut r), entries[..commit as usize].to_vec());
    }
}

#[test]
fn follower_check_append_rejects_a_mismatched_previous_entry_with_a_hint() {
    // The follower has [1@1, 2@2] with index 1 committed. (prev term, prev index) ->
    // (response index, rejected, reject hint, hint's term)
    let cases = [
        // Matches committed entries.
        ((0, 0), (1, false, 0, 0)),
        ((1, 1), (1, false, 0, 0)),
        // Matches an uncommitted entry.
        ((2, 2), (2, false, 0, 0)),
        // Mismatches an existing entry.
        ((1, 2), (2, true, 1, 1)),
        // Points past the log.
        ((3, 3), (3, true, 2, 2)),
    ];
    for ((log_term, index), want) in cases {
        let mut s = storage_with_terms(vec![1, 2, 3], &[1, 2]);
        s.set_hard_state(hard_state(0, 1, INVALID_ID));
        let mut r = new_test_raft_with_storage(1, 10, 1, s);
        r.become_follower(2, 2);
        let mut m = msg_with_term(2, 1, MessageType::MsgAppend, 2);
        m.log_term = log_term;
        m.index = index;
        r.step(m).expect("append");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        let resp = &msgs[0];
        assert_eq!(resp.msg_type(), MessageType::MsgAppendResponse);
        assert_eq!((resp.from, resp.to, resp.term), (1, 2, 2));
        let got = (resp.index, resp.reject, resp.reject_hint, resp.log_term);
        assert_eq!(got, want, "prev ({index}, {log_term})");
    }
}

#[test]
fn follower_append_entries_replaces_conflicts_and_keeps_the_rest() {
    // The follower has [1@1, 2@2]. (prev index, prev term, entries, whole log after,
    // entries still to persist)
    #[rustfmt::skip]
    let cases = [
        (2, 2, vec![entry(3, 3)],
         vec![entry(1, 1), entry(2, 2), entry(3, 3)], vec![entry(3, 3)]),
        (1, 1, vec![entry(2, 3), entry(3, 4)],
         vec![entry(1, 1), entry(2, 3), entry(3, 4)], vec![entry(2, 3), entry(3, 4)]),
        (0, 0, vec![entry(1, 1)],
         vec![entry(1, 1), entry(2, 2)], vec![]),
        (0, 0, vec![entry(1, 3)],
         vec![entry(1, 3)], vec![entry(1, 3)]),
    ];
    for (i, (index, log_term, entries, want_log, want_unstable)) in cases.into_iter().enumerate() {
        let mut r =
            new_test_raft_with_storage(1, 10, 1, storage_with_terms(vec![1, 2, 3], &[1, 2]));
        r.become_follower(2, 2);
        let mut m = msg_with_term(2, 1, MessageType::MsgAppend, 2);
        m.index = index;
        m.log_term = log_term;
        m.entries = entries;
        r.step(m).expect("append");
        assert_eq!(r.raft_log.all_entries(), want_log, "case {i}");
        assert_eq!(r.raft_log.unstable_entries(), want_unstable.as_slice(), "case {i}");
    }
}

#[test]
fn leader_sync_follower_log_of_figure_7() {
    // The leader's log in Raft Figure 7, term 8, and the followers (a)-(f).
    let leader_terms: &[u64] = &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    let term = 8;
    for follower_terms in followers {
        let mut s = storage_with_terms(vec![1, 2, 3], leader_terms);
        s.set_hard_state(hard_state(term, leader_terms.len() as u64, INVALID_ID));
        let lead = new_test_raft_with_storage(1, 10, 1, s);
        let mut s = storage_with_terms(vec![1, 2, 3], follower_terms);
        s.set_hard_state(hard_state(term - 1, 0, INVALID_ID));
        let follower = new_test_raft_with_storage(2, 10, 1, s);
        // The follower's log may be more up to date: node 3's vote (it is otherwise
        // unreachable) makes the leader.
        let mut nt = Network::new(vec![Some(lead), Some(follower), None]).with_black_holes(&[3]);
        nt.send(vec![hup(1)]);
        let mut vote = msg_with_term(3, 1, MessageType::MsgRequestVoteResponse, term + 1);
        vote.reject = false;
        nt.send(vec![vote]);
        assert_role(nt.peer(1), StateRole::Leader);
        nt.send(vec![propose(1, b"")]);

        let (lead, follower) = (nt.peer(1), nt.peer(2));
        assert_eq!(log_of(follower), log_of(lead), "follower {follower_terms:?}");
        assert_eq!(follower.raft_log.committed, lead.raft_log.committed);
        assert_eq!(lead.raft_log.committed, lead.raft_log.last_index());
    }
}

#[test]
fn leader_only_commits_log_from_current_term() {
    // §5.4.2: entries of earlier terms are never committed by counting replicas; only an
    // entry of the leader's own term is. (index acknowledged by node 2, commit)
    for (acked, want_commit) in [(1, 0), (2, 0), (3, 3)] {
        let mut s = storage_with_terms(vec![1, 2], &[1, 2]);
        s.set_hard_state(hard_state(2, 0, INVALID_ID));
        let mut r = new_test_raft_with_storage(1, 10, 1, s);
        r.become_candidate();
        r.become_leader();
        read_messages(&mut r);
        r.step(propose(1, b"")).expect("propose");
        let mut ack = msg_with_term(2, 1, MessageType::MsgAppendResponse, r.term);
        ack.index = acked;
        r.step(ack).expect("ack");
        read_messages(&mut r);
        assert_eq!(r.raft_log.committed, want_commit, "acked {acked}");
    }
}
