//! Single-step membership change, applied by the application once the entry committed.

use raftkv_proto::eraftpb::{ConfChange, ConfChangeType, ConfState};

use super::{Raft, StateRole};
use crate::config::INVALID_ID;
use crate::storage::Storage;

impl<S: Storage> Raft<S> {
    /// Applies a committed membership change and returns the new membership.
    pub fn apply_conf_change(&mut self, cc: &ConfChange) -> ConfState {
        let next = self.raft_log.last_index() + 1;
        match cc.change_type() {
            ConfChangeType::AddNode => self.prs.add_voter(cc.node_id, next),
            ConfChangeType::AddLearnerNode => self.prs.add_learner(cc.node_id, next),
            ConfChangeType::RemoveNode => self.remove_node(cc.node_id),
        }
        self.prs.conf_state()
    }

    fn remove_node(&mut self, id: u64) {
        self.prs.remove(id);
        if self.state != StateRole::Leader || self.prs.voter_count() == 0 {
            return;
        }
        if id == self.id {
            // A leader removed from the group stops leading; the rest elect a new one.
            let term = self.term;
            self.become_follower(term, INVALID_ID);
            return;
        }
        if self.lead_transferee == Some(id) {
            self.lead_transferee = None;
        }
        // The quorum shrank: entries may have committed.
        if self.maybe_commit() {
            self.bcast_commit();
        }
    }
}
