//! Snapshots of a region's data: files in `DIR/snap`, who may use them, and the limits on
//! moving them between stores.
//!
//! - A *generated* snapshot (`gen_R_T_I.snap`) is written by the region worker from one
//!   consistent point of kvdb when Raft asks peer storage for one. It is reused for every
//!   follower that needs a snapshot while its index is still at or past the truncated index
//!   (they can continue from the log after it), pinned while a transfer reads it, and
//!   deleted once a newer one replaces it and no transfer holds it.
//! - A *received* snapshot (`rev_R_T_I.snap`) is streamed into a temp file, checked against
//!   its size and checksum, fsynced and renamed before the MsgSnapshot reaches Raft. It is
//!   deleted once applied (the region is back to `Normal`), or once the region's applied
//!   index passed it (Raft refused it as stale).
//! - Temp files and generated files are garbage after a restart; received files are kept
//!   only for a region whose state is still `Applying`.
//!
//! See `docs/log-gc-and-snapshots.md`.

mod file;
mod limiter;
mod transfer;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::eraftpb::Snapshot;

pub use self::file::{SnapFileReader, SnapFileWriter, verify};
use self::limiter::RateLimiter;
pub use self::transfer::{IncomingSnapshot, OutgoingSnapshot, SnapError};
use crate::errors::{Result, StoreError};

/// Identifies a snapshot: the region and the (term, index) it was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapKey {
    pub region_id: u64,
    pub term: u64,
    pub index: u64,
}

impl SnapKey {
    pub fn of(region_id: u64, snapshot: &Snapshot) -> SnapKey {
        let (term, index) = snapshot.metadata.as_ref().map_or((0, 0), |m| (m.term, m.index));
        SnapKey { region_id, term, index }
    }

    fn file_name(&self, prefix: &str) -> String {
        format!("{prefix}_{}_{}_{}.snap", self.region_id, self.term, self.index)
    }

    fn parse(name: &str) -> Option<(&str, SnapKey)> {
        let stem = name.strip_suffix(".snap")?;
        let mut parts = stem.split('_');
        let prefix = parts.next()?;
        let mut num = || parts.next()?.parse::<u64>().ok();
        let key = SnapKey { region_id: num()?, term: num()?, index: num()? };
        Some((prefix, key))
    }
}

impl std::fmt::Display for SnapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "region {} at index {} (term {})", self.region_id, self.index, self.term)
    }
}

const GENERATED: &str = "gen";
const RECEIVED: &str = "rev";

/// The `[raftstore] snap_*` settings.
#[derive(Debug, Clone)]
pub struct SnapConfig {
    pub chunk_bytes: usize,
    /// 0 = unlimited.
    pub max_bytes_per_sec: u64,
    pub max_concurrent_send: usize,
    pub max_concurrent_recv: usize,
}

/// A generated snapshot ready to be sent.
#[derive(Clone)]
pub(crate) struct Generated {
    pub key: SnapKey,
    pub snapshot: Snapshot,
    pub at: Instant,
}

enum GenState {
    Generating { index: u64 },
    Ready(Generated),
}

/// How long log GC spares the entries after a freshly generated snapshot, so the follower
/// it was made for can continue from the log once it is installed (until Raft starts
/// sending it, nothing else marks that follower as needing them).
const GC_HOLD: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Files {
    generated: HashMap<u64, GenState>,
    /// Generated files being read by a transfer: file -> readers.
    pins: HashMap<SnapKey, usize>,
    /// Replaced generated files still pinned: deleted when the last reader lets go.
    replaced: HashSet<SnapKey>,
}

pub struct SnapManager {
    dir: PathBuf,
    cfg: SnapConfig,
    limiter: RateLimiter,
    sending: AtomicUsize,
    receiving: AtomicUsize,
    files: Mutex<Files>,
    next_temp: AtomicU64,
}

/// What peer storage finds when Raft asks for a snapshot.
pub(crate) enum GenLookup {
    Ready(Snapshot),
    Generating,
    /// None, or only one too old to help: generate a new one.
    Missing,
}

