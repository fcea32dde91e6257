//! What clients did: operations, how they ended, and the history that collects them.
//!
//! Times are ticks of one monotonic clock shared by every client of a history (the
//! [`Recorder`](crate::Recorder) uses nanoseconds since its creation). Only their order
//! matters: operation A precedes operation B in real time iff `A.returned_at <
//! B.invoked_at`; equal ticks count as concurrent, which can only make the check more
//! permissive, never reject a correct history.

use std::fmt;

/// One operation on one key: a write with its input, or a read with what it observed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Set the key to this value.
    Put(Vec<u8>),
    /// Remove the key: reads that follow see it absent.
    Delete,
    /// Read the key; carries the value the read returned (`None`: the key was absent).
    Get(Option<Vec<u8>>),
}

impl Op {
    /// Whether the operation changes the key (Put or Delete).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get(_))
    }
}

/// How an operation ended, as far as its client knows.
///
/// There is no `Failed`: an operation that certainly did not happen is simply not part of
/// the history (the recorder drops it), because it constrains nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The client got a response; the operation took effect exactly once, at some instant
    /// between its invocation and its response.
    Ok,
    /// The client got "outcome unknown" (a timeout, a broken connection, a stale command):
    /// the operation took effect at most once, at some instant after its invocation — or
    /// never.
    Unknown,
}

/// One operation of one client, with its real-time window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// Who issued it. Only used in explanations: the checker needs no per-client order,
    /// because a client's operations never overlap in time.
    pub client: u64,
    /// The key it touched.
    pub key: Vec<u8>,
    /// What it did, with its input or its observed output.
    pub op: Op,
    /// When the client sent it.
    pub invoked_at: u64,
    /// When the client got the response; `None` when the outcome is unknown.
    pub returned_at: Option<u64>,
}

impl Event {
    /// An operation whose response the client received.
    ///
    /// Panics if `returned_at < invoked_at`.
    pub fn ok(
        client: u64,
        key: impl Into<Vec<u8>>,
        op: Op,
        invoked_at: u64,
        returned_at: u64,
    ) -> Self {
        assert!(
            invoked_at <= returned_at,
            "an operation cannot return ({returned_at}) before it is invoked ({invoked_at})"
        );
        Event { client, key: key.into(), op, invoked_at, returned_at: Some(returned_at) }
    }

    /// An operation whose outcome the client does not know.
    pub fn unknown(client: u64, key: impl Into<Vec<u8>>, op: Op, invoked_at: u64) -> Self {
        Event { client, key: key.into(), op, invoked_at, returned_at: None }
    }

    /// How the operation ended.
    pub fn outcome(&self) -> Outcome {
        match self.returned_at {
            Some(_) => Outcome::Ok,
            None => Outcome::Unknown,
        }
    }
}

impl fmt::Display for Event {
    /// `client 3: put "v" [120, 180]`, or `client 3: get -> absent [120, ?]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: ", self.client)?;
        match &self.op {
            Op::Put(value) => write!(f, "put {}", escape(value))?,
            Op::Delete => write!(f, "delete")?,
            Op::Get(Some(value)) => write!(f, "get -> {}", escape(value))?,
            Op::Get(None) => write!(f, "get -> absent")?,
        }
        match self.returned_at {
            Some(returned_at) => write!(f, " [{}, {}]", self.invoked_at, returned_at),
            None => write!(f, " [{}, unknown outcome]", self.invoked_at),
        }
    }
}

/// A list of operations of concurrent clients, in any order.
///
/// Build one by hand with [`History::push`] (tests) or take one from a
/// [`Recorder`](crate::Recorder).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Adds one operation.
    ///
    /// Panics if it returns before it is invoked.
    pub fn push(&mut self, event: Event) {
        if let Some(returned_at) = event.returned_at {
            assert!(
                event.invoked_at <= returned_at,
                "an operation cannot return before it is invoked: {event}"
            );
        }
        self.events.push(event);
    }

    /// The operations, in the order they were added.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// How many operations the history holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the history holds no operation.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl FromIterator<Event> for History {
    fn from_iter<I: IntoIterator<Item = Event>>(events: I) -> Self {
        let mut history = History::new();
        history.extend(events);
        history
    }
}

impl Extend<Event> for History {
    fn extend<I: IntoIterator<Item = Event>>(&mut self, events: I) {
        for event in events {
            self.push(event);
        }
    }
}

/// Longest byte string shown in full in explanations; longer ones are cut.
const SHOWN_BYTES_MAX: usize = 48;

/// Quotes bytes for humans the way the CLI prints them: printable ASCII as is, everything
/// else (and `"`, `\`) as `\xNN`; long strings are cut and their length given.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN_BYTES_MAX)];
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for &byte in shown {
        if byte.is_ascii_graphic() && byte != b'"' && byte != b'\\' || byte == b' ' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    if shown.len() < bytes.len() {
        out.push_str(&format!("...({} bytes)", bytes.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_shows_printable_ascii_and_hex_for_the_rest() {
        assert_eq!(escape(b"a b"), "\"a b\"");
        assert_eq!(escape(b"a\tb\\\"\xff"), "\"a\\x09b\\x5c\\x22\\xff\"");
        let long = vec![b'x'; SHOWN_BYTES_MAX + 1];
        assert!(escape(&long).ends_with(&format!("...({} bytes)", SHOWN_BYTES_MAX + 1)));
    }

    #[test]
    fn display_names_client_op_and_window() {
        let event = Event::ok(3, "k", Op::Put(b"v".to_vec()), 120, 180);
        assert_eq!(event.to_string(), "client 3: put \"v\" [120, 180]");
        let event = Event::unknown(4, "k", Op::Delete, 7);
        assert_eq!(event.to_string(), "client 4: delete [7, unknown outcome]");
        assert_eq!(event.outcome(), Outcome::Unknown);
    }

    #[test]
    #[should_panic(expected = "cannot return")]
    fn returning_before_invocation_is_refused() {
        let _ = Event::ok(1, "k", Op::Delete, 10, 9);
    }
}
