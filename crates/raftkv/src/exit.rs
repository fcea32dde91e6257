//! Exit codes, as SPEC fixes them for scripts: 0 success; 1 key not found; 2 bad usage or
//! invalid request; 3 failed and certainly not applied; 4 outcome unknown.
//!
//! A command returns an [`Exit`] when it ran to the end, or an error whose exit code
//! [`code_of`] finds from its kind. Failures SPEC does not classify (a store that cannot
//! start, a playground child that cannot be spawned) exit 1.

use std::fmt;
use std::process::ExitCode;

/// How a command that ran to the end finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// `get` of a missing key.
    NotFound,
    /// Nothing was applied and no client error says more (no endpoint answered `status`,
    /// no operation of a benchmark succeeded).
    NotApplied,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::NotFound => 1,
            Exit::NotApplied => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A mistake in the invocation that clap cannot see (an `--id` missing from `--peers`, a
/// config file that does not parse); exits 2 like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Exit code for a failed command: the client's verdict, 2 for usage and configuration
/// errors, 1 for anything else.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<client::Error>() {
            return e.exit_code();
        }
        if cause.is::<UsageError>() || cause.is::<server::config::ConfigError>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<server::ServerError>() {
            return match e {
                server::ServerError::Config(_) | server::ServerError::NotInPeers(_) => 2,
                _ => 1,
            };
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn client_errors_map_to_specs_codes() {
        let invalid = anyhow::Error::new(client::Error::InvalidRequest("empty key".into()));
        assert_eq!(code_of(&invalid), 2);
        let unavailable = anyhow::Error::new(client::Error::Unavailable {
            attempts: 3,
            last: "refused".into(),
            tried: "x".into(),
        });
        assert_eq!(code_of(&unavailable), 3);
        let unknown =
            anyhow::Error::new(client::Error::Unknown("stale".into())).context("put failed");
        assert_eq!(code_of(&unknown), 4, "context does not hide the client's verdict");
    }

    #[test]
    fn usage_and_config_errors_exit_2_and_the_rest_1() {
        let usage = anyhow::Error::new(UsageError("--id 4 is not in --peers".into()));
        assert_eq!(code_of(&usage), 2);
        let config = Err::<(), _>(server::config::ConfigError::Invalid("x".into()))
            .context("loading config");
        assert_eq!(code_of(&config.expect_err("err")), 2);
        let not_in_peers = anyhow::Error::new(server::ServerError::NotInPeers(4));
        assert_eq!(code_of(&not_in_peers), 2);
        assert_eq!(code_of(&anyhow::anyhow!("disk full")), 1);
    }

    #[test]
    fn exits_have_specs_codes() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::NotFound.code(), 1);
        assert_eq!(Exit::NotApplied.code(), 3);
    }
}
