//! The search for a linearization of one key's operations: Wing & Gong's backtracking with
//! Lowe's memoization, laid out as in Porcupine (anishathalye/porcupine, `checker.go`),
//! plus four reductions that the register model allows.
//!
//! Each operation becomes a *call* entry at its invocation and, if its outcome is known, a
//! *return* entry at its response, in one doubly linked list in time order (`entries.rs`).
//! The operations that may be linearized next are the *callable* ones: those whose call
//! comes before the first remaining return (an operation that returned before another was
//! invoked must come first). Each *level* of the search picks one callable operation that
//! the model allows, lifts its entries out of the list and goes one level deeper; when a
//! level has nothing left to try, the search undoes the last choice and tries that level's
//! next option. With no choice left to undo, no linearization exists; once every operation
//! with a known outcome is linearized, one does.
//!
//! Memoization (Lowe, "Testing for linearizability", 2017; `memo.rs`) cuts a path as soon
//! as it reaches a configuration — (set of linearized operations, state) — seen before: its
//! future was already explored.
//!
//! An operation with an unknown outcome has no return entry: nothing ever forces it, so
//! it may be linearized anywhere after its invocation, or left out.
//!
//! Reductions — each keeps "a linearization exists" unchanged, and together they turn
//! typical histories from exponential to near-linear, and keep refutations affordable:
//!
//! 1. **A legal read goes first.** If a callable read is legal in the current state, the
//!    level takes it and tries nothing else (`Search::legal_read`).
//! 2. **A dead write goes next.** Otherwise, if a callable acknowledged write can be
//!    observed by no remaining read, the level takes it and tries nothing else
//!    (`Search::dead_write`).
//! 3. **A stranded value is a dead end.** If a remaining read observed a value that is
//!    not the state and that no remaining write can produce, the configuration fails at
//!    once (`Search::stranded`).
//! 4. **An unknown write only feeds a read.** A write with an unknown outcome is tried only
//!    when a callable read observed its value, and then only the earliest such write per
//!    value (`Search::write_candidates`).
//!
//! Other levels branch over the remaining callable writes.

mod entries;
mod memo;

use std::time::Instant;

use crate::register::{ABSENT, Action, KeyOp, Value, step};
use entries::Entries;
use memo::Memo;

/// What the search concluded about a key's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The deadline passed first: no conclusion.
    OutOfTime,
}

/// How many search levels run between two looks at the clock.
const LEVELS_PER_CLOCK_READ: u64 = 1024;

/// Whether `ops` (one key's operations, any order) have a linearization, giving up at
/// `deadline`.
pub(crate) fn search(ops: &[KeyOp], deadline: Option<Instant>) -> Verdict {
    let mut search = Search::new(ops);
    // The entry undone at the current level, when it resumes after a backtrack: the level
    // goes on with the options after it. `None` at a fresh level.
    let mut resume: Option<usize> = None;
    let mut levels: u64 = 0;
    loop {
        if search.unlinearized_ok == 0 {
            return Verdict::Linearizable;
        }
        levels += 1;
        if levels.is_multiple_of(LEVELS_PER_CLOCK_READ)
            && deadline.is_some_and(|at| Instant::now() >= at)
        {
            return Verdict::OutOfTime;
        }
        let advanced = match resume.take() {
            Some(undone) => search.branch(Some(undone)),
            None if search.stranded > 0 => false,
            None => match search.legal_read().or_else(|| search.dead_write()) {
                Some(entry) => search.linearize(entry, true),
                None => search.branch(None),
            },
        };
        if advanced {
            continue;
        }
        // No way forward from here: undo choices up to the last one that had alternatives.
        loop {
            let Some(choice) = search.undo() else {
                return Verdict::NotLinearizable;
            };
            if !choice.forced {
                resume = Some(choice.entry);
                break;
            }
        }
    }
}

/// One step of the current path: the call entry linearized and the state before it.
#[derive(Clone, Copy, Debug)]
struct Choice {
    entry: usize,
    previous_state: Value,
    /// Whether it was its level's only option (reductions 1 and 2): backtracking then
    /// skips the level instead of trying alternatives.
    forced: bool,
}

