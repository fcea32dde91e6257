//! `raftkv playground`: a local cluster of N `raftkv server` child processes, printed so a
//! user can kill and restart any of them by hand, stopped cleanly on Ctrl-C.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use client::{Client, ClientOptions};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::exit::{Exit, UsageError};

/// Store i listens for clients and peers on `CLIENT_PORT_BASE + i`.
const CLIENT_PORT_BASE: u16 = 20160;
/// Store i serves `/metrics` and `/health` on `STATUS_PORT_BASE + i`.
const STATUS_PORT_BASE: u16 = 20180;
/// The most stores, so client and status ports never overlap.
const MAX_NODES: u64 = 9;
/// How long to wait for the first leader before carrying on without one.
const ELECTION_WAIT: Duration = Duration::from_secs(30);
/// How long stores get to shut down after SIGTERM before they are killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Args)]
pub struct PlaygroundCmd {
    /// Number of stores (1 to 9)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=MAX_NODES))]
    pub nodes: u64,
    /// Where the stores keep their data (store-N/ each, with its server.log)
    #[arg(long, value_name = "DIR", default_value = "raftkv-data")]
    pub data_dir: PathBuf,
}

/// One store of the playground and how it is started.
struct Store {
    id: u64,
    client_addr: String,
    status_addr: String,
    dir: PathBuf,
    log: PathBuf,
    /// The full command line, program first.
    argv: Vec<String>,
}

/// A running child's pid, and whether it already exited.
struct Running {
    pid: u32,
    exited: bool,
}

pub async fn run(cmd: PlaygroundCmd) -> anyhow::Result<Exit> {
    let stores = plan(&cmd)?;
    check_ports_free(&stores)?;
    let (exits_tx, mut exits) = mpsc::unbounded_channel::<(u64, std::io::Result<ExitStatus>)>();
    let mut running = BTreeMap::new();
    for store in &stores {
        let pid = spawn(store, exits_tx.clone())?;
        running.insert(store.id, Running { pid, exited: false });
    }
    drop(exits_tx);
    print_cluster(&cmd, &stores, &running);

    let endpoints: Vec<String> = stores.iter().map(|s| s.client_addr.clone()).collect();
    let started = Instant::now();
    println!("waiting for a leader...");
    let election = wait_for_leader(&endpoints);
    tokio::pin!(election);
    let mut signals = Signals::new()?;
    let mut elected = false;
    loop {
        tokio::select! {
            leader = &mut election, if !elected => {
                elected = true;
                match leader {
                    Some(id) => println!(
                        "leader elected: store {id} (after {:.2} s)",
                        started.elapsed().as_secs_f64()
                    ),
                    None => println!(
                        "no leader after {} s; the playground keeps running, see the logs",
                        ELECTION_WAIT.as_secs()
                    ),
                }
                print_example();
            }
            exit = exits.recv() => match exit {
                Some((id, status)) => report_exit(id, status, &stores, &mut running),
                None => bail!("every store has exited; see their logs"),
            },
            () = signals.recv() => return shut_down(&mut running, &mut exits).await,
        }
    }
}

