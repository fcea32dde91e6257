//! Messages in flight between nodes, and the faults the scheduler injects into them.

use raft::eraftpb::Message;
use rand::RngExt;
use rand::rngs::StdRng;

struct InFlight {
    msg: Message,
    deliver_at: u64,
}

#[derive(Default)]
pub struct Network {
    in_flight: Vec<InFlight>,
    /// `group[id]`: nodes talk only within their group; `None` when healed.
    groups: Option<Vec<u8>>,
    /// Logical time, advanced by ticks; a delayed message waits for it.
    pub now: u64,
}

impl Network {
    /// Queues a message, delaying some of them by a few ticks.
    pub fn push(&mut self, msg: Message, rng: &mut StdRng) {
        let delay = if rng.random_bool(0.1) { rng.random_range(1..5) } else { 0 };
        self.in_flight.push(InFlight { msg, deliver_at: self.now + delay });
    }

    /// Takes a random deliverable message: delivery order is a random permutation.
    pub fn take_random(&mut self, rng: &mut StdRng) -> Option<Message> {
        let ready: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].deliver_at <= self.now)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let i = ready[rng.random_range(0..ready.len())];
        Some(self.in_flight.swap_remove(i).msg)
    }

    /// Takes every message in order of sending, ignoring delays (the healed final phase).
    pub fn take_all(&mut self) -> Vec<Message> {
        self.in_flight.drain(..).map(|f| f.msg).collect()
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn connected(&self, a: u64, b: u64) -> bool {
        match &self.groups {
            None => true,
            Some(g) => g[a as usize] == g[b as usize],
        }
    }

    /// Splits nodes `1..=n` into random groups (at least two).
    pub fn partition(&mut self, n: u64, rng: &mut StdRng) {
        let groups = rng.random_range(2..=3u8);
        let mut g = vec![0u8; n as usize + 1];
        for slot in g.iter_mut().skip(1) {
            *slot = rng.random_range(0..groups);
        }
        self.groups = Some(g);
    }

    pub fn heal(&mut self) {
        self.groups = None;
    }
}
