//! Leadership transfer (thesis §3.10): the leader brings the transferee up to date, then
//! sends it TimeoutNow so it campaigns at once; proposals wait while the transfer runs.

use raftkv_proto::eraftpb::{ConfChange, ConfChangeType, Message, MessageType};

use super::harness::*;
use crate::{CAMPAIGN_TRANSFER, Error, MemStorage, Raft, StateRole};

/// A request, stepped on `to`, to make `transferee` the leader.
fn transfer(transferee: u64, to: u64) -> Message {
    msg(transferee, to, MessageType::MsgTransferLeader)
}

fn elected_network(n: usize) -> Network {
    let mut nt = Network::new((0..n).map(|_| None).collect());
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    nt
}

fn assert_leader_without_transfer(r: &Raft<MemStorage>) {
    assert_role(r, StateRole::Leader);
    assert_eq!(r.lead_transferee, None, "node {}", r.id);
}

fn assert_led_by(nt: &Network, leader: u64) {
    assert_leader_without_transfer(nt.peer(leader));
    for (&id, p) in &nt.peers {
        if let Some(p) = p
            && id != leader
        {
            assert_role(p, StateRole::Follower);
            assert_eq!(p.leader_id, leader, "node {id}");
        }
    }
}

#[test]
fn transfer_to_up_to_date_follower_completes() {
    let mut nt = elected_network(3);
    nt.send(vec![transfer(2, 1)]);
    assert_led_by(&nt, 2);
    assert_eq!(nt.peer(2).term, 2);
    assert_eq!(nt.peer(1).term, 2);

    // The new leader serves writes.
    nt.send(vec![propose(2, b"x")]);
    assert_eq!(nt.peer(1).raft_log.committed, nt.peer(2).raft_log.last_index());
}

#[test]
fn leader_sends_timeout_now_to_caught_up_transferee() {
    let mut nt = elected_network(3);
    let r1 = nt.peer_mut(1);
    r1.step(transfer(2, 1)).expect("transfer");
    assert_eq!(r1.lead_transferee, Some(2));
    let msgs = read_messages(r1);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].msg_type(), MessageType::MsgTimeoutNow);
    assert_eq!(msgs[0].to, 2);
}

#[test]
fn transfer_to_slow_follower_first_catches_it_up() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![propose(1, b"x")]);
    nt.recover();
    assert_eq!(nt.peer(1).prs.get(3).expect("progress of 3").matched, 1);

    // Not up to date: the leader replicates first, no TimeoutNow yet.
    let out = {
        let r1 = nt.peer_mut(1);
        r1.step(transfer(3, 1)).expect("transfer");
        assert_eq!(r1.lead_transferee, Some(3));
        read_messages(r1)
    };
    assert!(out.iter().all(|m| m.msg_type() == MessageType::MsgAppend), "{out:?}");

    nt.send(out);
    assert_led_by(&nt, 3);
    assert_eq!(nt.peer(3).term, 2);
}

#[test]
fn transfer_to_self_is_ignored() {
    let mut nt = elected_network(3);
    nt.send(vec![transfer(1, 1)]);
    assert_led_by(&nt, 1);
    assert_eq!(nt.peer(1).term, 1);
    nt.peer_mut(1).step(propose(1, b"x")).expect("proposals still accepted");
}

#[test]
fn transfer_to_unknown_node_is_ignored() {
    let mut nt = elected_network(3);
    nt.send(vec![transfer(4, 1)]);
    assert_led_by(&nt, 1);
    nt.peer_mut(1).step(propose(1, b"x")).expect("proposals still accepted");
}

#[test]
fn proposals_are_refused_while_transfer_runs() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![transfer(3, 1)]);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));

    let last = nt.peer(1).raft_log.last_index();
    let res = nt.peer_mut(1).step(propose(1, b"x"));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert_eq!(nt.peer(1).raft_log.last_index(), last, "the log is unchanged");
}

#[test]
fn transfer_aborts_after_election_timeout() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![transfer(3, 1)]);
    let timeout = nt.peer(1).election_timeout;

    let r1 = nt.peer_mut(1);
    for _ in 0..timeout - 1 {
        r1.tick();
    }
    assert_eq!(r1.lead_transferee, Some(3), "still within the election timeout");
    r1.tick();
    assert_leader_without_transfer(r1);
    r1.step(propose(1, b"x")).expect("proposals accepted again");
}

#[test]
fn second_transfer_to_same_node_does_not_extend_timeout() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![transfer(3, 1)]);
    let (timeout, heartbeat) = (nt.peer(1).election_timeout, nt.peer(1).heartbeat_timeout);
    for _ in 0..heartbeat {
        nt.peer_mut(1).tick();
    }

    nt.send(vec![transfer(3, 1)]);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));
    for _ in 0..timeout - heartbeat {
        nt.peer_mut(1).tick();
    }
    assert_leader_without_transfer(nt.peer(1));
}

