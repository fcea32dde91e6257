//! State Machine Safety / Leader Completeness, as seen from the logs: an entry, once
//! committed on any node, is the same entry on every node that commits that index, and it
//! never changes afterwards.

use std::collections::HashMap;

use bytes::Bytes;

use super::{Log, Violation};

#[derive(Default)]
pub struct CommittedLog {
    /// index -> (term, data) of every entry any node has committed.
    entries: HashMap<u64, (u64, Bytes)>,
    /// Per node: the commit index up to which it was already compared.
    checked_to: HashMap<u64, u64>,
}

impl CommittedLog {
    /// Compares the entries `id` committed since the last call with the record.
    pub fn observe(&mut self, id: u64, log: &Log) -> Result<(), Violation> {
        let committed = log.committed();
        let from = self.checked_to.get(&id).copied().unwrap_or(0).max(log.first_index() - 1);
        if committed > from {
            self.compare(id, log, from + 1, committed)?;
        }
        self.checked_to.insert(id, committed.max(from));
        Ok(())
    }

    /// Compares every committed entry `id` still holds with the record.
    pub fn observe_all(&mut self, id: u64, log: &Log) -> Result<(), Violation> {
        let (lo, hi) = (log.first_index(), log.committed());
        if lo <= hi { self.compare(id, log, lo, hi) } else { Ok(()) }
    }

    fn compare(&mut self, id: u64, log: &Log, lo: u64, hi: u64) -> Result<(), Violation> {
        let ents = log
            .slice(lo, hi + 1, raft::NO_LIMIT)
            .map_err(|e| format!("node {id}: committed entries [{lo}, {hi}] unreadable: {e}"))?;
        for e in ents {
            let seen = self.entries.entry(e.index).or_insert_with(|| (e.term, e.data.clone()));
            if seen.0 != e.term || seen.1 != e.data {
                return Err(format!(
                    "node {id}: committed entry {} is (term {}, {:?}) but was (term {}, {:?})",
                    e.index, e.term, e.data, seen.0, seen.1
                ));
            }
        }
        Ok(())
    }
}
