//! The node's view of the log: durable entries in `Storage` followed by `Unstable` ones.
//!
//! The pointers (see docs/log-pointers.md), always
//! `first_index - 1 <= applied <= min(committed, persisted)` and `committed <= last_index`:
//! - `committed`: known to be on a quorum's durable storage; never goes down.
//! - `persisted`: durable on this node and still part of this log.
//! - `applied`: handed to and applied by the application.

use raftkv_proto::eraftpb::{Entry, Snapshot};

use crate::errors::{Result, StorageError};
use crate::log_unstable::{Unstable, snapshot_index};
use crate::storage::{Storage, StorageResult};
use crate::util::limit_size;

pub struct RaftLog<S: Storage> {
    pub(crate) store: S,
    pub(crate) unstable: Unstable,
    pub(crate) committed: u64,
    pub(crate) persisted: u64,
    pub(crate) applied: u64,
    max_next_entries_size: u64,
}

impl<S: Storage> RaftLog<S> {
    pub fn new(store: S, max_next_entries_size: u64) -> Result<Self> {
        let first = store.first_index()?;
        let last = store.last_index()?;
        Ok(RaftLog {
            store,
            unstable: Unstable::new(last + 1),
            committed: first - 1,
            persisted: last,
            applied: first - 1,
            max_next_entries_size,
        })
    }

    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn persisted(&self) -> u64 {
        self.persisted
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn first_index(&self) -> u64 {
        match self.unstable.maybe_first_index() {
            Some(i) => i,
            None => self.store.first_index().unwrap_or_else(|e| storage_failed("first_index", e)),
        }
    }

    pub fn last_index(&self) -> u64 {
        match self.unstable.maybe_last_index() {
            Some(i) => i,
            None => self.store.last_index().unwrap_or_else(|e| storage_failed("last_index", e)),
        }
    }

    /// The term of the entry at `index`: `Compacted` below the dummy position,
    /// `Unavailable` past the last entry.
    pub fn term(&self, index: u64) -> StorageResult<u64> {
        let dummy = self.first_index() - 1;
        if index < dummy {
            return Err(StorageError::Compacted);
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable);
        }
        if let Some(t) = self.unstable.maybe_term(index) {
            return Ok(t);
        }
        self.store.term(index)
    }

    /// The term at `index`, or 0 where the log has no entry (compacted or past the end).
    pub fn term_or_zero(&self, index: u64) -> u64 {
        match self.term(index) {
            Ok(t) => t,
            Err(StorageError::Compacted | StorageError::Unavailable) => 0,
            Err(e) => storage_failed("term", e),
        }
    }

    pub fn last_term(&self) -> u64 {
        self.term_or_zero(self.last_index())
    }

