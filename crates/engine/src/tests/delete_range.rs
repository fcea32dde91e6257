//! `delete_range` removes exactly the keys in `[start, end)` of one column family.

use super::{TestResult, bytes, keys_of, open_temp, put_all};
use crate::{CF_DEFAULT, CF_WRITE, WriteBatch};

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|key| key.to_vec()).collect()
}

#[test]
fn deletes_the_half_open_range_only() -> TestResult {
    let (_dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4")])?;
    put_all(&engine, CF_WRITE, &[(b"b", b"other cf")])?;
    let mut batch = WriteBatch::new();
    batch.delete_range(CF_DEFAULT, b"b", b"d");
    engine.write(batch, true)?;
    assert_eq!(keys_of(&engine.scan(CF_DEFAULT, b"", None, 10)?), keys(&[b"a", b"d"]));
    assert_eq!(engine.get(CF_WRITE, b"b")?, bytes(b"other cf"));
    Ok(())
}

#[test]
fn empty_and_inverted_ranges_delete_nothing() -> TestResult {
    let (_dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"a", b"1"), (b"b", b"2")])?;
    let mut batch = WriteBatch::new();
    batch.delete_range(CF_DEFAULT, b"a", b"a");
    batch.delete_range(CF_DEFAULT, b"b", b"a");
    batch.delete_range(CF_DEFAULT, b"x", b"z");
    engine.write(batch, false)?;
    assert_eq!(engine.scan(CF_DEFAULT, b"", None, 10)?.len(), 2);
    Ok(())
}

#[test]
fn covers_puts_made_earlier_in_the_same_batch() -> TestResult {
    let (_dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"b", b"old")])?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"c", b"put before the range delete");
    batch.put(CF_WRITE, b"c", b"other cf, kept");
    batch.delete_range(CF_DEFAULT, b"a", b"z");
    batch.put(CF_DEFAULT, b"d", b"put after the range delete");
    engine.write(batch, false)?;
    let pairs = engine.scan(CF_DEFAULT, b"", None, 10)?;
    assert_eq!(keys_of(&pairs), keys(&[b"d"]));
    assert_eq!(engine.get(CF_WRITE, b"c")?, bytes(b"other cf, kept"));
    Ok(())
}

#[test]
fn deletes_many_keys_like_raft_log_gc() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    for index in 0u64..1000 {
        batch.put(CF_DEFAULT, &index.to_be_bytes(), b"entry");
    }
    engine.write(batch, false)?;
    let mut batch = WriteBatch::new();
    batch.delete_range(CF_DEFAULT, &0u64.to_be_bytes(), &900u64.to_be_bytes());
    engine.write(batch, true)?;
    let left = engine.scan_keys(CF_DEFAULT, b"", None, 10_000)?;
    assert_eq!(left.len(), 100);
    assert_eq!(left.first().map(|key| key.to_vec()), Some(900u64.to_be_bytes().to_vec()));
    Ok(())
}
