//! Point writes and reads, per column family.

use super::{ALL_CFS, TestResult, bytes, open_temp};
use crate::{CF_DEFAULT, CF_WRITE, WriteBatch};

#[test]
fn put_then_get_in_every_cf() -> TestResult {
    let (_dir, engine) = open_temp()?;
    for cf in ALL_CFS {
        let mut batch = WriteBatch::new();
        batch.put(cf, b"key", cf.as_bytes());
        engine.write(batch, false)?;
    }
    for cf in ALL_CFS {
        assert_eq!(engine.get(cf, b"key")?, bytes(cf.as_bytes()), "cf {cf}");
    }
    Ok(())
}

#[test]
fn column_families_are_separate_key_spaces() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"in default");
    engine.write(batch, false)?;
    assert_eq!(engine.get(CF_WRITE, b"k")?, None);
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, bytes(b"in default"));
    Ok(())
}

#[test]
fn missing_key_reads_none() -> TestResult {
    let (_dir, engine) = open_temp()?;
    assert_eq!(engine.get(CF_DEFAULT, b"absent")?, None);
    assert_eq!(engine.get(CF_DEFAULT, b"")?, None);
    Ok(())
}

#[test]
fn put_overwrites_and_delete_removes() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"v1");
    engine.write(batch, false)?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"v2");
    engine.write(batch, true)?;
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, bytes(b"v2"));

    let mut batch = WriteBatch::new();
    batch.delete(CF_DEFAULT, b"k");
    batch.delete(CF_DEFAULT, b"never-written");
    engine.write(batch, false)?;
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, None);
    assert_eq!(engine.get(CF_DEFAULT, b"never-written")?, None);
    Ok(())
}

#[test]
fn empty_value_is_a_value() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"");
    engine.write(batch, false)?;
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, bytes(b""));
    Ok(())
}

#[test]
fn messages_round_trip() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let state = super::TestState { index: 42, name: "region".to_owned() };
    let mut batch = WriteBatch::new();
    batch.put_msg(CF_WRITE, b"state", &state);
    engine.write(batch, false)?;
    assert_eq!(engine.get_msg::<super::TestState>(CF_WRITE, b"state")?, Some(state.clone()));
    assert_eq!(engine.snapshot().get_msg::<super::TestState>(CF_WRITE, b"state")?, Some(state));
    assert_eq!(engine.get_msg::<super::TestState>(CF_WRITE, b"absent")?, None);
    Ok(())
}

#[test]
fn batch_counts_operations_and_bytes() {
    let mut batch = WriteBatch::new();
    assert!(batch.is_empty());
    assert_eq!((batch.len(), batch.size_bytes()), (0, 0));
    batch.put(CF_DEFAULT, b"key", b"value");
    batch.delete(CF_WRITE, b"gone");
    batch.delete_range(CF_DEFAULT, b"a", b"z");
    assert!(!batch.is_empty());
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.size_bytes(), 3 + 5 + 4 + 1 + 1);
}

#[test]
fn cf_names_and_has_cf() -> TestResult {
    let (_dir, engine) = open_temp()?;
    assert_eq!(engine.cf_names(), ALL_CFS.map(str::to_owned).as_slice());
    assert!(engine.has_cf(CF_DEFAULT));
    assert!(!engine.has_cf("nope"));
    Ok(())
}

#[test]
fn clones_share_one_database() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let clone = engine.clone();
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k", b"v");
    clone.write(batch, false)?;
    assert_eq!(engine.get(CF_DEFAULT, b"k")?, bytes(b"v"));
    Ok(())
}
