//! Linearizable reads (thesis §6.4): a ReadIndex answer is at least the commit index of
//! every entry acknowledged before the read began. The checker is stricter still: at least
//! the highest commit index any node knew (or had made durable) when the read was issued.

use std::collections::HashMap;

use bytes::Bytes;

use super::Violation;

#[derive(Default)]
pub struct ReadIndexCheck {
    required: HashMap<Bytes, u64>,
    pub answered: usize,
}

impl ReadIndexCheck {
    pub fn issued(&mut self, ctx: Bytes, known_commit: u64) {
        self.required.insert(ctx, known_commit);
    }

    pub fn answered(&mut self, node: u64, ctx: &Bytes, index: u64) -> Result<(), Violation> {
        let Some(&required) = self.required.get(ctx) else {
            return Err(format!("node {node}: read answer for unknown request {ctx:?}"));
        };
        self.answered += 1;
        if index < required {
            return Err(format!(
                "node {node}: read {ctx:?} answered at index {index}, but {required} was \
                 already committed when it began"
            ));
        }
        Ok(())
    }
}