/// Addresses, directories and command lines of stores 1..=N.
fn plan(cmd: &PlaygroundCmd) -> anyhow::Result<Vec<Store>> {
    let exe = std::env::current_exe().context("cannot find the raftkv executable")?;
    fs::create_dir_all(&cmd.data_dir)
        .with_context(|| format!("cannot create {}", cmd.data_dir.display()))?;
    // Absolute, so a printed command line works from any directory.
    let data_dir = cmd
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", cmd.data_dir.display()))?;
    let ids = 1..=cmd.nodes;
    let port = |base: u16, id: u64| u64::from(base) + id;
    let peers: Vec<String> =
        ids.clone().map(|id| format!("{id}=127.0.0.1:{}", port(CLIENT_PORT_BASE, id))).collect();
    let peers = peers.join(",");
    Ok(ids
        .map(|id| {
            let dir = data_dir.join(format!("store-{id}"));
            let status_addr = format!("127.0.0.1:{}", port(STATUS_PORT_BASE, id));
            let argv = vec![
                exe.display().to_string(),
                "server".into(),
                "--id".into(),
                id.to_string(),
                "--peers".into(),
                peers.clone(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--status-addr".into(),
                status_addr.clone(),
            ];
            Store {
                id,
                client_addr: format!("127.0.0.1:{}", port(CLIENT_PORT_BASE, id)),
                status_addr,
                log: dir.join("server.log"),
                dir,
                argv,
            }
        })
        .collect())
}

/// Fails with a clear message if another process holds a playground port.
fn check_ports_free(stores: &[Store]) -> anyhow::Result<()> {
    let busy: Vec<&str> = stores
        .iter()
        .flat_map(|s| [s.client_addr.as_str(), s.status_addr.as_str()])
        .filter(|addr| TcpListener::bind(addr).is_err())
        .collect();
    if !busy.is_empty() {
        return Err(UsageError(format!(
            "cannot start the playground: {} already in use (is another playground or raftkv \
             server running?)",
            busy.join(", ")
        ))
        .into());
    }
    Ok(())
}

/// Starts one store with its output appended to its log; reports its exit on `exits`.
fn spawn(
    store: &Store,
    exits: mpsc::UnboundedSender<(u64, std::io::Result<ExitStatus>)>,
) -> anyhow::Result<u32> {
    fs::create_dir_all(&store.dir)
        .with_context(|| format!("cannot create {}", store.dir.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&store.log)
        .with_context(|| format!("cannot open {}", store.log.display()))?;
    let log_err =
        log.try_clone().with_context(|| format!("cannot open {}", store.log.display()))?;
    let mut command = Command::new(&store.argv[0]);
    command.args(&store.argv[1..]).stdin(Stdio::null()).stdout(log).stderr(log_err);
    // Its own process group: Ctrl-C reaches only the playground, which then stops the
    // stores with SIGTERM, one clean shutdown each.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn().with_context(|| format!("cannot start store {}", store.id))?;
    let Some(pid) = child.id() else { bail!("store {} exited at once", store.id) };
    let id = store.id;
    tokio::spawn(async move {
        let status = child.wait().await;
        let _ = exits.send((id, status));
    });
    Ok(pid)
}

fn print_cluster(cmd: &PlaygroundCmd, stores: &[Store], running: &BTreeMap<u64, Running>) {
    println!(
        "raftkv playground: {} store(s), data in {} (existing data is resumed)",
        cmd.nodes,
        cmd.data_dir.display()
    );
    for store in stores {
        let pid = running.get(&store.id).map_or(0, |r| r.pid);
        println!(
            "  store {}: pid {pid}, client {}, status http://{}/metrics, log {}",
            store.id,
            store.client_addr,
            store.status_addr,
            store.log.display()
        );
        println!("    {}", shell_line(&store.argv));
    }
    let endpoints: Vec<&str> = stores.iter().map(|s| s.client_addr.as_str()).collect();
    println!("endpoints: {}", endpoints.join(","));
}

fn print_example() {
    println!();
    println!("try it from another terminal:");
    println!("  raftkv put hello world");
    println!("  raftkv get hello");
    println!("  raftkv status");
    println!("stop a store with `kill PID`; restart it with its command line above.");
    println!("press Ctrl-C to stop the playground (stores get SIGTERM and shut down cleanly).");
}

/// Polls `Status` until some store says it leads; its id, or `None` after `ELECTION_WAIT`.
async fn wait_for_leader(endpoints: &[String]) -> Option<u64> {
    let options = ClientOptions {
        deadline: Duration::from_millis(500),
        read_attempt_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let client = Client::new(endpoints.to_vec(), options).ok()?;
    let give_up = Instant::now() + ELECTION_WAIT;
    while Instant::now() < give_up {
        let answers = client.status_all().await;
        let leader = answers
            .iter()
            .filter_map(|(_, answer)| answer.as_ref().ok())
            .find(|s| s.role == "leader")
            .map(|s| s.store_id);
        if leader.is_some() {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

fn report_exit(
    id: u64,
    status: std::io::Result<ExitStatus>,
    stores: &[Store],
    running: &mut BTreeMap<u64, Running>,
) {
    let Some(r) = running.get_mut(&id) else { return };
    r.exited = true;
    let how = match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("unknown status ({e})"),
    };
    let Some(store) = stores.iter().find(|s| s.id == id) else { return };
    println!(
        "store {id} (pid {}) exited: {how}; see {}. It is not restarted; to restart it run:\n    {}",
        r.pid,
        store.log.display(),
        shell_line(&store.argv)
    );
}

/// SIGTERM to every store still running, then waits for them; kills stragglers.
async fn shut_down(
    running: &mut BTreeMap<u64, Running>,
    exits: &mut mpsc::UnboundedReceiver<(u64, std::io::Result<ExitStatus>)>,
) -> anyhow::Result<Exit> {
    println!("stopping the stores...");
    for (id, r) in running.iter().filter(|(_, r)| !r.exited) {
        if let Err(e) = signal(r.pid, "TERM") {
            eprintln!("cannot stop store {id} (pid {}): {e:#}", r.pid);
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
    while running.values().any(|r| !r.exited) {
        match tokio::time::timeout_at(deadline, exits.recv()).await {
            Ok(Some((id, status))) => {
                if let Some(r) = running.get_mut(&id) {
                    r.exited = true;
                }
                let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                println!("store {id} stopped ({how})");
            }
            Ok(None) => break,
            Err(_) => {
                for (id, r) in running.iter().filter(|(_, r)| !r.exited) {
                    eprintln!("store {id} (pid {}) did not stop in time; killing it", r.pid);
                    let _ = signal(r.pid, "KILL");
                }
                break;
            }
        }
    }
    println!("playground stopped; run it again to resume on the same data");
    Ok(Exit::Success)
}

/// Sends `SIGname` to `pid` with kill(1): std has no safe way to send SIGTERM, and this
/// crate forbids `unsafe`.
fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("cannot run kill(1)")?;
    if !status.success() {
        bail!("kill -{name} {pid} failed: {status}");
    }
    Ok(())
}

/// Ctrl-C (SIGINT) and SIGTERM both stop the playground.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot listen for SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `argv` as a line a POSIX shell runs as is: arguments with anything but safe characters
/// are single-quoted.
fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" ")
}

fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_quote_only_what_needs_it() {
        let argv: Vec<String> =
            ["/bin/raftkv", "--data-dir", "/tmp/my data", "it's", ""].map(String::from).to_vec();
        assert_eq!(shell_line(&argv), r"/bin/raftkv --data-dir '/tmp/my data' 'it'\''s' ''");
    }

    #[test]
    fn the_plan_follows_specs_ports_and_layout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cmd = PlaygroundCmd { nodes: 3, data_dir: dir.path().to_path_buf() };
        let stores = plan(&cmd).expect("plan");
        assert_eq!(stores.len(), 3);
        let root = dir.path().canonicalize().expect("canonical");
        assert_eq!(stores[1].client_addr, "127.0.0.1:20162");
        assert_eq!(stores[1].status_addr, "127.0.0.1:20182");
        assert_eq!(stores[2].dir, root.join("store-3"));
        assert_eq!(stores[2].log, root.join("store-3").join("server.log"));
        assert_eq!(
            &stores[0].argv[1..],
            &[
                "server",
                "--id",
                "1",
                "--peers",
                "1=127.0.0.1:20161,2=127.0.0.1:20162,3=127.0.0.1:20163",
                "--data-dir",
                &root.join("store-1").display().to_string(),
                "--status-addr",
                "127.0.0.1:20181",
            ]
        );
    }
}
