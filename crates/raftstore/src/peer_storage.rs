//! `raft::Storage` over the two engines: the log and `RaftLocalState` in raftdb, the apply
//! state in kvdb. Writes go into the raft loop's write batch, so every peer's Ready of one
//! loop is persisted with one fsync (group commit).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use engine::{CF_RAFT, Engine, WriteBatch};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{RaftState, StorageError, StorageResult};
use raftkv_proto::metapb::Region;
use raftkv_proto::raft_serverpb::{RaftApplyState, RaftLocalState, RaftTruncatedState};

use crate::errors::{Result, StoreError};
use crate::keys;
use crate::region_worker::RegionTask;
use crate::snap::{GenLookup, SnapManager};

/// A fresh region's log starts here (term and index 5), so a peer created empty by a later
/// membership change (index 0) can be told apart from an initial member.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;
pub const RAFT_INIT_LOG_TERM: u64 = 5;

/// Recent entries kept in memory: the leader reads them to replicate, and most reads of
/// `term()` hit the tail of the log.
struct EntryCache {
    entries: VecDeque<Entry>,
    size_bytes: u64,
}

const CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Applied entries kept for followers that lag a little.
const CACHE_KEEP_APPLIED: u64 = 1024;

impl EntryCache {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn get(&self, index: u64) -> Option<&Entry> {
        let first = self.first_index()?;
        if index < first {
            return None;
        }
        self.entries.get((index - first) as usize)
    }

    fn append(&mut self, ents: &[Entry]) {
        let Some(new_first) = ents.first().map(|e| e.index) else { return };
        if let Some(first) = self.first_index() {
            let contiguous = first + self.entries.len() as u64;
            if new_first < first || new_first > contiguous {
                self.clear();
            } else {
                while self.entries.len() as u64 > new_first - first {
                    if let Some(e) = self.entries.pop_back() {
                        self.size_bytes -= raft::entry_size(&e);
                    }
                }
            }
        }
        for e in ents {
            self.size_bytes += raft::entry_size(e);
            self.entries.push_back(e.clone());
        }
    }

    /// Drops entries at or below `applied - CACHE_KEEP_APPLIED`, and more while over budget.
    fn compact(&mut self, applied: u64) {
        while let Some(front) = self.entries.front() {
            let old = front.index + CACHE_KEEP_APPLIED <= applied;
            let over = self.size_bytes > CACHE_MAX_BYTES && front.index <= applied;
            if !(old || over) {
                break;
            }
            if let Some(e) = self.entries.pop_front() {
                self.size_bytes -= raft::entry_size(&e);
            }
        }
    }

    /// Drops every entry at or below `index` (compacted).
    fn drop_through(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.entries.pop_front() {
                self.size_bytes -= raft::entry_size(&e);
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.size_bytes = 0;
    }
}

/// Where snapshots come from: the store's snapshot files and its region worker.
#[derive(Clone)]
pub(crate) struct SnapContext {
    pub mgr: Arc<SnapManager>,
    pub worker: Sender<RegionTask>,
}

pub struct PeerStorage {
    region: Region,
    snap: SnapContext,
    raft_engine: Engine,
    kv_engine: Engine,
    raft_state: RaftLocalState,
    apply_state: RaftApplyState,
    cache: EntryCache,
    /// Approximate bytes of the entries kept (truncated, last]; drives size-based GC.
    log_bytes: u64,
}

impl PeerStorage {
    /// Loads a peer's persisted state and checks `truncated <= applied <= commit <= last`.
    pub(crate) fn load(
        region: Region,
        raft_engine: Engine,
        kv_engine: Engine,
        snap: SnapContext,
    ) -> Result<Self> {
        let id = region.id;
        let raft_state: RaftLocalState =
            raft_engine
                .get_msg(CF_RAFT, &keys::raft_state_key(id))?
                .ok_or_else(|| StoreError::Corrupt(format!("region {id}: raft state missing")))?;
        let apply_state: RaftApplyState = kv_engine
            .get_msg(engine::CF_DEFAULT, &keys::apply_state_key(id))?
            .ok_or_else(|| StoreError::Corrupt(format!("region {id}: apply state missing")))?;
        let mut s = PeerStorage {
            region,
            snap,
            raft_engine,
            kv_engine,
            raft_state,
            apply_state,
            cache: EntryCache { entries: VecDeque::new(), size_bytes: 0 },
            log_bytes: 0,
        };
        s.check_invariants()?;
        s.raise_commit_to_applied();
        Ok(s)
    }

