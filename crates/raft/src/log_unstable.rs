//! Entries and a snapshot the node has accepted but the application has not yet persisted.
//!
//! Invariants: `offset` is the index of `entries[0]`; if `snapshot` is set, `offset` is its
//! index + 1; `offset <= offset_in_progress <= offset + entries.len()`. Everything here
//! moves to `Storage` when the application reports a `Ready` persisted.
//!
//! Entries and the snapshot stay here until they are durable, also while the application
//! writes them (after etcd-io/raft's `offsetInProgress`): `[offset, offset_in_progress)` was
//! handed out in a Ready whose write has not completed, so the next Ready carries only what
//! follows, and reads of those entries keep being served from here.

use raftkv_proto::eraftpb::{Entry, Snapshot};

#[derive(Debug, Default)]
pub struct Unstable {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub offset: u64,
    /// Entries before this index were handed out to be persisted.
    pub offset_in_progress: u64,
    /// The snapshot was handed out to be persisted.
    pub snapshot_in_progress: bool,
}

pub fn snapshot_index(s: &Snapshot) -> u64 {
    s.metadata.as_ref().map_or(0, |m| m.index)
}

pub fn snapshot_term(s: &Snapshot) -> u64 {
    s.metadata.as_ref().map_or(0, |m| m.term)
}

impl Unstable {
    pub fn new(offset: u64) -> Self {
        Unstable {
            snapshot: None,
            entries: Vec::new(),
            offset,
            offset_in_progress: offset,
            snapshot_in_progress: false,
        }
    }

    /// Entries not yet handed out to be persisted.
    pub fn entries_to_persist(&self) -> &[Entry] {
        &self.entries[(self.offset_in_progress - self.offset) as usize..]
    }

    /// The snapshot, if not yet handed out to be persisted.
    pub fn snapshot_to_persist(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().filter(|_| !self.snapshot_in_progress)
    }

    /// Everything here was handed out in a Ready: the next one carries only what follows.
    pub fn accept_in_progress(&mut self) {
        self.offset_in_progress = self.offset + self.entries.len() as u64;
        self.snapshot_in_progress = self.snapshot.is_some();
    }

    pub fn maybe_first_index(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|s| snapshot_index(s) + 1)
    }

    pub fn maybe_last_index(&self) -> Option<u64> {
        match self.entries.len() {
            0 => self.snapshot.as_ref().map(snapshot_index),
            n => Some(self.offset + n as u64 - 1),
        }
    }

    pub fn maybe_term(&self, index: u64) -> Option<u64> {
        if index < self.offset {
            let snap = self.snapshot.as_ref()?;
            return (snapshot_index(snap) == index).then(|| snapshot_term(snap));
        }
        let last = self.maybe_last_index()?;
        if index > last {
            return None;
        }
        Some(self.entries[(index - self.offset) as usize].term)
    }

    /// Entries up to `index` are durable, if the entry there still has `term` (it may have
    /// been replaced by a newer leader's entry while the write was in flight).
    pub fn stable_entries(&mut self, index: u64, term: u64) {
        if self.maybe_term(index) != Some(term) || index < self.offset {
            return;
        }
        self.entries.drain(..=(index - self.offset) as usize);
        self.offset = index + 1;
        self.offset_in_progress = self.offset_in_progress.max(self.offset);
    }

    pub fn stable_snapshot(&mut self, index: u64) {
        if self.snapshot.as_ref().is_some_and(|s| snapshot_index(s) == index) {
            self.snapshot = None;
            self.snapshot_in_progress = false;
        }
    }

    pub fn restore(&mut self, snapshot: Snapshot) {
        self.entries.clear();
        self.offset = snapshot_index(&snapshot) + 1;
        self.offset_in_progress = self.offset;
        self.snapshot = Some(snapshot);
        self.snapshot_in_progress = false;
    }

    /// Appends `ents`, first dropping any unstable entries at or after `ents[0].index`.
    pub fn truncate_and_append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let after = first.index;
        if after == self.offset + self.entries.len() as u64 {
            // The common case: a direct continuation.
        } else if after <= self.offset {
            // Replaces everything unstable (the storage side is truncated by the persist).
            // A write still in flight covers none of the new entries.
            self.offset = after;
            self.offset_in_progress = after;
            self.entries.clear();
        } else {
            // Only the in-flight entries before `after` are still being written as they are.
            self.entries.truncate((after - self.offset) as usize);
            self.offset_in_progress = self.offset_in_progress.min(after);
        }
        self.entries.extend_from_slice(ents);
    }

    /// Entries in `[lo, hi)`; the caller checked the bounds.
    pub fn slice(&self, lo: u64, hi: u64) -> &[Entry] {
        debug_assert!(self.offset <= lo && lo <= hi);
        &self.entries[(lo - self.offset) as usize..(hi - self.offset) as usize]
    }
}
