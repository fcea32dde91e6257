//! The flags client commands share: where the stores are and how long to wait, and, for
//! the commands that touch data, which column family.

use std::time::Duration;

use clap::Args;
use client::{Client, ClientOptions};

/// The playground's three stores.
pub const DEFAULT_ENDPOINTS: &str = "127.0.0.1:20161,127.0.0.1:20162,127.0.0.1:20163";

#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Store addresses, HOST:PORT,... (the client finds the leader among them)
    #[arg(long, value_name = "ADDR,...", value_delimiter = ',', default_value = DEFAULT_ENDPOINTS)]
    pub endpoints: Vec<String>,
    /// Give up on a request after this many milliseconds, retries included
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

impl ClientArgs {
    pub fn options(&self) -> ClientOptions {
        let deadline = Duration::from_millis(self.timeout_ms);
        let defaults = ClientOptions::default();
        ClientOptions {
            deadline,
            read_attempt_timeout: defaults.read_attempt_timeout.min(deadline),
            ..defaults
        }
    }

    /// A client for `--endpoints`; must be called inside the Tokio runtime.
    pub fn client(&self) -> Result<Client, client::Error> {
        Client::new(self.endpoints.clone(), self.options())
    }
}

/// `--cf`, for commands that read or write data.
#[derive(Debug, Clone, Args)]
pub struct CfArg {
    /// Column family: default, lock or write [default: default]
    #[arg(long, value_name = "CF")]
    pub cf: Option<String>,
}

impl CfArg {
    /// The column family as sent on the wire (empty means `default`).
    pub fn name(&self) -> &str {
        self.cf.as_deref().unwrap_or("")
    }
}
