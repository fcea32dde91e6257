//! Single-step membership change: one node added or removed at a time, proposed as a log
//! entry and applied by the application once committed; learners receive the log but
//! neither vote nor count toward commit.

use prost::Message as _;
use raftkv_proto::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, Message, MessageType,
};

use super::harness::*;
use crate::{Config, Error, MemStorage, RawNode, StateRole};

fn cc(change_type: ConfChangeType, node_id: u64) -> ConfChange {
    ConfChange { change_type: change_type as i32, node_id, ..Default::default() }
}

fn cc_entry(cc: &ConfChange) -> Entry {
    Entry {
        entry_type: EntryType::EntryConfChange as i32,
        data: cc.encode_to_vec().into(),
        ..Default::default()
    }
}

fn propose_cc(to: u64, cc: &ConfChange) -> Message {
    Message { entries: vec![cc_entry(cc)], ..msg(to, to, MessageType::MsgPropose) }
}

fn append_ack(from: u64, to: u64, term: u64, index: u64) -> Message {
    Message { index, ..msg_with_term(from, to, MessageType::MsgAppendResponse, term) }
}

fn decode_cc(e: &Entry) -> ConfChange {
    assert_eq!(e.entry_type(), EntryType::EntryConfChange, "{e:?}");
    ConfChange::decode(e.data.clone()).expect("conf change")
}

fn learner_network() -> Network {
    let peers = (1..=3)
        .map(|id| {
            let store = MemStorage::new_with_conf_state(vec![1, 2], vec![3]);
            Some(new_test_raft_with_storage(id, 10, 1, store))
        })
        .collect();
    Network::new(peers)
}

/// Handles one Ready as an application would, applying membership changes; returns the
/// committed entries and the last membership applied.
fn handle_ready(node: &mut RawNode<MemStorage>) -> (Vec<Entry>, Option<ConfState>) {
    let mut rd = node.ready();
    if let Some(hs) = rd.hs() {
        node.store_mut().set_hard_state(*hs);
    }
    node.store_mut().append(rd.entries()).expect("append");
    let committed = rd.take_committed_entries();
    let mut cs = None;
    for e in &committed {
        if e.entry_type() == EntryType::EntryConfChange {
            let new_cs = node.apply_conf_change(&decode_cc(e));
            node.store_mut().set_conf_state(new_cs.clone());
            cs = Some(new_cs);
        }
    }
    node.advance(rd);
    (committed, cs)
}

#[test]
fn adding_a_node_creates_its_progress() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    let cs = r.apply_conf_change(&cc(ConfChangeType::AddNode, 2));
    assert_eq!(cs.voters, vec![1, 2]);
    assert!(cs.learners.is_empty());
    assert!(r.prs.is_voter(2));
    let pr = r.prs.get(2).expect("progress of 2");
    assert!(!pr.is_learner);
    assert_eq!(pr.next_idx, r.raft_log.last_index() + 1);
}

#[test]
fn adding_an_existing_node_keeps_its_progress() {
    let mut r = new_test_raft(1, vec![1, 2], 10, 1);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    r.step(append_ack(2, 1, 1, 1)).expect("ack");
    assert_eq!(r.prs.get(2).expect("progress of 2").matched, 1);

    let cs = r.apply_conf_change(&cc(ConfChangeType::AddNode, 2));
    assert_eq!(cs.voters, vec![1, 2]);
    assert_eq!(r.prs.get(2).expect("progress of 2").matched, 1);
}

