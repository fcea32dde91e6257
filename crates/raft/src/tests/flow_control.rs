//! Flow control: how much a leader sends a follower, and when. Probe sends one append per
//! round trip; Replicate streams appends, bounded by the inflight window
//! (`max_inflight_msgs`); Snapshot sends nothing until the snapshot is reported; and
//! `max_size_per_msg` caps each append.

use bytes::Bytes;
use raftkv_proto::eraftpb::{ConfState, Entry, Message, MessageType};

use super::harness::*;
use crate::tracker::{Inflights, Progress, ProgressState};
use crate::{Config, MemStorage, Raft, entry_size};

fn config(max_inflight: usize, max_size: u64) -> Config {
    Config {
        max_inflight_msgs: max_inflight,
        max_size_per_msg: max_size,
        ..new_test_config(1, 10, 1)
    }
}

/// Node 1, leader of {1, 2} in term 1, with nothing sent to node 2 yet (it is probing).
fn new_leader(c: &Config) -> Raft<MemStorage> {
    let mut r = new_test_raft_with_config(c, MemStorage::new_with_conf_state(vec![1, 2], vec![]));
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    r
}

/// A leader whose follower 2 acknowledged the no-op: node 2 is in Replicate, nothing is in
/// flight.
fn replicating_leader(c: &Config) -> Raft<MemStorage> {
    let mut r = new_leader(c);
    r.step(ack(2, 1)).expect("ack");
    read_messages(&mut r);
    assert_eq!(progress(&r).state, ProgressState::Replicate);
    assert_eq!(r.raft_log.committed, 1);
    r
}

fn progress(r: &Raft<MemStorage>) -> &Progress {
    r.prs.get(2).expect("progress of 2")
}

fn ack(from: u64, index: u64) -> Message {
    Message { index, ..msg_with_term(from, 1, MessageType::MsgAppendResponse, 1) }
}

fn reject(from: u64, index: u64, hint: u64, hint_term: u64) -> Message {
    Message { reject: true, reject_hint: hint, log_term: hint_term, ..ack(from, index) }
}

fn heartbeat_response(from: u64) -> Message {
    msg_with_term(from, 1, MessageType::MsgHeartbeatResponse, 1)
}

fn propose_n(n: usize, data: &'static [u8]) -> Message {
    let mut m = propose(1, data);
    m.entries = vec![Entry { data: Bytes::from_static(data), ..Default::default() }; n];
    m
}

fn appends(msgs: &[Message]) -> Vec<&Message> {
    msgs.iter().filter(|m| m.msg_type() == MessageType::MsgAppend).collect()
}

fn indexes(m: &Message) -> Vec<u64> {
    m.entries.iter().map(|e| e.index).collect()
}

/// Proposes one entry and returns what the leader sends.
fn propose_one(r: &mut Raft<MemStorage>) -> Vec<Message> {
    r.step(propose(1, b"somedata")).expect("propose");
    read_messages(r)
}

#[test]
fn replicate_streams_appends_without_waiting_for_acks() {
    let mut r = replicating_leader(&config(256, crate::NO_LIMIT));
    for index in 2..7 {
        let msgs = propose_one(&mut r);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgAppend);
        assert_eq!(indexes(&msgs[0]), vec![index]);
    }
    assert_eq!(progress(&r).ins.count(), 5);
    assert_eq!(progress(&r).next_idx, 7);
}

#[test]
fn full_inflight_window_stops_replication() {
    let mut r = replicating_leader(&config(3, crate::NO_LIMIT));
    for _ in 0..3 {
        let msgs = propose_one(&mut r);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgAppend);
        assert_eq!(msgs[0].entries.len(), 1);
    }
    assert!(progress(&r).is_paused());
    for _ in 0..10 {
        assert!(propose_one(&mut r).is_empty(), "the window is full");
    }
    assert!(progress(&r).is_paused());
}

