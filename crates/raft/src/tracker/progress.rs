//! What a leader knows of one follower's log, and how it sends to it.
//!
//! - Probe: the leader does not know where the logs match; one append per round trip.
//! - Replicate: the logs match up to `matched`; appends stream optimistically, bounded by
//!   the inflight window.
//! - Snapshot: a snapshot is on its way; nothing else is sent until it is reported.

use super::inflights::Inflights;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

#[derive(Debug, Clone)]
pub struct Progress {
    /// The highest index known to be durable in the follower's log and equal to ours.
    pub matched: u64,
    /// The next index to send.
    pub next_idx: u64,
    pub state: ProgressState,
    /// In Probe: an append was sent and no answer came yet.
    pub probe_sent: bool,
    /// In Snapshot: the index of the snapshot being sent.
    pub pending_snapshot: u64,
    /// Heard from since the last quorum check (CheckQuorum).
    pub recent_active: bool,
    pub is_learner: bool,
    pub ins: Inflights,
}

impl Progress {
    pub fn new(next_idx: u64, ins_size: usize) -> Self {
        Progress {
            matched: 0,
            next_idx,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recent_active: false,
            is_learner: false,
            ins: Inflights::new(ins_size),
        }
    }

    /// Forgets everything learned under an earlier leader: a new term starts probing.
    pub fn reset(&mut self, next_idx: u64) {
        self.reset_state(ProgressState::Probe);
        self.matched = 0;
        self.next_idx = next_idx;
        self.recent_active = false;
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.state = state;
        self.ins.reset();
    }

    pub fn become_probe(&mut self) {
        // After a snapshot, resume from past it even if the follower's reply was lost.
        if self.state == ProgressState::Snapshot {
            let pending = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next_idx = (self.matched + 1).max(pending + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next_idx = self.matched + 1;
        }
    }

    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_idx = self.matched + 1;
    }

    pub fn become_snapshot(&mut self, snapshot_index: u64) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// An acknowledgement up to `n` arrived; returns whether `matched` moved.
    pub fn maybe_update(&mut self, n: u64) -> bool {
        let updated = self.matched < n;
        if updated {
            self.matched = n;
            self.probe_sent = false;
        }
        self.next_idx = self.next_idx.max(n + 1);
        updated
    }

    /// An append of `bytes` up to `last` was sent: in Replicate, the next one may follow
    /// immediately.
    pub fn sent_entries(&mut self, last: u64, bytes: u64) {
        match self.state {
            ProgressState::Replicate => {
                self.next_idx = last + 1;
                self.ins.add(last, bytes);
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// A rejection of the append at `rejected` arrived, hinting the logs may match at
    /// `match_hint`. Returns false if the rejection is stale (answers an older append).
    pub fn maybe_decr_to(&mut self, rejected: u64, match_hint: u64) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next_idx = self.matched + 1;
            return true;
        }
        if self.next_idx == 0 || self.next_idx - 1 != rejected {
            return false;
        }
        self.next_idx = rejected.min(match_hint + 1).max(self.matched + 1).max(1);
        self.probe_sent = false;
        true
    }

    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.ins.full(),
            ProgressState::Snapshot => true,
        }
    }

    pub fn resume(&mut self) {
        self.probe_sent = false;
    }
}