#[test]
fn transfer_to_another_node_replaces_running_one() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![transfer(3, 1)]);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));

    nt.send(vec![transfer(2, 1)]);
    assert_leader_without_transfer(nt.peer(2));
    assert_eq!(nt.peer(2).term, 2);
    assert_role(nt.peer(1), StateRole::Follower);
    assert_eq!(nt.peer(1).leader_id, 2);
}

#[test]
fn transfer_back_to_leader_cancels_running_transfer() {
    let mut nt = elected_network(3);
    nt.isolate(3);
    nt.send(vec![transfer(3, 1)]);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));

    nt.send(vec![transfer(1, 1)]);
    assert_leader_without_transfer(nt.peer(1));
    nt.peer_mut(1).step(propose(1, b"x")).expect("proposals accepted again");
}

#[test]
fn transfer_to_learner_is_ignored() {
    let peers = (1..=3)
        .map(|id| {
            let store = MemStorage::new_with_conf_state(vec![1, 2], vec![3]);
            Some(new_test_raft_with_storage(id, 10, 1, store))
        })
        .collect();
    let mut nt = Network::new(peers);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);

    nt.send(vec![transfer(3, 1)]);
    assert_leader_without_transfer(nt.peer(1));
    assert_eq!(nt.peer(1).term, 1);
    assert_role(nt.peer(3), StateRole::Follower);
}

#[test]
fn timeout_now_to_learner_is_ignored() {
    let store = MemStorage::new_with_conf_state(vec![1, 2], vec![3]);
    let mut r = new_test_raft_with_storage(3, 10, 1, store);
    r.become_follower(1, 1);
    r.step(msg_with_term(1, 3, MessageType::MsgTimeoutNow, 1)).expect("timeout now");
    assert_role(&r, StateRole::Follower);
    assert_eq!(r.term, 1);
    assert!(read_messages(&mut r).is_empty());
}

#[test]
fn removing_transferee_aborts_transfer() {
    let mut nt = elected_network(3);
    nt.ignore(MessageType::MsgTimeoutNow);
    nt.send(vec![transfer(3, 1)]);
    assert_eq!(nt.peer(1).lead_transferee, Some(3));

    let cc = ConfChange {
        change_type: ConfChangeType::RemoveNode as i32,
        node_id: 3,
        ..Default::default()
    };
    nt.peer_mut(1).apply_conf_change(&cc);
    assert_leader_without_transfer(nt.peer(1));
}

#[test]
fn follower_forwards_transfer_request_to_leader() {
    let mut nt = elected_network(3);
    // Node 2 asks, through itself, to become the leader.
    nt.send(vec![transfer(2, 2)]);
    assert_led_by(&nt, 2);

    // A follower can also ask on behalf of another node.
    nt.send(vec![transfer(3, 1)]);
    assert_led_by(&nt, 3);
}

#[test]
fn follower_without_leader_refuses_transfer() {
    let mut r = new_test_raft(2, vec![1, 2, 3], 10, 1);
    let res = r.step(transfer(2, 2));
    assert!(matches!(res, Err(Error::ProposalDropped)), "{res:?}");
    assert!(read_messages(&mut r).is_empty());
}

#[test]
fn transferee_campaigns_at_once_with_transfer_context() {
    // Even with PreVote on, a transferee skips the pre-vote: the leader asked it to run.
    let mut nt = Network::new_with_config(
        vec![None, None, None],
        NetworkConfig { pre_vote: true, check_quorum: true },
    );
    nt.send(vec![hup(1)]);
    let r2 = nt.peer_mut(2);
    r2.step(msg_with_term(1, 2, MessageType::MsgTimeoutNow, 1)).expect("timeout now");
    assert_role(r2, StateRole::Candidate);
    assert_eq!(r2.term, 2);
    let votes = read_messages(r2);
    assert_eq!(votes.len(), 2, "{votes:?}");
    for m in &votes {
        assert_eq!(m.msg_type(), MessageType::MsgRequestVote);
        assert_eq!(m.term, 2);
        assert_eq!(m.context.as_ref(), CAMPAIGN_TRANSFER);
    }
}

#[test]
fn followers_in_lease_vote_for_transferee() {
    let mut nt = Network::new_with_config(
        vec![None, None, None],
        NetworkConfig { pre_vote: false, check_quorum: true },
    );
    nt.send(vec![hup(1)]);
    // Every node heard from the leader just now: an ordinary campaign would be ignored.
    nt.send(vec![transfer(3, 1)]);
    assert_led_by(&nt, 3);
    assert_eq!(nt.peer(2).vote, 3);
}

#[test]
fn leadership_can_be_handed_back() {
    let mut nt = elected_network(3);
    nt.send(vec![transfer(2, 1)]);
    assert_led_by(&nt, 2);
    assert_eq!(nt.peer(1).lead_transferee, None, "the old leader keeps no transfer state");

    nt.send(vec![transfer(1, 2)]);
    assert_led_by(&nt, 1);
    assert_eq!(nt.peer(1).term, 3);
}
