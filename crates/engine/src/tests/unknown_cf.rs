//! A column family the engine was not opened with is an error everywhere, never a panic.

use super::{TestResult, open_temp};
use crate::{CF_DEFAULT, Engine, Error, WriteBatch};

fn is_unknown_cf<T>(result: crate::Result<T>) -> bool {
    matches!(result, Err(Error::UnknownCf(cf)) if cf == "nope")
}

#[test]
fn reads_of_an_unknown_cf_fail() -> TestResult {
    let (_dir, engine) = open_temp()?;
    assert!(is_unknown_cf(engine.get("nope", b"k")));
    assert!(is_unknown_cf(engine.get_msg::<super::TestState>("nope", b"k")));
    assert!(is_unknown_cf(engine.scan("nope", b"", None, 10)));
    assert!(is_unknown_cf(engine.scan_keys("nope", b"", None, 10)));
    // Checked before the cheap empty-scan shortcut.
    assert!(is_unknown_cf(engine.scan("nope", b"", None, 0)));
    let snapshot = engine.snapshot();
    assert!(is_unknown_cf(snapshot.get("nope", b"k")));
    assert!(is_unknown_cf(snapshot.scan("nope", b"", None, 10)));
    assert!(is_unknown_cf(snapshot.scan_keys("nope", b"", None, 10)));
    Ok(())
}

#[test]
fn writes_to_an_unknown_cf_fail() -> TestResult {
    let (_dir, engine) = open_temp()?;
    for op in ["put", "delete", "delete_range"] {
        let mut batch = WriteBatch::new();
        match op {
            "put" => batch.put("nope", b"k", b"v"),
            "delete" => batch.delete("nope", b"k"),
            _ => batch.delete_range("nope", b"a", b"b"),
        }
        assert!(is_unknown_cf(engine.write(batch, false)), "{op}");
    }
    Ok(())
}

#[test]
fn cf_of_another_engine_is_unknown() -> TestResult {
    let dir = tempfile::tempdir()?;
    let raft_only = Engine::open(&dir.path().join("raft"), &[crate::CF_RAFT])?;
    assert!(matches!(raft_only.get(CF_DEFAULT, b"k"), Err(Error::UnknownCf(_))));
    Ok(())
}
