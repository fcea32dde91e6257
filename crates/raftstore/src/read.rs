//! Linearizable reads by ReadIndex (thesis §6.4), batched: the reads that arrive while a
//! round is in flight wait for it to finish and then share the next round, i.e. one
//! heartbeat to the followers. A round that takes too long (a lost heartbeat) does not
//! hold the queue: a newer round confirms the older ones too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::msg::ReadCallback;

/// How long a round may be in flight before another one starts anyway.
const ROUND_PATIENCE: Duration = Duration::from_millis(20);

struct ReadBatch {
    ctx: Bytes,
    started: Instant,
    /// Set when the ReadIndex round answered: serve once applied reaches it.
    index: Option<u64>,
    callbacks: Vec<ReadCallback>,
}

#[derive(Default)]
pub struct ReadQueue {
    /// Reads that arrived in this loop and are not yet part of a round.
    waiting: Vec<ReadCallback>,
    batches: VecDeque<ReadBatch>,
    next_seq: u64,
}

impl ReadQueue {
    pub fn push(&mut self, cb: ReadCallback) {
        self.waiting.push(cb);
    }

    /// Whether a round should start now: reads are waiting and no recent round is still
    /// waiting for its quorum.
    pub fn should_start_round(&self) -> bool {
        self.next_round_at().is_some_and(|at| at <= Instant::now())
    }

    /// When the waiting reads may start their round (the raft loop must wake by then).
    pub fn next_round_at(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        let newest_unanswered = self.batches.iter().rev().find(|b| b.index.is_none());
        Some(newest_unanswered.map_or_else(Instant::now, |b| b.started + ROUND_PATIENCE))
    }

    /// Starts a round for the waiting reads; returns the context to pass to Raft.
    pub fn start_round(&mut self, store_id: u64) -> Bytes {
        self.next_seq += 1;
        let mut ctx = Vec::with_capacity(16);
        ctx.extend_from_slice(&store_id.to_be_bytes());
        ctx.extend_from_slice(&self.next_seq.to_be_bytes());
        let ctx = Bytes::from(ctx);
        let callbacks = std::mem::take(&mut self.waiting);
        let started = Instant::now();
        self.batches.push_back(ReadBatch { ctx: ctx.clone(), started, index: None, callbacks });
        ctx
    }

    /// The round with `ctx` may serve its reads once `index` is applied.
    pub fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        if let Some(b) = self.batches.iter_mut().find(|b| b.ctx.as_ref() == ctx) {
            b.index = Some(index);
        }
    }

    /// Removes and returns the callbacks of every round whose index is applied.
    pub fn take_ready(&mut self, applied: u64) -> Vec<ReadCallback> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.batches.len() {
            if self.batches[i].index.is_some_and(|idx| idx <= applied) {
                if let Some(b) = self.batches.remove(i) {
                    out.extend(b.callbacks);
                }
            } else {
                i += 1;
            }
        }
        out
    }

    /// Removes every pending read (the peer stopped leading): none of them happened.
    pub fn take_all(&mut self) -> Vec<ReadCallback> {
        let mut out = std::mem::take(&mut self.waiting);
        for b in self.batches.drain(..) {
            out.extend(b.callbacks);
        }
        out
    }

    /// Removes the reads of the round just started (Raft refused it).
    pub fn take_round(&mut self, ctx: &[u8]) -> Vec<ReadCallback> {
        match self.batches.iter().position(|b| b.ctx.as_ref() == ctx) {
            Some(i) => self.batches.remove(i).map(|b| b.callbacks).unwrap_or_default(),
            None => Vec::new(),
        }
    }
}
