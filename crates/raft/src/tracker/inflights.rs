//! The flow-control window of one follower: the last index and size of each append in
//! flight, bounded in count and in bytes.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Inflights {
    /// (last index, bytes of entries) per append in flight.
    last_indexes: VecDeque<(u64, u64)>,
    cap: usize,
    bytes: u64,
    max_bytes: u64,
}

impl Inflights {
    pub fn new(cap: usize) -> Self {
        Inflights::with_max_bytes(cap, u64::MAX)
    }

    /// A window that is also full once `max_bytes` of entries are in flight (one append
    /// always fits, however large).
    pub fn with_max_bytes(cap: usize, max_bytes: u64) -> Self {
        Inflights { last_indexes: VecDeque::with_capacity(cap.min(1024)), cap, bytes: 0, max_bytes }
    }

    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.cap || self.bytes >= self.max_bytes
    }

    /// Bytes of entries in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn count(&self) -> usize {
        self.last_indexes.len()
    }

    /// Records an append of `bytes` whose last entry is `last`; indexes are added in
    /// increasing order.
    pub fn add(&mut self, last: u64, bytes: u64) {
        debug_assert!(!self.full(), "inflights window overflow");
        debug_assert!(self.last_indexes.back().is_none_or(|&(b, _)| b < last));
        self.last_indexes.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every append whose last index is `<= to` (acknowledged).
    pub fn free_to(&mut self, to: u64) {
        while self.last_indexes.front().is_some_and(|&(i, _)| i <= to) {
            self.free_first_one();
        }
    }

    /// Frees the oldest slot: a heartbeat response proves the follower is alive, so one more
    /// append may go even though acknowledgements were lost.
    pub fn free_first_one(&mut self) {
        if let Some((_, bytes)) = self.last_indexes.pop_front() {
            self.bytes -= bytes;
        }
    }

    pub fn reset(&mut self) {
        self.last_indexes.clear();
        self.bytes = 0;
    }
}
