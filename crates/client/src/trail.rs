//! What a call tried, for the error it returns when it gives up.

use std::time::Duration;

use crate::Error;

/// The attempts of one call: how many, and the last outcome seen from each endpoint.
#[derive(Debug, Default)]
pub(crate) struct Trail {
    attempts: u32,
    /// In the order endpoints were first tried.
    last_by_endpoint: Vec<(String, String)>,
}

impl Trail {
    /// Counts one RPC about to be sent.
    pub(crate) fn attempt(&mut self) {
        self.attempts += 1;
    }

    /// Records why the latest attempt, to `addr`, did not succeed.
    pub(crate) fn record(&mut self, addr: &str, what: String) {
        tracing::debug!(endpoint = addr, "attempt failed: {what}");
        match self.last_by_endpoint.iter_mut().find(|(a, _)| a == addr) {
            Some(entry) => entry.1 = what,
            None => self.last_by_endpoint.push((addr.to_string(), what)),
        }
    }

    /// The error for a call that reached its deadline with nothing applied. Endpoints
    /// whose last outcome was the same are named together.
    pub(crate) fn give_up(self, deadline: Duration) -> Error {
        let mut groups: Vec<(Vec<String>, String)> = Vec::new();
        for (addr, what) in self.last_by_endpoint {
            match groups.iter_mut().find(|(_, w)| *w == what) {
                Some((addrs, _)) => addrs.push(addr),
                None => groups.push((vec![addr], what)),
            }
        }
        let tried = groups
            .iter()
            .map(|(addrs, what)| format!("{}: {what}", addrs.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        Error::Unavailable {
            attempts: self.attempts,
            last: format!("no store accepted the request within {deadline:?}"),
            tried: if tried.is_empty() { "nothing tried".into() } else { tried },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn give_up_names_each_endpoint_once_with_its_last_outcome() {
        let mut trail = Trail::default();
        let attempts =
            [("a:1", "refused"), ("b:2", "not leader"), ("a:1", "busy"), ("c:3", "busy")];
        for (addr, what) in attempts {
            trail.attempt();
            trail.record(addr, what.into());
        }
        match trail.give_up(Duration::from_secs(1)) {
            Error::Unavailable { attempts, last, tried } => {
                assert_eq!(attempts, 4);
                assert_eq!(last, "no store accepted the request within 1s");
                assert_eq!(tried, "a:1, c:3: busy; b:2: not leader");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
}
