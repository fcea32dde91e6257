//! The leader: replication, commit, heartbeats, ReadIndex and leadership transfer.

use bytes::Bytes;
use raftkv_proto::eraftpb::{Entry, EntryType, Message, MessageType};

use super::{Raft, StateRole, new_message};
use crate::config::INVALID_ID;
use crate::errors::{Error, Result, StorageError};
use crate::log_unstable::snapshot_index;
use crate::read_only::ReadState;
use crate::storage::Storage;
use crate::tracker::ProgressState;

impl<S: Storage> Raft<S> {
    pub fn become_leader(&mut self) {
        assert_ne!(self.state, StateRole::Follower, "a follower cannot become leader");
        let term = self.term;
        self.reset(term);
        self.leader_id = self.id;
        self.state = StateRole::Leader;
        let id = self.id;
        if let Some(pr) = self.prs.get_mut(id) {
            // Our own progress is never paused; it moves when our appends are persisted.
            pr.become_replicate();
            pr.matched = self.raft_log.persisted;
        }
        // Any membership change still in the log may be uncommitted: no new one until the
        // whole log up to here is applied.
        self.pending_conf_index = self.raft_log.last_index();
        // The no-op entry of this term lets us commit (and learn the commit index of) every
        // earlier entry (Raft §5.4.2, §8).
        self.append_entries(&mut [Entry::default()]);
    }

    pub(super) fn tick_heartbeat(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.election_timeout {
            self.election_elapsed = 0;
            if self.check_quorum && !self.prs.quorum_recently_active(self.id) {
                // We cannot tell whether a newer leader exists: stop serving as one.
                let term = self.term;
                self.become_follower(term, INVALID_ID);
                return;
            }
            // A transfer that did not finish within an election timeout is abandoned.
            self.lead_transferee = None;
        }
        if self.heartbeat_elapsed >= self.heartbeat_timeout {
            self.heartbeat_elapsed = 0;
            let ctx = self.read_only.last_pending_ctx();
            self.bcast_heartbeat(ctx);
        }
    }