#[test]
fn acknowledgement_frees_window_and_sends_backlog() {
    let mut r = replicating_leader(&config(3, crate::NO_LIMIT));
    for _ in 0..5 {
        propose_one(&mut r);
    }
    // Entries 2, 3, 4 are in flight; 5 and 6 wait.
    assert!(progress(&r).is_paused());

    r.step(ack(2, 2)).expect("ack");
    let msgs = read_messages(&mut r);
    let apps = appends(&msgs);
    assert_eq!(apps.len(), 1, "{msgs:?}");
    assert_eq!(indexes(apps[0]), vec![5, 6], "the backlog goes in one append");
    assert_eq!(apps[0].commit, 2);
    assert!(progress(&r).is_paused(), "and fills the freed slot");

    // Acknowledging everything empties the window.
    r.step(ack(2, 6)).expect("ack");
    read_messages(&mut r);
    assert_eq!(progress(&r).ins.count(), 0);
    assert!(!progress(&r).is_paused());
    assert_eq!(propose_one(&mut r).len(), 1);
}

#[test]
fn stale_acknowledgement_does_not_free_window() {
    let mut r = replicating_leader(&config(3, crate::NO_LIMIT));
    for _ in 0..4 {
        propose_one(&mut r);
    }
    r.step(ack(2, 1)).expect("stale ack");
    assert!(read_messages(&mut r).is_empty());
    assert!(progress(&r).is_paused());
    assert_eq!(progress(&r).ins.count(), 3);
}

#[test]
fn heartbeat_response_frees_one_slot_of_full_window() {
    let mut r = replicating_leader(&config(3, crate::NO_LIMIT));
    for _ in 0..3 {
        propose_one(&mut r);
    }
    for _ in 0..3 {
        assert!(progress(&r).is_paused());
        // The follower is alive, though its acknowledgements may be lost: one more append.
        r.step(heartbeat_response(2)).expect("heartbeat response");
        assert!(!progress(&r).is_paused());
        read_messages(&mut r);

        let msgs = propose_one(&mut r);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(msgs[0].entries.len(), 1);
        // And just one.
        for _ in 0..5 {
            assert!(progress(&r).is_paused());
            assert!(propose_one(&mut r).is_empty());
        }
        // The backlog goes out with the next freed slot.
        r.step(heartbeat_response(2)).expect("heartbeat response");
        let msgs = read_messages(&mut r);
        assert_eq!(appends(&msgs).len(), 1, "{msgs:?}");
        assert_eq!(appends(&msgs)[0].entries.len(), 5);
    }
}

#[test]
fn probe_sends_one_append_per_round_trip() {
    let mut r = new_leader(&config(256, crate::NO_LIMIT));
    assert_eq!(progress(&r).state, ProgressState::Probe);

    let msgs = propose_one(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgAppend);
    assert_eq!(msgs[0].index, 0);
    assert!(progress(&r).is_paused(), "waiting for an answer");

    for _ in 0..3 {
        for _ in 0..5 {
            assert!(propose_one(&mut r).is_empty());
        }
        // Heartbeats still go out, and do not unpause the probe by themselves.
        r.step(msg(1, 1, MessageType::MsgBeat)).expect("beat");
        let msgs = read_messages(&mut r);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(msgs[0].msg_type(), MessageType::MsgHeartbeat);
        assert!(progress(&r).is_paused());
    }

    // A heartbeat response proves the follower alive: one more probe, with all entries.
    r.step(heartbeat_response(2)).expect("heartbeat response");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgAppend);
    assert_eq!(msgs[0].index, 0);
    assert_eq!(indexes(&msgs[0]), (1..=17).collect::<Vec<_>>());
    assert!(progress(&r).is_paused());
}