    pub fn match_term(&self, index: u64, term: u64) -> bool {
        self.term(index).is_ok_and(|t| t == term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: u64, term: u64) -> bool {
        let our_term = self.last_term();
        term > our_term || (term == our_term && last_index >= self.last_index())
    }

    /// The index of the first entry of `ents` that conflicts with (or extends) the log; 0 if
    /// all of them are already present.
    pub fn find_conflict(&self, ents: &[Entry]) -> u64 {
        ents.iter().find(|e| !self.match_term(e.index, e.term)).map_or(0, |e| e.index)
    }

    /// The largest index `<= index` whose term is `<= term`, with that term: where a leader
    /// and follower can next agree, skipping a whole conflicting term per round trip.
    pub fn find_conflict_by_term(&self, index: u64, term: u64) -> (u64, u64) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Ok(t) if t > term => i -= 1,
                Ok(t) => return (i, t),
                Err(_) => return (i, 0),
            }
        }
    }

    /// Accepts an append from the leader whose entries follow (`index`, `log_term`).
    /// Returns the index of the last new entry, or `None` if our log does not match there.
    pub fn maybe_append(
        &mut self,
        index: u64,
        log_term: u64,
        committed: u64,
        ents: &[Entry],
    ) -> Option<u64> {
        if !self.match_term(index, log_term) {
            return None;
        }
        let last_new = index + ents.len() as u64;
        let conflict = self.find_conflict(ents);
        if conflict != 0 {
            assert!(
                conflict > self.committed,
                "entry {conflict} conflicts with a committed entry (committed {})",
                self.committed
            );
            self.append(&ents[(conflict - (index + 1)) as usize..]);
        }
        self.commit_to(committed.min(last_new));
        Some(last_new)
    }

    /// Appends entries (possibly replacing uncommitted ones); returns the new last index.
    pub fn append(&mut self, ents: &[Entry]) -> u64 {
        let Some(first) = ents.first() else { return self.last_index() };
        let after = first.index - 1;
        assert!(after >= self.committed, "append at {after} is below committed {}", self.committed);
        if after < self.persisted {
            self.persisted = after;
        }
        self.unstable.truncate_and_append(ents);
        self.last_index()
    }

    pub fn unstable_entries(&self) -> &[Entry] {
        &self.unstable.entries
    }

    pub fn unstable_snapshot(&self) -> Option<&Snapshot> {
        self.unstable.snapshot.as_ref()
    }

    /// Unstable entries not yet handed out in a Ready.
    pub fn entries_to_persist(&self) -> &[Entry] {
        self.unstable.entries_to_persist()
    }

    /// The unstable snapshot, if not yet handed out in a Ready.
    pub fn snapshot_to_persist(&self) -> Option<&Snapshot> {
        self.unstable.snapshot_to_persist()
    }

    /// Everything unstable was handed out in a Ready (see `log_unstable.rs`).
    pub fn accept_in_progress(&mut self) {
        self.unstable.accept_in_progress();
    }

    /// Where the next batch of entries to apply starts and (inclusively) ends: committed,
    /// and durable here, and not behind an unapplied snapshot.
    fn applicable_range(&self) -> Option<(u64, u64)> {
        if self.unstable.snapshot.is_some() {
            return None;
        }
        let lo = self.applied.max(self.first_index() - 1) + 1;
        let hi = self.committed.min(self.persisted);
        (lo <= hi).then_some((lo, hi))
    }

    pub fn has_next_entries(&self) -> bool {
        self.applicable_range().is_some()
    }

    /// Committed entries ready to apply, bounded in bytes.
    pub fn next_entries(&self) -> Option<Vec<Entry>> {
        let (lo, hi) = self.applicable_range()?;
        match self.slice(lo, hi + 1, self.max_next_entries_size) {
            Ok(ents) => Some(ents),
            Err(e) => storage_failed("entries to apply", e),
        }
    }

    pub fn commit_to(&mut self, to_commit: u64) {
        if self.committed >= to_commit {
            return;
        }
        assert!(
            to_commit <= self.last_index(),
            "commit {to_commit} is out of range (last index {})",
            self.last_index()
        );
        self.committed = to_commit;
    }

    /// Commits up to `max_index` if that entry is of the current term (Raft §5.4.2): an
    /// older term's entry counted on a quorum may still be overwritten (Figure 8).
    pub fn maybe_commit(&mut self, max_index: u64, term: u64) -> bool {
        if max_index > self.committed && self.term_or_zero(max_index) == term {
            self.commit_to(max_index);
            return true;
        }
        false
    }

    pub fn applied_to(&mut self, index: u64) {
        if index == 0 || index <= self.applied {
            return;
        }
        assert!(
            index <= self.committed.min(self.persisted.max(self.applied)),
            "applied {index} is past committed {} or persisted {}",
            self.committed,
            self.persisted
        );
        self.applied = index;
    }

    pub fn stable_entries(&mut self, index: u64, term: u64) {
        if self.unstable.maybe_term(index) == Some(term) && index >= self.unstable.offset {
            self.unstable.stable_entries(index, term);
            self.persisted = self.persisted.max(index);
        } else if index > self.persisted && self.match_term(index, term) {
            self.persisted = index;
        }
    }

    pub fn stable_snapshot(&mut self, index: u64) {
        self.unstable.stable_snapshot(index);
    }

    /// Replaces the log with a snapshot from the leader.
    pub fn restore(&mut self, snapshot: Snapshot) {
        let index = snapshot_index(&snapshot);
        self.committed = index;
        self.persisted = index;
        self.unstable.restore(snapshot);
    }

    pub fn snapshot(&self, request_index: u64, to: u64) -> StorageResult<Snapshot> {
        if let Some(s) = &self.unstable.snapshot
            && snapshot_index(s) >= request_index
        {
            return Ok(s.clone());
        }
        self.store.snapshot(request_index, to)
    }

    /// Entries from `index` to the end, at most `max_size` bytes (at least one).
    pub fn entries(&self, index: u64, max_size: u64) -> StorageResult<Vec<Entry>> {
        let last = self.last_index();
        if index > last {
            return Ok(Vec::new());
        }
        self.slice(index, last + 1, max_size)
    }

    /// Entries in `[lo, hi)`, at most `max_size` bytes (at least one).
    pub fn slice(&self, lo: u64, hi: u64, max_size: u64) -> StorageResult<Vec<Entry>> {
        if lo < self.first_index() {
            return Err(StorageError::Compacted);
        }
        if hi > self.last_index() + 1 {
            return Err(StorageError::Unavailable);
        }
        if lo == hi {
            return Ok(Vec::new());
        }
        let offset = self.unstable.offset;
        let mut ents = if lo < offset {
            let stored = self.store.entries(lo, hi.min(offset), max_size)?;
            if (stored.len() as u64) < hi.min(offset) - lo {
                // The size limit cut the stored part short.
                return Ok(stored);
            }
            stored
        } else {
            Vec::new()
        };
        if hi > offset {
            ents.extend_from_slice(self.unstable.slice(lo.max(offset), hi));
        }
        limit_size(&mut ents, max_size);
        Ok(ents)
    }

    /// The index of the snapshot waiting to be persisted, if any.
    pub fn pending_snapshot_index(&self) -> Option<u64> {
        self.unstable.snapshot.as_ref().map(snapshot_index)
    }

    #[cfg(test)]
    pub fn all_entries(&self) -> Vec<Entry> {
        self.entries(self.first_index(), crate::NO_LIMIT).unwrap_or_default()
    }
}

/// The core cannot make progress without its log; a storage that fails to answer for an
/// index it reported as present is broken, and stopping loudly beats diverging silently.
fn storage_failed(what: &str, e: StorageError) -> ! {
    panic!("raft storage failed to answer {what}: {e}")
}
