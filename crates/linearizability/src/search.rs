//! The search for a linearization of one key's operations: Wing & Gong's backtracking with
//! Lowe's memoization, laid out as in Porcupine (anishathalye/porcupine, `checker.go`).
//!
//! Each operation becomes a *call* entry at its invocation and, if its outcome is known, a
//! *return* entry at its response; entries sit in one doubly linked list in time order
//! (calls before returns at equal times, so touching windows count as concurrent). The
//! search walks the list from the front:
//!
//! - at a call, it tries to linearize that operation next: if the model allows it and the
//!   pair (set of linearized operations, resulting state) was never seen before, it lifts
//!   the call and its return out of the list, pushes the choice and restarts from the front;
//!   otherwise it moves on to the next entry;
//! - at a return, the operation returning there must have been linearized already and was
//!   not: the last choice was wrong. It pops that choice, puts its entries back and resumes
//!   just after its call. With no choice left to undo, no linearization exists.
//!
//! Memoization (Lowe, "Testing for linearizability", 2017) makes revisiting a configuration
//! free: two paths that linearized the same set of operations and reached the same state
//! have the same futures, so the second is cut. That keeps typical histories near-linear.
//!
//! An operation with an unknown outcome has a call and no return entry: nothing ever forces
//! it, so the search may linearize it anywhere after its invocation or leave it out. The
//! search succeeds as soon as every operation with a known outcome is linearized.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::register::{ABSENT, Action, KeyOp, Value, step};

/// What the search concluded about a key's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The deadline passed first: no conclusion.
    OutOfTime,
}

/// Whether `ops` (one key's operations, any order) have a linearization, giving up at
/// `deadline`.
pub(crate) fn search(ops: &[KeyOp], deadline: Option<Instant>) -> Verdict {
    let mut search = Search::new(ops);
    // Where the scan of the current level resumes after a backtrack; `None` at a new level.
    let mut resume: Option<usize> = None;
    let mut levels: u64 = 0;
    loop {
        if search.unlinearized_ok == 0 {
            return Verdict::Linearizable;
        }
        levels += 1;
        if levels % LEVELS_PER_CLOCK_READ == 0 && deadline.is_some_and(|at| Instant::now() >= at)
        {
            return Verdict::OutOfTime;
        }
        let advanced = match resume.take() {
            None => match search.legal_read() {
                Some(read) => search.linearize(read, true),
                None => search.linearize_a_write(search.entries.next[HEAD]),
            },
            Some(entry) => search.linearize_a_write(entry),
        };
        if advanced {
            continue;
        }
        // No way forward from here: undo choices up to the last one that had alternatives,
        // and resume its level just after it.
        loop {
            let Some(choice) = search.undo() else {
                return Verdict::NotLinearizable;
            };
            if !choice.forced {
                resume = Some(search.entries.next[choice.entry]);
                break;
            }
        }
    }
}

/// How many search levels run between two looks at the clock.
const LEVELS_PER_CLOCK_READ: u64 = 1024;

/// One step of the current path: the call entry linearized and the state before it.
#[derive(Clone, Copy, Debug)]
struct Choice {
    entry: usize,
    previous_state: Value,
    /// Whether it was the only option worth trying at its level (a read that was legal):
    /// backtracking then skips the level instead of trying alternatives.
    forced: bool,
}