/// The search's state: the remaining entries, the path, the configurations seen, and the
/// bookkeeping the reductions need.
struct Search<'a> {
    ops: &'a [KeyOp],
    entries: Entries,
    memo: Memo,
    path: Vec<Choice>,
    state: Value,
    /// Operations with a known outcome not linearized yet; the search succeeds at zero.
    unlinearized_ok: usize,
    /// Whether each operation is linearized.
    done: Vec<bool>,
    /// For each value (indexed by its number): what remains to linearize on it.
    values: Vec<PerValue>,
    /// How many values are *stranded*: an unlinearized read observed the value, yet the
    /// state is not that value and no unlinearized write can make it so.
    stranded: usize,
    /// For each read: its place in its value's `readers`.
    reader_position: Vec<usize>,
    /// For each acknowledged write: the latest invocation of a read that may observe this
    /// very write (see `visibility`).
    visible_until: Vec<u64>,
}

/// The operations on one value.
#[derive(Clone, Debug, Default)]
struct PerValue {
    /// Unlinearized reads that observed the value.
    reads: usize,
    /// Unlinearized writes of the value.
    writes: usize,
    /// All reads that observed it, by invocation time.
    readers: Vec<usize>,
    /// The place in `readers` of the first unlinearized read; all before it are
    /// linearized.
    first_open_reader: usize,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [KeyOp]) -> Self {
        let value_count =
            ops.iter().map(|op| value_of(op.action) as usize).max().map_or(1, |max| max + 1);
        let mut values = vec![PerValue::default(); value_count];
        for (op, key_op) in ops.iter().enumerate() {
            let per_value = &mut values[value_of(key_op.action) as usize];
            match key_op.action {
                Action::Read(_) => {
                    per_value.reads += 1;
                    per_value.readers.push(op);
                }
                Action::Write(_) => per_value.writes += 1,
            }
        }
        let mut reader_position = vec![0; ops.len()];
        for per_value in &mut values {
            per_value.readers.sort_by_key(|&op| (ops[op].invoked_at, op));
            for (position, &op) in per_value.readers.iter().enumerate() {
                reader_position[op] = position;
            }
        }
        let mut search = Search {
            ops,
            entries: Entries::new(ops),
            memo: Memo::new(ops),
            path: Vec::new(),
            state: ABSENT,
            unlinearized_ok: ops.iter().filter(|op| op.returned_at.is_some()).count(),
            done: vec![false; ops.len()],
            values,
            stranded: 0,
            reader_position,
            visible_until: visibility(ops),
        };
        search.stranded = (0..value_count).filter(|&value| search.is_stranded(value)).count();
        search
    }

    /// Reduction 1: a callable read that is legal in the current state.
    ///
    /// If a linearization exists from here, moving that read to its front still gives one:
    /// the read is legal now and leaves the state as it is, and nothing that must precede
    /// it in real time remains — such an operation would return before the read's
    /// invocation, so the read would not be callable.
    fn legal_read(&self) -> Option<usize> {
        self.entries.callable().find(|&entry| {
            let action = self.ops[self.entries.op[entry]].action;
            matches!(action, Action::Read(_)) && step(self.state, action).is_some()
        })
    }

    /// Reduction 2, when no read is legal: a callable acknowledged write that no
    /// unlinearized read can observe — every read of its value either is linearized or was
    /// invoked after `visible_until`, so some acknowledged write comes between the two.
    ///
    /// With no legal callable read, every linearization from here starts with a write.
    /// Moving the dead write to its front still gives one: nothing that must precede it
    /// remains (it is callable); a write follows it, so no read sees its value; and where
    /// it was, no read followed it (none can observe it), so its neighbours join up
    /// unnoticed.
    fn dead_write(&self) -> Option<usize> {
        self.entries.callable().find(|&entry| {
            let op = self.entries.op[entry];
            let Action::Write(value) = self.ops[op].action else { return false };
            let per_value = &self.values[value as usize];
            self.ops[op].returned_at.is_some()
                && per_value
                    .readers
                    .get(per_value.first_open_reader)
                    .is_none_or(|&read| self.ops[read].invoked_at > self.visible_until[op])
        })
    }

    /// Reduction 3: whether `value` is stranded. A read of it can then never be
    /// linearized, so the configuration is a dead end — found at once rather than when the
    /// search reaches the read's return.
    fn is_stranded(&self, value: usize) -> bool {
        let PerValue { reads, writes, .. } = self.values[value];
        reads > 0 && writes == 0 && self.state as usize != value
    }

    /// The writes a branching level tries, in list order (reduction 4): every callable
    /// acknowledged write; a callable write with an unknown outcome only if a callable read
    /// observed its value, and only the earliest such write per value.
    ///
    /// Every linearization can be rewritten so that each unknown write in it is directly
    /// followed by a read of its value: one that is not is unobservable and can be left
    /// out. That read is callable as soon as the write is (an unknown write has no return
    /// entry, so it never makes anything callable). And unknown writes of one value that
    /// are all callable are interchangeable, so the earliest can stand for any of them.
    fn write_candidates(&self) -> Vec<usize> {
        let callable: Vec<usize> = self.entries.callable().collect();
        let read_values: Vec<Value> = callable
            .iter()
            .filter_map(|&entry| match self.ops[self.entries.op[entry]].action {
                Action::Read(value) => Some(value),
                Action::Write(_) => None,
            })
            .collect();
        let mut unknown_values_taken: Vec<Value> = Vec::new();
        let mut candidates = Vec::with_capacity(callable.len());
        for entry in callable {
            let op = &self.ops[self.entries.op[entry]];
            let Action::Write(value) = op.action else { continue };
            if op.returned_at.is_some() {
                candidates.push(entry);
            } else if read_values.contains(&value) && !unknown_values_taken.contains(&value) {
                unknown_values_taken.push(value);
                candidates.push(entry);
            }
        }
        candidates
    }

    /// Branches: linearizes the first write candidate (after `undone`, when the level
    /// resumes) that leads to an unseen configuration; false if there is none.
    fn branch(&mut self, undone: Option<usize>) -> bool {
        let candidates = self.write_candidates();
        let start = match undone {
            None => 0,
            Some(undone) => {
                let position = candidates.iter().position(|&entry| entry == undone);
                debug_assert!(position.is_some(), "a resumed level lost its candidate");
                position.map_or(candidates.len(), |position| position + 1)
            }
        };
        candidates[start..].iter().any(|&entry| self.linearize(entry, false))
    }

    /// Linearizes the operation of call `entry` next, unless the model forbids it or the
    /// resulting configuration was seen before; whether it did.
    fn linearize(&mut self, entry: usize, forced: bool) -> bool {
        let op = self.entries.op[entry];
        let Some(next_state) = step(self.state, self.ops[op].action) else {
            return false;
        };
        self.memo.flip(op);
        if !self.memo.insert(next_state) {
            self.memo.flip(op);
            return false;
        }
        self.path.push(Choice { entry, previous_state: self.state, forced });
        self.account(op, next_state, true);
        self.entries.lift(entry);
        true
    }

    /// Undoes the last choice and returns it; `None` if the path is empty.
    fn undo(&mut self) -> Option<Choice> {
        let choice = self.path.pop()?;
        let op = self.entries.op[choice.entry];
        self.memo.flip(op);
        self.account(op, choice.previous_state, false);
        self.entries.unlift(choice.entry);
        Some(choice)
    }

    /// Marks `op` linearized (or not), moves to `state`, and updates the bookkeeping.
    fn account(&mut self, op: usize, state: Value, linearized: bool) {
        let action = self.ops[op].action;
        let value = value_of(action) as usize;
        // Only the op's value and the old and new states can change stranded status.
        let mut affected = [value, self.state as usize, state as usize];
        affected.sort_unstable();
        let distinct = |index: usize| index == 0 || affected[index] != affected[index - 1];
        for index in (0..3).filter(|&index| distinct(index)) {
            self.stranded -= usize::from(self.is_stranded(affected[index]));
        }
        let known = usize::from(self.ops[op].returned_at.is_some());
        let per_value = &mut self.values[value];
        let count = match action {
            Action::Read(_) => &mut per_value.reads,
            Action::Write(_) => &mut per_value.writes,
        };
        if linearized {
            *count -= 1;
            self.unlinearized_ok -= known;
        } else {
            *count += 1;
            self.unlinearized_ok += known;
        }
        self.done[op] = linearized;
        self.state = state;
        if let Action::Read(_) = action {
            let first = &mut per_value.first_open_reader;
            if linearized {
                while *first < per_value.readers.len() && self.done[per_value.readers[*first]] {
                    *first += 1;
                }
            } else {
                *first = (*first).min(self.reader_position[op]);
            }
        }
        for index in (0..3).filter(|&index| distinct(index)) {
            self.stranded += usize::from(self.is_stranded(affected[index]));
        }
    }
}

