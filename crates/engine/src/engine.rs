//! `Engine`: one fjall database with a fixed set of column families (fjall keyspaces).
//!
//! # Durability: what `write(batch, sync)` relies on in fjall 3
//!
//! Every write goes through fjall's journal, one write-ahead log shared by all keyspaces of
//! a database. `write` turns the batch into one fjall `OwnedWriteBatch`, whose `commit`
//! (fjall `batch/mod.rs`), under the journal mutex:
//!
//! 1. appends the whole batch as one journal record (start marker with the item count and
//!    sequence number, the items, end marker with an xxh3 checksum);
//! 2. persists the journal as the batch's `PersistMode` asks (below);
//! 3. only then inserts the items into the memtables and publishes the sequence number.
//!
//! From this follows:
//!
//! - **Atomic across column families.** Recovery replays only complete, checksummed
//!   records and truncates an incomplete tail (fjall `journal/batch_reader.rs`), and
//!   snapshot readers see a batch only once its sequence number is published, after all of
//!   its items are in the memtables.
//! - **`sync = true` is truly durable.** It commits with `PersistMode::SyncData`: the journal's
//!   user-space buffer is written out and the file `fdatasync`ed (`File::sync_data`) before
//!   `commit` returns. `fdatasync` writes the file's data and the metadata needed to read it
//!   back (its size, block allocation); what it skips, timestamps, is not needed. The
//!   journal file itself is durable before any record lands in it: fjall creates it with
//!   `set_len` (64 MiB preallocation) and `fsync`, then `fsync`s the directory, and seals a
//!   rotated journal with a full `fsync` (`journal/writer.rs`). And because memtables are
//!   updated after the `fdatasync`, no reader ever sees a synced write that is not durable.
//! - **`sync = false` survives a process crash, not a power loss.** It commits with
//!   `PersistMode::Buffer`: the record is `write(2)`n to the OS before `write` returns, so
//!   SIGKILL loses nothing, but the OS may lose it. `sync()` (`PersistMode::SyncData` on the
//!   journal) then makes every earlier write durable at once: the journal is one sequential
//!   file, so one `fdatasync` covers all records before it (group commit).
//! - **`write_buffered` survives neither.** It commits without persisting: the record waits
//!   in the journal's 8 KiB user-space buffer until it fills or a later write or `sync`
//!   persists the journal; the batch is visible to reads at once.
//! - **Flushed data is durable before its journal goes.** lsm-tree writes a flushed memtable
//!   to a table file, `fsync`s it and its directory and records it in an atomically
//!   rewritten version file; fjall deletes a journal only once every memtable it covers is
//!   in such a table (`journal/manager.rs`).
//! - **A failed write or fsync is final.** fjall poisons the database: every later write
//!   and sync fails with `fjall::Error::Poisoned`, so nothing can retry an fsync and carry
//!   on. The failed batch's outcome is unknown: its record may be in the journal and come
//!   back, whole, after a restart. The caller must stop the store.
//!
//! # Reads
//!
//! `get` reads the newest value of one key without registering a snapshot (cheapest). Reads
//! of several keys that must agree go through a `Snapshot`; `scan` opens one internally, so
//! a scan never mixes the states before and after a concurrent batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode, Readable};

use crate::errors::{Error, Result, hex};
use crate::options::EngineOptions;
use crate::snapshot::Snapshot;
use crate::write_batch::{Op, OpKind, WriteBatch};

/// fjall stores key lengths as u16 and rejects (panics on) empty keys.
const MAX_KEY_BYTES: usize = u16::MAX as usize;
/// fjall stores value lengths as u32.
const MAX_VALUE_BYTES: usize = u32::MAX as usize;
/// fjall stores keyspace-name lengths as u8 and rejects (panics on) empty names.
const MAX_CF_NAME_BYTES: usize = u8::MAX as usize;

