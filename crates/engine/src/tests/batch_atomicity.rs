//! A batch is applied entirely or not at all, across column families.

use super::{TestResult, bytes, open_temp};
use crate::{CF_DEFAULT, CF_LOCK, CF_RAFT, CF_WRITE, Error, WriteBatch};

#[test]
fn batch_across_cfs_is_visible_together() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"data");
    batch.put(CF_LOCK, b"k", b"lock");
    batch.put(CF_WRITE, b"k", b"write");
    batch.put(CF_RAFT, b"apply", b"7");
    engine.write(batch, true)?;
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.get(CF_DEFAULT, b"k")?, bytes(b"data"));
    assert_eq!(snapshot.get(CF_LOCK, b"k")?, bytes(b"lock"));
    assert_eq!(snapshot.get(CF_WRITE, b"k")?, bytes(b"write"));
    assert_eq!(snapshot.get(CF_RAFT, b"apply")?, bytes(b"7"));
    Ok(())
}

#[test]
fn batch_with_an_unknown_cf_writes_nothing() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"v");
    batch.put("no-such-cf", b"k", b"v");
    batch.put(CF_WRITE, b"k", b"v");
    assert!(matches!(engine.write(batch, true), Err(Error::UnknownCf(cf)) if cf == "no-such-cf"));
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, None);
    assert_eq!(engine.get(CF_WRITE, b"k")?, None);
    Ok(())
}

#[test]
fn batch_with_an_invalid_key_writes_nothing() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"first", b"v");
    batch.put(CF_DEFAULT, b"", b"empty key");
    assert!(matches!(engine.write(batch, false), Err(Error::InvalidArgument(_))));
    assert_eq!(engine.get(CF_DEFAULT, b"first")?, None);
    Ok(())
}

#[test]
fn empty_batch_is_a_no_op_even_with_sync() -> TestResult {
    let (_dir, engine) = open_temp()?;
    engine.write(WriteBatch::new(), false)?;
    engine.write(WriteBatch::new(), true)?;
    assert!(engine.scan(CF_DEFAULT, b"", None, 10)?.is_empty());
    Ok(())
}
