//! raftkv's server: the `raftkvpb.RaftKv` gRPC service over a raftstore `Store`, the
//! store-to-store transport, configuration, and the status HTTP endpoint.
//!
//! Where to look:
//! - `running.rs`: starting and stopping one store's server (`RunningServer`), used by
//!   `run` and by tests that run whole clusters in one process.
//! - `service.rs`: the RPCs; `validate.rs`: what makes a client request invalid.
//! - `transport.rs` + `peer_stream.rs`: raft messages to other stores, batched per peer, on
//!   two lanes (bulk appends / everything else), over bounded queues;
//!   `snapshot_stream.rs`: snapshots, one `Snapshot` stream per transfer.
//! - `status_http.rs`: `/metrics` and `/health`; `metrics.rs`: the server's metrics.
//! - `config.rs`: SPEC's TOML tables and `--peers`.

pub mod config;
mod metrics;
mod peer_stream;
mod running;
mod service;
mod snapshot_stream;
mod status_http;
mod transport;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use crate::config::{ConfigError, FileConfig};
pub use crate::running::RunningServer;

/// Everything one store's server is started with: the flags-only settings and the file
/// configuration (with flag overrides already applied).
#[derive(Debug, Clone)]
pub struct ServerArgs {
    pub id: u64,
    /// Store id -> address of every initial member, this store included.
    pub peers: BTreeMap<u64, String>,
    pub data_dir: PathBuf,
    pub cluster_token: String,
    pub config: FileConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store {0} is not listed in --peers")]
    NotInPeers(u64),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("invalid peer address: {0}")]
    PeerAddress(tonic::transport::Error),
    #[error(transparent)]
    Store(#[from] raftstore::StoreError),
    #[error("gRPC server failed: {0}")]
    Serve(tonic::transport::Error),
    #[error("status server failed: {0}")]
    StatusServer(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    #[error("server task failed: {0}")]
    Task(String),
}

/// Runs one store until SIGTERM or SIGINT, then shuts down cleanly (a leader hands over
/// leadership first). Returns the store's error if it stopped on its own (a failed fsync),
/// so the process exits non-zero.
pub async fn run(args: ServerArgs) -> Result<(), ServerError> {
    // Installed before starting, so a signal during startup is not the default (fatal) one.
    let mut signals = Signals::install()?;
    let server = RunningServer::start(args).await?;
    tokio::select! {
        name = signals.recv() => tracing::info!(store_id = server.id(), "{name} received"),
        () = server.stopped() => tracing::error!(store_id = server.id(), "the store stopped"),
    }
    server.shutdown().await
}

/// SIGTERM and SIGINT.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, ServerError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
            let int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
            Ok(Signals { term, int })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