/// One fjall database with a fixed set of column families. Cheap to clone (one `Arc`);
/// `Send + Sync`, so readers and writers on several threads share it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// `keyspaces[i]` is the column family named `cf_names[i]`.
    keyspaces: Vec<Keyspace>,
    cf_names: Vec<String>,
    path: PathBuf,
}

impl Engine {
    /// Opens the engine at `path` with the column families `cfs`, creating the directory and
    /// any missing column family; uses `EngineOptions::default()`.
    pub fn open(path: &Path, cfs: &[&str]) -> Result<Engine> {
        Engine::open_with(path, cfs, &EngineOptions::default())
    }

    /// Like `open`, with explicit tuning. Fails with `Fjall(Locked)` if another `Engine`
    /// holds the directory.
    pub fn open_with(path: &Path, cfs: &[&str], options: &EngineOptions) -> Result<Engine> {
        options.validate()?;
        validate_cf_names(cfs)?;
        let db = Database::builder(path)
            .cache_size(options.cache_size_bytes)
            .max_journaling_size(options.max_journal_size_bytes)
            .worker_threads(options.worker_threads)
            .max_cached_files(Some(options.max_open_files))
            .open()?;
        let memtable_size_bytes = options.memtable_size_bytes;
        let keyspaces = cfs
            .iter()
            .map(|cf| {
                // Create options apply only when the keyspace is created; an existing one
                // keeps the options it was created with.
                db.keyspace(cf, || {
                    KeyspaceCreateOptions::default().max_memtable_size(memtable_size_bytes)
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Engine {
            inner: Arc::new(Inner {
                db,
                keyspaces,
                cf_names: cfs.iter().map(|cf| (*cf).to_owned()).collect(),
                path: path.to_path_buf(),
            }),
        })
    }

    /// The directory the engine lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The column families, in the order given to `open`.
    pub fn cf_names(&self) -> &[String] {
        &self.inner.cf_names
    }

    /// True if `cf` is one of the engine's column families.
    pub fn has_cf(&self, cf: &str) -> bool {
        self.inner.cf_names.iter().any(|name| name == cf)
    }

    /// The newest value of `key` in `cf`. The returned `Bytes` shares fjall's buffer: no copy.
    ///
    /// Reads without a snapshot (the cheapest read): it may already see an item of a batch
    /// whose `write` has not returned yet — one that is in the journal, and fsynced if the
    /// batch asked for it. Two `get`s can therefore disagree about a batch; reads that must
    /// agree use one `Snapshot`.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.keyspace(cf)?.get(key)?.map(Bytes::from))
    }

    /// The newest value of `key` in `cf`, decoded as `M`; undecodable bytes are `Corrupt`.
    pub fn get_msg<M: prost::Message + Default>(&self, cf: &str, key: &[u8]) -> Result<Option<M>> {
        self.get(cf, key)?.map(|value| decode_msg(cf, key, value)).transpose()
    }

    /// Applies `batch` atomically across column families; with `sync`, it is durable (on
    /// disk, `fdatasync`ed) before this returns. See the module comment.
    ///
    /// Every column family, key and value is checked before anything is written: an
    /// `UnknownCf` or `InvalidArgument` error leaves the engine unchanged. An `Io` or `Fjall`
    /// error is fatal: the store must stop.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        self.commit(batch, Some(if sync { PersistMode::SyncData } else { PersistMode::Buffer }))
    }

    /// Like `write(batch, false)`, but the journal record may stay in this process's journal
    /// buffer until a later `write` or `sync` hands it on: a crash of the process can lose
    /// it (atomically: the whole batch or nothing). For writes that can be redone after a
    /// crash, such as applying committed raft entries, it saves a `write(2)` per batch.
    pub fn write_buffered(&self, batch: WriteBatch) -> Result<()> {
        self.commit(batch, None)
    }

    fn commit(&self, batch: WriteBatch, mode: Option<PersistMode>) -> Result<()> {
        let sync = mode == Some(PersistMode::SyncData);
        let (cf_names, ops) = batch.into_parts();
        let keyspaces = cf_names.iter().map(|cf| self.keyspace(cf)).collect::<Result<Vec<_>>>()?;
        let mut fjall_batch =
            OwnedWriteBatch::with_capacity(self.inner.db.clone(), ops.len()).durability(mode);
        // Opened at the first delete_range; all ranges of the batch are read at one instant.
        let mut range_snapshot = None;
        for (index, op) in ops.iter().enumerate() {
            let keyspace = keyspaces
                .get(op.cf)
                .copied()
                .ok_or_else(|| Error::UnknownCf(format!("batch column family #{}", op.cf)))?;
            match &op.kind {
                OpKind::Put { key, value } => {
                    check_key(key)?;
                    check_value(key, value)?;
                    fjall_batch.insert(keyspace, key.clone(), value.clone());
                }
                OpKind::Delete { key } => {
                    check_key(key)?;
                    fjall_batch.remove(keyspace, key.clone());
                }
                OpKind::DeleteRange { start, end } => {
                    if start >= end {
                        continue;
                    }
                    let snapshot = range_snapshot.get_or_insert_with(|| self.inner.db.snapshot());
                    for guard in snapshot.range(keyspace, start.as_ref()..end.as_ref()) {
                        fjall_batch.remove(keyspace, guard.key()?);
                    }
                    // Keys put earlier in this batch are not in the snapshot; the range
                    // covers them too. A key both in the snapshot and put earlier gets two
                    // tombstones: harmless, the last operation on a key wins.
                    for key in earlier_puts_in_range(&ops[..index], op.cf, start, end) {
                        fjall_batch.remove(keyspace, key.clone());
                    }
                }
            }
        }
        if fjall_batch.is_empty() {
            // fjall skips persisting an empty batch; a caller asking for sync still gets it.
            return if sync { self.sync() } else { Ok(()) };
        }
        // Same sequence number for all items; for a key written twice, the memtable keeps
        // the later item (fjall's skiplist replaces an equal (key, seqno) entry), and journal
        // replay inserts in the same order: the last operation on a key wins.
        fjall_batch.commit()?;
        Ok(())
    }

    /// Bulk-loads `pairs`, in strictly ascending key order, into `cf` as new table files,
    /// bypassing the journal and memtables: memory stays at a few blocks however much is
    /// loaded, and the data is written once. The pairs become visible together, newer than
    /// every earlier write, when this returns; by then the tables and the version that
    /// lists them are fsynced. Returns the pairs loaded.
    ///
    /// A key out of order or invalid fails with `InvalidArgument`; tables already written
    /// by the failed load are never registered, so nothing of it becomes visible.
    pub fn ingest_sorted(
        &self,
        cf: &str,
        pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<u64> {
        let keyspace = self.keyspace(cf)?;
        let mut ingestion = keyspace.start_ingestion()?;
        let mut last: Option<Vec<u8>> = None;
        let mut count = 0u64;
        for (key, value) in pairs {
            check_key(&key)?;
            check_value(&key, &value)?;
            if last.as_ref().is_some_and(|l| l.as_slice() >= key.as_slice()) {
                return Err(Error::InvalidArgument(format!(
                    "ingest into {cf:?}: key {} is not after the previous one",
                    hex(&key)
                )));
            }
            ingestion.write(key.clone(), value)?;
            last = Some(key);
            count += 1;
        }
        ingestion.finish()?;
        Ok(count)
    }

    /// Makes every write so far durable: one `fdatasync` of the journal.
    pub fn sync(&self) -> Result<()> {
        self.inner.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    /// A consistent point-in-time view of all column families. It pins the versions it can
    /// see (compaction keeps them), so drop it when done.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.clone(), self.inner.db.snapshot())
    }

    /// At most `limit` pairs of `cf` with keys in `[start, end)` (`end = None`: no upper
    /// bound), in ascending key order, read at one point in time.
    pub fn scan(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        self.snapshot().scan(cf, start, end, limit)
    }

    /// Like `scan`, keys only (for range deletion).
    pub fn scan_keys(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        self.snapshot().scan_keys(cf, start, end, limit)
    }

    /// Space the engine's directory occupies on disk, like `du`: allocated blocks of the
    /// journals and tables, so the unwritten part of a preallocated journal does not count.
    /// Best effort for reports: files that vanish during the walk (compaction) are skipped.
    pub fn approximate_size_bytes(&self) -> u64 {
        disk_usage_bytes(&self.inner.path)
    }

    /// The keyspace of `cf`, or `UnknownCf`.
    pub(crate) fn keyspace(&self, cf: &str) -> Result<&Keyspace> {
        self.inner
            .cf_names
            .iter()
            .position(|name| name == cf)
            .and_then(|index| self.inner.keyspaces.get(index))
            .ok_or_else(|| Error::UnknownCf(cf.to_owned()))
    }

    /// Flushes every column family's memtable to a table file and waits, so tests can read
    /// through tables rather than memtables.
    #[cfg(test)]
    pub(crate) fn flush_memtables_for_test(&self) -> Result<()> {
        for keyspace in &self.inner.keyspaces {
            keyspace.rotate_memtable_and_wait()?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.inner.path)
            .field("cf_names", &self.inner.cf_names)
            .finish_non_exhaustive()
    }
}

/// Decodes `value`, stored at `key` in `cf`, as `M`.
pub(crate) fn decode_msg<M: prost::Message + Default>(
    cf: &str,
    key: &[u8],
    value: Bytes,
) -> Result<M> {
    M::decode(value).map_err(|err| {
        Error::Corrupt(format!(
            "cf {cf:?} key {}: cannot decode {}: {err}",
            hex(key),
            std::any::type_name::<M>()
        ))
    })
}

fn validate_cf_names(cfs: &[&str]) -> Result<()> {
    if cfs.is_empty() {
        return Err(Error::InvalidArgument("no column family given".to_owned()));
    }
    for (index, cf) in cfs.iter().enumerate() {
        if cf.is_empty() || cf.len() > MAX_CF_NAME_BYTES {
            return Err(Error::InvalidArgument(format!(
                "column family name {cf:?} must be 1 to {MAX_CF_NAME_BYTES} bytes"
            )));
        }
        if cfs[..index].contains(cf) {
            return Err(Error::InvalidArgument(format!("column family {cf:?} given twice")));
        }
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes; keys must be 1 to {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(key: &[u8], value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::InvalidArgument(format!(
            "value of {} bytes at key {}; values must be at most {MAX_VALUE_BYTES} bytes",
            value.len(),
            hex(key)
        )));
    }
    Ok(())
}

/// Keys of the puts among `ops` on column family `cf` that fall in `[start, end)`.
fn earlier_puts_in_range<'a>(
    ops: &'a [Op],
    cf: usize,
    start: &'a [u8],
    end: &'a [u8],
) -> impl Iterator<Item = &'a Bytes> {
    ops.iter().filter_map(move |op| match &op.kind {
        OpKind::Put { key, .. } if op.cf == cf && start <= key.as_ref() && key.as_ref() < end => {
            Some(key)
        }
        _ => None,
    })
}

/// Allocated bytes of every file under `dir`, recursively; unreadable entries count zero.
fn disk_usage_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => disk_usage_bytes(&entry.path()),
            Ok(metadata) => allocated_bytes(&metadata),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(unix)]
fn allocated_bytes(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    // st_blocks counts 512-byte units, whatever the file system's block size.
    metadata.blocks() * 512
}

#[cfg(not(unix))]
fn allocated_bytes(metadata: &std::fs::Metadata) -> u64 {
    metadata.len()
}
