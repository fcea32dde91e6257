//! What `write(.., sync)`, `write_buffered` and `sync()` promise survives closing, reopening and a crash.
//!
//! A crash is imitated by copying the data directory while the engine is still open and
//! opening the copy: it holds only what reached the OS, nothing flushed at shutdown.

use std::path::Path;

use super::{TestResult, bytes, open_at, open_temp};
use crate::{CF_DEFAULT, CF_RAFT, WriteBatch};

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[test]
fn synced_write_survives_close_and_reopen() -> TestResult {
    let (dir, engine) = open_temp()?;
    let path = dir.path().join("db");
    let mut batch = WriteBatch::new();
    batch.put(CF_RAFT, b"entry-5", b"payload");
    batch.put(CF_DEFAULT, b"k", b"v");
    engine.write(batch, true)?;
    drop(engine);

    let engine = open_at(&path)?;
    assert_eq!(engine.get(CF_RAFT, b"entry-5")?, bytes(b"payload"));
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, bytes(b"v"));
    Ok(())
}

#[test]
fn unsynced_writes_then_sync_survive_reopen() -> TestResult {
    let (dir, engine) = open_temp()?;
    let path = dir.path().join("db");
    for index in 0u64..100 {
        let mut batch = WriteBatch::new();
        batch.put(CF_DEFAULT, &index.to_be_bytes(), b"applied");
        engine.write(batch, false)?;
    }
    engine.sync()?;
    drop(engine);

    let engine = open_at(&path)?;
    assert_eq!(engine.scan(CF_DEFAULT, b"", None, 1000)?.len(), 100);
    Ok(())
}

#[test]
fn synced_write_is_in_a_crash_image() -> TestResult {
    let (dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_RAFT, b"hard-state", b"term 7");
    engine.write(batch, true)?;

    let image = dir.path().join("crash-image");
    copy_dir(&dir.path().join("db"), &image)?;
    let recovered = open_at(&image)?;
    assert_eq!(recovered.get(CF_RAFT, b"hard-state")?, bytes(b"term 7"));
    drop(engine);
    Ok(())
}

#[test]
fn unsynced_write_reaches_the_os_before_write_returns() -> TestResult {
    // sync=false still hands the journal record to the OS (PersistMode::Buffer): a killed
    // process loses nothing; only an OS crash or power loss could.
    let (dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"applied", b"yes");
    engine.write(batch, false)?;

    let image = dir.path().join("crash-image");
    copy_dir(&dir.path().join("db"), &image)?;
    let recovered = open_at(&image)?;
    assert_eq!(recovered.get(CF_DEFAULT, b"applied")?, bytes(b"yes"));
    drop(engine);
    Ok(())
}

#[test]
fn buffered_writes_are_readable_at_once_and_a_later_sync_makes_them_durable() -> TestResult {
    let (dir, engine) = open_temp()?;
    for index in 0u64..3 {
        let mut batch = WriteBatch::new();
        batch.put(CF_DEFAULT, &index.to_be_bytes(), b"applied");
        batch.put(CF_RAFT, b"apply-state", &index.to_be_bytes());
        engine.write_buffered(batch)?;
    }
    assert_eq!(engine.get(CF_RAFT, b"apply-state")?, bytes(&2u64.to_be_bytes()));
    engine.sync()?;

    let image = dir.path().join("crash-image");
    copy_dir(&dir.path().join("db"), &image)?;
    let recovered = open_at(&image)?;
    assert_eq!(recovered.get(CF_RAFT, b"apply-state")?, bytes(&2u64.to_be_bytes()));
    assert_eq!(recovered.scan(CF_DEFAULT, b"", None, 10)?.len(), 3);
    drop(engine);
    Ok(())
}

#[test]
fn a_crash_keeps_a_prefix_of_buffered_batches_each_whole() -> TestResult {
    // Enough batches to overflow the journal buffer several times, so the image holds some
    // of them: every batch it holds is whole (data and apply state together), and they are
    // the oldest ones.
    let (dir, engine) = open_temp()?;
    let value = [7u8; 300];
    for index in 0u64..200 {
        let mut batch = WriteBatch::new();
        batch.put(CF_DEFAULT, &index.to_be_bytes(), &value);
        batch.put(CF_RAFT, b"apply-state", &index.to_be_bytes());
        engine.write_buffered(batch)?;
    }

    let image = dir.path().join("crash-image");
    copy_dir(&dir.path().join("db"), &image)?;
    let recovered = open_at(&image)?;
    let data = recovered.scan(CF_DEFAULT, b"", None, 1000)?;
    let state = recovered.get(CF_RAFT, b"apply-state")?;
    assert!(!data.is_empty() && data.len() < 200, "{} batches in the image", data.len());
    let last = u64::try_from(data.len())? - 1;
    assert_eq!(state, bytes(&last.to_be_bytes()), "apply state matches the data it covers");
    for (i, (key, _)) in data.iter().enumerate() {
        assert_eq!(key.as_ref(), &u64::try_from(i)?.to_be_bytes(), "a prefix of the batches");
    }
    drop(engine);
    Ok(())
}

#[test]
fn reopen_keeps_flushed_and_journaled_data_apart_correctly() -> TestResult {
    let (dir, engine) = open_temp()?;
    let path = dir.path().join("db");
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"flushed", b"1");
    batch.put(CF_DEFAULT, b"overwritten", b"old");
    engine.write(batch, true)?;
    engine.flush_memtables_for_test()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"overwritten", b"new");
    batch.delete(CF_DEFAULT, b"flushed");
    engine.write(batch, true)?;
    drop(engine);

    let engine = open_at(&path)?;
    assert_eq!(engine.get(CF_DEFAULT, b"flushed")?, None);
    assert_eq!(engine.get(CF_DEFAULT, b"overwritten")?, bytes(b"new"));
    Ok(())
}

#[test]
fn size_grows_with_written_data() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let before = engine.approximate_size_bytes();
    let value = [7u8; 256];
    for chunk in 0u64..16 {
        let mut batch = WriteBatch::new();
        for index in 0u64..256 {
            batch.put(CF_RAFT, &(chunk * 256 + index).to_be_bytes(), &value);
        }
        engine.write(batch, true)?;
    }
    // 4096 entries of 256 bytes: at least 1 MiB of journal.
    assert!(engine.approximate_size_bytes() >= before + 1024 * 1024);
    Ok(())
}

/// Synced writes across several lives of one directory, each ended by a crash image: the
/// journal writes zeros ahead of itself, and each recovery must resume writing right after
/// the last valid record (not after the zeros), or a later recovery stops short.
#[test]
fn synced_writes_of_every_life_survive_repeated_crashes() -> TestResult {
    let (dir, engine) = open_temp()?;
    let mut path = dir.path().join("db");
    let mut engine = Some(engine);
    for life in 0u64..4 {
        let current = engine.take().map_or_else(|| open_at(&path), Ok)?;
        // A sync before anything is written must not touch what recovery found.
        current.sync()?;
        for i in 0u64..50 {
            let mut batch = WriteBatch::new();
            batch.put(CF_RAFT, format!("life-{life}-{i:03}").as_bytes(), &[7; 300]);
            current.write(batch, true)?;
        }
        let image = dir.path().join(format!("crash-{life}"));
        copy_dir(&path, &image)?;
        drop(current);
        path = image;
    }
    let recovered = open_at(&path)?;
    assert_eq!(recovered.scan(CF_RAFT, b"life-", None, 1000)?.len(), 200);
    Ok(())
}
