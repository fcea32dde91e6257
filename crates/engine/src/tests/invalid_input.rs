//! What fjall would panic on is rejected with `InvalidArgument` before anything happens.

use super::{TestResult, open_temp};
use crate::{CF_DEFAULT, Engine, EngineOptions, Error, WriteBatch};

fn is_invalid<T>(result: crate::Result<T>) -> bool {
    matches!(result, Err(Error::InvalidArgument(_)))
}

#[test]
fn empty_and_oversized_keys_are_rejected() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let too_long = vec![b'k'; usize::from(u16::MAX) + 1];
    for key in [&b""[..], &too_long] {
        let mut batch = WriteBatch::new();
        batch.put(CF_DEFAULT, key, b"v");
        assert!(is_invalid(engine.write(batch, false)));
        let mut batch = WriteBatch::new();
        batch.delete(CF_DEFAULT, key);
        assert!(is_invalid(engine.write(batch, false)));
    }
    let longest = vec![b'k'; usize::from(u16::MAX)];
    let mut batch = WriteBatch::new();
    batch.put(CF_DEFAULT, &longest, b"v");
    engine.write(batch, false)?;
    Ok(())
}

#[test]
fn bad_cf_lists_are_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let too_long = "c".repeat(256);
    assert!(is_invalid(Engine::open(&path, &[])));
    assert!(is_invalid(Engine::open(&path, &[""])));
    assert!(is_invalid(Engine::open(&path, &[too_long.as_str()])));
    assert!(is_invalid(Engine::open(&path, &[CF_DEFAULT, CF_DEFAULT])));
    Ok(())
}

#[test]
fn options_fjall_would_panic_on_are_rejected() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db");
    let cfs = [CF_DEFAULT];
    let defaults = EngineOptions::default();
    for options in [
        EngineOptions { max_journal_size_bytes: 1024, ..defaults.clone() },
        EngineOptions { worker_threads: 0, ..defaults.clone() },
        EngineOptions { max_open_files: 9, ..defaults.clone() },
        EngineOptions { memtable_size_bytes: 0, ..defaults.clone() },
    ] {
        assert!(is_invalid(Engine::open_with(&path, &cfs, &options)), "{options:?}");
    }
    Ok(())
}

#[test]
fn second_open_of_the_same_directory_fails() -> TestResult {
    let (dir, _engine) = open_temp()?;
    let second = Engine::open(&dir.path().join("db"), &[CF_DEFAULT]);
    assert!(matches!(second, Err(Error::Fjall(fjall::Error::Locked))));
    Ok(())
}
