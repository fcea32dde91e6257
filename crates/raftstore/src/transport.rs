//! How a store sends raft messages to other stores. The server implements it over gRPC;
//! tests implement it in memory with filters.

use raftkv_proto::raft_serverpb::RaftMessage;

pub trait Transport: Send + Sync + 'static {
    /// Queues a message; never blocks. A message that cannot be queued (peer down, queue
    /// full) is dropped and the store is told through `StoreHandle::report_unreachable`.
    fn send(&self, msg: RaftMessage);
    /// Called once per raft loop after its messages were queued: a chance to batch.
    fn flush(&self) {}
}