impl SnapManager {
    /// Opens `dir` (creating it) and removes what a previous run left unfinished.
    pub fn open(dir: &Path, cfg: SnapConfig) -> Result<Arc<SnapManager>> {
        std::fs::create_dir_all(dir).map_err(|e| dir_error(dir, "cannot create", e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| dir_error(dir, "cannot list", e))? {
            let entry = entry.map_err(|e| dir_error(dir, "cannot list", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let garbage = name.ends_with(".tmp")
                || SnapKey::parse(&name).is_some_and(|(prefix, _)| prefix == GENERATED);
            if garbage {
                remove_file(&entry.path());
            }
        }
        Ok(Arc::new(SnapManager {
            dir: dir.to_path_buf(),
            limiter: RateLimiter::new(cfg.max_bytes_per_sec),
            cfg,
            sending: AtomicUsize::new(0),
            receiving: AtomicUsize::new(0),
            files: Mutex::new(Files::default()),
            next_temp: AtomicU64::new(0),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until `bytes` more of snapshot I/O fit the store's budget
    /// (`snap_max_bytes_per_sec`, shared by generation, sends, receives and installs).
    pub(crate) fn throttle(&self, bytes: u64) {
        self.limiter.consume_blocking(bytes);
    }

    pub(crate) fn generated_path(&self, key: &SnapKey) -> PathBuf {
        self.dir.join(key.file_name(GENERATED))
    }

    pub(crate) fn received_path(&self, key: &SnapKey) -> PathBuf {
        self.dir.join(key.file_name(RECEIVED))
    }

    pub(crate) fn temp_path(&self, key: &SnapKey) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::SeqCst);
        self.dir.join(format!("{}.{n}.tmp", key.file_name("part")))
    }

    /// Deletes received files except those in `keep` (start-up: files of regions still
    /// `Applying`).
    pub(crate) fn remove_received_except(&self, keep: &HashSet<SnapKey>) {
        for (key, path) in self.received_files() {
            if !keep.contains(&key) {
                remove_file(&path);
            }
        }
    }

    /// Deletes the received files of `region_id` at or below `applied` (applied or refused).
    pub(crate) fn remove_received_through(&self, region_id: u64, applied: u64) {
        for (key, path) in self.received_files() {
            if key.region_id == region_id && key.index <= applied {
                remove_file(&path);
            }
        }
    }

    fn received_files(&self) -> Vec<(SnapKey, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                match SnapKey::parse(&name) {
                    Some((RECEIVED, key)) => Some((key, entry.path())),
                    _ => None,
                }
            })
            .collect()
    }

    /// The region's generated snapshot if it covers `min_index`.
    pub(crate) fn lookup(&self, region_id: u64, min_index: u64) -> GenLookup {
        let Ok(files) = self.files.lock() else { return GenLookup::Generating };
        match files.generated.get(&region_id) {
            Some(GenState::Generating { .. }) => GenLookup::Generating,
            Some(GenState::Ready(g)) if g.key.index >= min_index => {
                GenLookup::Ready(g.snapshot.clone())
            }
            _ => GenLookup::Missing,
        }
    }

    /// The log index after which log GC must keep the region's entries for a snapshot being
    /// generated or just generated, if any.
    pub(crate) fn gc_hold(&self, region_id: u64) -> Option<u64> {
        let files = self.files.lock().ok()?;
        match files.generated.get(&region_id)? {
            GenState::Generating { index } => Some(*index),
            GenState::Ready(g) if g.at.elapsed() < GC_HOLD => Some(g.key.index),
            GenState::Ready(_) => None,
        }
    }

    pub(crate) fn start_generating(&self, region_id: u64, index: u64) {
        if let Ok(mut files) = self.files.lock() {
            let old = files.generated.insert(region_id, GenState::Generating { index });
            if let Some(GenState::Ready(old)) = old {
                Self::retire(&mut files, &self.generated_path(&old.key), old.key);
            }
        }
    }

    pub(crate) fn finish_generating(&self, g: Generated) {
        if let Ok(mut files) = self.files.lock() {
            files.generated.insert(g.key.region_id, GenState::Ready(g));
        }
    }

    /// Deletes a generated file now, or once its last transfer ends.
    fn retire(files: &mut Files, path: &Path, key: SnapKey) {
        if files.pins.get(&key).is_some_and(|n| *n > 0) {
            files.replaced.insert(key);
        } else {
            remove_file(path);
        }
    }

    /// Keeps the generated file `key` from deletion while a transfer reads it; `None` if it
    /// is no longer the region's snapshot.
    fn pin(self: &Arc<Self>, key: SnapKey) -> Option<Pin> {
        let mut files = self.files.lock().ok()?;
        let current = matches!(files.generated.get(&key.region_id),
            Some(GenState::Ready(g)) if g.key == key);
        if !current {
            return None;
        }
        *files.pins.entry(key).or_default() += 1;
        Some(Pin { mgr: self.clone(), key })
    }

    fn unpin(&self, key: SnapKey) {
        let Ok(mut files) = self.files.lock() else { return };
        let left = match files.pins.get_mut(&key) {
            Some(n) => {
                *n -= 1;
                *n
            }
            None => 0,
        };
        if left == 0 {
            files.pins.remove(&key);
            if files.replaced.remove(&key) {
                remove_file(&self.generated_path(&key));
            }
        }
    }

    fn try_slot(self: &Arc<Self>, receive: bool) -> Option<Slot> {
        let (count, max) = if receive {
            (&self.receiving, self.cfg.max_concurrent_recv)
        } else {
            (&self.sending, self.cfg.max_concurrent_send)
        };
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot { mgr: self.clone(), receive })
    }
}

/// A generated file kept alive for a transfer.
struct Pin {
    mgr: Arc<SnapManager>,
    key: SnapKey,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.mgr.unpin(self.key);
    }
}

/// One of the bounded concurrent sends or receives.
struct Slot {
    mgr: Arc<SnapManager>,
    receive: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let count = if self.receive { &self.mgr.receiving } else { &self.mgr.sending };
        count.fetch_sub(1, Ordering::SeqCst);
    }
}

