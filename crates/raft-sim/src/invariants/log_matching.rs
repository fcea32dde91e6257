//! Log Matching (Raft paper Figure 3): if two logs contain an entry with the same index and
//! term, the logs are identical in all entries up through that index.

use super::{Log, Violation};

pub fn check_log_matching(a_id: u64, a: &Log, b_id: u64, b: &Log) -> Result<(), Violation> {
    let lo = a.first_index().max(b.first_index());
    let hi = a.last_index().min(b.last_index());
    if lo > hi {
        return Ok(());
    }
    let read = |id: u64, log: &Log| {
        log.slice(lo, hi + 1, raft::NO_LIMIT)
            .map_err(|e| format!("node {id}: entries [{lo}, {hi}] unreadable: {e}"))
    };
    let (ea, eb) = (read(a_id, a)?, read(b_id, b)?);
    // From the highest index where the terms agree, everything below must be identical.
    let Some(top) = (0..ea.len()).rev().find(|&i| ea[i].term == eb[i].term) else {
        return Ok(());
    };
    for i in 0..=top {
        if ea[i] != eb[i] {
            return Err(format!(
                "log matching: nodes {a_id} and {b_id} agree at index {} (term {}) but differ at \
                 index {}: {:?} vs {:?}",
                ea[top].index, ea[top].term, ea[i].index, ea[i], eb[i]
            ));
        }
    }
    Ok(())
}
