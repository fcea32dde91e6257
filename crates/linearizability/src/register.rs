//! The sequential model of one key — a register that is absent or holds a value — and the
//! translation of a key's events into the compact operations the search steps through.

use std::collections::HashMap;
use std::collections::HashSet;

use crate::history::{Event, Op};

/// A register state or an observed value, interned per key: `ABSENT` or a value's number.
/// Interning makes states `Copy` and cheap to hash and compare in the search's cache.
pub(crate) type Value = u32;

/// The state of a key nobody wrote, or whose last write was a Delete.
pub(crate) const ABSENT: Value = 0;

/// What an operation does to the register, with interned values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Put (the value) or Delete (`ABSENT`): always legal, sets the state.
    Write(Value),
    /// Get that observed this value: legal only in that state, which it keeps.
    Read(Value),
}

/// One operation of a key's sub-history, ready for the search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyOp {
    pub(crate) action: Action,
    pub(crate) invoked_at: u64,
    /// `None`: outcome unknown — the operation may be linearized at any point after its
    /// invocation, or left out.
    pub(crate) returned_at: Option<u64>,
    /// Its index in `History::events`, to report it.
    pub(crate) event: usize,
}

/// The register's sequential specification: the state after `action`, or `None` if the
/// action cannot happen in `state`.
pub(crate) fn step(state: Value, action: Action) -> Option<Value> {
    match action {
        Action::Write(value) => Some(value),
        Action::Read(observed) => (observed == state).then_some(state),
    }
}

/// The operations of one key, from the events at `indices` (all on that key).
///
/// Two kinds of events are dropped because they cannot change the verdict:
/// - a Get with an unknown outcome observed nothing;
/// - a write with an unknown outcome whose resulting state no read of the key observed. In
///   any linearization with it, no read sits between it and the next write (no read saw its
///   value), so removing it leaves a linearization; and it may be left out. Dropping these
///   keeps their unbounded windows from widening the search.
///
/// Panics if an event returns before it is invoked.
pub(crate) fn key_ops(events: &[Event], indices: &[usize]) -> Vec<KeyOp> {
    let mut interned: HashMap<&[u8], Value> = HashMap::new();
    let mut ops = Vec::with_capacity(indices.len());
    for &index in indices {
        let event = &events[index];
        if let Some(returned_at) = event.returned_at {
            assert!(
                event.invoked_at <= returned_at,
                "an operation cannot return before it is invoked: {event}"
            );
        }
        let action = match &event.op {
            Op::Get(_) if event.returned_at.is_none() => continue,
            Op::Get(observed) => Action::Read(intern(&mut interned, observed.as_deref())),
            Op::Put(value) => Action::Write(intern(&mut interned, Some(value))),
            Op::Delete => Action::Write(ABSENT),
        };
        ops.push(KeyOp {
            action,
            invoked_at: event.invoked_at,
            returned_at: event.returned_at,
            event: index,
        });
    }
    let observed: HashSet<Value> = ops
        .iter()
        .filter_map(|op| match op.action {
            Action::Read(value) => Some(value),
            Action::Write(_) => None,
        })
        .collect();
    ops.retain(|op| match op.action {
        Action::Write(value) => op.returned_at.is_some() || observed.contains(&value),
        Action::Read(_) => true,
    });
    ops.sort_by_key(|op| (op.invoked_at, op.event));
    ops
}

/// The number of `value` (`ABSENT` for `None`), numbering new values from 1.
fn intern<'a>(interned: &mut HashMap<&'a [u8], Value>, value: Option<&'a [u8]>) -> Value {
    let Some(bytes) = value else { return ABSENT };
    let next = Value::try_from(interned.len() + 1).expect("fewer than 2^32 values per key");
    *interned.entry(bytes).or_insert(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_always_step_and_reads_need_their_value() {
        assert_eq!(step(ABSENT, Action::Write(3)), Some(3));
        assert_eq!(step(3, Action::Write(ABSENT)), Some(ABSENT));
        assert_eq!(step(3, Action::Read(3)), Some(3));
        assert_eq!(step(3, Action::Read(ABSENT)), None);
        assert_eq!(step(ABSENT, Action::Read(ABSENT)), Some(ABSENT));
    }

    #[test]
    fn unknown_reads_and_unobserved_unknown_writes_are_dropped() {
        let events = vec![
            Event::unknown(1, "k", Op::Put(b"never-read".to_vec()), 0),
            Event::unknown(1, "k", Op::Put(b"read".to_vec()), 1),
            Event::unknown(2, "k", Op::Get(Some(b"x".to_vec())), 2),
            Event::ok(3, "k", Op::Get(Some(b"read".to_vec())), 3, 4),
            Event::ok(3, "k", Op::Put(b"acked".to_vec()), 5, 6),
        ];
        let ops = key_ops(&events, &[0, 1, 2, 3, 4]);
        let kept: Vec<usize> = ops.iter().map(|op| op.event).collect();
        assert_eq!(kept, vec![1, 3, 4]);
        let Action::Write(written) = ops[0].action else { panic!("a write: {ops:?}") };
        assert_ne!(written, ABSENT);
        assert_eq!(ops[1].action, Action::Read(written));
    }
}