/// For each acknowledged write w: the earliest response among acknowledged writes invoked
/// after w returned (`u64::MAX` if none, and for reads and unknown writes).
///
/// Such a write x must be linearized after w, and a read invoked after x returned must be
/// linearized after x, so x sits between them: the read cannot observe w itself. Reads
/// invoked up to this bound may. The bound is static: no such x can be linearized while w
/// is not.
fn visibility(ops: &[KeyOp]) -> Vec<u64> {
    // Acknowledged writes by invocation, with the least response over each suffix.
    let mut writes: Vec<(u64, u64)> = ops
        .iter()
        .filter(|op| matches!(op.action, Action::Write(_)))
        .filter_map(|op| Some((op.invoked_at, op.returned_at?)))
        .collect();
    writes.sort_unstable();
    let mut suffix_min = vec![u64::MAX; writes.len() + 1];
    for index in (0..writes.len()).rev() {
        suffix_min[index] = suffix_min[index + 1].min(writes[index].1);
    }
    ops.iter()
        .map(|op| match (op.action, op.returned_at) {
            (Action::Write(_), Some(returned_at)) => {
                suffix_min[writes.partition_point(|&(invoked_at, _)| invoked_at <= returned_at)]
            }
            _ => u64::MAX,
        })
        .collect()
}

