//! A thread-safe recorder that concurrent test clients share to build one [`History`].
//!
//! Protocol for a client: call [`Recorder::invoke`] *before* sending the request, and
//! complete the returned [`Pending`] *after* the response arrived. Both instants come from
//! one monotonic clock (an [`Instant`] taken when the recorder was created), so each
//! recorded window contains the real one — which is all the checker needs to be sound.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::history::{Event, History, Op};

/// The request half of an operation: what the client asks for, before any output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// Set the key to this value.
    Put(Vec<u8>),
    /// Remove the key.
    Delete,
    /// Read the key.
    Get,
}

/// Records operations of concurrent clients. Cheap to clone: clones share one history.
#[derive(Clone, Debug)]
pub struct Recorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Time zero of every recorded tick.
    base: Instant,
    slots: Mutex<Vec<Slot>>,
}

/// One invoked operation, whatever became of it.
#[derive(Debug)]
struct Slot {
    client: u64,
    key: Vec<u8>,
    call: Call,
    invoked_at: u64,
    status: Status,
}

#[derive(Debug)]
enum Status {
    /// Invoked, not completed yet.
    InFlight,
    /// Completed with a response; `output` is the read's result (always `None` for writes).
    Ok { returned_at: u64, output: Option<Vec<u8>> },
    /// The client does not know whether it happened.
    Unknown,
    /// It certainly did not happen.
    Failed,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            shared: Arc::new(Shared { base: Instant::now(), slots: Mutex::new(Vec::new()) }),
        }
    }

    /// Notes that `client` is about to send `call` for `key`; complete the result once the
    /// response (or the lack of one) is known.
    pub fn invoke(&self, client: u64, key: impl Into<Vec<u8>>, call: Call) -> Pending {
        let key = key.into();
        let is_get = call == Call::Get;
        let invoked_at = self.now();
        let mut slots = self.lock();
        slots.push(Slot { client, key, call, invoked_at, status: Status::InFlight });
        Pending { recorder: self.clone(), slot: slots.len() - 1, is_get, completed: false }
    }

    /// Notes that `client` is about to send a scan; complete the result with the per-key
    /// reads the scan's answer implies.
    pub fn invoke_scan(&self, client: u64) -> PendingScan {
        PendingScan { recorder: self.clone(), client, invoked_at: self.now() }
    }

    /// A snapshot of everything recorded so far.
    ///
    /// Take it after every client stopped: an operation still in flight counts as outcome
    /// unknown (a write may or may not have happened; a read tells nothing and is left out).
    pub fn history(&self) -> History {
        let slots = self.lock();
        let mut history = History::new();
        for slot in slots.iter() {
            let (op, returned_at) = match (&slot.status, &slot.call) {
                (Status::Failed, _) => continue,
                (Status::InFlight | Status::Unknown, Call::Get) => continue,
                (Status::InFlight | Status::Unknown, Call::Put(value)) => {
                    (Op::Put(value.clone()), None)
                }
                (Status::InFlight | Status::Unknown, Call::Delete) => (Op::Delete, None),
                (Status::Ok { returned_at, output }, Call::Get) => {
                    (Op::Get(output.clone()), Some(*returned_at))
                }
                (Status::Ok { returned_at, .. }, Call::Put(value)) => {
                    (Op::Put(value.clone()), Some(*returned_at))
                }
                (Status::Ok { returned_at, .. }, Call::Delete) => (Op::Delete, Some(*returned_at)),
            };
            history.push(Event {
                client: slot.client,
                key: slot.key.clone(),
                op,
                invoked_at: slot.invoked_at,
                returned_at,
            });
        }
        history
    }

    /// Ticks (nanoseconds) since the recorder was created.
    fn now(&self) -> u64 {
        u64::try_from(self.shared.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The slots, even if a client panicked while holding the lock: what it recorded before
    /// is still valid, and a test that already failed should still get its history.
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.shared.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn finish(&self, slot: usize, status: Status) {
        let mut slots = self.lock();
        let slot = &mut slots[slot];
        assert!(matches!(slot.status, Status::InFlight), "an operation completes only once");
        slot.status = status;
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// An invoked single-key operation waiting for its outcome.
///
/// Dropping it without completing it records the outcome as unknown — the only safe
/// reading of a client that gave up (or panicked) mid-request.
#[derive(Debug)]
#[must_use = "complete the operation with complete_ok, complete_unknown or fail"]
pub struct Pending {
    recorder: Recorder,
    slot: usize,
    is_get: bool,
    completed: bool,
}

impl Pending {
    /// The response arrived. `get_output` is what a Get returned (`None`: absent); it must
    /// be `None` for a Put or a Delete.
    pub fn complete_ok(mut self, get_output: Option<Vec<u8>>) {
        assert!(
            self.is_get || get_output.is_none(),
            "only a Get has an output; a Put or Delete completes with None"
        );
        let returned_at = self.recorder.now();
        self.recorder.finish(self.slot, Status::Ok { returned_at, output: get_output });
        self.completed = true;
    }

    /// The client cannot tell whether the operation happened (a deadline, a broken
    /// connection, `stale_command`): it may take effect at any time after its invocation,
    /// or never.
    pub fn complete_unknown(mut self) {
        self.recorder.finish(self.slot, Status::Unknown);
        self.completed = true;
    }

    /// The operation certainly did not happen (for example `not_leader` before proposing):
    /// it is left out of the history.
    pub fn fail(mut self) {
        self.recorder.finish(self.slot, Status::Failed);
        self.completed = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.completed {
            self.recorder.finish(self.slot, Status::Unknown);
        }
    }
}

/// An invoked scan waiting for its answer.
///
/// A scan is recorded as one Get per key it covered, all sharing the scan's window, and is
/// checked **per key**: each of those reads must be linearizable on its own key, but the
/// checker does not demand that all of them observe one single point in time. That is
/// weaker than checking the scan as a multi-key snapshot: a scan that mixed an old value of
/// one key with a new value of another can pass.
#[derive(Debug)]
#[must_use = "complete the scan with complete_ok, complete_unknown or fail"]
pub struct PendingScan {
    recorder: Recorder,
    client: u64,
    invoked_at: u64,
}

impl PendingScan {
    /// The answer arrived. `reads` lists every key the scan covered with what it saw there:
    /// `Some(value)` for each returned pair, and `None` for each key the caller knows lies
    /// in the scanned range but was not returned (it was absent).
    pub fn complete_ok(self, reads: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) {
        let returned_at = self.recorder.now();
        let mut slots = self.recorder.lock();
        for (key, output) in reads {
            slots.push(Slot {
                client: self.client,
                key,
                call: Call::Get,
                invoked_at: self.invoked_at,
                status: Status::Ok { returned_at, output },
            });
        }
    }

    /// The client got no answer: a read with an unknown outcome says nothing.
    pub fn complete_unknown(self) {}

    /// The scan failed: nothing to record.
    pub fn fail(self) {}
}