    /// `truncated <= applied <= last` and `commit <= last`. `applied <= commit` is not
    /// required on disk: the apply (kvdb) can be durable before the raft write that carried
    /// its commit index (raftdb, written in the background), and what was applied was
    /// committed; `raise_commit_to_applied` restores it.
    fn check_invariants(&self) -> Result<()> {
        let truncated = self.truncated_index();
        let applied = self.applied_index();
        let commit = self.raft_state.hard_state.map_or(0, |h| h.commit);
        let last = self.raft_state.last_index;
        if !(truncated <= applied && applied <= last && commit <= last) {
            return Err(StoreError::Corrupt(format!(
                "region {}: log pointers broken: truncated {truncated}, applied {applied}, \
                 commit {commit}, last {last} (need truncated <= applied <= last, commit <= last)",
                self.region.id
            )));
        }
        if last > truncated {
            let term = self.stored_term(last).map_err(|e| {
                StoreError::Corrupt(format!("region {}: last entry {last}: {e}", self.region.id))
            })?;
            if term != self.raft_state.last_term {
                return Err(StoreError::Corrupt(format!(
                    "region {}: last entry {last} has term {term}, raft state says {}",
                    self.region.id, self.raft_state.last_term
                )));
            }
        }
        Ok(())
    }

    fn raise_commit_to_applied(&mut self) {
        let applied = self.applied_index();
        let Some(hs) = self.raft_state.hard_state.as_mut() else { return };
        if hs.commit < applied {
            tracing::info!(
                region_id = self.region.id,
                commit = hs.commit,
                applied,
                "the apply outlived its commit record (a crash): commit raised to applied"
            );
            hs.commit = applied;
        }
    }

    pub fn region(&self) -> &Region {
        &self.region
    }

    pub fn set_region(&mut self, region: Region) {
        self.region = region;
    }

    pub fn applied_index(&self) -> u64 {
        self.apply_state.applied_index
    }

    pub fn apply_state(&self) -> &RaftApplyState {
        &self.apply_state
    }

    pub fn set_applied_index(&mut self, index: u64) {
        self.apply_state.applied_index = index;
        self.cache.compact(index);
    }

    pub fn truncated_index(&self) -> u64 {
        self.apply_state.truncated_state.map_or(0, |t| t.index)
    }

    fn truncated_term(&self) -> u64 {
        self.apply_state.truncated_state.map_or(0, |t| t.term)
    }

    /// Approximate bytes of the log kept since the last compaction point.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }

    /// Marks entries up to `index` compacted (a CompactLog applied). The caller writes the
    /// apply state; the entries are deleted physically later, once that state is durable.
    pub fn compact_to(&mut self, index: u64, term: u64) {
        let kept_before = self.raft_state.last_index.saturating_sub(self.truncated_index()).max(1);
        let kept_after = self.raft_state.last_index.saturating_sub(index);
        self.log_bytes = self.log_bytes * kept_after / kept_before;
        self.apply_state.truncated_state = Some(RaftTruncatedState { index, term });
        self.cache.drop_through(index);
    }

    pub fn kv_engine(&self) -> &Engine {
        &self.kv_engine
    }

    pub(crate) fn snap_context(&self) -> &SnapContext {
        &self.snap
    }

    pub fn raft_state(&self) -> &RaftLocalState {
        &self.raft_state
    }

    /// Installs the raft side of a received snapshot at (`index`, `term`): the log now ends
    /// there and everything up to it counts as applied and compacted. Stages the deletion
    /// of stored entries past it (they belong to a log the snapshot replaced); the entries
    /// below it go to the raftlog-gc worker. The caller persists the states.
    pub fn begin_applying_snapshot(
        &mut self,
        index: u64,
        term: u64,
        region: Region,
        wb: &mut WriteBatch,
    ) {
        for stale in index + 1..=self.raft_state.last_index {
            wb.delete(CF_RAFT, &keys::raft_log_key(self.region.id, stale));
        }
        self.raft_state.last_index = index;
        self.raft_state.last_term = term;
        self.apply_state = RaftApplyState {
            applied_index: index,
            truncated_state: Some(RaftTruncatedState { index, term }),
        };
        self.region = region;
        self.cache.clear();
        self.log_bytes = 0;
    }