/// The search's state: the remaining entries, the path, and the configurations seen.
struct Search<'a> {
    ops: &'a [KeyOp],
    entries: Entries,
    bits: Vec<usize>,
    linearized: Linearized,
    cache: HashSet<CacheKey>,
    path: Vec<Choice>,
    state: Value,
    /// Operations with a known outcome not linearized yet; the search succeeds at zero.
    unlinearized_ok: usize,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [KeyOp]) -> Self {
        Search {
            ops,
            entries: Entries::new(ops),
            bits: bit_numbers(ops),
            linearized: Linearized::new(ops.len()),
            cache: HashSet::new(),
            path: Vec::new(),
            state: ABSENT,
            unlinearized_ok: ops.iter().filter(|op| op.returned_at.is_some()).count(),
        }
    }

    /// The call entries that may be linearized next: those before the first return entry.
    fn callable_from(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(from), |&entry| Some(self.entries.next[entry]))
            .take_while(|&entry| entry != NIL && self.entries.is_call(entry))
    }

    /// A callable read that is legal in the current state.
    ///
    /// Taking it next loses nothing, so it is the level's only option: if a linearization
    /// exists from here, moving that read to its front still gives one. The read is legal
    /// now and does not change the state, and no unlinearized operation must precede it in
    /// real time — such an operation would return before the read's invocation, so its
    /// return entry would come before the read's call and the read would not be callable.
    fn legal_read(&self) -> Option<usize> {
        self.callable_from(self.entries.next[HEAD]).find(|&entry| {
            let action = self.ops[self.entries.op[entry]].action;
            matches!(action, Action::Read(_)) && step(self.state, action).is_some()
        })
    }

    /// Linearizes the first callable write from entry `from` on that leads to an unseen
    /// configuration; false if there is none.
    fn linearize_a_write(&mut self, from: usize) -> bool {
        let writes: Vec<usize> = self
            .callable_from(from)
            .filter(|&entry| matches!(self.ops[self.entries.op[entry]].action, Action::Write(_)))
            .collect();
        writes.into_iter().any(|entry| self.linearize(entry, false))
    }

    /// Linearizes the (legal) operation of call `entry` next, unless that configuration was
    /// seen before; whether it did.
    fn linearize(&mut self, entry: usize, forced: bool) -> bool {
        let op = self.entries.op[entry];
        let Some(next_state) = step(self.state, self.ops[op].action) else {
            return false;
        };
        self.linearized.flip(self.bits[op]);
        if !self.cache.insert(self.linearized.cache_key(next_state)) {
            self.linearized.flip(self.bits[op]);
            return false;
        }
        self.path.push(Choice { entry, previous_state: self.state, forced });
        self.state = next_state;
        if self.ops[op].returned_at.is_some() {
            self.unlinearized_ok -= 1;
        }
        self.entries.lift(entry);
        true
    }

    /// Undoes the last choice and returns it; `None` if the path is empty.
    fn undo(&mut self) -> Option<Choice> {
        let choice = self.path.pop()?;
        let op = self.entries.op[choice.entry];
        self.linearized.flip(self.bits[op]);
        self.state = choice.previous_state;
        if self.ops[op].returned_at.is_some() {
            self.unlinearized_ok += 1;
        }
        self.entries.unlift(choice.entry);
        Some(choice)
    }
}

/// The list sentinel: `next[HEAD]` is the first entry.
const HEAD: usize = 0;
/// No entry.
const NIL: usize = usize::MAX;

/// The call and return entries of one key, as a doubly linked list over arrays.
///
/// Entry 0 is the head sentinel; entries 1.. are in time order. Lifting an operation
/// unlinks its call and return entries but leaves their own links intact, so `unlift` can
/// put them back in O(1) (Knuth's dancing links; lifts and unlifts nest like a stack).
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The operation of each entry (unused for the head).
    op: Vec<usize>,
    /// For a call entry: its return entry, or NIL if the outcome is unknown. For a return
    /// entry: NIL.
    matching: Vec<usize>,
    /// Whether the entry is a call.
    call: Vec<bool>,
}

impl Entries {
    fn new(ops: &[KeyOp]) -> Self {
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
            prev: (0..len).map(|entry| entry.wrapping_sub(1)).collect(),
            op: vec![NIL; len],
            matching: vec![NIL; len],
            call: vec![false; len],
        };
        entries.prev[HEAD] = NIL;
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

    fn is_call(&self, entry: usize) -> bool {
        self.call[entry]
    }

