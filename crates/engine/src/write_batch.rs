//! `WriteBatch`: an ordered list of puts and deletes applied atomically by `Engine::write`.
//!
//! A batch is built without an engine, so it names column families by string; the names are
//! checked when the batch is written, and an unknown one rejects the whole batch before
//! anything reaches the disk. Within a batch the **last operation on a key wins**, as in
//! RocksDB: `put(k)` then `delete(k)` leaves `k` absent; `delete_range` covers puts made
//! earlier in the same batch.
//!
//! `delete_range` is not a native range tombstone: fjall 3 has none (its
//! `AbstractTree::drop_range` drops whole table files outside the journal and is neither
//! atomic nor MVCC-safe). `Engine::write` therefore expands it into one point tombstone per
//! key live in the range, found by scanning a snapshot at write time. Its cost is a range
//! scan plus one tombstone per deleted key, all held in memory and journaled as one batch
//! (so keep ranges bounded), and the tombstones occupy space until compaction reaches the
//! last level. Keys written concurrently by *another* `write` between that scan
//! and the commit are not deleted. Where the keys are known (raft log GC deletes indexes
//! `first..compact_to`), point `delete`s are cheaper: no scan.

use bytes::Bytes;

/// An ordered, atomic set of writes across column families.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// Column-family names used by this batch; `Op::cf` indexes into it. A handful at most,
    /// so a linear lookup beats hashing and saves a `String` per operation.
    cf_names: Vec<String>,
    ops: Vec<Op>,
    /// Sum of the key and value bytes of all operations.
    size_bytes: usize,
}

/// One operation, on the column family `cf_names[cf]` of its batch.
#[derive(Clone, Debug)]
pub(crate) struct Op {
    pub(crate) cf: usize,
    pub(crate) kind: OpKind,
}

#[derive(Clone, Debug)]
pub(crate) enum OpKind {
    Put {
        key: Bytes,
        value: Bytes,
    },
    Delete {
        key: Bytes,
    },
    /// Deletes every key in `[start, end)`; empty when `end <= start`.
    DeleteRange {
        start: Bytes,
        end: Bytes,
    },
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// An empty batch with room for `ops` operations.
    pub fn with_capacity(ops: usize) -> WriteBatch {
        WriteBatch { ops: Vec::with_capacity(ops), ..WriteBatch::default() }
    }

    /// Sets `key` to `value` in `cf`.
    pub fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) {
        self.push_put(cf, Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    }

    /// Sets `key` to the protobuf encoding of `msg` in `cf`.
    pub fn put_msg<M: prost::Message>(&mut self, cf: &str, key: &[u8], msg: &M) {
        // `Bytes::from(Vec)` takes ownership of the encoding: no copy.
        self.push_put(cf, Bytes::copy_from_slice(key), Bytes::from(msg.encode_to_vec()));
    }

    /// Removes `key` from `cf` (a no-op if it is absent).
    pub fn delete(&mut self, cf: &str, key: &[u8]) {
        let cf = self.cf_index(cf);
        self.size_bytes += key.len();
        self.ops.push(Op { cf, kind: OpKind::Delete { key: Bytes::copy_from_slice(key) } });
    }

    /// Removes every key in `[start, end)` from `cf`; see the module comment for the cost.
    pub fn delete_range(&mut self, cf: &str, start: &[u8], end: &[u8]) {
        let cf = self.cf_index(cf);
        self.size_bytes += start.len() + end.len();
        self.ops.push(Op {
            cf,
            kind: OpKind::DeleteRange {
                start: Bytes::copy_from_slice(start),
                end: Bytes::copy_from_slice(end),
            },
        });
    }

    /// Moves every operation of `other` after this batch's, in order: writing the result is
    /// writing both, atomically, `other` winning where they touch the same key.
    pub fn append(&mut self, other: WriteBatch) {
        self.size_bytes += other.size_bytes;
        let (cf_names, ops) = other.into_parts();
        let map: Vec<usize> = cf_names.iter().map(|cf| self.cf_index(cf)).collect();
        self.ops.extend(ops.into_iter().map(|op| Op { cf: map[op.cf], kind: op.kind }));
    }

    /// True if the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of operations; a `delete_range` counts as one.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Key and value bytes of all operations: roughly the journal payload, for batching
    /// limits (a `delete_range` counts its bounds, not the keys it will delete).
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// The column-family names and the operations, for `Engine::write`.
    pub(crate) fn into_parts(self) -> (Vec<String>, Vec<Op>) {
        (self.cf_names, self.ops)
    }

    fn push_put(&mut self, cf: &str, key: Bytes, value: Bytes) {
        let cf = self.cf_index(cf);
        self.size_bytes += key.len() + value.len();
        self.ops.push(Op { cf, kind: OpKind::Put { key, value } });
    }

    /// Index of `cf` in `cf_names`, adding it on first use.
    fn cf_index(&mut self, cf: &str) -> usize {
        match self.cf_names.iter().position(|name| name == cf) {
            Some(index) => index,
            None => {
                self.cf_names.push(cf.to_owned());
                self.cf_names.len() - 1
            }
        }
    }
}
