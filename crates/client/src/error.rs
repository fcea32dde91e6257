//! What a caller learns when a request fails, sorted by what it promises about the write.
//!
//! A missing key is not an error (`get` returns `None`). Every other failure says whether the
//! request certainly did not take effect ([`Error::Unavailable`], [`Error::InvalidRequest`],
//! [`Error::InvalidConfig`]) or may have ([`Error::Unknown`]); SPEC's exit codes follow.

/// A failed client call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server rejected the request as invalid (the response's `error` string: empty key,
    /// value over the limit, unknown column family, bad scan limit...). Nothing changed.
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The client itself is misconfigured (no endpoints, an address that is not
    /// `host:port`, no Tokio runtime). Nothing was sent.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),

    /// No store accepted the request before the deadline. Every attempt certainly did not
    /// take effect: it was refused before being proposed, or never reached a store.
    #[error("unavailable, nothing was applied: {last} ({attempts} attempts; {tried})")]
    Unavailable {
        /// How many RPCs were sent or tried.
        attempts: u32,
        /// What went wrong, in one phrase (e.g. that the deadline passed).
        last: String,
        /// The last outcome seen from each endpoint tried, e.g.
        /// `127.0.0.1:20161: cannot connect: Connection refused (os error 111); 127.0.0.1:20162,
        /// 127.0.0.1:20163: not leader (leader unknown)`.
        tried: String,
    },

    /// A write may or may not have taken effect: it reached a store and then the answer was
    /// lost (deadline exceeded, broken connection) or the leader changed while it was in the
    /// log (`stale_command`). The client never retries such a write; the caller decides.
    #[error("outcome unknown (the write may or may not have been applied): {0}")]
    Unknown(String),
}

impl Error {
    /// The `raftkv` exit code for this error, as SPEC fixes them: 2 bad usage or invalid
    /// request, 3 failed and certainly not applied, 4 outcome unknown.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidRequest(_) | Error::InvalidConfig(_) => 2,
            Error::Unavailable { .. } => 3,
            Error::Unknown(_) => 4,
        }
    }

    /// True if the request certainly did not take effect and may be retried as is.
    pub fn certainly_not_applied(&self) -> bool {
        !matches!(self, Error::Unknown(_))
    }
}

/// The result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_spec() {
        assert_eq!(Error::InvalidRequest("empty key".into()).exit_code(), 2);
        assert_eq!(Error::InvalidConfig("no endpoints".into()).exit_code(), 2);
        let unavailable =
            Error::Unavailable { attempts: 3, last: "refused".into(), tried: "a: refused".into() };
        assert_eq!(unavailable.exit_code(), 3);
        assert!(unavailable.certainly_not_applied());
        let unknown = Error::Unknown("stale command".into());
        assert_eq!(unknown.exit_code(), 4);
        assert!(!unknown.certainly_not_applied());
    }
}
