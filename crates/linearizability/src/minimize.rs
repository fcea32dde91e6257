//! Shrinking a non-linearizable key history to a small witness a human can read.
//!
//! Delta debugging (Zeller's ddmin, simplified): try to remove chunks of operations,
//! halving the chunk size down to single operations, and keep a removal whenever the rest
//! is still provably not linearizable. Removals are restricted so that they can never
//! *create* a violation, which keeps the witness honest — its contradiction was already in
//! the original history:
//!
//! - a read may always be removed (a linearization of a history stays one without a read);
//! - a write may be removed only if no remaining read returned the value it writes (absent,
//!   for a Delete). In a linearization no read then sits between it and the next write, so
//!   dropping it leaves a linearization.
//!
//! A witness that went through every single-operation removal is 1-minimal: removing any
//! one of its operations (as far as these rules allow) makes the rest linearizable.

use std::collections::HashSet;
use std::time::Instant;

use crate::register::{Action, KeyOp, Value};
use crate::search::{Verdict, search};

/// A non-linearizable subset of a key's operations.
pub(crate) struct Witness {
    /// Positions in the key's operations, in invocation order.
    pub(crate) ops: Vec<usize>,
    /// Whether shrinking ran to the end (false: the deadline cut it short).
    pub(crate) minimal: bool,
}

/// Shrinks `ops`, which must not be linearizable, until `deadline`.
pub(crate) fn minimize(ops: &[KeyOp], deadline: Option<Instant>) -> Witness {
    let mut current: Vec<usize> = (0..ops.len()).collect();
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return Witness { ops: current, minimal: false };
            }
            let end = (start + chunk).min(current.len());
            let candidate = without(ops, &current, start..end);
            if candidate.len() < current.len() && fails(ops, &candidate, deadline) {
                current = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            return Witness { ops: current, minimal: true };
        }
        chunk = (chunk / 2).max(1);
    }
}

/// `current` without the operations at positions `range`, except writes that a remaining
/// read observed.
fn without(ops: &[KeyOp], current: &[usize], range: std::ops::Range<usize>) -> Vec<usize> {
    let observed: HashSet<Value> = current
        .iter()
        .enumerate()
        .filter(|(position, _)| !range.contains(position))
        .filter_map(|(_, &op)| match ops[op].action {
            Action::Read(value) => Some(value),
            Action::Write(_) => None,
        })
        .collect();
    current
        .iter()
        .enumerate()
        .filter(|&(position, &op)| {
            !range.contains(&position)
                || matches!(ops[op].action, Action::Write(value) if observed.contains(&value))
        })
        .map(|(_, &op)| op)
        .collect()
}

/// Whether the operations at `subset` are provably not linearizable.
fn fails(ops: &[KeyOp], subset: &[usize], deadline: Option<Instant>) -> bool {
    let sub: Vec<KeyOp> = subset.iter().map(|&op| ops[op]).collect();
    search(&sub, deadline) == Verdict::NotLinearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::ABSENT;

    fn op(action: Action, invoked_at: u64, returned_at: u64) -> KeyOp {
        KeyOp { action, invoked_at, returned_at: Some(returned_at), event: 0 }
    }

    #[test]
    fn a_stale_read_shrinks_to_the_write_and_the_read() {
        let ops = [
            op(Action::Write(1), 0, 1),
            op(Action::Read(1), 2, 3),
            op(Action::Write(2), 4, 5),
            op(Action::Read(2), 6, 7),
            op(Action::Read(1), 8, 9),
            op(Action::Write(3), 10, 11),
        ];
        let witness = minimize(&ops, None);
        assert!(witness.minimal);
        assert_eq!(witness.ops, vec![0, 2, 4]);
    }

    #[test]
    fn a_delete_that_a_read_relies_on_is_kept() {
        // put 1; delete; get -> absent; get -> 1 (stale). Dropping the delete while
        // "get -> absent" remains would invent a second, fake violation (a stale read of
        // absent after put 1), so the rules forbid it; the witness is the real one.
        let ops = [
            op(Action::Write(1), 0, 1),
            op(Action::Write(ABSENT), 2, 3),
            op(Action::Read(ABSENT), 4, 5),
            op(Action::Read(1), 6, 7),
        ];
        let witness = minimize(&ops, None);
        assert_eq!(witness.ops, vec![0, 1, 3]);
    }
}
