//! The Raft state machine: terms, roles, elections and the handling of every message.
//!
//! Term checks happen once, in `step`, before the role's step function sees a message
//! (`step_follower`, `step_candidate`, and `step_leader` in `leader.rs`). Messages the node
//! wants sent are queued in two lists (see `send`); `RawNode` hands them out in a `Ready`.

mod conf_change;
mod leader;

use bytes::Bytes;
use raftkv_proto::eraftpb::{Entry, EntryType, HardState, Message, MessageType, Snapshot};

use crate::config::{Config, INVALID_ID};
use crate::errors::{Error, Result};
use crate::log_unstable::{snapshot_index, snapshot_term};
use crate::quorum::VoteResult;
use crate::raft_log::RaftLog;
use crate::read_only::{ReadOnly, ReadState};
use crate::rng::NodeRng;
use crate::storage::Storage;
use crate::tracker::ProgressTracker;

/// The context of a vote request sent on the leader's behalf after a TimeoutNow: it must
/// not be ignored by followers that still believe in the old leader's lease.
pub const CAMPAIGN_TRANSFER: &[u8] = b"CampaignTransfer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateRole {
    #[default]
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Volatile state the application may want to observe (it is not persisted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftState {
    pub leader_id: u64,
    pub raft_state: StateRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CampaignKind {
    PreElection,
    Election,
    Transfer,
}

pub struct Raft<S: Storage> {
    pub(crate) id: u64,
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) raft_log: RaftLog<S>,
    pub(crate) prs: ProgressTracker,
    pub(crate) state: StateRole,
    pub(crate) leader_id: u64,
    /// The node a leadership transfer is handing over to; proposals wait while it runs.
    pub(crate) lead_transferee: Option<u64>,
    /// The index of the latest membership change in the log; another may be proposed only
    /// once the application has applied this one.
    pub(crate) pending_conf_index: u64,
    pub(crate) read_only: ReadOnly,
    /// ReadIndex requests that arrived before this leader committed an entry of its term.
    pub(crate) pending_read_index_messages: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    /// Messages that may leave at once.
    pub(crate) msgs: Vec<Message>,
    /// Messages that may leave only once this Ready's entries and hard state are durable.
    pub(crate) msgs_after_persist: Vec<Message>,
    /// New entries were appended on the leader and are yet to be broadcast; done in one go
    /// when the application asks for a Ready, so a batch of proposals shares each message.
    pub(crate) bcast_pending: bool,

    pub(crate) election_elapsed: usize,
    pub(crate) heartbeat_elapsed: usize,
    pub(crate) election_timeout: usize,
    pub(crate) heartbeat_timeout: usize,
    pub(crate) randomized_election_timeout: usize,
    pub(crate) check_quorum: bool,
    pub(crate) pre_vote: bool,
    pub(crate) max_msg_size: u64,
    skip_bcast_commit: bool,
    rng: NodeRng,
}

fn vote_resp_type(t: MessageType) -> MessageType {
    match t {
        MessageType::MsgRequestPreVote => MessageType::MsgRequestPreVoteResponse,
        _ => MessageType::MsgRequestVoteResponse,
    }
}

/// Thesis §3.8: a node must not acknowledge what it has not made durable. Append responses
/// and votes therefore wait for the persist; a candidate's vote requests too, since it voted
/// for itself. Everything else (a leader's appends, heartbeats) may leave at once.
fn must_wait_for_persist(t: MessageType) -> bool {
    matches!(
        t,
        MessageType::MsgAppendResponse
            | MessageType::MsgRequestVote
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVoteResponse
    )
}

fn is_plain_append_ack(m: &Message) -> bool {
    m.msg_type() == MessageType::MsgAppendResponse && !m.reject
}

pub(crate) fn new_message(to: u64, msg_type: MessageType) -> Message {
    Message { to, msg_type: msg_type as i32, ..Default::default() }
}

impl<S: Storage> Raft<S> {
    pub fn new(config: &Config, store: S) -> Result<Self> {
        config.validate()?;
        let state = store.initial_state()?;
        let raft_log = RaftLog::new(store, config.max_committed_size_per_ready)?;
        let mut prs = ProgressTracker::new(config.max_inflight_msgs, config.max_inflight_bytes);
        prs.restore(&state.conf_state, raft_log.last_index() + 1);
        let mut r = Raft {
            id: config.id,
            term: 0,
            vote: INVALID_ID,
            raft_log,
            prs,
            state: StateRole::Follower,
            leader_id: INVALID_ID,
            lead_transferee: None,
            pending_conf_index: 0,
            read_only: ReadOnly::default(),
            pending_read_index_messages: Vec::new(),
            read_states: Vec::new(),
            msgs: Vec::new(),
            msgs_after_persist: Vec::new(),
            bcast_pending: false,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            election_timeout: config.election_tick,
            heartbeat_timeout: config.heartbeat_tick,
            randomized_election_timeout: config.election_tick,
            check_quorum: config.check_quorum,
            pre_vote: config.pre_vote,
            max_msg_size: config.max_size_per_msg,
            skip_bcast_commit: config.skip_bcast_commit,
            rng: NodeRng::new(config.seed, config.id),
        };
        let hs = state.hard_state;
        if hs != HardState::default() {
            r.load_state(&hs)?;
        }
        if config.applied > 0 {
            let last = r.raft_log.last_index();
            if config.applied > last {
                return Err(Error::ConfigInvalid(format!(
                    "applied {} is past the last log index {last}",
                    config.applied
                )));
            }
            // Only committed entries are ever applied, but an application that persists in
            // the background may have made its apply durable before the hard state that
            // carried the commit: what was applied was committed.
            r.raft_log.commit_to(config.applied);
            r.raft_log.applied_to(config.applied);
        }
        let term = r.term;
        r.become_follower(term, INVALID_ID);
        Ok(r)
    }

    fn load_state(&mut self, hs: &HardState) -> Result<()> {
        let last = self.raft_log.last_index();
        if hs.commit > last {
            return Err(Error::ConfigInvalid(format!(
                "persisted commit {} is past the last log index {last}",
                hs.commit
            )));
        }
        // `committed` starts at the compacted index: only applied (so committed) entries
        // are compacted, and with background persistence the compaction can be durable
        // before the hard state that carried their commit.
        self.raft_log.committed = hs.commit.max(self.raft_log.committed);
        self.term = hs.term;
        self.vote = hs.vote;
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn state(&self) -> StateRole {
        self.state
    }

    pub fn leader_id(&self) -> u64 {
        self.leader_id
    }

    pub fn raft_log(&self) -> &RaftLog<S> {
        &self.raft_log
    }

    pub fn prs(&self) -> &ProgressTracker {
        &self.prs
    }

    pub fn soft_state(&self) -> SoftState {
        SoftState { leader_id: self.leader_id, raft_state: self.state }
    }

    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.raft_log.committed }
    }

    /// Whether this node may campaign: it is a voter of the configuration it knows.
    pub fn promotable(&self) -> bool {
        self.prs.is_voter(self.id)
    }

    pub fn is_learner(&self) -> bool {
        self.prs.get(self.id).is_some_and(|p| p.is_learner)
    }

    /// Queues `m` for sending, on the list its durability needs decide.
    pub(crate) fn send(&mut self, mut m: Message) {
        if m.from == INVALID_ID {
            m.from = self.id;
        }
        let t = m.msg_type();
        match t {
            // Vote traffic carries its term explicitly (a pre-vote asks about term + 1, a
            // response echoes the request's term when it grants).
            MessageType::MsgRequestVote
            | MessageType::MsgRequestPreVote
            | MessageType::MsgRequestVoteResponse
            | MessageType::MsgRequestPreVoteResponse => debug_assert!(m.term != 0),
            // Forwarded requests carry no term: the leader treats them as local.
            MessageType::MsgPropose | MessageType::MsgReadIndex => {}
            _ => m.term = self.term,
        }
        if must_wait_for_persist(t) {
            // Several appends handled in one Ready need one acknowledgement: the latest
            // covers the others (the leader frees its window up to it).
            if let Some(last) = self.msgs_after_persist.last_mut()
                && is_plain_append_ack(last)
                && is_plain_append_ack(&m)
                && (last.to, last.term) == (m.to, m.term)
                && last.index <= m.index
            {
                *last = m;
                return;
            }
            self.msgs_after_persist.push(m);
        } else {
            self.msgs.push(m);
        }
    }

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = INVALID_ID;
        }
        self.leader_id = INVALID_ID;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_election_timeout();
        self.lead_transferee = None;
        self.prs.reset_votes();
        let next = self.raft_log.last_index() + 1;
        let persisted = self.raft_log.persisted;
        let id = self.id;
        for (&pid, pr) in self.prs.iter_mut() {
            pr.reset(next);
            if pid == id {
                pr.matched = persisted;
            }
        }
        self.pending_conf_index = 0;
        self.read_only = ReadOnly::default();
        self.pending_read_index_messages.clear();
        self.bcast_pending = false;
    }

    fn reset_randomized_election_timeout(&mut self) {
        let et = self.election_timeout;
        self.randomized_election_timeout = self.rng.in_range(et, 2 * et);
    }

    pub(crate) fn past_election_timeout(&self) -> bool {
        self.election_elapsed >= self.randomized_election_timeout
    }

    pub fn become_follower(&mut self, term: u64, leader_id: u64) {
        self.reset(term);
        self.leader_id = leader_id;
        self.state = StateRole::Follower;
    }

    /// A pre-candidate asks for votes without raising its term or changing its vote.
    pub fn become_pre_candidate(&mut self) {
        assert_ne!(self.state, StateRole::Leader, "a leader cannot become a pre-candidate");
        self.prs.reset_votes();
        self.leader_id = INVALID_ID;
        self.state = StateRole::PreCandidate;
    }

    pub fn become_candidate(&mut self) {
        assert_ne!(self.state, StateRole::Leader, "a leader cannot become a candidate");
        let term = self.term + 1;
        self.reset(term);
        self.vote = self.id;
        self.state = StateRole::Candidate;
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        match self.state {
            StateRole::Leader => self.tick_heartbeat(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.promotable() && self.past_election_timeout() {
            self.election_elapsed = 0;
            self.hup(CampaignKind::Election);
        }
    }

    /// Campaigns now (what a timeout or `RawNode::campaign` triggers).
    fn hup(&mut self, kind: CampaignKind) {
        if self.state == StateRole::Leader || !self.promotable() {
            return;
        }
        // A membership change that is committed but not applied may remove us or change
        // the quorum: wait until the application applied it.
        if self.has_unapplied_conf_change() {
            return;
        }
        let kind = match kind {
            CampaignKind::Election if self.pre_vote => CampaignKind::PreElection,
            k => k,
        };
        self.campaign(kind);
    }

    fn has_unapplied_conf_change(&self) -> bool {
        let (lo, hi) = (self.raft_log.applied + 1, self.raft_log.committed + 1);
        if lo >= hi {
            return false;
        }
        let ents = self.raft_log.slice(lo, hi, crate::NO_LIMIT).unwrap_or_default();
        ents.iter().any(|e| e.entry_type() == EntryType::EntryConfChange)
    }

    fn campaign(&mut self, kind: CampaignKind) {
        let (vote_msg, term) = if kind == CampaignKind::PreElection {
            self.become_pre_candidate();
            // A pre-vote asks "would you vote for me in the next term" without raising ours.
            (MessageType::MsgRequestPreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::MsgRequestVote, self.term)
        };
        let id = self.id;
        if self.prs.record_vote(id, true) == VoteResult::Won {
            // A single-voter group wins at once.
            if kind == CampaignKind::PreElection {
                self.campaign(CampaignKind::Election);
            } else {
                self.become_leader();
            }
            return;
        }
        let (last_index, last_term) = (self.raft_log.last_index(), self.raft_log.last_term());
        let voters: Vec<u64> = self.prs.voters().iter().copied().filter(|&v| v != id).collect();
        for to in voters {
            let mut m = new_message(to, vote_msg);
            m.term = term;
            m.index = last_index;
            m.log_term = last_term;
            if kind == CampaignKind::Transfer {
                m.context = Bytes::from_static(CAMPAIGN_TRANSFER);
            }
            self.send(m);
        }
    }

    /// Steps a message through the state machine: term checks first, then the role.
    pub fn step(&mut self, m: Message) -> Result<()> {
        let t = m.msg_type();
        if m.term == 0 {
            // A local message.
        } else if m.term > self.term {
            if matches!(t, MessageType::MsgRequestVote | MessageType::MsgRequestPreVote) {
                let force = m.context.as_ref() == CAMPAIGN_TRANSFER;
                let in_lease = self.check_quorum
                    && self.leader_id != INVALID_ID
                    && self.election_elapsed < self.election_timeout;
                if !force && in_lease {
                    // We heard from a live leader within the election timeout: a candidate
                    // that cannot hear it must not depose it (thesis §4.2.3).
                    return Ok(());
                }
            }
            match t {
                // Pre-votes never change our term; a granted pre-vote response is for a
                // term we have not reached yet.
                MessageType::MsgRequestPreVote => {}
                MessageType::MsgRequestPreVoteResponse if !m.reject => {}
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot => {
                    self.become_follower(m.term, m.from)
                }
                _ => self.become_follower(m.term, INVALID_ID),
            }
        } else if m.term < self.term {
            match t {
                // A stale leader learns the newer term and steps down; without this, with
                // CheckQuorum or PreVote a partitioned old leader could stay stuck.
                MessageType::MsgAppend | MessageType::MsgHeartbeat
                    if self.check_quorum || self.pre_vote =>
                {
                    self.send(new_message(m.from, MessageType::MsgAppendResponse));
                }
                MessageType::MsgRequestPreVote => {
                    let mut resp = new_message(m.from, MessageType::MsgRequestPreVoteResponse);
                    resp.term = self.term;
                    resp.reject = true;
                    self.send(resp);
                }
                _ => {}
            }
            return Ok(());
        }

        match t {
            MessageType::MsgHup => {
                self.hup(CampaignKind::Election);
                Ok(())
            }
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                self.handle_vote_request(m);
                Ok(())
            }
            _ => match self.state {
                StateRole::Leader => self.step_leader(m),
                StateRole::Candidate | StateRole::PreCandidate => self.step_candidate(m),
                StateRole::Follower => self.step_follower(m),
            },
        }
    }

    fn handle_vote_request(&mut self, m: Message) {
        let t = m.msg_type();
        let can_vote = self.vote == m.from
            || (self.vote == INVALID_ID && self.leader_id == INVALID_ID)
            || (t == MessageType::MsgRequestPreVote && m.term > self.term);
        let mut resp = new_message(m.from, vote_resp_type(t));
        if can_vote && self.raft_log.is_up_to_date(m.index, m.log_term) {
            // Granting echoes the request's term: a pre-vote is for a term we are not in.
            resp.term = m.term;
            if t == MessageType::MsgRequestVote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            resp.term = self.term;
            resp.reject = true;
        }
        self.send(resp);
    }

    fn step_candidate(&mut self, m: Message) -> Result<()> {
        let my_vote_resp = match self.state {
            StateRole::PreCandidate => MessageType::MsgRequestPreVoteResponse,
            _ => MessageType::MsgRequestVoteResponse,
        };
        match m.msg_type() {
            MessageType::MsgPropose
            | MessageType::MsgReadIndex
            | MessageType::MsgTransferLeader => return Err(Error::ProposalDropped),
            MessageType::MsgAppend => {
                self.become_follower(m.term, m.from);
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            t if t == my_vote_resp => match self.prs.record_vote(m.from, !m.reject) {
                VoteResult::Won if self.state == StateRole::PreCandidate => {
                    self.campaign(CampaignKind::Election)
                }
                VoteResult::Won => {
                    self.become_leader();
                    self.bcast_append();
                }
                VoteResult::Lost => {
                    let term = self.term;
                    self.become_follower(term, INVALID_ID);
                }
                VoteResult::Pending => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn step_follower(&mut self, mut m: Message) -> Result<()> {
        match m.msg_type() {
            MessageType::MsgPropose => return Err(Error::ProposalDropped),
            MessageType::MsgAppend => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_append_entries(m);
            }
            MessageType::MsgHeartbeat => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::MsgSnapshot => {
                self.election_elapsed = 0;
                self.leader_id = m.from;
                self.handle_snapshot(m);
            }
            MessageType::MsgTransferLeader | MessageType::MsgReadIndex => {
                if self.leader_id == INVALID_ID {
                    return Err(Error::ProposalDropped);
                }
                m.to = self.leader_id;
                self.send(m);
            }
            MessageType::MsgTimeoutNow => self.hup(CampaignKind::Transfer),
            MessageType::MsgReadIndexResp => {
                self.read_states.push(ReadState { index: m.index, request_ctx: m.context });
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn handle_append_entries(&mut self, m: Message) {
        let committed = self.raft_log.committed;
        let mut resp = new_message(m.from, MessageType::MsgAppendResponse);
        if m.index < committed {
            // Everything up to our commit index is known to match.
            resp.index = committed;
            self.send(resp);
            return;
        }
        match self.raft_log.maybe_append(m.index, m.log_term, m.commit, &m.entries) {
            Some(last) => resp.index = last,
            None => {
                // Tell the leader where our logs may match: the last index at or below the
                // rejected one whose term is not newer than the leader's entry there.
                let hint = m.index.min(self.raft_log.last_index());
                let (hint_index, hint_term) = self.raft_log.find_conflict_by_term(hint, m.log_term);
                resp.index = m.index;
                resp.reject = true;
                resp.reject_hint = hint_index;
                resp.log_term = hint_term;
            }
        }
        self.send(resp);
    }

    pub(crate) fn handle_heartbeat(&mut self, m: Message) {
        // The leader sends min(match, commit), so this never commits unmatched entries.
        let commit = m.commit.min(self.raft_log.last_index());
        self.raft_log.commit_to(commit);
        let mut resp = new_message(m.from, MessageType::MsgHeartbeatResponse);
        resp.context = m.context;
        self.send(resp);
    }

    pub(crate) fn handle_snapshot(&mut self, mut m: Message) {
        let snapshot = m.snapshot.take().unwrap_or_default();
        let mut resp = new_message(m.from, MessageType::MsgAppendResponse);
        resp.index = if self.restore(*snapshot) {
            self.raft_log.last_index()
        } else {
            self.raft_log.committed
        };
        self.send(resp);
    }

    /// Installs a snapshot from the leader; false if it is stale or already covered.
    pub fn restore(&mut self, snapshot: Snapshot) -> bool {
        let (index, term) = (snapshot_index(&snapshot), snapshot_term(&snapshot));
        if index <= self.raft_log.committed {
            return false;
        }
        let cs = snapshot.metadata.as_ref().and_then(|m| m.conf_state.clone()).unwrap_or_default();
        if !cs.voters.contains(&self.id) && !cs.learners.contains(&self.id) {
            // A snapshot of a configuration without us cannot be ours to install.
            return false;
        }
        if self.raft_log.match_term(index, term) {
            // We already have the snapshot's last entry: just learn that it committed.
            self.raft_log.commit_to(index);
            return false;
        }
        self.raft_log.restore(snapshot);
        let next = self.raft_log.last_index() + 1;
        self.prs.restore(&cs, next);
        true
    }

    /// The application persisted entries up to (`index`, `term`).
    pub fn on_persist_entries(&mut self, index: u64, term: u64) {
        self.raft_log.stable_entries(index, term);
        if self.state == StateRole::Leader {
            let persisted = self.raft_log.persisted;
            let id = self.id;
            if let Some(pr) = self.prs.get_mut(id) {
                pr.maybe_update(persisted);
            }
            if self.maybe_commit() {
                self.bcast_commit();
            }
        }
    }

    /// The application persisted (and will apply) the snapshot at `index`.
    pub fn on_persist_snapshot(&mut self, index: u64) {
        self.raft_log.stable_snapshot(index);
    }

    pub fn take_read_states(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.read_states)
    }

    pub(crate) fn committed_entry_in_current_term(&self) -> bool {
        self.raft_log.term_or_zero(self.raft_log.committed) == self.term
    }

    /// Appends entries to the leader's log in the current term; returns the last index.
    pub(crate) fn append_entries(&mut self, ents: &mut [Entry]) -> u64 {
        let last = self.raft_log.last_index();
        for (i, e) in ents.iter_mut().enumerate() {
            e.term = self.term;
            e.index = last + 1 + i as u64;
        }
        self.raft_log.append(ents)
    }
}
