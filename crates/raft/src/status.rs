//! A point-in-time view of a node, for operators and tests.

use std::collections::BTreeMap;

use raftkv_proto::eraftpb::HardState;

use crate::raft::{Raft, SoftState, StateRole};
use crate::storage::Storage;
use crate::tracker::ProgressState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerProgress {
    pub matched: u64,
    pub next_idx: u64,
    pub state: ProgressState,
    /// In `Snapshot` state: the index of the snapshot being sent.
    pub pending_snapshot: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub id: u64,
    pub hs: HardState,
    pub ss: SoftState,
    pub applied: u64,
    pub is_learner: bool,
    /// Each member's replication progress; only on a leader.
    pub progress: Option<BTreeMap<u64, PeerProgress>>,
}

impl Status {
    pub(crate) fn new<S: Storage>(r: &Raft<S>) -> Self {
        let progress = (r.state() == StateRole::Leader).then(|| {
            r.prs()
                .iter()
                .map(|(&id, p)| {
                    let progress = PeerProgress {
                        matched: p.matched,
                        next_idx: p.next_idx,
                        state: p.state,
                        pending_snapshot: p.pending_snapshot,
                    };
                    (id, progress)
                })
                .collect()
        });
        Status {
            id: r.id(),
            hs: r.hard_state(),
            ss: r.soft_state(),
            applied: r.raft_log().applied(),
            is_learner: r.is_learner(),
            progress,
        }
    }

    /// The role as operators name it: leader, follower, candidate, pre-candidate, learner.
    pub fn role_name(&self) -> &'static str {
        match self.ss.raft_state {
            StateRole::Leader => "leader",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre-candidate",
            StateRole::Follower if self.is_learner => "learner",
            StateRole::Follower => "follower",
        }
    }
}