#[test]
fn added_node_counts_toward_quorum() {
    let mut r1 = new_test_raft(1, vec![1], 10, 1);
    r1.step(hup(1)).expect("hup");
    next_ents(&mut r1);
    assert_eq!(r1.raft_log.committed, 1);

    let add = cc(ConfChangeType::AddNode, 2);
    r1.step(propose_cc(1, &add)).expect("propose conf change");
    let ents = next_ents(&mut r1);
    assert_eq!(ents.len(), 1, "the change commits on the single voter");
    assert_eq!(r1.apply_conf_change(&decode_cc(&ents[0])).voters, vec![1, 2]);

    // From now on a commit needs node 2 too.
    r1.step(propose(1, b"x")).expect("propose");
    persist(&mut r1);
    assert_eq!(r1.raft_log.last_index(), 3);
    assert_eq!(r1.raft_log.committed, 2);

    // Node 2 starts empty, knowing the new membership; the leader brings it up to date.
    let r2 = new_test_raft(2, vec![1, 2], 10, 1);
    let mut nt = Network::new(vec![Some(r1), Some(r2)]);
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_eq!(nt.peer(1).raft_log.committed, 3);
    assert_eq!(nt.peer(2).raft_log.committed, 3);
    assert_eq!(nt.peer(2).raft_log.last_index(), 3);
}

#[test]
fn adding_a_learner_creates_learner_progress() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    let cs = r.apply_conf_change(&cc(ConfChangeType::AddLearnerNode, 2));
    assert_eq!(cs.voters, vec![1]);
    assert_eq!(cs.learners, vec![2]);
    assert!(!r.prs.is_voter(2));
    assert!(r.prs.get(2).expect("progress of 2").is_learner);
}

#[test]
fn removing_a_node_drops_its_progress() {
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    let cs = r.apply_conf_change(&cc(ConfChangeType::RemoveNode, 2));
    assert_eq!(cs.voters, vec![1, 3]);
    assert!(r.prs.get(2).is_none());
    assert!(!r.prs.is_voter(2));
}

#[test]
fn removing_a_node_shrinks_quorum_and_commits_pending_entries() {
    let mut r = new_test_raft(1, vec![1, 2], 5, 1);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    r.step(append_ack(2, 1, 1, 1)).expect("ack");
    assert_eq!(next_ents(&mut r).len(), 1, "the no-op");

    let remove = cc(ConfChangeType::RemoveNode, 2);
    r.step(propose_cc(1, &remove)).expect("propose conf change");
    let cc_index = r.raft_log.last_index();
    // While the change is pending, another proposal.
    r.step(propose(1, b"hello")).expect("propose");
    assert!(next_ents(&mut r).is_empty(), "nothing commits without node 2");

    // Node 2 acknowledges the change (not the proposal after it).
    r.step(append_ack(2, 1, 1, cc_index)).expect("ack");
    let ents = next_ents(&mut r);
    assert_eq!(ents.len(), 1);
    let change = decode_cc(&ents[0]);
    assert_eq!(change, remove);

    // Applying it leaves a quorum of one: the pending proposal commits.
    r.apply_conf_change(&change);
    let ents = next_ents(&mut r);
    assert_eq!(ents.len(), 1, "{ents:?}");
    assert_eq!(ents[0].entry_type(), EntryType::EntryNormal);
    assert_eq!(ents[0].data.as_ref(), b"hello");
}

#[test]
fn leader_ignores_responses_from_removed_node() {
    let mut r = new_test_raft(1, vec![1, 2, 3], 10, 1);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    r.apply_conf_change(&cc(ConfChangeType::RemoveNode, 2));

    r.step(append_ack(2, 1, 1, 1)).expect("ack from removed node");
    assert_eq!(r.raft_log.committed, 0, "node 2 no longer counts");
    r.step(append_ack(3, 1, 1, 1)).expect("ack");
    assert_eq!(r.raft_log.committed, 1);
}

#[test]
fn leader_refuses_conf_change_before_committing_in_its_term() {
    let mut r = new_test_raft(1, vec![1, 2], 10, 1);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    let last = r.raft_log.last_index();

    let add = cc(ConfChangeType::AddNode, 3);
    let res = r.step(propose_cc(1, &add));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert_eq!(r.raft_log.last_index(), last, "the log is unchanged");

    r.step(append_ack(2, 1, 1, last)).expect("ack");
    assert_eq!(r.raft_log.committed, last);
    r.step(propose_cc(1, &add)).expect("accepted once the no-op committed");
}

