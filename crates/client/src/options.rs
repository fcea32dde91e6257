//! Tunables of a [`Client`](crate::Client): deadlines, timeouts and backoff.

use std::time::Duration;

/// How long a client waits and how it backs off. `Default` gives SPEC's production values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// The overall deadline of one call (`get`, `put`, ...), retries included. When it
    /// passes, a write that was sent and not answered is [`Unknown`](crate::Error::Unknown);
    /// anything else is [`Unavailable`](crate::Error::Unavailable).
    pub deadline: Duration,
    /// The bound on opening a TCP connection to one endpoint. A connection that cannot be
    /// opened carried no request, so the client moves on to the next endpoint.
    pub connect_timeout: Duration,
    /// The bound on one attempt of a read or a `Status` call before trying elsewhere. Writes
    /// are not bounded per attempt: an unanswered write is unknown anyway, so it waits for
    /// as long as the overall deadline allows, for the best chance of a definite answer.
    pub read_attempt_timeout: Duration,
    /// The first pause after `server_is_busy` (unless the server suggests one) or after a
    /// whole round of endpoints refused; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
    /// The largest response the client accepts (a scan of large values can be big).
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            read_attempt_timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
            // The server's default `max_message_bytes` (64 MiB) plus framing.
            max_response_bytes: 65 * 1024 * 1024,
        }
    }
}
