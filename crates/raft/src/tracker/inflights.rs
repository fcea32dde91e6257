//! The flow-control window of one follower: the last index of each append in flight.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Inflights {
    last_indexes: VecDeque<u64>,
    cap: usize,
}

impl Inflights {
    pub fn new(cap: usize) -> Self {
        Inflights { last_indexes: VecDeque::with_capacity(cap.min(1024)), cap }
    }

    pub fn full(&self) -> bool {
        self.last_indexes.len() >= self.cap
    }

    pub fn count(&self) -> usize {
        self.last_indexes.len()
    }

    /// Records an append whose last entry is `last`; indexes are added in increasing order.
    pub fn add(&mut self, last: u64) {
        debug_assert!(!self.full(), "inflights window overflow");
        debug_assert!(self.last_indexes.back().is_none_or(|&b| b < last));
        self.last_indexes.push_back(last);
    }

    /// Frees every append whose last index is `<= to` (acknowledged).
    pub fn free_to(&mut self, to: u64) {
        while self.last_indexes.front().is_some_and(|&i| i <= to) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest slot: a heartbeat response proves the follower is alive, so one more
    /// append may go even though acknowledgements were lost.
    pub fn free_first_one(&mut self) {
        self.last_indexes.pop_front();
    }

    pub fn reset(&mut self) {
        self.last_indexes.clear();
    }
}