    /// Adds a Ready's entries to the loop's raft write batch, deleting any stored entries
    /// past the new last one (they were replaced by a newer leader and can never commit).
    pub fn append(&mut self, ents: &[Entry], wb: &mut WriteBatch) {
        let Some(last) = ents.last() else { return };
        let region_id = self.region.id;
        for e in ents {
            wb.put_msg(CF_RAFT, &keys::raft_log_key(region_id, e.index), e);
        }
        for stale in last.index + 1..=self.raft_state.last_index {
            wb.delete(CF_RAFT, &keys::raft_log_key(region_id, stale));
        }
        self.raft_state.last_index = last.index;
        self.raft_state.last_term = last.term;
        self.log_bytes += ents.iter().map(raft::entry_size).sum::<u64>();
        self.cache.append(ents);
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.raft_state.hard_state = Some(hs);
    }

    pub fn write_raft_state(&self, wb: &mut WriteBatch) {
        wb.put_msg(CF_RAFT, &keys::raft_state_key(self.region.id), &self.raft_state);
    }

    fn stored_term(&self, index: u64) -> std::result::Result<u64, String> {
        let key = keys::raft_log_key(self.region.id, index);
        match self.raft_engine.get_msg::<Entry>(CF_RAFT, &key) {
            Ok(Some(e)) if e.index == index => Ok(e.term),
            Ok(Some(e)) => Err(format!("entry stored at {index} claims index {}", e.index)),
            Ok(None) => Err(format!("entry {index} missing")),
            Err(e) => Err(e.to_string()),
        }
    }

    fn storage_error(msg: String) -> StorageError {
        StorageError::Other(msg.into())
    }
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> StorageResult<RaftState> {
        let voters = self.region.peers.iter().map(|p| p.id).collect();
        Ok(RaftState {
            hard_state: self.raft_state.hard_state.unwrap_or_default(),
            conf_state: ConfState { voters, learners: vec![] },
        })
    }

    fn entries(&self, low: u64, high: u64, max_size: u64) -> StorageResult<Vec<Entry>> {
        if low <= self.truncated_index() {
            return Err(StorageError::Compacted);
        }
        if high > self.raft_state.last_index + 1 {
            return Err(StorageError::Unavailable);
        }
        let mut ents = Vec::with_capacity((high - low).min(1024) as usize);
        let mut size = 0u64;
        let cache_first = self.cache.first_index().unwrap_or(u64::MAX);
        let mut next = low;
        if low < cache_first {
            let start = keys::raft_log_key(self.region.id, low);
            let end = keys::raft_log_key(self.region.id, high.min(cache_first));
            let pairs = self
                .raft_engine
                .scan(CF_RAFT, &start, Some(&end), (high - low) as usize)
                .map_err(|e| Self::storage_error(e.to_string()))?;
            for (_, v) in pairs {
                let e = <Entry as prost::Message>::decode(v.as_ref())
                    .map_err(|e| Self::storage_error(format!("corrupt log entry: {e}")))?;
                if e.index != next {
                    return Err(Self::storage_error(format!(
                        "log gap in region {}: expected entry {next}, found {}",
                        self.region.id, e.index
                    )));
                }
                size += raft::entry_size(&e);
                if !ents.is_empty() && size > max_size {
                    return Ok(ents);
                }
                ents.push(e);
                next += 1;
            }
            if next < high.min(cache_first) {
                return Err(Self::storage_error(format!(
                    "log gap in region {}: entry {next} missing",
                    self.region.id
                )));
            }
        }
        while next < high {
            let Some(e) = self.cache.get(next) else {
                return Err(Self::storage_error(format!("entry {next} missing from cache")));
            };
            size += raft::entry_size(e);
            if !ents.is_empty() && size > max_size {
                break;
            }
            ents.push(e.clone());
            next += 1;
        }
        Ok(ents)
    }

