//! What the core reads from the application's durable log, and an in-memory implementation.
//!
//! The core only reads through `Storage`; the application writes (entries, hard state,
//! snapshots) when it handles a `Ready`. Index 0 and the indexes up to the first entry are
//! covered by a "dummy" position whose term is known: the last compacted entry or snapshot.

use raftkv_proto::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

use crate::errors::StorageError;
use crate::util::limit_size;

pub type StorageResult<T> = std::result::Result<T, StorageError>;

/// What a node restarts from: its hard state and the membership it last knew.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RaftState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
}

pub trait Storage {
    /// The persisted hard state and membership, read once at start.
    fn initial_state(&self) -> StorageResult<RaftState>;
    /// Entries in `[low, high)`, at most `max_size` bytes but always at least one entry.
    fn entries(&self, low: u64, high: u64, max_size: u64) -> StorageResult<Vec<Entry>>;
    /// The term of the entry at `index`, which must lie in `[first_index - 1, last_index]`.
    fn term(&self, index: u64) -> StorageResult<u64>;
    /// The index of the first entry still available (older ones went into a snapshot).
    fn first_index(&self) -> StorageResult<u64>;
    /// The index of the last entry (the snapshot's index if the log is empty).
    fn last_index(&self) -> StorageResult<u64>;
    /// The most recent snapshot. It must cover at least `request_index`; if it is being
    /// generated, answer `SnapshotTemporarilyUnavailable` and the core asks again later.
    /// `to` is the peer it is for.
    fn snapshot(&self, request_index: u64, to: u64) -> StorageResult<Snapshot>;
}

/// An in-memory `Storage` for tests, examples and simulation. Its contents stand for what
/// is durable: dropping a `RawNode` and restarting it over the same `MemStorage` is a crash.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[0]` is a dummy holding the index and term of the last compacted entry.
    entries: Vec<Entry>,
    /// Answer the next `snapshot()` with `SnapshotTemporarilyUnavailable` (tests).
    snapshot_unavailable_once: std::cell::Cell<bool>,
}

impl MemStorage {
    pub fn new() -> Self {
        MemStorage { entries: vec![Entry::default()], ..Default::default() }
    }

    /// A storage for a fresh node of a group whose initial members are `voters`.
    pub fn new_with_conf_state(voters: Vec<u64>, learners: Vec<u64>) -> Self {
        let mut s = Self::new();
        s.conf_state = ConfState { voters, learners };
        s.snapshot.metadata =
            Some(SnapshotMetadata { conf_state: Some(s.conf_state.clone()), index: 0, term: 0 });
        s
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    fn offset(&self) -> u64 {
        self.entries[0].index
    }

    fn last(&self) -> u64 {
        self.offset() + self.entries.len() as u64 - 1
    }

    /// Appends entries, replacing any existing ones at or after the first new index. The new
    /// entries must be contiguous and must not leave a gap after the current log.
    pub fn append(&mut self, ents: &[Entry]) -> StorageResult<()> {
        let Some(first_new) = ents.first() else { return Ok(()) };
        let offset = self.offset();
        if first_new.index + ents.len() as u64 <= offset + 1 {
            // Everything new is already compacted.
            return Ok(());
        }
        if first_new.index > self.last() + 1 {
            return Err(StorageError::Other(
                format!("append leaves a gap: last {} then {}", self.last(), first_new.index)
                    .into(),
            ));
        }
        let skip = offset.saturating_sub(first_new.index - 1) as usize;
        let ents = &ents[skip..];
        let keep = (ents[0].index - offset) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Drops entries before `compact_index`; its predecessor becomes the dummy entry.
    pub fn compact(&mut self, compact_index: u64) -> StorageResult<()> {
        let offset = self.offset();
        if compact_index <= offset + 1 {
            return Ok(());
        }
        if compact_index > self.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        let i = (compact_index - 1 - offset) as usize;
        self.entries.drain(..i);
        self.entries[0].data = Default::default();
        Ok(())
    }

    /// Records a snapshot of the application's state at `index` (which must be in the log).
    pub fn create_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: bytes::Bytes,
    ) -> StorageResult<&Snapshot> {
        let current = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        if index <= current {
            return Err(StorageError::SnapshotOutOfDate);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        let term = self.entries[(index - self.offset()) as usize].term;
        self.snapshot = Snapshot {
            data,
            metadata: Some(SnapshotMetadata { conf_state: Some(conf_state), index, term }),
        };
        Ok(&self.snapshot)
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> StorageResult<()> {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        let current = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        if meta.index < current || meta.index < self.offset() {
            return Err(StorageError::SnapshotOutOfDate);
        }
        self.entries = vec![Entry { index: meta.index, term: meta.term, ..Default::default() }];
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.conf_state.clone().unwrap_or_default();
        self.snapshot = snapshot;
        Ok(())
    }

    /// Makes the next `snapshot()` answer "temporarily unavailable", as while generating.
    pub fn trigger_snapshot_unavailable(&mut self) {
        self.snapshot_unavailable_once.set(true);
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> StorageResult<RaftState> {
        Ok(RaftState { hard_state: self.hard_state, conf_state: self.conf_state.clone() })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> StorageResult<Vec<Entry>> {
        let offset = self.offset();
        if low <= offset {
            return Err(StorageError::Compacted);
        }
        if high > self.last() + 1 {
            return Err(StorageError::Unavailable);
        }
        let lo = (low - offset) as usize;
        let hi = (high - offset) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        limit_size(&mut ents, max_size);
        Ok(ents)
    }

    fn term(&self, index: u64) -> StorageResult<u64> {
        let offset = self.offset();
        if index < offset {
            return Err(StorageError::Compacted);
        }
        if index > self.last() {
            return Err(StorageError::Unavailable);
        }
        Ok(self.entries[(index - offset) as usize].term)
    }

    fn first_index(&self) -> StorageResult<u64> {
        Ok(self.offset() + 1)
    }

    fn last_index(&self) -> StorageResult<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> StorageResult<Snapshot> {
        if self.snapshot_unavailable_once.replace(false) {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        let index = self.snapshot.metadata.as_ref().map_or(0, |m| m.index);
        if index < request_index {
            return Err(StorageError::SnapshotTemporarilyUnavailable);
        }
        Ok(self.snapshot.clone())
    }
}
