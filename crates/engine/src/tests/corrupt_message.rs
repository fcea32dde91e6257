//! Bytes that do not decode as the requested message are `Corrupt`, naming the key.

use super::{TestResult, TestState, open_temp};
use crate::{CF_RAFT, Error, WriteBatch};

#[test]
fn garbage_decodes_to_corrupt_with_the_key_in_hex() -> TestResult {
    let (_dir, engine) = open_temp()?;
    let mut batch = WriteBatch::new();
    batch.put(CF_RAFT, b"\x01\x02state", b"\xff\xff\xff");
    engine.write(batch, false)?;

    for result in [
        engine.get_msg::<TestState>(CF_RAFT, b"\x01\x02state"),
        engine.snapshot().get_msg::<TestState>(CF_RAFT, b"\x01\x02state"),
    ] {
        match result {
            Err(Error::Corrupt(message)) => {
                assert!(message.contains("01027374617465"), "{message}");
                assert!(message.contains("TestState"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    Ok(())
}
