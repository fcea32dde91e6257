//! A first end-to-end check that the harness and the core fit together.

use super::harness::*;
use crate::StateRole;
use raftkv_proto::eraftpb::MessageType;

#[test]
fn three_nodes_elect_and_commit() {
    let mut nt = Network::new(vec![None, None, None]);
    nt.send(vec![hup(1)]);
    assert_role(nt.peer(1), StateRole::Leader);
    assert_role(nt.peer(2), StateRole::Follower);
    nt.send(vec![propose(1, b"hello")]);
    for id in 1..=3 {
        assert_eq!(nt.peer(id).raft_log.committed, 2, "node {id}");
    }
    let _ = MessageType::MsgHup;
}
