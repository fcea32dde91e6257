//! SPEC: malformed or foreign raft messages (wrong cluster id, unknown store, missing
//! message, a known store with a new incarnation) get a clear error and change nothing.
//! Each carries a huge term: had a store acted on it, the cluster's term would jump and its
//! leader would step down.

use raftkv_proto::eraftpb::{Message, MessageType};
use raftkv_proto::metapb::Peer;
use raftkv_proto::raft_serverpb::RaftMessage;
use raftstore::cluster_id_from_token;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::harness::{Cluster, DEADLINE, TOKEN, eventually};

fn message(cluster_id: u64, from: u64, to: u64, with_body: bool) -> RaftMessage {
    let body = Message {
        msg_type: MessageType::MsgRequestVote as i32,
        from,
        to,
        term: 1000,
        log_term: 1000,
        index: 1000,
        ..Default::default()
    };
    RaftMessage {
        region_id: 1,
        from_peer: Some(Peer { id: from, store_id: from }),
        to_peer: Some(Peer { id: to, store_id: to }),
        message: with_body.then_some(body),
        cluster_id,
        // Some incarnation: the checks before the incarnation's must refuse these first.
        from_incarnation: 1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_raft_stream_ends_it_and_changes_nothing() {
    let mut cluster = Cluster::start(3).await;
    cluster.put("", b"k", b"v").await;
    // The leader records each member's incarnation once it hears from it; a second write
    // commits after those records, and once everyone applied it they know them all.
    cluster.put("", b"k2", b"v2").await;
    let (leader, term) = cluster.await_leader().await;
    let commit = cluster.status(leader).await.expect("leader status").commit;
    for id in cluster.running() {
        eventually("every store applied the incarnation records", || {
            let cluster = &cluster;
            async move { (cluster.status(id).await?.applied >= commit).then_some(()) }
        })
        .await;
    }
    let follower = cluster.running().into_iter().find(|&id| id != leader).expect("a follower");
    let cluster_id = cluster_id_from_token(TOKEN);

    for target in [follower, leader] {
        let member = if target == leader { follower } else { leader };
        let mut reborn = message(cluster_id, member, target, true);
        reborn.from_incarnation = 12345;
        let cases = [
            (message(cluster_id ^ 1, member, target, true), Code::FailedPrecondition, "cluster"),
            (message(cluster_id, 99, target, true), Code::FailedPrecondition, "store 99"),
            (message(cluster_id, member, target, false), Code::InvalidArgument, "missing"),
            (reborn, Code::FailedPrecondition, "new incarnation"),
        ];
        for (msg, code, why) in cases {
            let (tx, rx) = mpsc::channel(1);
            tx.send(msg).await.expect("queue the message");
            // Our side stays open (`tx` lives on): the store must end the stream itself.
            let mut client = cluster.client(target).await;
            let call = client.raft(ReceiverStream::new(rx));
            let status = tokio::time::timeout(DEADLINE, call)
                .await
                .expect("the store ends a stream carrying garbage")
                .expect_err("garbage is refused");
            assert_eq!(status.code(), code, "{why}: {status:?}");
            assert!(status.message().contains(why), "{why}: {}", status.message());
            drop(tx);
        }
    }

    // Nothing changed: same leader, same term everywhere, and the data is intact.
    assert_eq!(cluster.await_leader().await, (leader, term));
    for id in cluster.running() {
        let s = cluster.status(id).await.expect("status");
        assert!(s.term < 1000, "store {id} acted on a foreign message: {s:?}");
    }
    assert_eq!(cluster.get("", b"k").await.as_deref(), Some(&b"v"[..]));
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_stream_is_not_implemented_yet() {
    let mut cluster = Cluster::start(1).await;
    let (_tx, rx) = mpsc::channel(1);
    let status = cluster
        .client(1)
        .await
        .snapshot(ReceiverStream::new(rx))
        .await
        .expect_err("part C brings snapshots");
    assert_eq!(status.code(), Code::Unimplemented);
    cluster.stop_all().await;
}