    pub(super) fn step_leader(&mut self, m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgBeat => {
                let ctx = self.read_only.last_pending_ctx();
                self.bcast_heartbeat(ctx);
                return Ok(());
            }
            MessageType::MsgPropose => return self.handle_propose(m),
            MessageType::MsgReadIndex => {
                self.handle_read_index(m);
                return Ok(());
            }
            _ => {}
        }
        if self.prs.get(m.from).is_none() {
            return Ok(());
        }
        match m.msg_type() {
            MessageType::MsgAppendResponse => self.handle_append_response(&m),
            MessageType::MsgHeartbeatResponse => self.handle_heartbeat_response(&m),
            MessageType::MsgTransferLeader => self.handle_transfer_leader(m.from),
            _ => {}
        }
        Ok(())
    }

    fn handle_propose(&mut self, mut m: Message) -> Result<()> {
        if m.entries.is_empty() || self.prs.get(self.id).is_none() || self.lead_transferee.is_some()
        {
            return Err(Error::ProposalDropped);
        }
        let last = self.raft_log.last_index();
        let mut conf_change_at = None;
        for (i, e) in m.entries.iter().enumerate() {
            if e.entry_type() == EntryType::EntryConfChange {
                // One change at a time, and only once this leader committed in its term.
                let pending = self.pending_conf_index > self.raft_log.applied;
                if pending || conf_change_at.is_some() || !self.committed_entry_in_current_term() {
                    return Err(Error::ProposalDropped);
                }
                conf_change_at = Some(last + 1 + i as u64);
            }
        }
        if let Some(index) = conf_change_at {
            self.pending_conf_index = index;
        }
        self.append_entries(&mut m.entries);
        self.bcast_pending = true;
        Ok(())
    }

    /// Sends the entries appended since the last broadcast (called when a Ready is built).
    pub fn flush_appends(&mut self) {
        if std::mem::take(&mut self.bcast_pending) && self.state == StateRole::Leader {
            // Only new entries: a follower that already got them (say, with a commit
            // broadcast in this same loop) needs no empty append.
            for to in self.prs.peer_ids(self.id) {
                self.maybe_send_append(to, false);
            }
        }
    }

    fn handle_read_index(&mut self, m: Message) {
        if !self.committed_entry_in_current_term() {
            // Our commit index may lag the previous leader's until our no-op commits
            // (thesis §6.4 step 1): answer once it has. This holds for a single voter too:
            // after a restart its commit index (written lazily) may lag entries it had
            // already applied and acknowledged.
            self.pending_read_index_messages.push(m);
            return;
        }
        if self.prs.voter_count() <= 1 && self.prs.is_voter(self.id) {
            let index = self.raft_log.committed;
            self.respond_to_read_index(m, index);
            return;
        }
        let ctx = m.context.clone();
        self.read_only.add_request(self.raft_log.committed, m, self.id);
        self.bcast_heartbeat(Some(ctx));
    }

    fn respond_to_read_index(&mut self, req: Message, index: u64) {
        if req.from == INVALID_ID || req.from == self.id {
            self.read_states.push(ReadState { index, request_ctx: req.context });
        } else {
            let mut resp = new_message(req.from, MessageType::MsgReadIndexResp);
            resp.index = index;
            resp.context = req.context;
            self.send(resp);
        }
    }

    /// Commits what a quorum has; true if the commit index moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let mci = self.prs.committed_index();
        if !self.raft_log.maybe_commit(mci, self.term) {
            return false;
        }
        if !self.pending_read_index_messages.is_empty() {
            for m in std::mem::take(&mut self.pending_read_index_messages) {
                self.handle_read_index(m);
            }
        }
        true
    }

    fn handle_append_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let first_index = self.raft_log.first_index();
        let next_probe = if m.reject && m.log_term > 0 {
            // Skip every entry of ours newer than the follower's term at its hint.
            self.raft_log.find_conflict_by_term(m.reject_hint, m.log_term).0
        } else {
            m.reject_hint
        };
        let Some(pr) = self.prs.get_mut(m.from) else { return };
        pr.recent_active = true;
        if m.reject {
            if pr.maybe_decr_to(m.index, next_probe) {
                if pr.state == ProgressState::Replicate {
                    pr.become_probe();
                }
                self.send_append(m.from);
            }
            return;
        }
        let old_paused = pr.is_paused();
        let acked_probe = pr.matched == m.index && pr.state == ProgressState::Probe;
        if !pr.maybe_update(m.index) && !acked_probe {
            return;
        }
        match pr.state {
            ProgressState::Probe => pr.become_replicate(),
            ProgressState::Snapshot if pr.matched + 1 >= first_index => {
                pr.become_probe();
                pr.become_replicate();
            }
            ProgressState::Replicate => pr.ins.free_to(m.index),
            ProgressState::Snapshot => {}
        }
        if self.maybe_commit() {
            self.bcast_commit();
        } else if old_paused {
            self.send_append(m.from);
        }
        // Fill the window while entries and room remain.
        while self.maybe_send_append(m.from, false) {}
        if self.lead_transferee == Some(m.from)
            && self.prs.get(m.from).is_some_and(|p| p.matched == last_index)
        {
            self.send(new_message(m.from, MessageType::MsgTimeoutNow));
        }
    }

    fn handle_heartbeat_response(&mut self, m: &Message) {
        let last_index = self.raft_log.last_index();
        let Some(pr) = self.prs.get_mut(m.from) else { return };
        pr.recent_active = true;
        pr.resume();
        if pr.state == ProgressState::Replicate && pr.ins.full() {
            pr.ins.free_first_one();
        }
        if pr.matched < last_index {
            self.send_append(m.from);
        }
        if m.context.is_empty() {
            return;
        }
        let Some(acks) = self.read_only.recv_ack(m.from, &m.context) else { return };
        if !self.prs.has_quorum(acks) {
            return;
        }
        for status in self.read_only.advance(&m.context) {
            self.respond_to_read_index(status.req, status.index);
        }
    }

    fn handle_transfer_leader(&mut self, transferee: u64) {
        let Some(pr) = self.prs.get(transferee) else { return };
        if pr.is_learner || self.lead_transferee == Some(transferee) {
            return;
        }
        if transferee == self.id {
            // Asking for leadership back cancels a running transfer (as etcd and raft-rs do),
            // so proposals need not wait for it to time out.
            self.lead_transferee = None;
            return;
        }
        let caught_up = pr.matched == self.raft_log.last_index();
        // A newer request replaces a running transfer; it gets a full election timeout.
        self.election_elapsed = 0;
        self.lead_transferee = Some(transferee);
        if caught_up {
            self.send(new_message(transferee, MessageType::MsgTimeoutNow));
        } else {
            self.send_append(transferee);
        }
    }

    /// Tells followers the commit index moved, unless configured to let the next append
    /// or heartbeat carry it.
    pub(crate) fn bcast_commit(&mut self) {
        if !self.skip_bcast_commit {
            self.bcast_append();
        }
    }

    pub(crate) fn bcast_append(&mut self) {
        for to in self.prs.peer_ids(self.id) {
            self.send_append(to);
        }
    }

    fn bcast_heartbeat(&mut self, ctx: Option<Bytes>) {
        let committed = self.raft_log.committed;
        for to in self.prs.peer_ids(self.id) {
            let matched = self.prs.get(to).map_or(0, |p| p.matched);
            let mut m = new_message(to, MessageType::MsgHeartbeat);
            // Never tell a follower to commit past what we know it holds.
            m.commit = matched.min(committed);
            if let Some(ctx) = &ctx {
                m.context = ctx.clone();
            }
            self.send(m);
        }
    }

    pub(crate) fn send_append(&mut self, to: u64) {
        self.maybe_send_append(to, true);
    }

    /// Sends the entries `to` needs next (or a snapshot if they were compacted) unless its
    /// progress is paused; with `send_if_empty` also an empty append (to carry the commit
    /// index or probe). Returns whether something was sent.
    fn maybe_send_append(&mut self, to: u64, send_if_empty: bool) -> bool {
        let Some(pr) = self.prs.get(to) else { return false };
        if pr.is_paused() {
            return false;
        }
        let next = pr.next_idx;
        let prev_term = self.raft_log.term(next - 1);
        let ents = self.raft_log.entries(next, self.max_msg_size);
        let (log_term, entries) = match (prev_term, ents) {
            (Ok(t), Ok(e)) => (t, e),
            (Err(StorageError::Compacted), _) | (_, Err(StorageError::Compacted)) => {
                return self.send_snapshot(to);
            }
            (Err(e), _) | (_, Err(e)) => panic!("raft storage failed reading entries: {e}"),
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let bytes = entries.iter().map(crate::util::entry_size).sum();
        let mut m = new_message(to, MessageType::MsgAppend);
        m.index = next - 1;
        m.log_term = log_term;
        m.entries = entries;
        m.commit = self.raft_log.committed;
        self.send(m);
        if let (Some(last), Some(pr)) = (last, self.prs.get_mut(to)) {
            pr.sent_entries(last, bytes);
        }
        true
    }

    fn send_snapshot(&mut self, to: u64) -> bool {
        if !self.prs.get(to).is_some_and(|p| p.recent_active) {
            // Do not build a snapshot for a peer that may be down; a response revives it.
            return false;
        }
        let request_index = self.raft_log.first_index() - 1;
        let snapshot = match self.raft_log.snapshot(request_index, to) {
            Ok(s) => s,
            Err(StorageError::SnapshotTemporarilyUnavailable) => return false,
            Err(e) => panic!("raft storage failed to provide a snapshot: {e}"),
        };
        let index = snapshot_index(&snapshot);
        assert!(index != 0, "storage returned an empty snapshot");
        if let Some(pr) = self.prs.get_mut(to) {
            pr.become_snapshot(index);
        }
        let mut m = new_message(to, MessageType::MsgSnapshot);
        m.snapshot = Some(Box::new(snapshot));
        self.send(m);
        true
    }

    /// The application could not deliver to `id`: stop streaming to it, probe instead.
    pub fn report_unreachable(&mut self, id: u64) {
        if self.state != StateRole::Leader {
            return;
        }
        if let Some(pr) = self.prs.get_mut(id)
            && pr.state == ProgressState::Replicate
        {
            pr.become_probe();
        }
    }

    /// The application finished (or failed) sending the snapshot to `id`.
    pub fn report_snapshot(&mut self, id: u64, success: bool) {
        if self.state != StateRole::Leader {
            return;
        }
        let Some(pr) = self.prs.get_mut(id) else { return };
        if pr.state != ProgressState::Snapshot {
            return;
        }
        if !success {
            pr.pending_snapshot = 0;
        }
        pr.become_probe();
        // Wait for the follower's answer (or a heartbeat response) before sending again.
        pr.probe_sent = true;
    }
}