#[test]
fn leader_refuses_second_conf_change_while_one_is_unapplied() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    r.step(hup(1)).expect("hup");
    next_ents(&mut r);

    r.step(propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 2))).expect("first change");
    persist(&mut r);
    let last = r.raft_log.last_index();
    assert_eq!(r.raft_log.committed, last, "committed, but not applied yet");

    let res = r.step(propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 3)));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert_eq!(r.raft_log.last_index(), last, "the log is unchanged");

    // Ordinary proposals are not held up.
    r.step(propose(1, b"x")).expect("normal proposal");
}

#[test]
fn leader_accepts_next_conf_change_once_previous_is_applied() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    r.step(hup(1)).expect("hup");
    next_ents(&mut r);

    r.step(propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 2))).expect("first change");
    let ents = next_ents(&mut r);
    assert_eq!(ents.len(), 1);
    r.apply_conf_change(&decode_cc(&ents[0]));

    r.step(propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 3))).expect("second change");
    let ents = next_ents(&mut r);
    assert_eq!(ents.len(), 1);
    let cs = r.apply_conf_change(&decode_cc(&ents[0]));
    assert_eq!(cs.learners, vec![2, 3]);
}

#[test]
fn leader_refuses_two_conf_changes_in_one_proposal() {
    let mut r = new_test_raft(1, vec![1], 10, 1);
    r.step(hup(1)).expect("hup");
    next_ents(&mut r);
    let last = r.raft_log.last_index();

    let mut m = propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 2));
    m.entries.push(cc_entry(&cc(ConfChangeType::AddLearnerNode, 3)));
    let res = r.step(m);
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert_eq!(r.raft_log.last_index(), last);
}

#[test]
fn new_leader_refuses_conf_change_until_earlier_entries_are_applied() {
    // Entries of an earlier term, committed but not applied: one may be a membership
    // change the new leader cannot see yet.
    let mut store = storage_with_terms(vec![1, 2], &[1, 1, 1]);
    store.set_hard_state(hard_state(1, 3, 0));
    let mut r = new_test_raft_with_storage(1, 10, 1, store);
    r.become_candidate();
    r.become_leader();
    persist(&mut r);
    let noop = r.raft_log.last_index();
    r.step(append_ack(2, 1, 2, noop)).expect("ack");
    assert_eq!(r.raft_log.committed, noop);

    let add = cc(ConfChangeType::AddNode, 3);
    let res = r.step(propose_cc(1, &add));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");

    assert_eq!(next_ents(&mut r).len(), 4);
    r.step(propose_cc(1, &add)).expect("accepted once everything is applied");
}

#[test]
fn raw_node_applies_conf_change_and_returns_conf_state() {
    let store = MemStorage::new_with_conf_state(vec![1], vec![]);
    let config = Config { election_tick: 10, heartbeat_tick: 1, ..Config::new(1) };
    let mut node = RawNode::new(&config, store).expect("raw node");
    node.campaign().expect("campaign");
    while node.has_ready() {
        handle_ready(&mut node);
    }
    assert_eq!(node.status().ss.raft_state, StateRole::Leader);

    node.propose_conf_change(&cc(ConfChangeType::AddNode, 2)).expect("propose conf change");
    let mut applied = None;
    while node.has_ready() {
        if let (_, Some(cs)) = handle_ready(&mut node) {
            applied = Some(cs);
        }
    }
    let cs = applied.expect("the change committed and was applied");
    assert_eq!(cs.voters, vec![1, 2]);
    assert!(cs.learners.is_empty());
    let progress = node.status().progress.expect("leader progress");
    assert!(progress.contains_key(&2));

    // Node 2 is now needed for a commit.
    let committed = node.raft().raft_log.committed;
    node.propose(&b"x"[..]).expect("propose");
    while node.has_ready() {
        handle_ready(&mut node);
    }
    assert_eq!(node.raft().raft_log.committed, committed);
}

