//! Shrinking a non-linearizable key history to a small witness a human can read.
//!
//! Every removal is restricted so that it can never *create* a violation, which keeps the
//! witness honest — its contradiction was already in the original history:
//!
//! - a read may always be removed (a linearization of a history stays one without a read);
//! - a write may be removed only if no remaining read returned the value it writes (absent,
//!   for a Delete). In a linearization no read then sits between it and the next write, so
//!   dropping it leaves a linearization.
//!
//! Hence removing operations under these rules preserves linearizability, so "the rest is
//! still not linearizable" is monotone in what is kept. Shrinking runs in three passes:
//!
//! 1. the shortest failing *suffix*: the operations returning from some instant on (plus
//!    the writes their reads observed), found by binary search over that instant;
//! 2. the shortest failing *prefix* of that suffix: the operations invoked up to some
//!    instant (plus observed writes), again by binary search;
//! 3. delta debugging (Zeller's ddmin, simplified) on what is left: try to remove chunks,
//!    halving the chunk size down to single operations, and keep a removal whenever the
//!    rest still fails.
//!
//! The first two passes cost a logarithmic number of searches and usually leave a handful
//! of operations around the violation, so the quadratic third pass stays cheap. A witness
//! that went through every single-operation removal is 1-minimal: removing any one of its
//! operations (as far as the rules allow) makes the rest linearizable.

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
    let all: Vec<usize> = (0..ops.len()).collect();
    // The suffix first: a failing probe costs about as much as the search from the
    // suffix's start to the violation, so probes get cheaper as the binary search closes in.
    let mut returns: Vec<u64> = ops.iter().filter_map(|op| op.returned_at).collect();
    returns.sort_unstable();
    returns.dedup();
    returns.reverse();
    let Some(suffix) = first_failing(ops, &returns, deadline, |&from| {
        closed(ops, &all, |op| op.returned_at.is_none_or(|returned| returned >= from))
    }) else {
        return Witness { ops: all, minimal: false };
    };
    let mut invocations: Vec<u64> = suffix.iter().map(|&op| ops[op].invoked_at).collect();
    invocations.sort_unstable();
    invocations.dedup();
    let Some(window) = first_failing(ops, &invocations, deadline, |&until| {
        closed(ops, &suffix, |op| op.invoked_at <= until)
    }) else {
        return Witness { ops: suffix, minimal: false };
    };
    ddmin(ops, window, deadline)
}

/// The subset `subset(bound)` for the first bound in `bounds` whose subset still fails,
/// where subsets grow along `bounds` and the one for the last bound is known to fail (so
/// failing is monotone along `bounds`). `None` if the deadline cut the binary search short.
fn first_failing<B>(
    ops: &[KeyOp],
    bounds: &[B],
    deadline: Option<Instant>,
    subset: impl Fn(&B) -> Vec<usize>,
) -> Option<Vec<usize>> {
    // Invariant: the subset at `high` fails; every subset below `low` passes.
    let (mut low, mut high) = (0, bounds.len().checked_sub(1)?);
    while low < high {
        if expired(deadline) {
            return None;
        }
        let middle = low + (high - low) / 2;
        match verdict(ops, &subset(&bounds[middle]), deadline) {
            Verdict::NotLinearizable => high = middle,
            Verdict::Linearizable => low = middle + 1,
            Verdict::OutOfTime => return None,
        }
    }
    Some(subset(&bounds[high]))
}

/// The operations of `from` that `keep` selects, plus every write of `from` whose value a
/// selected read observed — the closure the removal rules demand.
fn closed(ops: &[KeyOp], from: &[usize], keep: impl Fn(&KeyOp) -> bool) -> Vec<usize> {
    let observed: HashSet<Value> = from
        .iter()
        .filter(|&&op| keep(&ops[op]))
        .filter_map(|&op| match ops[op].action {
            Action::Read(value) => Some(value),
            Action::Write(_) => None,
        })
        .collect();
    from.iter()
        .copied()
        .filter(|&op| {
            keep(&ops[op])
                || matches!(ops[op].action, Action::Write(value) if observed.contains(&value))
        })
        .collect()
}

/// Delta debugging on `current`, which must fail.
fn ddmin(ops: &[KeyOp], mut current: Vec<usize>, deadline: Option<Instant>) -> Witness {
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            if expired(deadline) {
                return Witness { ops: current, minimal: false };
            }
            let end = (start + chunk).min(current.len());
            let candidate = without(ops, &current, start..end);
            if candidate.len() == current.len() {
                start = end;
                continue;
            }
            match verdict(ops, &candidate, deadline) {
                Verdict::NotLinearizable => {
                    current = candidate;
                    removed_any = true;
                }
                Verdict::Linearizable => start = end,
                Verdict::OutOfTime => return Witness { ops: current, minimal: false },
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

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|at| Instant::now() >= at)
}

/// The search's verdict on the operations at `subset`.
fn verdict(ops: &[KeyOp], subset: &[usize], deadline: Option<Instant>) -> Verdict {
    let sub: Vec<KeyOp> = subset.iter().map(|&op| ops[op]).collect();
    search(&sub, deadline)
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
