//! `Snapshot`: a consistent point-in-time view of all column families of one engine.
//!
//! A fjall snapshot is a sequence number: it sees exactly the batches published before it
//! was opened, each entirely, however many writes follow. While it lives, compaction keeps
//! the versions it can see, so a long-lived snapshot (snapshot generation in Part C) costs
//! disk space; drop it when done.
//!
//! Large reads page through `scan` with a `limit`, continuing after the last key returned
//! (`last_key` followed by a 0 byte is the next possible key); every page reads the same
//! instant.

use std::ops::Bound;

use bytes::Bytes;
use fjall::{Keyspace, Readable};

use crate::engine::{Engine, decode_msg};
use crate::errors::Result;

/// Preallocate at most this many scan results; a large `limit` need not be reached.
const SCAN_PREALLOCATE_MAX: usize = 1024;

/// A point-in-time view of an engine; cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Snapshot {
    engine: Engine,
    inner: fjall::Snapshot,
}

impl Snapshot {
    pub(crate) fn new(engine: Engine, inner: fjall::Snapshot) -> Snapshot {
        Snapshot { engine, inner }
    }

    /// The value of `key` in `cf` at the snapshot's instant.
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Bytes>> {
        let keyspace = self.engine.keyspace(cf)?;
        Ok(self.inner.get(keyspace, key)?.map(Bytes::from))
    }

    /// The value of `key` in `cf` at the snapshot's instant, decoded as `M`; undecodable
    /// bytes are `Corrupt`.
    pub fn get_msg<M: prost::Message + Default>(&self, cf: &str, key: &[u8]) -> Result<Option<M>> {
        self.get(cf, key)?.map(|value| decode_msg(cf, key, value)).transpose()
    }

    /// At most `limit` pairs of `cf` with keys in `[start, end)` (`end = None`: no upper
    /// bound), in ascending key order. Empty if `limit` is 0 or `end <= start`.
    pub fn scan(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>> {
        let keyspace = self.engine.keyspace(cf)?;
        if is_empty_scan(start, end, limit) {
            return Ok(Vec::new());
        }
        let mut pairs = Vec::with_capacity(limit.min(SCAN_PREALLOCATE_MAX));
        for guard in self.range(keyspace, start, end).take(limit) {
            let (key, value) = guard.into_inner()?;
            pairs.push((Bytes::from(key), Bytes::from(value)));
        }
        Ok(pairs)
    }

    /// Visits the pairs of `cf` with keys in `[start, end)` in ascending order, one at a
    /// time, without collecting them: memory stays at one pair however many there are.
    /// Stops early when `visit` returns an error, and returns it.
    pub fn for_each<E: From<crate::Error>>(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        let keyspace = self.engine.keyspace(cf)?;
        if is_empty_scan(start, end, 1) {
            return Ok(0);
        }
        let mut count = 0u64;
        for guard in self.range(keyspace, start, end) {
            let (key, value) = guard.into_inner().map_err(crate::Error::from)?;
            visit(&key, &value)?;
            count += 1;
        }
        Ok(count)
    }

    /// Like `scan`, keys only.
    pub fn scan_keys(
        &self,
        cf: &str,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        let keyspace = self.engine.keyspace(cf)?;
        if is_empty_scan(start, end, limit) {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(limit.min(SCAN_PREALLOCATE_MAX));
        for guard in self.range(keyspace, start, end).take(limit) {
            keys.push(Bytes::from(guard.key()?));
        }
        Ok(keys)
    }

    fn range(&self, keyspace: &Keyspace, start: &[u8], end: Option<&[u8]>) -> fjall::Iter {
        let end = end.map_or(Bound::Unbounded, Bound::Excluded);
        self.inner.range::<&[u8], _>(keyspace, (Bound::Included(start), end))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("engine", &self.engine).finish_non_exhaustive()
    }
}

fn is_empty_scan(start: &[u8], end: Option<&[u8]>, limit: usize) -> bool {
    limit == 0 || end.is_some_and(|end| end <= start)
}