#[test]
fn learner_receives_entries_but_does_not_count_for_commit() {
    let mut nt = learner_network();
    nt.send(vec![hup(1)]);
    nt.send(vec![propose(1, b"x")]);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).raft_log.committed, 2, "node {id}");
    }

    // With the other voter unreachable, the learner's copy does not make a quorum.
    nt.cut(1, 2);
    nt.send(vec![propose(1, b"y")]);
    assert_eq!(nt.peer(3).raft_log.last_index(), 3, "the learner has the entry");
    assert_eq!(nt.peer(1).prs.get(3).expect("progress of 3").matched, 3);
    assert_eq!(nt.peer(1).raft_log.committed, 2);
}

#[test]
fn learner_does_not_campaign() {
    let mut nt = learner_network();
    nt.tick_peer(3, 100);
    nt.send(vec![hup(3)]);
    assert_role(nt.peer(3), StateRole::Follower);
    assert_eq!(nt.peer(3).term, 0);
    assert!(read_messages(nt.peer_mut(3)).is_empty());
}

#[test]
fn candidate_does_not_ask_learners_for_votes() {
    let store = MemStorage::new_with_conf_state(vec![1, 2], vec![3]);
    let mut r = new_test_raft_with_storage(1, 10, 1, store);
    r.step(hup(1)).expect("hup");
    let msgs = read_messages(&mut r);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgRequestVote);
    assert_eq!(msgs[0].to, 2);
}

#[test]
fn promoted_learner_can_campaign_and_lead() {
    let peers = (1..=2)
        .map(|id| {
            let store = MemStorage::new_with_conf_state(vec![1], vec![2]);
            Some(new_test_raft_with_storage(id, 10, 1, store))
        })
        .collect();
    let mut nt = Network::new(peers);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    nt.send(vec![msg(1, 1, MessageType::MsgBeat)]);
    assert_eq!(nt.peer(2).raft_log.committed, 1, "the learner follows the log");

    let promote = cc(ConfChangeType::AddNode, 2);
    for id in 1..=2 {
        let cs = nt.peer_mut(id).apply_conf_change(&promote);
        assert_eq!(cs.voters, vec![1, 2]);
        assert!(cs.learners.is_empty());
    }
    assert!(nt.peer(2).promotable());
    assert!(!nt.peer(1).prs.get(2).expect("progress of 2").is_learner);

    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_role(nt.peer(1), StateRole::Follower);
}

#[test]
fn removed_leader_steps_down_and_rest_elect_new_leader() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    let remove = cc(ConfChangeType::RemoveNode, 1);
    for id in 1..=3 {
        nt.peer_mut(id).apply_conf_change(&remove);
    }
    assert_role(nt.peer(1), StateRole::Follower);
    assert!(!nt.peer(1).promotable());

    // Node 1 no longer campaigns; nodes 2 and 3 form the group.
    nt.tick_peer(1, 100);
    assert_role(nt.peer(1), StateRole::Follower);
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
    assert_eq!(nt.peer(2).term, 2);
    nt.send(vec![propose(2, b"x")]);
    assert_eq!(nt.peer(3).raft_log.committed, nt.peer(2).raft_log.last_index());
}

#[test]
fn node_with_unapplied_committed_conf_change_does_not_campaign() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    nt.send(vec![propose_cc(1, &cc(ConfChangeType::AddLearnerNode, 4))]);
    let cc_index = nt.peer(1).raft_log.last_index();
    assert_eq!(nt.peer(2).raft_log.committed, cc_index);
    assert!(nt.peer(2).raft_log.applied < cc_index);

    // Node 2 cannot know the group it would lead until it applied the change.
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_eq!(nt.peer(2).term, 1);
    nt.tick_peer(2, 100);
    assert_role(nt.peer(2), StateRole::Follower);
    assert_eq!(nt.peer(2).term, 1);

    let ents = next_ents(nt.peer_mut(2));
    assert_eq!(ents.last().map(|e| e.index), Some(cc_index));
    nt.send(vec![hup(2)]);
    assert_role(nt.peer(2), StateRole::Leader);
}
