//! Election Safety (Raft paper Figure 3): at most one leader can be elected in a term.

use std::collections::HashMap;

use super::Violation;

#[derive(Default)]
pub struct ElectionSafety {
    leader_of_term: HashMap<u64, u64>,
}

impl ElectionSafety {
    /// Records that `id` is leader in `term`, across the whole run (crashes included).
    pub fn observe_leader(&mut self, id: u64, term: u64) -> Result<(), Violation> {
        match self.leader_of_term.insert(term, id) {
            Some(other) if other != id => {
                Err(format!("two leaders in term {term}: nodes {other} and {id}"))
            }
            _ => Ok(()),
        }
    }
}
