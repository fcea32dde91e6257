//! Snapshots, after TinyKV's 2C tests and etcd's raft_test.go: a leader sends one when a
//! follower needs compacted entries, and a follower installs it, taking term, commit and
//! membership from its metadata.

use raftkv_proto::eraftpb::{Message, MessageType};

use super::harness::*;
use crate::log_unstable::snapshot_index;
use crate::{MemStorage, ProgressState, Raft, StateRole, Storage};

fn voters(r: &Raft<MemStorage>) -> Vec<u64> {
    r.prs.voters().iter().copied().collect()
}

fn snapshot_msg(from: u64, to: u64, term: u64, index: u64, snap_term: u64, v: Vec<u64>) -> Message {
    let mut m = msg_with_term(from, to, MessageType::MsgSnapshot, term);
    m.snapshot = Some(Box::new(snapshot(index, snap_term, v)));
    m
}

/// A leader of group {1, 2} whose log was compacted into a snapshot at index 11, term 11
/// (it leads term 12 and its no-op is at index 12).
fn leader_with_compacted_log() -> Raft<MemStorage> {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    assert!(r.restore(snapshot(11, 11, vec![1, 2])));
    persist(&mut r);
    r.term = 11;
    r.become_candidate();
    r.become_leader();
    read_messages(&mut r);
    assert_eq!(r.raft_log.first_index(), 12);
    r
}

/// Node 2's rejection of the leader's first append, from an empty log.
fn reject_from_empty_follower(r: &Raft<MemStorage>) -> Message {
    let mut m = msg_with_term(2, 1, MessageType::MsgAppendResponse, r.term);
    m.index = 11;
    m.reject = true;
    m.reject_hint = 0;
    m
}

#[test]
fn restore_snapshot_replaces_log_and_membership() {
    let mut r = new_test_raft(1, vec![1, 2], 10, 1);
    assert!(r.restore(snapshot(11, 11, vec![1, 2, 3])));
    assert_eq!(r.raft_log.last_index(), 11);
    assert_eq!(r.raft_log.term(11).expect("term of the snapshot index"), 11);
    assert_eq!(r.raft_log.committed, 11);
    assert_eq!(voters(&r), vec![1, 2, 3]);
    // The same snapshot again is nothing new.
    assert!(!r.restore(snapshot(11, 11, vec![1, 2, 3])));
}

#[test]
fn restore_ignores_a_snapshot_it_already_has() {
    let mut r = new_test_raft(1, vec![1, 2], 10, 1);
    r.raft_log.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
    r.raft_log.commit_to(1);
    // Stale: at or below the commit index.
    assert!(!r.restore(snapshot(1, 1, vec![1, 2])));
    assert_eq!(r.raft_log.committed, 1);
    // Its last entry matches ours: only the commit index moves forward.
    assert!(!r.restore(snapshot(2, 1, vec![1, 2])));
    assert_eq!(r.raft_log.committed, 2);
    assert_eq!(r.raft_log.last_index(), 3, "the log is kept");
}

#[test]
fn restore_ignores_a_snapshot_of_a_group_without_this_node() {
    let mut r = new_test_raft(3, vec![1, 2, 3], 10, 1);
    assert!(!r.restore(snapshot(11, 11, vec![1, 2])));
    assert_eq!((r.raft_log.last_index(), r.raft_log.committed), (0, 0));
    assert_eq!(voters(&r), vec![1, 2, 3]);
}

#[test]
fn provide_snap_when_the_followers_next_entries_were_compacted() {
    let mut r = leader_with_compacted_log();
    let reject = reject_from_empty_follower(&r);
    r.step(reject).expect("reject");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgSnapshot);
    assert_eq!(msgs[0].to, 2);
    let snap = msgs[0].snapshot.as_ref().expect("snapshot");
    assert_eq!(snapshot_index(snap), 11);
    let pr = r.prs.get(2).expect("progress of 2");
    assert_eq!((pr.state, pr.pending_snapshot), (ProgressState::Snapshot, 11));
}