#[test]
fn probe_becomes_replicate_on_ack() {
    let mut r = new_leader(&config(256, crate::NO_LIMIT));
    propose_one(&mut r);
    assert_eq!(progress(&r).state, ProgressState::Probe);

    r.step(ack(2, 2)).expect("ack");
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.matched, 2);
    assert_eq!(pr.next_idx, 3);
    assert!(!pr.is_paused());
}

#[test]
fn replicate_falls_back_to_probe_on_rejection() {
    let mut r = replicating_leader(&config(256, crate::NO_LIMIT));
    for _ in 0..3 {
        propose_one(&mut r);
    }
    assert_eq!(progress(&r).next_idx, 5);

    // The follower could not append after index 3: resend from past what it matched.
    r.step(reject(2, 3, 1, 1)).expect("reject");
    assert_eq!(progress(&r).state, ProgressState::Probe);
    let msgs = read_messages(&mut r);
    let apps = appends(&msgs);
    assert_eq!(apps.len(), 1, "{msgs:?}");
    assert_eq!(apps[0].index, 1);
    assert_eq!(indexes(apps[0]), vec![2, 3, 4]);
    assert!(progress(&r).is_paused(), "one probe at a time");
}

#[test]
fn stale_rejection_leaves_replicate_alone() {
    let mut r = replicating_leader(&config(256, crate::NO_LIMIT));
    for _ in 0..3 {
        propose_one(&mut r);
    }
    r.step(ack(2, 3)).expect("ack");
    read_messages(&mut r);

    // A rejection of an append older than what was acknowledged since.
    r.step(reject(2, 2, 1, 1)).expect("stale reject");
    assert!(read_messages(&mut r).is_empty());
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.matched, 3);
    assert_eq!(pr.next_idx, 5);
}

#[test]
fn report_unreachable_moves_replicate_to_probe() {
    let mut r = replicating_leader(&config(256, crate::NO_LIMIT));
    for _ in 0..3 {
        propose_one(&mut r);
    }
    r.report_unreachable(2);
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Probe);
    assert_eq!(pr.next_idx, pr.matched + 1);
    assert_eq!(pr.ins.count(), 0);

    // The next append probes from past what the follower acknowledged.
    let msgs = propose_one(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].index, 1);
    assert_eq!(indexes(&msgs[0]), vec![2, 3, 4, 5]);
}

#[test]
fn max_size_per_msg_caps_entries_per_append() {
    let data: &'static [u8] = &[b'x'; 100];
    let size = entry_size(&Entry {
        term: 1,
        index: 2,
        data: Bytes::from_static(data),
        ..Default::default()
    });
    let limit = 2 * size + size / 2;
    let mut r = replicating_leader(&config(256, limit));

    r.step(propose_n(5, data)).expect("propose");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(indexes(&msgs[0]), vec![2, 3]);

    // Once acknowledged, the rest streams in appends of the same bound.
    r.step(ack(2, 3)).expect("ack");
    let msgs = read_messages(&mut r);
    let apps = appends(&msgs);
    let sent: Vec<Vec<u64>> = apps.iter().map(|m| indexes(m)).collect();
    assert_eq!(sent, vec![vec![4, 5], vec![6]]);
    for m in apps {
        let bytes: u64 = m.entries.iter().map(entry_size).sum();
        assert!(bytes <= limit, "{bytes} > {limit}");
    }
}

#[test]
fn max_size_per_msg_always_sends_at_least_one_entry() {
    let mut r = replicating_leader(&config(256, 1));
    r.step(propose_n(3, b"bigger than one byte")).expect("propose");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(indexes(&msgs[0]), vec![2]);

    r.step(ack(2, 2)).expect("ack");
    let msgs = read_messages(&mut r);
    let sent: Vec<Vec<u64>> = appends(&msgs).iter().map(|m| indexes(m)).collect();
    assert_eq!(sent, vec![vec![3], vec![4]]);
}

