//! A node's term and commit index never go down while it runs, and its durable hard state
//! never goes down at all (a restart may lose only what was never persisted).

use std::collections::HashMap;

use raft::eraftpb::HardState;

use super::Violation;

#[derive(Default)]
pub struct Monotonic {
    /// Per node and incarnation: the last (term, commit) seen while it ran.
    live: HashMap<(u64, u64), (u64, u64)>,
    durable: HashMap<u64, (u64, u64)>,
}

impl Monotonic {
    pub fn observe_live(
        &mut self,
        id: u64,
        incarnation: u64,
        term: u64,
        commit: u64,
    ) -> Result<(), Violation> {
        let last = self.live.entry((id, incarnation)).or_insert((term, commit));
        if term < last.0 || commit < last.1 {
            return Err(format!(
                "node {id}: (term, commit) went down from {:?} to {:?}",
                *last,
                (term, commit)
            ));
        }
        *last = (term, commit);
        Ok(())
    }

    pub fn observe_durable(&mut self, id: u64, hs: &HardState) -> Result<(), Violation> {
        let last = self.durable.entry(id).or_insert((hs.term, hs.commit));
        if hs.term < last.0 || hs.commit < last.1 {
            return Err(format!(
                "node {id}: durable (term, commit) went down from {:?} to {:?}",
                *last,
                (hs.term, hs.commit)
            ));
        }
        *last = (hs.term, hs.commit);
        Ok(())
    }
}