fn dir_error(dir: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::DataDir { path: dir.display().to_string(), message: format!("{what}: {e}") }
}

pub(crate) fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), "cannot remove a snapshot file: {e}");
    }
}

/// Drops `file`'s cached pages below `upto` (already synced or consumed). A snapshot file is
/// written once and read once, so its pages are better recycled for the next chunk than
/// kept: on the benchmark VM, fresh page-cache pages were the costliest part of a
/// transfer (docs/performance.md). Advice only: a failure changes nothing.
pub(crate) fn drop_cached(file: &std::fs::File, upto: u64) {
    #[cfg(target_os = "linux")]
    {
        let len = std::num::NonZeroU64::new(upto);
        let _ = rustix::fs::fadvise(file, 0, len, rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, upto);
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SnapConfig {
        SnapConfig {
            chunk_bytes: 1024,
            max_bytes_per_sec: 0,
            max_concurrent_send: 1,
            max_concurrent_recv: 1,
        }
    }

    #[test]
    fn file_names_round_trip() {
        let key = SnapKey { region_id: 1, term: 7, index: 12345 };
        assert_eq!(SnapKey::parse(&key.file_name(RECEIVED)), Some((RECEIVED, key)));
        assert_eq!(SnapKey::parse("rev_1_2.snap"), None);
        assert_eq!(SnapKey::parse("gen_1_2_x.snap"), None);
    }

    #[test]
    fn a_replaced_file_lives_until_its_last_transfer_ends() {
        let dir = tempfile::tempdir().expect("dir");
        let mgr = SnapManager::open(dir.path(), cfg()).expect("open");
        let old = SnapKey { region_id: 1, term: 2, index: 10 };
        std::fs::write(mgr.generated_path(&old), b"x").expect("write");
        let at = Instant::now();
        mgr.finish_generating(Generated { key: old, snapshot: Snapshot::default(), at });
        let pin = mgr.pin(old).expect("current snapshot can be pinned");
        mgr.start_generating(1, 11);
        assert!(mgr.pin(old).is_none(), "a replaced snapshot is not handed out again");
        assert!(mgr.generated_path(&old).exists(), "still being sent");
        drop(pin);
        assert!(!mgr.generated_path(&old).exists(), "deleted after the last transfer");
    }

    #[test]
    fn restart_keeps_only_received_files_still_needed() {
        let dir = tempfile::tempdir().expect("dir");
        let keep = SnapKey { region_id: 1, term: 2, index: 10 };
        let stale = SnapKey { region_id: 1, term: 2, index: 5 };
        {
            let mgr = SnapManager::open(dir.path(), cfg()).expect("open");
            for p in [
                mgr.received_path(&keep),
                mgr.received_path(&stale),
                mgr.generated_path(&keep),
                mgr.temp_path(&keep),
            ] {
                std::fs::write(p, b"x").expect("write");
            }
        }
        let mgr = SnapManager::open(dir.path(), cfg()).expect("reopen");
        mgr.remove_received_except(&HashSet::from([keep]));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["rev_1_2_10.snap".to_string()]);
    }

    #[test]
    fn concurrent_transfers_are_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let mgr = SnapManager::open(dir.path(), cfg()).expect("open");
        let first = mgr.try_slot(false).expect("one send may run");
        assert!(mgr.try_slot(false).is_none(), "the second waits for a slot");
        assert!(mgr.try_slot(true).is_some(), "receives are counted apart");
        drop(first);
        assert!(mgr.try_slot(false).is_some());
    }
}