    fn term(&self, index: u64) -> StorageResult<u64> {
        let truncated = self.truncated_index();
        if index == truncated {
            return Ok(self.truncated_term());
        }
        if index < truncated {
            return Err(StorageError::Compacted);
        }
        if index > self.raft_state.last_index {
            return Err(StorageError::Unavailable);
        }
        if index == self.raft_state.last_index {
            return Ok(self.raft_state.last_term);
        }
        if let Some(e) = self.cache.get(index) {
            return Ok(e.term);
        }
        self.stored_term(index).map_err(Self::storage_error)
    }

    fn first_index(&self) -> StorageResult<u64> {
        Ok(self.truncated_index() + 1)
    }

    fn last_index(&self) -> StorageResult<u64> {
        Ok(self.raft_state.last_index)
    }

    /// A generated snapshot is reused while it covers the truncated index (a follower can
    /// continue from the log after it); otherwise the region worker makes a new one from
    /// kvdb as of now, and Raft asks again on the follower's next heartbeat response.
    fn snapshot(&self, request_index: u64, _to: u64) -> StorageResult<Snapshot> {
        let region_id = self.region.id;
        match self.snap.mgr.lookup(region_id, request_index.max(self.truncated_index())) {
            GenLookup::Ready(snapshot) => Ok(snapshot),
            GenLookup::Generating => Err(StorageError::SnapshotTemporarilyUnavailable),
            GenLookup::Missing => {
                let index = self.applied_index();
                let term = self.term(index)?;
                // Taken here, on the raft thread between applies: kvdb holds exactly the
                // state at `index` (data and apply state are written in one batch).
                let kv = self.kv_engine.snapshot();
                self.snap.mgr.start_generating(region_id, index);
                let task = RegionTask::Generate { region_id, kv, index, term };
                if self.snap.worker.send(task).is_err() {
                    tracing::warn!(region_id, "region worker stopped: no snapshot generated");
                }
                Err(StorageError::SnapshotTemporarilyUnavailable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use raft::Storage;

    use super::*;
    use crate::bootstrap::{self, Engines};
    use crate::config::StoreConfig;

    fn fresh(dir: &std::path::Path) -> (PeerStorage, Engines, bootstrap::DirLock) {
        let peers: BTreeMap<u64, String> = [(1, "127.0.0.1:1".to_string())].into();
        let cfg = StoreConfig::new(1, peers, dir.to_path_buf());
        let (engines, lock) = bootstrap::open_engines(dir).expect("engines");
        bootstrap::load_or_bootstrap(&cfg, &engines).expect("bootstrap");
        let region = bootstrap::load_regions(&engines).expect("regions")[0].region.clone();
        let snap = SnapContext {
            mgr: SnapManager::open(&dir.join("snap"), cfg.snap.clone()).expect("snap dir"),
            worker: std::sync::mpsc::channel().0,
        };
        let storage = PeerStorage::load(
            region.unwrap_or_default(),
            engines.raft.clone(),
            engines.kv.clone(),
            snap,
        )
        .expect("load");
        (storage, engines, lock)
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range
            .map(|index| Entry { index, term, data: vec![7; 100].into(), ..Default::default() })
            .collect()
    }

    fn persist(s: &mut PeerStorage, engines: &Engines, ents: &[Entry]) {
        let mut wb = WriteBatch::new();
        s.append(ents, &mut wb);
        s.write_raft_state(&mut wb);
        engines.raft.write(wb, true).expect("write");
    }

    /// Makes the in-memory apply state the durable one, as an apply does.
    fn persist_apply_state(s: &PeerStorage, engines: &Engines) {
        let mut wb = WriteBatch::new();
        wb.put_msg(engine::CF_DEFAULT, &keys::apply_state_key(1), s.apply_state());
        engines.kv.write(wb, true).expect("write");
    }

    /// Loads the region's storage again from what the engines hold.
    fn reload(s: &PeerStorage, engines: &Engines) -> Result<PeerStorage> {
        let snap = s.snap.clone();
        PeerStorage::load(s.region().clone(), engines.raft.clone(), engines.kv.clone(), snap)
    }

    fn indexes(ents: &[Entry]) -> Vec<(u64, u64)> {
        ents.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn a_fresh_region_starts_at_index_and_term_five() {
        let dir = tempfile::tempdir().expect("dir");
        let (s, _e, _l) = fresh(dir.path());
        let state = s.initial_state().expect("state");
        assert_eq!((state.hard_state.term, state.hard_state.commit), (5, 5));
        assert_eq!(state.conf_state.voters, vec![1]);
        assert_eq!((s.first_index().expect("first"), s.last_index().expect("last")), (6, 5));
        assert_eq!(s.term(5).expect("term of the initial index"), 5);
        assert!(matches!(s.term(4), Err(StorageError::Compacted)));
        assert!(matches!(s.term(6), Err(StorageError::Unavailable)));
    }

    #[test]
    fn entries_read_across_the_engine_and_the_cache() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut s, engines, _l) = fresh(dir.path());
        persist(&mut s, &engines, &entries(6..=3000, 6));
        // Drop the older entries from the cache: reads of them go to the engine.
        s.set_applied_index(3000);
        let all = s.entries(6, 3001, u64::MAX).expect("entries");
        assert_eq!(all.len(), 2995);
        assert!(all.windows(2).all(|w| w[1].index == w[0].index + 1));
        let limited = s.entries(6, 3001, 1000).expect("entries");
        assert!(!limited.is_empty() && limited.len() < 10, "{} entries", limited.len());
        let one = s.entries(100, 3001, 1).expect("at least one");
        assert_eq!(indexes(&one), vec![(100, 6)]);
        assert_eq!(s.term(10).expect("term from the engine"), 6);
        assert!(matches!(s.entries(5, 7, u64::MAX), Err(StorageError::Compacted)));
        assert!(matches!(s.entries(6, 3002, u64::MAX), Err(StorageError::Unavailable)));
    }

    #[test]
    fn a_conflicting_append_replaces_the_tail_on_disk() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut s, engines, _l) = fresh(dir.path());
        persist(&mut s, &engines, &entries(6..=20, 6));
        persist(&mut s, &engines, &entries(15..=17, 7));
        assert_eq!(s.last_index().expect("last"), 17);
        let got = s.entries(13, 18, u64::MAX).expect("entries");
        assert_eq!(indexes(&got), vec![(13, 6), (14, 6), (15, 7), (16, 7), (17, 7)]);
        let stale = keys::raft_log_key(1, 18);
        assert!(
            engines.raft.get(engine::CF_RAFT, &stale).expect("get").is_none(),
            "entry 18 must be gone"
        );
    }

    #[test]
    fn compaction_moves_the_first_index_and_keeps_the_truncated_term() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut s, engines, _l) = fresh(dir.path());
        persist(&mut s, &engines, &entries(6..=30, 6));
        s.set_applied_index(30);
        s.compact_to(20, 6);
        assert_eq!(s.first_index().expect("first"), 21);
        assert_eq!(s.term(20).expect("truncated term"), 6);
        assert!(matches!(s.term(19), Err(StorageError::Compacted)));
        assert!(matches!(s.entries(20, 25, u64::MAX), Err(StorageError::Compacted)));
        assert_eq!(s.entries(21, 31, u64::MAX).expect("kept").len(), 10);
    }

