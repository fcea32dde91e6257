//! The leader's book of the group: membership, each member's progress, and election votes.

mod inflights;
mod progress;

use std::collections::{BTreeMap, BTreeSet};

use raftkv_proto::eraftpb::ConfState;

pub use inflights::Inflights;
pub use progress::{Progress, ProgressState};

use crate::quorum::{self, VoteResult};

/// Membership plus per-member progress. Maps are ordered so that iteration, and therefore
/// the order of outgoing messages, is deterministic.
#[derive(Debug, Clone)]
pub struct ProgressTracker {
    progress: BTreeMap<u64, Progress>,
    voters: BTreeSet<u64>,
    learners: BTreeSet<u64>,
    votes: BTreeMap<u64, bool>,
    max_inflight: usize,
    max_inflight_bytes: u64,
    scratch: Vec<u64>,
}

impl ProgressTracker {
    pub fn new(max_inflight: usize, max_inflight_bytes: u64) -> Self {
        ProgressTracker {
            progress: BTreeMap::new(),
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            votes: BTreeMap::new(),
            max_inflight,
            max_inflight_bytes,
            scratch: Vec::new(),
        }
    }

    fn new_progress(&self, next_idx: u64) -> Progress {
        let mut pr = Progress::new(next_idx, self.max_inflight);
        pr.ins = Inflights::with_max_bytes(self.max_inflight, self.max_inflight_bytes);
        pr
    }

    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
        }
    }

    /// Replaces the membership (restart, snapshot); every progress starts over at `next_idx`.
    pub fn restore(&mut self, cs: &ConfState, next_idx: u64) {
        self.progress.clear();
        self.voters.clear();
        self.learners.clear();
        for &id in &cs.voters {
            self.add_voter(id, next_idx);
        }
        for &id in &cs.learners {
            self.add_learner(id, next_idx);
        }
    }

    pub fn add_voter(&mut self, id: u64, next_idx: u64) {
        self.learners.remove(&id);
        self.voters.insert(id);
        let fresh = self.new_progress(next_idx);
        let pr = self.progress.entry(id).or_insert(fresh);
        pr.is_learner = false;
        // A new member counts as active, or CheckQuorum could depose the leader at once.
        pr.recent_active = true;
    }

    pub fn add_learner(&mut self, id: u64, next_idx: u64) {
        if self.voters.contains(&id) {
            return;
        }
        self.learners.insert(id);
        let mut pr = self.new_progress(next_idx);
        pr.is_learner = true;
        pr.recent_active = true;
        self.progress.entry(id).or_insert(pr);
    }

    pub fn remove(&mut self, id: u64) {
        self.voters.remove(&id);
        self.learners.remove(&id);
        self.progress.remove(&id);
        self.votes.remove(&id);
    }

    pub fn is_voter(&self, id: u64) -> bool {
        self.voters.contains(&id)
    }

    pub fn voters(&self) -> &BTreeSet<u64> {
        &self.voters
    }

    pub fn voter_count(&self) -> usize {
        self.voters.len()
    }

    pub fn get(&self, id: u64) -> Option<&Progress> {
        self.progress.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Progress> {
        self.progress.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &Progress)> {
        self.progress.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut Progress)> {
        self.progress.iter_mut()
    }

    /// Ids of every member but `except`, in order.
    pub fn peer_ids(&self, except: u64) -> Vec<u64> {
        self.progress.keys().copied().filter(|&id| id != except).collect()
    }

    /// The highest index durable on a majority of voters.
    pub fn committed_index(&mut self) -> u64 {
        let progress = &self.progress;
        let matched = self.voters.iter().map(|id| progress.get(id).map_or(0, |p| p.matched));
        quorum::committed_index(matched, &mut self.scratch)
    }

    pub fn reset_votes(&mut self) {
        self.votes.clear();
    }

    /// Records `id`'s vote (only its first one counts) and returns the election's state.
    pub fn record_vote(&mut self, id: u64, granted: bool) -> VoteResult {
        self.votes.entry(id).or_insert(granted);
        self.vote_result()
    }

    pub fn vote_counts(&self) -> (usize, usize) {
        let mut granted = 0;
        let mut rejected = 0;
        for id in &self.voters {
            match self.votes.get(id) {
                Some(true) => granted += 1,
                Some(false) => rejected += 1,
                None => {}
            }
        }
        (granted, rejected)
    }

    pub fn vote_result(&self) -> VoteResult {
        let (granted, rejected) = self.vote_counts();
        quorum::vote_result(self.voters.len(), granted, rejected)
    }

    /// Whether a majority of voters was heard from since the last check (`self_id` always
    /// counts); clears the marks for the next period.
    pub fn quorum_recently_active(&mut self, self_id: u64) -> bool {
        let mut active = 0;
        for (&id, pr) in self.progress.iter_mut() {
            if id == self_id {
                pr.recent_active = true;
            }
            if pr.recent_active && self.voters.contains(&id) {
                active += 1;
            }
            if id != self_id {
                pr.recent_active = false;
            }
        }
        active >= quorum::majority(self.voters.len())
    }

    /// Whether the voters in `acks` form a majority.
    pub fn has_quorum(&self, acks: &BTreeSet<u64>) -> bool {
        let n = self.voters.iter().filter(|id| acks.contains(id)).count();
        n >= quorum::majority(self.voters.len())
    }
}
