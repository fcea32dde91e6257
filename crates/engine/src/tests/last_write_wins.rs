//! Within one batch, the last operation on a key wins, also after journal replay.

use super::{TestResult, bytes, open_at, open_temp};
use crate::{CF_DEFAULT, WriteBatch};

#[test]
fn later_operation_on_the_same_key_wins() -> TestResult {
    let (dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, b"put-delete", b"v");
    batch.delete(CF_DEFAULT, b"put-delete");
    batch.delete(CF_DEFAULT, b"delete-put");
    batch.put(CF_DEFAULT, b"delete-put", b"v");
    batch.put(CF_DEFAULT, b"put-put", b"first");
    batch.put(CF_DEFAULT, b"put-put", b"second");
    engine.write(batch, true)?;

    let check = |engine: &crate::Engine| -> TestResult {
        assert_eq!(engine.get(CF_DEFAULT, b"put-delete")?, None);
        assert_eq!(engine.get(CF_DEFAULT, b"delete-put")?, bytes(b"v"));
        assert_eq!(engine.get(CF_DEFAULT, b"put-put")?, bytes(b"second"));
        assert_eq!(engine.scan(CF_DEFAULT, b"", None, 10)?.len(), 2);
        Ok(())
    };
    check(&engine)?;
    // Reopening replays the journal: the same order, the same outcome.
    drop(engine);
    let engine = open_at(&dir.path().join("db"))?;
    check(&engine)?;
    // And flushing the memtable to a table keeps it.
    engine.flush_memtables_for_test()?;
    check(&engine)
}

#[test]
fn an_appended_batch_writes_after_the_first_and_wins() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut first = WriteBatch::new();
    first.put(CF_DEFAULT, b"both", b"first");
    first.put(CF_DEFAULT, b"first-only", b"1");
    let mut second = WriteBatch::new();
    second.put(crate::CF_WRITE, b"other-cf", b"2");
    second.put(CF_DEFAULT, b"both", b"second");
    second.delete(CF_DEFAULT, b"first-only");
    let size = first.size_bytes() + second.size_bytes();
    first.append(second);
    assert_eq!((first.len(), first.size_bytes()), (5, size));
    engine.write(first, true)?;
    assert_eq!(engine.get(CF_DEFAULT, b"both")?, bytes(b"second"));
    assert_eq!(engine.get(CF_DEFAULT, b"first-only")?, None);
    assert_eq!(engine.get(crate::CF_WRITE, b"other-cf")?, bytes(b"2"));
    Ok(())
}