    #[test]
    fn an_apply_that_outlived_its_commit_record_raises_the_commit() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut s, engines, _l) = fresh(dir.path());
        persist(&mut s, &engines, &entries(6..=10, 6)); // commit stays at 5
        s.set_applied_index(8);
        persist_apply_state(&s, &engines);
        let loaded = reload(&s, &engines).expect("an apply ahead of the commit record loads");
        assert_eq!(loaded.initial_state().expect("state").hard_state.commit, 8);
    }

    #[test]
    fn a_store_that_applied_past_its_log_refuses_to_load() {
        let dir = tempfile::tempdir().expect("dir");
        let (mut s, engines, _l) = fresh(dir.path());
        s.set_applied_index(6); // the log ends at 5
        persist_apply_state(&s, &engines);
        let msg = reload(&s, &engines).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("log pointers broken"), "{msg}");
    }

    #[test]
    fn a_store_with_broken_log_pointers_refuses_to_load() {
        let dir = tempfile::tempdir().expect("dir");
        let (s, engines, _l) = fresh(dir.path());
        let mut state = s.raft_state;
        state.hard_state = Some(HardState { term: 5, vote: 0, commit: 9 }); // commit > last (5)
        let mut wb = WriteBatch::new();
        wb.put_msg(CF_RAFT, &keys::raft_state_key(1), &state);
        engines.raft.write(wb, true).expect("write");
        let msg = reload(&s, &engines).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("log pointers broken"), "{msg}");
    }
}
