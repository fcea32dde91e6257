//! Tuning of one engine instance, with the reasoning behind each default.
//!
//! The defaults target raftkv's workload: 16-byte keys, 256-byte values, a store that runs
//! two engines (raftdb and kvdb, four column families between them) and, in tests, several
//! stores in one process on a small machine. So memory and threads are bounded per engine
//! rather than sized for a dedicated server.

use crate::errors::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// fjall refuses (panics on) a journal limit below 64 MiB; we check it first.
const MIN_JOURNAL_SIZE_BYTES: u64 = 64 * MIB;
/// fjall refuses (panics on) a descriptor cache below 10 files; we check it first.
const MIN_OPEN_FILES: usize = 10;

/// Tuning knobs of one engine; `EngineOptions::default()` is what `Engine::open` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineOptions {
    /// Block cache shared by all column families. Default 64 MiB: with ~280-byte entries
    /// that caches ~240k entries' blocks, so a benchmark's working set of 100k keys is
    /// served from memory; it is shared, so it does not multiply with the number of CFs.
    pub cache_size_bytes: u64,
    /// Size at which one column family's memtable is sealed and flushed to a table.
    /// Default 16 MiB (~55k raft log entries or user writes): large enough that flushes are
    /// rare and sequential, small enough that four CFs times two engines times several
    /// in-process stores stay well under a gigabyte, and that journal replay after a crash
    /// is short. (fjall's default is 64 MiB per CF.)
    pub memtable_size_bytes: u64,
    /// Upper bound on all journal files. When exceeded, fjall flushes the memtables that
    /// pin the oldest journal so it can be deleted. Default 128 MiB (fjall's minimum is
    /// 64 MiB, its default 512 MiB): bounds disk use and replay time after a crash.
    pub max_journal_size_bytes: u64,
    /// Background threads for flushes and compactions. Default 2: the write path never
    /// waits on them except under write stalls, and a store runs two engines.
    pub worker_threads: usize,
    /// File descriptors cached for table files. Default 256 (fjall's is 900): several
    /// engines in one test process must stay under the usual 1024 soft limit.
    pub max_open_files: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_size_bytes: 64 * MIB,
            memtable_size_bytes: 16 * MIB,
            max_journal_size_bytes: 128 * MIB,
            worker_threads: 2,
            max_open_files: 256,
        }
    }
}

impl EngineOptions {
    /// Checks the limits fjall would otherwise enforce with a panic.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_journal_size_bytes < MIN_JOURNAL_SIZE_BYTES {
            return Err(Error::InvalidArgument(format!(
                "max_journal_size_bytes {} is below fjall's minimum {MIN_JOURNAL_SIZE_BYTES}",
                self.max_journal_size_bytes
            )));
        }
        if self.worker_threads == 0 {
            return Err(Error::InvalidArgument("worker_threads must be at least 1".to_owned()));
        }
        if self.max_open_files < MIN_OPEN_FILES {
            return Err(Error::InvalidArgument(format!(
                "max_open_files {} is below fjall's minimum {MIN_OPEN_FILES}",
                self.max_open_files
            )));
        }
        if self.memtable_size_bytes == 0 {
            return Err(Error::InvalidArgument("memtable_size_bytes must be positive".to_owned()));
        }
        Ok(())
    }
}