/// Node 1 leads {1, 2} in term 2 over a log whose entries up to 5 were compacted into a
/// snapshot; node 2 has nothing.
fn leader_with_compacted_log() -> Raft<MemStorage> {
    let mut s = storage_with_terms(vec![1, 2], &[1, 1, 1, 1, 1]);
    s.set_hard_state(hard_state(1, 5, 0));
    let cs = ConfState { voters: vec![1, 2], learners: vec![] };
    s.create_snapshot(5, cs, Bytes::new()).expect("snapshot");
    s.compact(6).expect("compact");
    let mut r = new_test_raft_with_config(&config(256, crate::NO_LIMIT), s);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    assert_eq!(r.raft_log.first_index(), 6);
    r
}

fn ack_t2(index: u64) -> Message {
    Message { term: 2, ..ack(2, index) }
}

/// Makes node 2 reject the first append: it needs entries the leader no longer has.
fn into_snapshot_state(r: &mut Raft<MemStorage>) -> Vec<Message> {
    let m = Message { reject: true, ..ack_t2(5) };
    r.step(m).expect("reject");
    read_messages(r)
}

#[test]
fn compacted_entries_move_follower_to_snapshot_state() {
    let mut r = leader_with_compacted_log();
    let msgs = into_snapshot_state(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgSnapshot);
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Snapshot);
    assert_eq!(pr.pending_snapshot, 5);
    assert!(pr.is_paused());

    // Nothing else goes to node 2 while the snapshot travels.
    assert!(appends(&propose_one(&mut r)).is_empty());
    r.step(Message { term: 2, ..heartbeat_response(2) }).expect("heartbeat response");
    let msgs = read_messages(&mut r);
    assert!(appends(&msgs).is_empty(), "{msgs:?}");
}

#[test]
fn snapshot_report_success_resumes_probing_after_snapshot() {
    let mut r = leader_with_compacted_log();
    into_snapshot_state(&mut r);
    r.report_snapshot(2, true);
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Probe);
    assert_eq!(pr.next_idx, 6, "past the snapshot");
    assert!(pr.is_paused(), "until the follower answers");

    r.step(ack_t2(5)).expect("ack of the snapshot");
    assert_eq!(progress(&r).state, ProgressState::Replicate);
    let msgs = read_messages(&mut r);
    let apps = appends(&msgs);
    assert_eq!(apps.len(), 1, "{msgs:?}");
    assert_eq!(apps[0].index, 5);
    assert_eq!(indexes(apps[0]), vec![6]);
}

#[test]
fn snapshot_report_failure_probes_again() {
    let mut r = leader_with_compacted_log();
    into_snapshot_state(&mut r);
    r.report_snapshot(2, false);
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Probe);
    assert_eq!(pr.pending_snapshot, 0);
    assert!(pr.is_paused());

    // When the follower shows up again, it is sent a snapshot again.
    r.step(Message { term: 2, ..heartbeat_response(2) }).expect("heartbeat response");
    let msgs = read_messages(&mut r);
    assert!(msgs.iter().any(|m| m.msg_type() == MessageType::MsgSnapshot), "{msgs:?}");
    assert_eq!(progress(&r).state, ProgressState::Snapshot);
}

#[test]
fn ack_covering_snapshot_resumes_replication() {
    let mut r = leader_with_compacted_log();
    into_snapshot_state(&mut r);

    // The follower installed the snapshot and says so before the application reports it.
    r.step(ack_t2(5)).expect("ack of the snapshot");
    let pr = progress(&r);
    assert_eq!(pr.state, ProgressState::Replicate);
    assert_eq!(pr.matched, 5);
    let msgs = read_messages(&mut r);
    let apps = appends(&msgs);
    assert_eq!(apps.len(), 1, "{msgs:?}");
    assert_eq!(indexes(apps[0]), vec![6]);
}

// Progress and its inflight window, on their own.

