//! Reads agree with a model whether data sits in memtables, tables or both.

use std::collections::BTreeMap;

use super::{TestResult, open_temp};
use crate::{CF_DEFAULT, WriteBatch};

#[test]
fn gets_and_scans_match_a_model_across_flushes() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut model = BTreeMap::<Vec<u8>, Vec<u8>>::new();
    // Three generations: two flushed to tables, the last left in the memtable.
    for generation in 0u32..3 {
        let mut batch = WriteBatch::new();
        for key in 0u32..300 {
            let key_bytes = key.to_be_bytes().to_vec();
            match (key + generation) % 3 {
                0 => {
                    batch.delete(CF_DEFAULT, &key_bytes);
                    model.remove(&key_bytes);
                }
                _ => {
                    let value = format!("{key}@{generation}").into_bytes();
                    batch.put(CF_DEFAULT, &key_bytes, &value);
                    model.insert(key_bytes, value);
                }
            }
        }
        engine.write(batch, false)?;
        if generation < 2 {
            engine.flush_memtables_for_test()?;
        }
    }

    for key in 0u32..300 {
        let key_bytes = key.to_be_bytes();
        let expected = model.get(key_bytes.as_slice()).map(Vec::as_slice);
        assert_eq!(engine.get(CF_DEFAULT, &key_bytes)?.as_deref(), expected, "key {key}");
    }
    let scanned: Vec<(Vec<u8>, Vec<u8>)> = engine
        .scan(CF_DEFAULT, b"", None, 10_000)?
        .into_iter()
        .map(|(key, value)| (key.to_vec(), value.to_vec()))
        .collect();
    assert_eq!(scanned, model.into_iter().collect::<Vec<_>>());
    Ok(())
}
