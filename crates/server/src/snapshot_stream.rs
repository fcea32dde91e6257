//! Snapshots over the `Snapshot` client-streaming RPC, one stream (and connection) per
//! transfer, apart from the `Raft` lanes so a big snapshot never delays raft messages.
//!
//! raftstore owns the file, the checksum and the limits (`OutgoingSnapshot` /
//! `IncomingSnapshot`: bounded concurrent transfers, a shared bytes-per-second budget).
//! Their calls block on disk and on the rate limit, so they run on tokio's blocking pool,
//! and only a couple of chunks are in flight per transfer: a 1 GiB snapshot costs a few
//! MiB of memory on either side.

use raftkv_proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use raftstore::{IncomingSnapshot, SnapError, StoreHandle};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tonic::{Status, Streaming};

use crate::service::rejection_status;

/// Chunks read ahead of the network per transfer.
const CHUNKS_IN_FLIGHT: usize = 2;

/// Sends the snapshot `msg` announces to the peer at `endpoint`. Raft learns the outcome
/// either way (`OutgoingSnapshot::finish`, or its drop on any failure).
pub(crate) async fn send(
    store: StoreHandle,
    endpoint: Endpoint,
    msg: RaftMessage,
    max_message_bytes: usize,
) {
    let to = msg.to_peer.map_or(0, |p| p.store_id);
    let opened = tokio::task::spawn_blocking(move || store.outgoing_snapshot(msg)).await;
    let mut out = match opened {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return tracing::info!(to, "snapshot not sent: {e}"),
        Err(e) => return tracing::warn!(to, "snapshot send task failed: {e}"),
    };
    let key = out.key();
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let first = SnapshotChunk { message: Some(out.message().clone()), data: Default::default() };
    let reader = tokio::task::spawn_blocking(move || {
        if tx.blocking_send(first).is_err() {
            return (out, Err("the stream ended early".to_string()));
        }
        loop {
            match out.next_chunk() {
                Ok(Some(data)) => {
                    let chunk = SnapshotChunk { message: None, data: data.into() };
                    if tx.blocking_send(chunk).is_err() {
                        return (out, Err("the stream ended early".to_string()));
                    }
                }
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e.to_string())),
            }
        }
    });
    let sent = async {
        let channel = endpoint.connect().await.map_err(|e| format!("cannot connect: {e}"))?;
        let mut client = RaftKvClient::new(channel)
            .max_encoding_message_size(max_message_bytes)
            .max_decoding_message_size(max_message_bytes);
        client.snapshot(ReceiverStream::new(rx)).await.map_err(|s| s.message().to_string())
    }
    .await;
    let (out, read) = match reader.await {
        Ok(r) => r,
        Err(e) => return tracing::warn!(to, %key, "snapshot reader failed: {e}"),
    };
    match (sent, read) {
        (Ok(_), Ok(())) => {
            tracing::info!(to, %key, bytes = out.size_bytes(), "sent a snapshot");
            out.finish(true);
        }
        (Err(why), _) | (_, Err(why)) => {
            tracing::info!(to, %key, "snapshot transfer failed, Raft will retry: {why}");
            out.finish(false);
        }
    }
}

/// Receives one snapshot stream: the first chunk carries the MsgSnapshot, the rest the
/// file. The store gets the message only once the file is complete, verified and durable.
pub(crate) async fn receive(
    store: StoreHandle,
    mut stream: Streaming<SnapshotChunk>,
) -> Result<Done, Status> {
    let first =
        stream.message().await?.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
    let msg = first.message.ok_or_else(|| {
        Status::invalid_argument("the first snapshot chunk must carry the message")
    })?;
    let mut incoming = blocking(move || store.incoming_snapshot(msg)).await?;
    let mut data = first.data;
    loop {
        if !data.is_empty() {
            let chunk = std::mem::take(&mut data);
            incoming = blocking(move || incoming.write(&chunk).map(|()| incoming)).await?;
        }
        match stream.message().await? {
            Some(chunk) if chunk.message.is_some() => {
                return Err(Status::invalid_argument("only the first chunk carries a message"));
            }
            Some(chunk) => data = chunk.data,
            None => break,
        }
    }
    blocking(move || IncomingSnapshot::finish(incoming)).await?;
    Ok(Done {})
}

/// Runs a blocking snapshot step off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SnapError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| snap_status(&e)),
        Err(e) => Err(Status::internal(format!("snapshot task failed: {e}"))),
    }
}

fn snap_status(e: &SnapError) -> Status {
    match e {
        SnapError::Rejected(r) => rejection_status(r),
        SnapError::Busy(_) => Status::resource_exhausted(e.to_string()),
        SnapError::Malformed(_) => Status::invalid_argument(e.to_string()),
        SnapError::Gone(_) => Status::not_found(e.to_string()),
        SnapError::Transfer(_) => Status::data_loss(e.to_string()),
    }
}
