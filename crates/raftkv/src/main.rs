//! `raftkv`: one binary for a store (`server`), the key-value command line (`put`, `get`,
//! `delete`, `scan`, `status`), a local cluster (`playground`) and a load test (`bench`).
//!
//! Exit codes (SPEC): 0 success; 1 key not found; 2 bad usage or invalid request; 3 failed
//! and certainly not applied; 4 outcome unknown.

mod client_args;
mod cmd_bench;
mod cmd_kv;
mod cmd_playground;
mod cmd_server;
mod cmd_status;
mod config_flags;
mod escape;
mod exit;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::client_args::{CfArg, ClientArgs};
use crate::exit::Exit;

/// glibc's malloc took about 17% of a loaded leader's CPU (arena locking, consolidation);
/// mimalloc's per-thread free lists suit a server that allocates small buffers on many
/// threads and frees them on others.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// raftkv: a highly available key-value store replicated with Raft.
#[derive(Debug, Parser)]
#[command(name = "raftkv", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 key not found, 2 bad usage or invalid request, \
                        3 failed and certainly not applied, 4 outcome unknown.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one store of a cluster
    Server(Box<cmd_server::ServerCmd>),
    /// Write KEY = VALUE (exit 0 once acknowledged)
    Put {
        /// The key (UTF-8)
        key: String,
        /// The value (UTF-8)
        value: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Print the value of KEY (a missing key: nothing on stdout, exit 1)
    Get {
        /// The key (UTF-8)
        key: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Delete KEY
    Delete {
        /// The key (UTF-8)
        key: String,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Print pairs from START on in key order, one KEY<TAB>VALUE line each
    Scan {
        /// First key to print [default: the first key]
        start: Option<String>,
        /// Most pairs to print
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Print each endpoint's id, address, role, term, commit, applied index and leader
    Status {
        /// Print a JSON array, one object per endpoint
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start a local cluster of `raftkv server` processes; Ctrl-C stops it
    Playground(cmd_playground::PlaygroundCmd),
    /// Load-test a cluster and print throughput and latency percentiles
    Bench(cmd_bench::BenchCmd),
}

impl Command {
    async fn run(self) -> anyhow::Result<Exit> {
        match self {
            Command::Server(cmd) => cmd_server::run(*cmd).await,
            Command::Put { key, value, client, cf } => cmd_kv::put(&client, &cf, key, value).await,
            Command::Get { key, client, cf } => cmd_kv::get(&client, &cf, key).await,
            Command::Delete { key, client, cf } => cmd_kv::delete(&client, &cf, key).await,
            Command::Scan { start, limit, client, cf } => {
                cmd_kv::scan(&client, &cf, start, limit).await
            }
            Command::Status { json, client } => cmd_status::run(&client, json).await,
            Command::Playground(cmd) => cmd_playground::run(cmd).await,
            Command::Bench(cmd) => cmd_bench::run(cmd).await,
        }
    }

    /// A store and the playground narrate at `info`; client commands speak up only when
    /// something is wrong. `RUST_LOG` overrides either.
    fn default_log_filter(&self) -> &'static str {
        match self {
            Command::Server(_) | Command::Playground(_) => "info,fjall=warn,lsm_tree=warn",
            _ => "warn",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(cli.command.default_log_filter()));
    // No colour codes when stderr is a file (the playground's server.log) or a pipe.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Server(_) = cli.command
        && std::env::var_os("TOKIO_WORKER_THREADS").is_none()
    {
        // A store's raft worker and its engines' threads need cores too: giving gRPC
        // half of them was measured 25% faster with three stores on two cores than
        // one async worker per core. TOKIO_WORKER_THREADS overrides.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        builder.worker_threads((cores / 2).max(1));
    }
    // A woken task waits its turn instead of running next: the answers one raft loop
    // completes then leave in one write per connection, not one write each (.cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("raftkv: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(cli.command.run());
    // Background connection tasks of a finished command have nothing left to do.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("raftkv: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("raftkv").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_commands_default_to_the_playground() {
        let Ok(Cli { command: Command::Put { key, value, client, cf } }) =
            parse(&["put", "k", "v"])
        else {
            panic!("put parses")
        };
        assert_eq!((key.as_str(), value.as_str()), ("k", "v"));
        assert_eq!(client.endpoints, ["127.0.0.1:20161", "127.0.0.1:20162", "127.0.0.1:20163"]);
        assert_eq!(cf.name(), "");
        assert_eq!(client.timeout_ms, 10_000);
    }

    #[test]
    fn endpoints_and_cf_are_taken() {
        let Ok(Cli { command: Command::Scan { start, limit, client, cf } }) =
            parse(&["scan", "--endpoints", "a:1,b:2", "--cf", "lock", "--limit", "5"])
        else {
            panic!("scan parses")
        };
        assert_eq!(start, None);
        assert_eq!(limit, 5);
        assert_eq!(client.endpoints, ["a:1", "b:2"]);
        assert_eq!(cf.name(), "lock");
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["put", "k"][..],
            &["get"],
            &["scan", "--limit", "-1"],
            &["frobnicate"],
            &["server", "--id", "1"],
            &["playground", "--nodes", "0"],
            &["bench", "--clients", "0"],
        ] {
            let err = parse(args).expect_err("rejected");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn server_takes_specs_flags() {
        let Ok(Cli { command: Command::Server(cmd) }) = parse(&[
            "server",
            "--id",
            "1",
            "--peers",
            "1=127.0.0.1:20161,2=127.0.0.1:20162,3=127.0.0.1:20163",
            "--data-dir",
            "/tmp/d",
            "--status-addr",
            "127.0.0.1:20181",
            "--config",
            "raftkv.toml",
            "--cluster-token",
            "t",
            "--pre-vote",
            "false",
        ]) else {
            panic!("server parses")
        };
        assert_eq!(cmd.id, 1);
        assert_eq!(cmd.peers.len(), 3);
        assert_eq!(cmd.cluster_token, "t");
        assert_eq!(cmd.flags.status_addr.as_deref(), Some("127.0.0.1:20181"));
        assert_eq!(cmd.flags.pre_vote, Some(false));
    }
}