/// The value an action reads or writes.
fn value_of(action: Action) -> Value {
    match action {
        Action::Write(value) | Action::Read(value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action, invoked_at: u64, returned_at: Option<u64>) -> KeyOp {
        KeyOp { action, invoked_at, returned_at, event: 0 }
    }

    #[test]
    fn an_unknown_write_may_land_late_or_never() {
        let never = [op(Action::Write(1), 0, None), op(Action::Read(ABSENT), 5, Some(6))];
        assert_eq!(search(&never, None), Verdict::Linearizable);
        let seen = [op(Action::Write(1), 0, None), op(Action::Read(1), 5, Some(6))];
        assert_eq!(search(&seen, None), Verdict::Linearizable);
        let before_invocation = [op(Action::Read(1), 0, Some(1)), op(Action::Write(1), 5, None)];
        assert_eq!(search(&before_invocation, None), Verdict::NotLinearizable);
    }

    #[test]
    fn visibility_ends_at_the_first_write_that_must_follow() {
        let ops = [
            op(Action::Write(1), 0, Some(10)),
            op(Action::Write(2), 11, Some(30)),
            op(Action::Write(3), 12, Some(20)),
            op(Action::Write(4), 5, Some(8)),
            op(Action::Read(1), 0, Some(1)),
        ];
        assert_eq!(visibility(&ops), vec![20, u64::MAX, u64::MAX, 20, u64::MAX]);
    }

    #[test]
    fn a_stranded_value_fails_at_once() {
        // The read of 1 comes after the write of 2 completed: 1 can never be current.
        let ops = [
            op(Action::Write(1), 0, Some(1)),
            op(Action::Write(2), 2, Some(3)),
            op(Action::Read(1), 4, Some(5)),
        ];
        assert_eq!(search(&ops, None), Verdict::NotLinearizable);
    }

    #[test]
    fn a_dead_write_is_absorbed_before_the_next_write() {
        // Write 1 is never read; it must still fit before write 2 and the read of 2.
        let ops = [
            op(Action::Write(1), 0, Some(10)),
            op(Action::Write(2), 1, Some(2)),
            op(Action::Read(2), 11, Some(12)),
        ];
        assert_eq!(search(&ops, None), Verdict::Linearizable);
        let stale = [
            op(Action::Write(2), 0, Some(1)),
            op(Action::Write(1), 2, Some(3)),
            op(Action::Read(2), 4, Some(5)),
        ];
        assert_eq!(search(&stale, None), Verdict::NotLinearizable);
    }
}
