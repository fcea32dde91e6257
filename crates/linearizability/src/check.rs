//! The checker's entry point: split the history per key, search each key, explain the
//! first violation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::history::{Event, History, Op, escape};
use crate::minimize::minimize;
use crate::register::key_ops;
use crate::search::{Verdict, search};

/// The checker's verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key's operations have a linearization.
    Ok,
    /// The operations on `key` have none.
    Violation {
        /// The key whose sub-history is not linearizable.
        key: Vec<u8>,
        /// A small subset of that key's operations that is already not linearizable, in
        /// invocation order: 1-minimal unless the budget cut shrinking short (the
        /// explanation says which).
        ops: Vec<Event>,
        /// A human-readable account: the key, the witness operations, what to look at.
        explanation: String,
    },
    /// The budget ran out while searching `key`: nothing is proven. Treat it as a failure.
    Timeout {
        /// The key being searched when the budget ran out.
        key: Vec<u8>,
    },
}

impl CheckResult {
    /// Whether the history was proven linearizable.
    pub fn is_ok(&self) -> bool {
        matches!(self, CheckResult::Ok)
    }

    /// Panics with the explanation unless the history was proven linearizable — a timeout
    /// fails too, never passes.
    #[track_caller]
    pub fn assert_linearizable(&self) {
        if !self.is_ok() {
            panic!("{self}");
        }
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Ok => write!(f, "linearizable"),
            CheckResult::Violation { explanation, .. } => write!(f, "{explanation}"),
            CheckResult::Timeout { key } => write!(
                f,
                "linearizability check ran out of its time budget on key {}: the history is \
                 neither proven linearizable nor refuted, which counts as a failure \
                 (record a shorter history or raise the budget)",
                escape(key)
            ),
        }
    }
}

/// Checks whether `history` is linearizable for a key-value store whose every key is a
/// register that starts absent, spending at most about `budget` of wall-clock time (the
/// whole check, shrinking a witness included).
///
/// A history is linearizable iff each key's sub-history is (linearizability is local:
/// Herlihy & Wing 1990, "P-compositionality" in Porcupine), so keys are searched one by
/// one, smallest first so a violation is likely found before the budget runs out. The
/// first violating key is reported with a witness.
pub fn check(history: &History, budget: Duration) -> CheckResult {
    let deadline = Instant::now().checked_add(budget);
    let events = history.events();
    let mut per_key: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        per_key.entry(event.key.as_slice()).or_default().push(index);
    }
    let mut keys: Vec<(&[u8], Vec<usize>)> = per_key.into_iter().collect();
    keys.sort_by_key(|(key, indices)| (indices.len(), *key));
    for (key, indices) in keys {
        let ops = key_ops(events, &indices);
        match search(&ops, deadline) {
            Verdict::Linearizable => {}
            Verdict::OutOfTime => return CheckResult::Timeout { key: key.to_vec() },
            Verdict::NotLinearizable => {
                let witness = minimize(&ops, deadline);
                let witness_events: Vec<Event> =
                    witness.ops.iter().map(|&op| events[ops[op].event].clone()).collect();
                let explanation = explain(key, &witness_events, indices.len(), witness.minimal);
                return CheckResult::Violation {
                    key: key.to_vec(),
                    ops: witness_events,
                    explanation,
                };
            }
        }
    }
    CheckResult::Ok
}

/// Most witness operations an explanation lists.
const SHOWN_OPS_MAX: usize = 40;

/// The human-readable account of a violation on `key`.
fn explain(key: &[u8], witness: &[Event], key_events: usize, minimal: bool) -> String {
    let mut out = format!(
        "not linearizable: key {} — no order of {} fits both their real-time windows and a \
         register that starts absent",
        escape(key),
        match witness.len() {
            1 => "this operation".to_string(),
            count => format!("these {count} operations"),
        },
    );
    if minimal {
        out.push_str(&format!(
            " (shrunk from the key's {key_events} recorded operations until none can be left out)"
        ));
    } else {
        out.push_str(&format!(
            " (taken from the key's {key_events} recorded operations; the time budget ran out \
             while shrinking, so some of them may not matter)"
        ));
    }
    out.push(':');
    for event in witness.iter().take(SHOWN_OPS_MAX) {
        out.push_str(&format!("\n  {event}"));
    }
    if witness.len() > SHOWN_OPS_MAX {
        out.push_str(&format!(
            "\n  ... and {} more (all in CheckResult::Violation::ops)",
            witness.len() - SHOWN_OPS_MAX
        ));
    }
    if let [Event { op: Op::Get(Some(_)), .. }] = witness {
        out.push_str("\n(the read returned a value that no operation on this key ever wrote)");
    }
    out
}
