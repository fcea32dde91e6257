//! SPEC: malformed or foreign raft messages (wrong cluster id, unknown store, missing
//! message, a known store with a new incarnation) get a clear error and change nothing.
//! Each carries a huge term: had a store acted on it, the cluster's term would jump and its
//! leader would step down.

use prost::Message as _;
use raftkv_proto::eraftpb::{Message, MessageType, Snapshot, SnapshotMetadata};
use raftkv_proto::metapb::{Peer, Region};
use raftkv_proto::raft_serverpb::{RaftMessage, RaftSnapshotData, SnapshotChunk, SnapshotMeta};
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

/// A MsgSnapshot whose announced file is what `data` holds.
fn snapshot_message(cluster_id: u64, from: u64, to: u64) -> RaftMessage {
    let data = RaftSnapshotData {
        region: Some(Region { id: 1, ..Default::default() }),
        meta: Some(SnapshotMeta { size_bytes: 4, crc32: 0, cfs: vec![] }),
        ..Default::default()
    };
    let snapshot = Snapshot {
        data: data.encode_to_vec().into(),
        metadata: Some(SnapshotMetadata { index: 1000, term: 1000, ..Default::default() }),
    };
    let mut msg = message(cluster_id, from, to, true);
    if let Some(m) = msg.message.as_mut() {
        m.msg_type = MessageType::MsgSnapshot as i32;
        m.snapshot = Some(Box::new(snapshot));
    }
    msg
}

async fn send_snapshot_stream(cluster: &Cluster, chunks: Vec<SnapshotChunk>) -> Code {
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for c in chunks {
        tx.send(c).await.expect("queue a chunk");
    }
    drop(tx);
    let result = cluster.client(1).await.snapshot(ReceiverStream::new(rx)).await;
    result.err().map_or(Code::Ok, |s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_foreign_snapshot_streams_are_refused() {
    let mut cluster = Cluster::start(3).await;
    cluster.put("", b"k", b"v").await;
    let (_, term) = cluster.await_leader().await;
    let cluster_id = cluster_id_from_token(TOKEN);
    let chunk = |message: Option<RaftMessage>, data: &[u8]| SnapshotChunk {
        message,
        data: data.to_vec().into(),
    };

    assert_eq!(send_snapshot_stream(&cluster, vec![]).await, Code::InvalidArgument, "empty");
    let headless = vec![chunk(None, b"data")];
    assert_eq!(send_snapshot_stream(&cluster, headless).await, Code::InvalidArgument);
    let foreign =
        vec![chunk(Some(snapshot_message(cluster_id ^ 1, 2, 1)), b""), chunk(None, b"1234")];
    assert_eq!(send_snapshot_stream(&cluster, foreign).await, Code::FailedPrecondition);
    let not_a_snapshot = vec![chunk(Some(message(cluster_id, 2, 1, true)), b"")];
    assert_ne!(send_snapshot_stream(&cluster, not_a_snapshot).await, Code::Ok);

    // A snapshot without its data, on the plain raft stream, is refused too.
    let (tx, rx) = mpsc::channel(1);
    tx.send(snapshot_message(cluster_id, 2, 1)).await.expect("queue");
    drop(tx);
    let raft = cluster.client(1).await.raft(ReceiverStream::new(rx)).await;
    assert_eq!(raft.err().map(|s| s.code()), Some(Code::InvalidArgument));

    let (_, term_after) = cluster.await_leader().await;
    assert_eq!(term_after, term, "nothing refused may have reached Raft");
    assert_eq!(cluster.get("", b"k").await.as_deref(), Some(&b"v"[..]));
    cluster.stop_all().await;
}