    /// Unlinks a call entry and its return entry.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.matching[call];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes the `lift` of `call`; must undo lifts in reverse order.
    fn unlift(&mut self, call: usize) {
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

/// The bit each operation gets in the linearized set: operations with a known outcome
/// first, in invocation order, then those with an unknown outcome.
///
/// The order does not matter for correctness; it makes cache keys small. Known operations
/// get linearized roughly in invocation order, so their bits form a full prefix plus a few
/// bits past it, which `Linearized::cache_key` stores compactly; an unknown operation left
/// out would otherwise pin a hole in that prefix forever.
fn bit_numbers(ops: &[KeyOp]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&op| (ops[op].returned_at.is_none(), ops[op].invoked_at, op));
    let mut bits = vec![0; ops.len()];
    for (bit, op) in order.into_iter().enumerate() {
        bits[op] = bit;
    }
    bits
}

/// The set of linearized operations as a bitset, with an incremental Zobrist hash.
struct Linearized {
    words: Vec<u64>,
    /// XOR of `zobrist(bit)` over the set bits.
    hash: u64,
}

impl Linearized {
    fn new(bits: usize) -> Self {
        Linearized { words: vec![0; bits.div_ceil(64)], hash: 0 }
    }

    /// Adds the bit if absent, removes it if present.
    fn flip(&mut self, bit: usize) {
        self.words[bit / 64] ^= 1 << (bit % 64);
        self.hash ^= zobrist(bit);
    }

    /// The cache entry for this set and `state`: the number of leading full words, then
    /// the set bits past them.
    fn cache_key(&self, state: Value) -> CacheKey {
        let full_words = self.words.iter().take_while(|&&word| word == u64::MAX).count();
        let mut tail = Vec::new();
        for (index, &word) in self.words.iter().enumerate().skip(full_words) {
            let mut rest = word;
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                tail.push(index * 64 + bit);
                rest &= rest - 1;
            }
        }
        CacheKey { hash: self.hash, state, full_words, tail: tail.into_boxed_slice() }
    }
}

/// A configuration the search already explored: (linearized set, state). Equality compares
/// the whole set; hashing uses only the precomputed hash and the state.
#[derive(PartialEq, Eq)]
struct CacheKey {
    hash: u64,
    state: Value,
    full_words: usize,
    tail: Box<[usize]>,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        hasher.write_u64(self.hash);
        hasher.write_u32(self.state);
    }
}

/// A well-mixed 64-bit value for a bit number (SplitMix64's finalizer).
fn zobrist(bit: usize) -> u64 {
    let mut z = (bit as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action, invoked_at: u64, returned_at: Option<u64>) -> KeyOp {
        KeyOp { action, invoked_at, returned_at, event: 0 }
    }

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
        let ops =
            [op(Action::Write(1), 0, Some(10)), op(Action::Read(1), 10, Some(12)), op(Action::Write(2), 5, None)];
        let entries = Entries::new(&ops);
        assert_eq!(order(&entries), vec![(0, true), (2, true), (1, true), (0, false), (1, false)]);
    }

    #[test]
    fn lift_and_unlift_nest_like_a_stack() {
        let ops = [op(Action::Write(1), 0, Some(3)), op(Action::Write(2), 1, Some(2))];
        let mut entries = Entries::new(&ops);
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

    #[test]
    fn cache_keys_are_equal_exactly_for_equal_sets() {
        let mut a = Linearized::new(130);
        let mut b = Linearized::new(130);
        for bit in (0..64).chain([70, 129]) {
            a.flip(bit);
        }
        for bit in [129, 70].into_iter().chain(0..64) {
            b.flip(bit);
        }
        assert!(a.cache_key(1) == b.cache_key(1));
        assert!(a.cache_key(1) != b.cache_key(2));
        b.flip(70);
        assert!(a.cache_key(1) != b.cache_key(1));
        assert_eq!(a.cache_key(1).full_words, 1);
        assert_eq!(&*a.cache_key(1).tail, &[70, 129]);
    }

    #[test]
    fn unknown_write_may_be_placed_late_or_left_out() {
        let late = [op(Action::Write(1), 0, None), op(Action::Read(ABSENT), 5, Some(6))];
        assert_eq!(search(&late, None), Verdict::Linearizable);
        let seen = [op(Action::Write(1), 0, None), op(Action::Read(1), 5, Some(6))];
        assert_eq!(search(&seen, None), Verdict::Linearizable);
        let not_yet = [op(Action::Read(1), 0, Some(1)), op(Action::Write(1), 5, None)];
        assert_eq!(search(&not_yet, None), Verdict::NotLinearizable);
    }
}
