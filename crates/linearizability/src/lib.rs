//! Dev-only: records the operations of concurrent clients against raftkv and checks that
//! the recorded history is linearizable — that every operation appears to take effect at
//! one instant between its invocation and its response, in an order a single copy of the
//! store could have produced.
//!
//! # Model
//!
//! Every key is an independent register, initially absent, with three operations: `Put`
//! (set the value), `Delete` (make it absent) and `Get` (return the value or absent).
//!
//! A **scan** is not an operation of the model: the caller records it as one `Get` per key
//! it covered (see [`Recorder::invoke_scan`]), each with the scan's window, and each is
//! checked on its own key. That is **weaker than a multi-key snapshot check**: a scan that
//! returned a new value for one key next to an old value for another passes as long as
//! each read alone fits its key's history.
//!
//! Outcomes, as the spec's error classes promise them:
//! - **Ok** — the response arrived: the operation took effect once, within its window.
//! - **Unknown** (a deadline, a broken connection, `stale_command`) — it may take effect at
//!   any time after its invocation, or never: its response time is +∞ and the search may
//!   also finish without it. An unknown Get says nothing and is ignored.
//! - **Failed** (certainly not applied: `not_leader`, `server_is_busy`, ...) — left out of
//!   the history.
//!
//! # Algorithm
//!
//! Per key (linearizability is local, so a history is linearizable iff each key's
//! sub-history is), the Wing & Gong backtracking search with Lowe's memoization of
//! (linearized set, state) pairs, in the shape of Porcupine's checker, plus four
//! reductions the register model allows (a legal read goes first, a write nobody can
//! observe goes next, a read whose value can no longer appear fails the branch at once, an
//! unknown write is only tried right before a read of its value): see `search/mod.rs`. A
//! violating key is shrunk to a small witness (`minimize.rs`). The whole check runs under a
//! time budget; running out yields [`CheckResult::Timeout`], which callers must treat as a
//! failure.
//!
//! Code map: `history.rs` (events and histories), `recorder.rs` (the thread-safe recorder),
//! `register.rs` (the per-key model), `search/` (the search: `mod.rs` the loop and the
//! reductions, `entries.rs` the call/return list, `memo.rs` the configurations seen),
//! `minimize.rs` (witnesses), `check.rs` (the entry point and verdicts).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use linearizability::{Call, CheckResult, Recorder, check};
//!
//! let recorder = Recorder::new();
//! let put = recorder.invoke(1, "k", Call::Put(b"v".to_vec()));
//! put.complete_ok(None);
//! let get = recorder.invoke(2, "k", Call::Get);
//! get.complete_ok(Some(b"v".to_vec()));
//! let lost = recorder.invoke(1, "k", Call::Delete);
//! lost.complete_unknown();
//!
//! let result = check(&recorder.history(), Duration::from_secs(10));
//! assert_eq!(result, CheckResult::Ok);
//! result.assert_linearizable();
//! ```

mod check;
mod history;
mod minimize;
mod recorder;
mod register;
mod search;

pub use check::{CheckResult, check};
pub use history::{Event, History, Op, Outcome};
pub use recorder::{Call, Pending, PendingScan, Recorder};
