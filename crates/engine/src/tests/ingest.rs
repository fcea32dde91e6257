//! Bulk ingestion: sorted pairs land as tables, newer than earlier writes (deletes made
//! before it included), visible at once, kept across a reopen; bad input loads nothing.

use super::{TestResult, bytes, open_at, open_temp};
use crate::{CF_DEFAULT, CF_LOCK, WriteBatch};

fn pairs(range: std::ops::Range<u32>, tag: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
    let tag = tag.to_string();
    range.map(move |i| (format!("k{i:06}").into_bytes(), format!("{tag}{i}").into_bytes()))
}

#[test]
fn ingested_pairs_are_newer_than_earlier_writes_and_survive_reopen() -> TestResult {
    let (dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"k000001", b"old");
    batch.put(CF_DEFAULT, b"zzz", b"kept");
    batch.delete(CF_DEFAULT, b"zzz");
    engine.write(batch, false)?;
    let before = engine.snapshot();

    assert_eq!(engine.ingest_sorted(CF_DEFAULT, pairs(0..20_000, "new"))?, 20_000);
    assert_eq!(engine.ingest_sorted(CF_LOCK, pairs(0..3, "lock"))?, 3);
    assert_eq!(engine.ingest_sorted(CF_DEFAULT, std::iter::empty())?, 0);

    assert_eq!(engine.get(CF_DEFAULT, b"k000001")?, bytes(b"new1"));
    assert_eq!(engine.get(CF_DEFAULT, b"zzz")?, None);
    assert_eq!(engine.get(CF_LOCK, b"k000002")?, bytes(b"lock2"));
    assert_eq!(before.get(CF_DEFAULT, b"k000001")?, bytes(b"old"), "older snapshots keep theirs");
    drop(before);
    drop(engine);
    let engine = open_at(&dir.path().join("db"))?;
    assert_eq!(engine.scan(CF_DEFAULT, b"k", Some(b"l"), usize::MAX)?.len(), 20_000);
    assert_eq!(engine.get(CF_DEFAULT, b"k019999")?, bytes(b"new19999"));
    Ok(())
}

#[test]
fn unsorted_or_invalid_input_loads_nothing() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let unsorted = vec![(b"b".to_vec(), b"1".to_vec()), (b"a".to_vec(), b"2".to_vec())];
    assert!(engine.ingest_sorted(CF_DEFAULT, unsorted.into_iter()).is_err());
    let duplicate = vec![(b"a".to_vec(), b"1".to_vec()), (b"a".to_vec(), b"2".to_vec())];
    assert!(engine.ingest_sorted(CF_DEFAULT, duplicate.into_iter()).is_err());
    let empty_key = vec![(Vec::new(), b"1".to_vec())];
    assert!(engine.ingest_sorted(CF_DEFAULT, empty_key.into_iter()).is_err());
    assert!(engine.ingest_sorted("nope", std::iter::empty()).is_err());
    assert!(engine.scan(CF_DEFAULT, b"", None, 10)?.is_empty());
    Ok(())
}
