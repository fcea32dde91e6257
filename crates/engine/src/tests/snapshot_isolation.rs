//! A snapshot sees one instant: nothing written after it, every batch whole.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{TestResult, bytes, keys_of, open_temp, put_all};
use crate::{CF_DEFAULT, CF_WRITE, Engine, WriteBatch};

#[test]
fn writes_after_the_snapshot_are_invisible_through_it() -> TestResult {
    let (_dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"a", b"old"), (b"b", b"old")])?;
    let snapshot = engine.snapshot();

    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"a", b"new");
    batch.delete(CF_DEFAULT, b"b");
    batch.put(CF_DEFAULT, b"c", b"new");
    batch.put(CF_WRITE, b"w", b"new");
    engine.write(batch, true)?;

    assert_eq!(snapshot.get(CF_DEFAULT, b"a")?, bytes(b"old"));
    assert_eq!(snapshot.get(CF_DEFAULT, b"b")?, bytes(b"old"));
    assert_eq!(snapshot.get(CF_DEFAULT, b"c")?, None);
    assert_eq!(snapshot.get(CF_WRITE, b"w")?, None);
    let old = snapshot.scan(CF_DEFAULT, b"", None, 10)?;
    assert_eq!(keys_of(&old), vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(old.iter().all(|(_, value)| value.as_ref() == b"old"));

    // The engine itself reads the newest state.
    assert_eq!(engine.get(CF_DEFAULT, b"a")?, bytes(b"new"));
    assert_eq!(engine.scan(CF_DEFAULT, b"", None, 10)?.len(), 2);
    Ok(())
}

#[test]
fn snapshot_keeps_its_versions_across_a_flush() -> TestResult {
    let (_dir, engine) = open_temp()?;
    put_all(&engine, CF_DEFAULT, &[(b"a", b"old")])?;
    let snapshot = engine.snapshot();
    put_all(&engine, CF_DEFAULT, &[(b"a", b"new")])?;
    engine.flush_memtables_for_test()?;
    assert_eq!(snapshot.get(CF_DEFAULT, b"a")?, bytes(b"old"));
    assert_eq!(engine.get(CF_DEFAULT, b"a")?, bytes(b"new"));
    Ok(())
}

const KEYS: u32 = 50;
const ROUNDS: u32 = 300;

/// Sets every key of `default`, and `round` in `write`, to `round`, in one batch.
fn write_round(engine: &Engine, round: u32) -> crate::Result<()> {
    let value = round.to_be_bytes();
    let mut batch = WriteBatch::new();
    for key in 0..KEYS {
        batch.put(CF_DEFAULT, &key.to_be_bytes(), &value);
    }
    batch.put(CF_WRITE, b"round", &value);
    engine.write(batch, false)
}

/// Asserts that every key reads the same round, in both column families.
fn assert_one_round(
    pairs: &[(bytes::Bytes, bytes::Bytes)],
    round_in_write_cf: Option<bytes::Bytes>,
) {
    assert_eq!(pairs.len(), KEYS as usize);
    let round = &pairs[0].1;
    assert!(pairs.iter().all(|(_, value)| value == round), "torn batch: {pairs:?}");
    assert_eq!(round_in_write_cf.as_ref(), Some(round));
}

#[test]
fn scans_see_whole_batches_while_writes_continue() -> TestResult {
    let (_dir, engine) = open_temp()?;
    write_round(&engine, 0)?;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| -> TestResult {
        let writer = scope.spawn(|| -> crate::Result<()> {
            let result = (1..=ROUNDS).try_for_each(|round| write_round(&engine, round));
            done.store(true, Ordering::Release);
            result
        });
        let mut reads = 0;
        while !done.load(Ordering::Acquire) || reads < 10 {
            let snapshot = engine.snapshot();
            let pairs = snapshot.scan(CF_DEFAULT, b"", None, 1000)?;
            assert_one_round(&pairs, snapshot.get(CF_WRITE, b"round")?);
            // Engine::scan reads through its own snapshot: never torn either.
            let pairs = engine.scan(CF_DEFAULT, b"", None, 1000)?;
            let round = &pairs[0].1;
            assert!(pairs.iter().all(|(_, value)| value == round), "torn scan: {pairs:?}");
            reads += 1;
        }
        writer.join().map_err(|_| "writer panicked")??;
        Ok(())
    })?;
    let last = engine.scan(CF_DEFAULT, b"", None, 1000)?;
    assert_one_round(&last, engine.get(CF_WRITE, b"round")?);
    assert_eq!(last[0].1.as_ref(), ROUNDS.to_be_bytes());
    Ok(())
}