#[test]
fn snapshot_temporarily_unavailable_is_retried_later() {
    let mut r = leader_with_compacted_log();
    r.raft_log.store.trigger_snapshot_unavailable();
    let reject = reject_from_empty_follower(&r);
    r.step(reject).expect("reject");
    assert!(read_messages(&mut r).is_empty(), "nothing to send while it is generated");
    assert_eq!(r.prs.get(2).expect("progress of 2").state, ProgressState::Probe);

    // The next heartbeat round asks again, and now the snapshot is ready.
    for _ in 0..r.heartbeat_timeout {
        r.tick();
    }
    let beats = read_messages(&mut r);
    assert!(beats.iter().any(|m| m.msg_type() == MessageType::MsgHeartbeat && m.to == 2));
    r.step(msg_with_term(2, 1, MessageType::MsgHeartbeatResponse, r.term)).expect("beat resp");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgSnapshot);
    assert_eq!(r.prs.get(2).expect("progress of 2").state, ProgressState::Snapshot);
}

#[test]
fn restore_from_snap_msg_follows_the_sender() {
    let mut r = new_test_raft(2, vec![1, 2], 10, 1);
    r.step(snapshot_msg(1, 2, 2, 11, 11, vec![1, 2])).expect("snapshot");
    assert_eq!(r.leader_id, 1);
    assert_eq!(r.term, 2);
    assert_eq!((r.raft_log.committed, r.raft_log.last_index()), (11, 11));
    let msgs = read_messages(&mut r);
    let got: Vec<(u64, MessageType, u64, bool)> =
        msgs.iter().map(|m| (m.to, m.msg_type(), m.index, m.reject)).collect();
    assert_eq!(got, vec![(1, MessageType::MsgAppendResponse, 11, false)]);
}

#[test]
fn follower_restores_term_commit_and_membership_from_snapshot_metadata() {
    let mut r = new_test_raft(2, vec![1, 2], 10, 1);
    r.step(snapshot_msg(1, 2, 12, 11, 11, vec![1, 2, 3])).expect("snapshot");
    assert_role(&r, StateRole::Follower);
    assert_eq!(r.term, 12);
    assert_eq!(r.raft_log.committed, 11);
    assert_eq!(r.raft_log.last_term(), 11);
    assert_eq!(voters(&r), vec![1, 2, 3]);
    read_messages(&mut r); // persists the snapshot, as the application would

    assert_eq!(r.raft_log.applied, 11);
    assert_eq!(r.raft_log.first_index(), 12);
    let store = r.raft_log.store.clone();
    let state = store.initial_state().expect("initial state");
    assert_eq!(state.hard_state, hard_state(12, 11, 0));
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(snapshot_index(&store.snapshot(11, 1).expect("stored snapshot")), 11);

    // A restart finds everything where the snapshot put it.
    let restarted = new_test_raft_with_storage(2, 10, 1, store);
    assert_eq!((restarted.term, restarted.raft_log.committed), (12, 11));
    assert_eq!(restarted.raft_log.applied, 11);
    assert_eq!(voters(&restarted), vec![1, 2, 3]);
}

#[test]
fn stale_snapshot_message_is_ignored_and_answered_with_the_commit_index() {
    let mut r = new_test_raft(2, vec![1, 2], 10, 1);
    r.step(snapshot_msg(1, 2, 2, 11, 11, vec![1, 2])).expect("snapshot");
    read_messages(&mut r);
    r.step(snapshot_msg(1, 2, 2, 5, 5, vec![1, 2, 3])).expect("stale snapshot");
    assert_eq!((r.raft_log.committed, r.raft_log.last_index()), (11, 11));
    assert_eq!(voters(&r), vec![1, 2]);
    let msgs = read_messages(&mut r);
    let got: Vec<(MessageType, u64, bool)> =
        msgs.iter().map(|m| (m.msg_type(), m.index, m.reject)).collect();
    assert_eq!(got, vec![(MessageType::MsgAppendResponse, 11, false)]);
}

