//! Pending ReadIndex requests on a leader (thesis §6.4): each waits for a quorum to
//! acknowledge a heartbeat that carried its context, proving leadership at its index.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bytes::Bytes;
use raftkv_proto::eraftpb::Message;

/// A ReadIndex answer: reads issued with `request_ctx` may be served once the state
/// machine has applied `index`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadState {
    pub index: u64,
    pub request_ctx: Bytes,
}

#[derive(Debug)]
pub struct ReadIndexStatus {
    pub req: Message,
    pub index: u64,
    pub acks: BTreeSet<u64>,
}

#[derive(Debug, Default)]
pub struct ReadOnly {
    pending: HashMap<Bytes, ReadIndexStatus>,
    queue: VecDeque<Bytes>,
}

impl ReadOnly {
    /// Queues a request at the current commit index; the leader acknowledges it itself.
    /// A duplicate context is ignored (the first request wins).
    pub fn add_request(&mut self, index: u64, req: Message, self_id: u64) {
        let ctx = req.context.clone();
        if self.pending.contains_key(&ctx) {
            return;
        }
        let acks = BTreeSet::from([self_id]);
        self.pending.insert(ctx.clone(), ReadIndexStatus { req, index, acks });
        self.queue.push_back(ctx);
    }

    /// Records `from`'s acknowledgement of the heartbeat that carried `ctx`.
    pub fn recv_ack(&mut self, from: u64, ctx: &[u8]) -> Option<&BTreeSet<u64>> {
        let status = self.pending.get_mut(ctx)?;
        status.acks.insert(from);
        Some(&status.acks)
    }

    /// Removes and returns every request up to and including `ctx`: a quorum acknowledged
    /// `ctx`, and the ones queued before it were issued earlier, so it confirms them too.
    pub fn advance(&mut self, ctx: &[u8]) -> Vec<ReadIndexStatus> {
        let Some(pos) = self.queue.iter().position(|c| c.as_ref() == ctx) else {
            return Vec::new();
        };
        self.queue.drain(..=pos).filter_map(|c| self.pending.remove(&c)).collect()
    }

    pub fn last_pending_ctx(&self) -> Option<Bytes> {
        self.queue.back().cloned()
    }
}
