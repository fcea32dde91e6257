//! Engine tests on temporary directories, one file per feature.

mod batch_atomicity;
mod corrupt_message;
mod delete_range;
mod durability;
mod ingest;
mod invalid_input;
mod last_write_wins;
mod put_get_delete;
mod reads_through_tables;
mod scan_bounds;
mod snapshot_isolation;
mod unknown_cf;

use std::path::Path;

use bytes::Bytes;
use tempfile::TempDir;

use crate::{CF_DEFAULT, CF_LOCK, CF_RAFT, CF_WRITE, Engine, WriteBatch};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Every column family the tests use.
const ALL_CFS: [&str; 4] = [CF_DEFAULT, CF_LOCK, CF_WRITE, CF_RAFT];

/// A protobuf message to store, as peer storage stores `RaftLocalState`.
#[derive(Clone, PartialEq, prost::Message)]
struct TestState {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(string, tag = "2")]
    name: String,
}

/// An engine with all column families in a fresh temporary directory (kept alive by the
/// returned `TempDir`).
fn open_temp() -> TestResult<(TempDir, Engine)> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(&dir.path().join("db"), &ALL_CFS)?;
    Ok((dir, engine))
}

/// Opens (or reopens) the engine with all column families at `path`.
fn open_at(path: &Path) -> TestResult<Engine> {
    Ok(Engine::open(path, &ALL_CFS)?)
}

/// Writes `pairs` to `cf` in one unsynced batch.
fn put_all(engine: &Engine, cf: &str, pairs: &[(&[u8], &[u8])]) -> TestResult {
    let mut batch = WriteBatch::new();
    for (key, value) in pairs {
        batch.put(cf, key, value);
    }
    engine.write(batch, false)?;
    Ok(())
}

fn bytes(value: &[u8]) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(value))
}

/// Keys of `pairs`, as `Vec<u8>`s for comparisons.
fn keys_of(pairs: &[(Bytes, Bytes)]) -> Vec<Vec<u8>> {
    pairs.iter().map(|(key, _)| key.to_vec()).collect()
}