#[test]
fn progress_maybe_update_advances_match_and_next() {
    // (acknowledged index, whether matched moves, matched after, next after), from
    // matched 3 and next 5.
    let cases =
        [(2, false, 3, 5), (3, false, 3, 5), (4, true, 4, 5), (5, true, 5, 6), (6, true, 6, 7)];
    for (n, updated, matched, next) in cases {
        let mut p = Progress::new(5, 10);
        p.matched = 3;
        assert_eq!(p.maybe_update(n), updated, "ack {n}");
        assert_eq!(p.matched, matched, "ack {n}");
        assert_eq!(p.next_idx, next, "ack {n}");
    }
}

#[test]
fn progress_maybe_update_clears_probe_pause() {
    let mut p = Progress::new(5, 10);
    p.sent_entries(7, 0);
    assert!(p.is_paused());
    assert!(p.maybe_update(6));
    assert!(!p.is_paused());
}

#[test]
fn progress_maybe_decr_to_in_replicate() {
    // (rejected, hint, accepted, next after), from matched 5 and next 10.
    let cases = [(5, 5, false, 10), (4, 4, false, 10), (9, 9, true, 6)];
    for (rejected, hint, accepted, next) in cases {
        let mut p = Progress::new(10, 10);
        p.matched = 5;
        p.state = ProgressState::Replicate;
        assert_eq!(p.maybe_decr_to(rejected, hint), accepted, "reject {rejected}");
        assert_eq!(p.next_idx, next, "reject {rejected}");
    }
}

#[test]
fn progress_maybe_decr_to_in_probe() {
    // (next, rejected, hint, accepted, next after), from matched 0.
    let cases = [
        // Stale: not an answer to the append last sent (the one after next - 1).
        (0, 0, 0, false, 0),
        (10, 5, 5, false, 10),
        // Steps back to the hint (or one entry), never below 1.
        (10, 9, 9, true, 9),
        (2, 1, 1, true, 1),
        (1, 0, 0, true, 1),
        (10, 9, 2, true, 3),
        (10, 9, 0, true, 1),
    ];
    for (start, rejected, hint, accepted, next) in cases {
        let mut p = Progress::new(start, 10);
        p.probe_sent = true;
        assert_eq!(p.maybe_decr_to(rejected, hint), accepted, "next {start} reject {rejected}");
        assert_eq!(p.next_idx, next, "next {start} reject {rejected}");
        assert_eq!(p.probe_sent, !accepted, "an accepted rejection allows the next probe");
    }
}

#[test]
fn progress_maybe_decr_to_never_goes_below_match() {
    let mut p = Progress::new(10, 10);
    p.matched = 6;
    assert!(p.maybe_decr_to(9, 2));
    assert_eq!(p.next_idx, 7);
}

#[test]
fn progress_is_paused_per_state() {
    let mut p = Progress::new(2, 2);
    assert!(!p.is_paused(), "a fresh probe may send");
    p.sent_entries(3, 0);
    assert!(p.is_paused(), "a probe waits for its answer");
    p.resume();
    assert!(!p.is_paused());

    p.become_replicate();
    p.sent_entries(3, 0);
    assert!(!p.is_paused(), "replicate streams while the window has room");
    p.sent_entries(4, 0);
    assert!(p.is_paused(), "the window is full");
    p.ins.free_to(3);
    assert!(!p.is_paused());

    p.become_snapshot(10);
    assert!(p.is_paused(), "nothing goes while a snapshot is on its way");
    p.resume();
    assert!(p.is_paused());
}

#[test]
fn progress_become_probe_after_snapshot_skips_past_it() {
    let mut p = Progress::new(5, 10);
    p.matched = 1;
    p.state = ProgressState::Replicate;
    p.become_probe();
    assert_eq!(p.next_idx, 2);

    let mut p = Progress::new(5, 10);
    p.matched = 1;
    p.become_snapshot(10);
    p.become_probe();
    assert_eq!(p.next_idx, 11, "the snapshot got there");

    let mut p = Progress::new(5, 10);
    p.matched = 1;
    p.become_snapshot(10);
    p.pending_snapshot = 0; // it failed
    p.become_probe();
    assert_eq!(p.next_idx, 2);
}