#[test]
fn slow_node_restore_catches_up_by_snapshot_then_replicates() {
    let mut nt = Network::new((0..3).map(|_| None).collect());
    nt.send(vec![hup(1)]);
    nt.isolate(3);
    for _ in 0..=100 {
        nt.send(vec![propose(1, b"")]);
    }
    let lead = nt.peer_mut(1);
    next_ents(lead);
    let applied = lead.raft_log.applied;
    let cs = lead.prs.conf_state();
    lead.raft_log.store.create_snapshot(applied, cs, bytes::Bytes::new()).expect("snapshot");
    // Drop every applied entry: node 3 needs entries that are gone.
    lead.raft_log.store.compact(applied + 1).expect("compact");
    assert_eq!(lead.raft_log.first_index(), applied + 1);

    nt.recover();
    // The heartbeat round shows node 3 alive and far behind: it gets the snapshot.
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    let follower = nt.peer(3);
    assert_eq!(follower.raft_log.committed, applied);
    assert_eq!(follower.raft_log.first_index(), applied + 1);
    let pr = nt.peer(1).prs.get(3).expect("progress of 3");
    assert_eq!((pr.state, pr.matched), (ProgressState::Replicate, applied));

    // And then it replicates normally.
    nt.send(vec![propose(1, b"")]);
    let lead_commit = nt.peer(1).raft_log.committed;
    assert_eq!(lead_commit, applied + 1);
    assert_eq!(nt.peer(3).raft_log.committed, lead_commit);
}

/// A leader that has just sent node 2 the snapshot at index 11.
fn leader_sending_snapshot() -> Raft<MemStorage> {
    let mut r = leader_with_compacted_log();
    let reject = reject_from_empty_follower(&r);
    r.step(reject).expect("reject");
    read_messages(&mut r);
    assert_eq!(r.prs.get(2).expect("progress of 2").state, ProgressState::Snapshot);
    r
}

#[test]
fn report_snapshot_failure_probes_again_and_resends() {
    let mut r = leader_sending_snapshot();
    r.report_snapshot(2, false);
    let pr = r.prs.get(2).expect("progress of 2");
    assert_eq!((pr.state, pr.pending_snapshot, pr.next_idx), (ProgressState::Probe, 0, 1));
    assert!(pr.is_paused(), "waits for the follower before sending again");
    assert!(read_messages(&mut r).is_empty());

    // Once the follower answers a heartbeat, the leader sends the snapshot again.
    r.step(msg_with_term(2, 1, MessageType::MsgHeartbeatResponse, r.term)).expect("beat resp");
    let msgs = read_messages(&mut r);
    let types: Vec<MessageType> = msgs.iter().map(Message::msg_type).collect();
    assert_eq!(types, vec![MessageType::MsgSnapshot]);
}

#[test]
fn report_snapshot_success_resumes_past_the_snapshot() {
    let mut r = leader_sending_snapshot();
    r.report_snapshot(2, true);
    let pr = r.prs.get(2).expect("progress of 2");
    assert_eq!((pr.state, pr.pending_snapshot, pr.next_idx), (ProgressState::Probe, 0, 12));
    assert!(pr.is_paused(), "waits for the follower before sending again");

    // The follower's acknowledgement of the snapshot starts replication after it.
    let mut ack = msg_with_term(2, 1, MessageType::MsgAppendResponse, r.term);
    ack.index = 11;
    r.step(ack).expect("ack");
    let pr = r.prs.get(2).expect("progress of 2");
    assert_eq!((pr.state, pr.matched), (ProgressState::Replicate, 11));
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgAppend);
    assert_eq!((msgs[0].index, msgs[0].log_term), (11, 11));
    let sent: Vec<u64> = msgs[0].entries.iter().map(|e| e.index).collect();
    assert_eq!(sent, vec![12]);
}

#[test]
fn report_snapshot_is_ignored_unless_a_snapshot_is_in_flight() {
    let mut r = leader_with_compacted_log();
    let before = r.prs.get(2).expect("progress of 2").clone();
    r.report_snapshot(2, true);
    let after = r.prs.get(2).expect("progress of 2");
    assert_eq!((after.state, after.next_idx), (before.state, before.next_idx));
}
