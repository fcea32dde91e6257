//! `scan` returns keys in `[start, end)`, ascending, at most `limit`.

use super::{TestResult, keys_of, open_temp, put_all};
use crate::{CF_DEFAULT, CF_WRITE, WriteBatch};

/// Keys b, d, f, h (written out of order) in `default`, and `e` in `write`.
fn fixture() -> TestResult<(tempfile::TempDir, crate::Engine)> {
    let (dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"h", b"8"), (b"b", b"2"), (b"f", b"6"), (b"d", b"4")])?;
    put_all(&engine, CF_WRITE, &[(b"e", b"other cf")])?;
    Ok((dir, engine))
}

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|key| key.to_vec()).collect()
}

#[test]
fn start_is_inclusive_and_end_exclusive() -> TestResult {
    let (_dir, engine) = fixture()?;
    let pairs = engine.scan(CF_DEFAULT, b"d", Some(b"h"), 100)?;
    assert_eq!(keys_of(&pairs), keys(&[b"d", b"f"]));
    assert_eq!(pairs[0].1.as_ref(), b"4");
    assert_eq!(pairs[1].1.as_ref(), b"6");
    Ok(())
}

#[test]
fn bounds_between_keys() -> TestResult {
    let (_dir, engine) = fixture()?;
    let pairs = engine.scan(CF_DEFAULT, b"c", Some(b"g"), 100)?;
    assert_eq!(keys_of(&pairs), keys(&[b"d", b"f"]));
    Ok(())
}

#[test]
fn no_end_scans_to_the_last_key_in_order() -> TestResult {
    let (_dir, engine) = fixture()?;
    let pairs = engine.scan(CF_DEFAULT, b"", None, 100)?;
    assert_eq!(keys_of(&pairs), keys(&[b"b", b"d", b"f", b"h"]));
    Ok(())
}

#[test]
fn limit_caps_the_result_from_the_start() -> TestResult {
    let (_dir, engine) = fixture()?;
    assert_eq!(keys_of(&engine.scan(CF_DEFAULT, b"c", None, 2)?), keys(&[b"d", b"f"]));
    assert!(engine.scan(CF_DEFAULT, b"", None, 0)?.is_empty());
    // A huge limit does not preallocate a huge vector.
    assert_eq!(engine.scan(CF_DEFAULT, b"", None, usize::MAX)?.len(), 4);
    Ok(())
}

#[test]
fn empty_or_inverted_range_is_empty() -> TestResult {
    let (_dir, engine) = fixture()?;
    assert!(engine.scan(CF_DEFAULT, b"d", Some(b"d"), 10)?.is_empty());
    assert!(engine.scan(CF_DEFAULT, b"f", Some(b"b"), 10)?.is_empty());
    assert!(engine.scan(CF_DEFAULT, b"i", None, 10)?.is_empty());
    Ok(())
}

#[test]
fn deleted_keys_and_other_cfs_are_not_scanned() -> TestResult {
    let (_dir, engine) = fixture()?;
    let mut batch = WriteBatch::new();
    batch.delete(CF_DEFAULT, b"d");
    engine.write(batch, false)?;
    let pairs = engine.scan(CF_DEFAULT, b"", None, 100)?;
    assert_eq!(keys_of(&pairs), keys(&[b"b", b"f", b"h"]));
    Ok(())
}

#[test]
fn scan_keys_matches_scan() -> TestResult {
    let (_dir, engine) = fixture()?;
    for (start, end, limit) in
        [(&b""[..], None, 100), (b"c", Some(&b"h"[..]), 100), (b"a", None, 3)]
    {
        let pairs = engine.scan(CF_DEFAULT, start, end, limit)?;
        let only_keys = engine.scan_keys(CF_DEFAULT, start, end, limit)?;
        assert_eq!(keys_of(&pairs), only_keys.iter().map(|key| key.to_vec()).collect::<Vec<_>>());
    }
    Ok(())
}

#[test]
fn paging_with_a_limit_visits_every_key_once() -> TestResult {
    let (_dir, engine) = fixture()?;
    let snapshot = engine.snapshot();
    let mut seen = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = snapshot.scan(CF_DEFAULT, &start, None, 3)?;
        let Some((last, _)) = page.last() else { break };
        start = [last.as_ref(), &[0]].concat();
        seen.extend(keys_of(&page));
    }
    assert_eq!(seen, keys(&[b"b", b"d", b"f", b"h"]));
    Ok(())
}