#[test]
fn progress_sent_entries_in_replicate_advances_next() {
    let mut p = Progress::new(5, 10);
    p.matched = 4;
    p.become_replicate();
    p.sent_entries(7, 0);
    assert_eq!(p.next_idx, 8);
    assert_eq!(p.ins.count(), 1);
    p.sent_entries(9, 0);
    assert_eq!(p.next_idx, 10);
    assert_eq!(p.ins.count(), 2);
}

#[test]
fn inflights_free_to_releases_acknowledged_appends() {
    let mut ins = Progress::new(1, 4).ins;
    for last in [2, 4, 6, 8] {
        ins.add(last, 0);
    }
    assert!(ins.full());
    ins.free_to(1);
    assert_eq!(ins.count(), 4, "acknowledges none");
    ins.free_to(5);
    assert_eq!(ins.count(), 2, "appends ending at 2 and 4");
    assert!(!ins.full());
    ins.free_to(4);
    assert_eq!(ins.count(), 2, "a stale acknowledgement frees nothing more");
    ins.add(10, 0);
    ins.add(12, 0);
    assert!(ins.full());
    ins.free_to(12);
    assert_eq!(ins.count(), 0);
}

#[test]
fn inflights_free_first_one_and_reset() {
    let mut ins = Progress::new(1, 3).ins;
    for last in [1, 2, 3] {
        ins.add(last, 0);
    }
    ins.free_first_one();
    assert_eq!(ins.count(), 2);
    ins.free_to(2);
    assert_eq!(ins.count(), 1, "only the append ending at 3 is left");
    ins.reset();
    assert_eq!(ins.count(), 0);
    ins.free_first_one();
    assert_eq!(ins.count(), 0, "freeing an empty window is harmless");
}

#[test]
fn inflight_bytes_bound_the_window_whatever_the_count() {
    let mut ins = Progress::new(1, 100).ins;
    ins.add(1, 10);
    assert!(!ins.full(), "no byte bound by default");
    let mut ins = Inflights::with_max_bytes(100, 1000);
    ins.add(1, 600);
    assert!(!ins.full());
    ins.add(2, 600);
    assert!(ins.full(), "1200 bytes in flight, the bound is 1000");
    assert_eq!(ins.bytes(), 1200);
    ins.free_to(1);
    assert!(!ins.full());
    assert_eq!(ins.bytes(), 600);
    ins.reset();
    assert_eq!(ins.bytes(), 0);
}

#[test]
fn a_leader_keeps_at_most_max_inflight_bytes_of_entries_in_flight() {
    let entry = Entry { data: Bytes::from_static(&[0u8; 1000]), ..Default::default() };
    let per_entry = entry_size(&Entry { index: 2, term: 1, ..entry.clone() });
    let c = Config { max_inflight_bytes: 3 * per_entry, ..config(256, per_entry) };
    let mut r = replicating_leader(&c);
    let propose_big = |r: &mut Raft<MemStorage>| -> Vec<u64> {
        let mut m = propose(1, b"");
        m.entries = vec![entry.clone()];
        r.step(m).expect("propose");
        appends(&read_messages(r)).iter().flat_map(|m| indexes(m)).collect()
    };
    let sent: Vec<u64> = (0..10).flat_map(|_| propose_big(&mut r)).collect();
    assert_eq!(sent, vec![2, 3, 4], "three entries' worth of bytes, then the window is full");
    assert!(progress(&r).is_paused());
    r.step(ack(2, 3)).expect("ack");
    let sent: Vec<u64> = appends(&read_messages(&mut r)).iter().flat_map(|m| indexes(m)).collect();
    assert_eq!(sent, vec![5, 6], "two acknowledged, two more may go");
}
