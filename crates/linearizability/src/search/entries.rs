//! The call and return entries of one key's operations, as a doubly linked list in time
//! order, from which the search lifts linearized operations and into which it puts them
//! back when it backtracks.

use crate::register::KeyOp;

/// The list sentinel: `next[HEAD]` is the first entry.
const HEAD: usize = 0;
/// No entry.
const NIL: usize = usize::MAX;

/// The entries, as arrays indexed by entry number.
///
/// Entry 0 is the head sentinel; entries 1.. are in time order, calls before returns at
/// equal times (so windows that touch count as concurrent). An operation with an unknown
/// outcome has a call entry only. Lifting an operation unlinks its entries but leaves
/// their own links intact, so `unlift` puts them back in O(1) (Knuth's dancing links);
/// lifts and unlifts must nest like a stack.
pub(super) struct Entries {
    pub(super) next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each entry (unused for the head).
    pub(super) op: Vec<usize>,
    /// For a call entry: its return entry, or NIL if the outcome is unknown. For a return
    /// entry: NIL.
    matching: Vec<usize>,
    /// Whether the entry is a call.
    call: Vec<bool>,
}

impl Entries {
    pub(super) fn new(ops: &[KeyOp]) -> Self {
        // (time, 0 for a call / 1 for a return, op): calls first at equal times.
        let mut timeline: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            timeline.push((op.invoked_at, 0, index));
            if let Some(returned_at) = op.returned_at {
                timeline.push((returned_at, 1, index));
            }
        }
        timeline.sort_unstable();
        let len = timeline.len() + 1;
        let mut entries = Entries {
            next: (1..=len).map(|next| if next == len { NIL } else { next }).collect(),
            prev: (0..len).map(|entry| if entry == HEAD { NIL } else { entry - 1 }).collect(),
            op: vec![NIL; len],
            matching: vec![NIL; len],
            call: vec![false; len],
        };
        let mut call_of_op = vec![NIL; ops.len()];
        for (position, &(_, kind, op)) in timeline.iter().enumerate() {
            let entry = position + 1;
            entries.op[entry] = op;
            if kind == 0 {
                entries.call[entry] = true;
                call_of_op[op] = entry;
            } else {
                entries.matching[call_of_op[op]] = entry;
            }
        }
        entries
    }

    /// The call entries that may be linearized next: those before the first return entry.
    /// An operation whose return comes before another's call must be linearized first.
    pub(super) fn callable(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(self.next[HEAD]), |&entry| Some(self.next[entry]))
            .take_while(|&entry| entry != NIL && self.call[entry])
    }

    /// Unlinks a call entry and its return entry.
    pub(super) fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.matching[call];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes the `lift` of `call`; must undo lifts in reverse order.
    pub(super) fn unlift(&mut self, call: usize) {
        let ret = self.matching[call];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn unlink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn relink(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::Action;

    fn op(invoked_at: u64, returned_at: Option<u64>) -> KeyOp {
        KeyOp { action: Action::Write(1), invoked_at, returned_at, event: 0 }
    }

    /// The list as (op, is call) pairs.
    fn order(entries: &Entries) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut entry = entries.next[HEAD];
        while entry != NIL {
            out.push((entries.op[entry], entries.call[entry]));
            entry = entries.next[entry];
        }
        out
    }

    #[test]
    fn entries_are_in_time_order_with_calls_first_on_ties() {
        let entries = Entries::new(&[op(0, Some(10)), op(10, Some(12)), op(5, None)]);
        assert_eq!(order(&entries), vec![(0, true), (2, true), (1, true), (0, false), (1, false)]);
        let callable: Vec<usize> = entries.callable().map(|entry| entries.op[entry]).collect();
        assert_eq!(callable, vec![0, 2, 1]);
    }

    #[test]
    fn lift_and_unlift_nest_like_a_stack() {
        let mut entries = Entries::new(&[op(0, Some(3)), op(1, Some(2))]);
        let before = order(&entries);
        let (first_call, second_call) = (1, 2);
        entries.lift(second_call);
        assert_eq!(order(&entries), vec![(0, true), (0, false)]);
        entries.lift(first_call);
        assert_eq!(order(&entries), vec![]);
        entries.unlift(first_call);
        entries.unlift(second_call);
        assert_eq!(order(&entries), before);
    }
}
