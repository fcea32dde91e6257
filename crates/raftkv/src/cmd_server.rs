//! `raftkv server`: turns flags and the config file into the server crate's arguments and
//! runs one store until it is stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use server::ServerArgs;
use server::config::{FileConfig, parse_peers};

use crate::config_flags::ConfigFlags;
use crate::exit::{Exit, UsageError};

#[derive(Debug, Clone, Args)]
pub struct ServerCmd {
    /// This store's id; it listens on the address --peers gives it
    #[arg(long, value_name = "ID")]
    pub id: u64,
    /// Every store of the cluster: ID=HOST:PORT,... (e.g. 1=127.0.0.1:20161,2=127.0.0.1:20162)
    #[arg(long, value_name = "ID=ADDR,...", value_parser = peers_arg)]
    pub peers: BTreeMap<u64, String>,
    /// Where the store keeps its data; a restart on the same directory resumes
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// TOML configuration file ([raft], [raftstore], [server] tables)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Identifies the cluster; a store refuses messages and data of another cluster
    #[arg(long, value_name = "T", default_value = "raftkv")]
    pub cluster_token: String,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

fn peers_arg(s: &str) -> Result<BTreeMap<u64, String>, String> {
    parse_peers(s).map_err(|e| e.to_string())
}

impl ServerCmd {
    /// The file's configuration (or the defaults), with the flags given applied on top,
    /// validated. Every failure here is a usage error (exit 2).
    pub fn server_args(&self) -> anyhow::Result<ServerArgs> {
        if !self.peers.contains_key(&self.id) {
            let ids: Vec<String> = self.peers.keys().map(u64::to_string).collect();
            return Err(UsageError(format!(
                "--id {} is not in --peers (which lists stores {})",
                self.id,
                ids.join(", ")
            ))
            .into());
        }
        if self.cluster_token.is_empty() {
            return Err(UsageError("--cluster-token must not be empty".into()).into());
        }
        let mut config = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        self.flags.apply(&mut config);
        config.validate()?;
        Ok(ServerArgs {
            id: self.id,
            peers: self.peers.clone(),
            data_dir: self.data_dir.clone(),
            cluster_token: self.cluster_token.clone(),
            config,
        })
    }
}

pub async fn run(cmd: ServerCmd) -> anyhow::Result<Exit> {
    let args = cmd.server_args()?;
    let id = args.id;
    let addr = args.peers.get(&id).cloned().unwrap_or_default();
    tracing::info!(store = id, %addr, data_dir = %args.data_dir.display(), "starting store");
    // Returns after SIGTERM or SIGINT and a clean shutdown, or when the store stopped on its
    // own (a failed write or fsync), with its error.
    server::run(args).await.with_context(|| format!("store {id} ({addr}) stopped"))?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        cmd: ServerCmd,
    }

    fn parse(args: &[&str]) -> Result<ServerCmd, clap::Error> {
        let argv = std::iter::once("raftkv").chain(args.iter().copied());
        Harness::try_parse_from(argv).map(|h| h.cmd)
    }

    const BASE: [&str; 6] =
        ["--id", "2", "--peers", "1=127.0.0.1:20161,2=127.0.0.1:20162", "--data-dir", "d"];

    #[test]
    fn flags_win_over_the_config_file() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "[raft]\nelection_tick = 20\n[raftstore]\nraft_log_gc_count_limit = 100")
            .expect("write config");
        let path = file.path().to_str().expect("utf-8 temp path").to_string();
        let mut args: Vec<&str> = BASE.to_vec();
        args.extend(["--config", &path, "--election-tick", "40", "--max-scan-limit", "5"]);
        let store = parse(&args).expect("valid flags").server_args().expect("valid config");
        assert_eq!(store.id, 2);
        assert_eq!(store.peers[&1], "127.0.0.1:20161");
        assert_eq!(store.data_dir, PathBuf::from("d"));
        assert_eq!(store.cluster_token, "raftkv", "the default token");
        assert_eq!(store.config.raft.election_tick, 40, "the flag wins");
        assert_eq!(store.config.raftstore.raft_log_gc_count_limit, 100, "the file's value");
        assert_eq!(store.config.server.max_scan_limit, 5);
        assert_eq!(store.config.raft.base_tick_ms, 50, "the default");
    }

    #[test]
    fn an_id_outside_peers_is_a_usage_error() {
        let mut args = BASE.to_vec();
        args[1] = "3";
        let err = parse(&args).expect("parses").server_args().expect_err("id 3 is not a peer");
        assert_eq!(crate::exit::code_of(&err), 2);
        assert!(err.to_string().contains("--id 3"), "{err}");
    }

    #[test]
    fn an_invalid_combination_is_a_usage_error() {
        let mut args = BASE.to_vec();
        args.extend(["--election-tick", "2", "--heartbeat-tick", "2"]);
        let err = parse(&args).expect("parses").server_args().expect_err("invalid");
        assert_eq!(crate::exit::code_of(&err), 2);
    }

    #[test]
    fn a_missing_config_file_is_a_usage_error() {
        let mut args = BASE.to_vec();
        args.extend(["--config", "/nonexistent/raftkv.toml"]);
        let err = parse(&args).expect("parses").server_args().expect_err("no file");
        assert_eq!(crate::exit::code_of(&err), 2);
    }

    #[test]
    fn malformed_peers_are_rejected_by_clap() {
        let err = parse(&["--id", "1", "--peers", "1=localhost", "--data-dir", "d"])
            .expect_err("rejected");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("localhost"), "{err}");
    }
}
