//! A closed-loop gRPC load generator that drives etcd and raftkv the same way, so their
//! figures can be compared on one box: N clients, one HTTP/2 connection per 8 of them, all
//! to the endpoint given (the leader), each sending its next request when the previous one
//! is answered. etcd gets `KV/Put` and linearizable `KV/Range`; raftkv `RawPut` and
//! `RawGet`. Keys are 16 bytes, drawn uniformly from `--keys`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use raftkv_proto::kvrpcpb::{RawGetRequest, RawPutRequest};
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use tonic::transport::{Channel, Endpoint};

mod etcd {
    tonic::include_proto!("etcdserverpb");
}
use etcd::kv_client::KvClient;

const CLIENTS_PER_CONNECTION: usize = 8;
const PRELOAD_CLIENTS: u64 = 32;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Etcd,
    Raftkv,
}

#[derive(Parser)]
#[command(about = "Closed-loop gRPC load against etcd or raftkv (one connection per 8 clients)")]
struct Args {
    #[arg(long, value_enum)]
    target: Target,
    /// The leader's client address, HOST:PORT.
    #[arg(long)]
    endpoint: String,
    /// Write every key once and exit.
    #[arg(long)]
    preload: bool,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Fraction of requests that are reads, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Also print, per 100 ms of the run, how many requests completed and the slowest one
    /// (to stderr): shows whether a tail comes from stalls or from steady dispersion.
    #[arg(long)]
    timeline: bool,
}

#[derive(Clone)]
enum Conn {
    Etcd(KvClient<Channel>),
    Raftkv(RaftKvClient<Channel>),
}

impl Conn {
    async fn open(target: Target, endpoint: &str) -> Result<Conn> {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        Ok(match target {
            Target::Etcd => Conn::Etcd(KvClient::new(channel)),
            Target::Raftkv => Conn::Raftkv(RaftKvClient::new(channel)),
        })
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        match self {
            Conn::Etcd(c) => {
                c.put(etcd::PutRequest { key, value, lease: 0 }).await?;
            }
            Conn::Raftkv(c) => {
                let req =
                    RawPutRequest { key: key.into(), value: value.into(), ..Default::default() };
                let resp = c.raw_put(req).await?.into_inner();
                refused(resp.region_error.map(|e| e.message), resp.error)?;
            }
        }
        Ok(())
    }

    async fn get(&mut self, key: Vec<u8>) -> Result<()> {
        match self {
            Conn::Etcd(c) => {
                c.range(etcd::RangeRequest { key, ..Default::default() }).await?;
            }
            Conn::Raftkv(c) => {
                let req = RawGetRequest { key: key.into(), ..Default::default() };
                let resp = c.raw_get(req).await?.into_inner();
                refused(resp.region_error.map(|e| e.message), resp.error)?;
            }
        }
        Ok(())
    }
}

fn refused(region_error: Option<String>, error: String) -> Result<()> {
    match region_error {
        Some(e) => bail!("region error: {e}"),
        None if !error.is_empty() => bail!("{error}"),
        None => Ok(()),
    }
}

fn key(index: u64) -> Vec<u8> {
    format!("key{index:013}").into_bytes()
}

/// xorshift64: a fast, seeded, reproducible key and operation stream per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fraction(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

/// Timeline slots are this long.
const SLOT: Duration = Duration::from_millis(100);

struct Tally {
    writes: Histogram<u64>,
    reads: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Per `SLOT` since the start: (requests completed, slowest in µs).
    timeline: Vec<(u64, u64)>,
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            writes: Histogram::new(3)?,
            reads: Histogram::new(3)?,
            errors: 0,
            first_error: None,
            timeline: Vec::new(),
        })
    }

    fn record_slot(&mut self, since_start: Duration, micros: u64) {
        let slot = (since_start.as_millis() / SLOT.as_millis()) as usize;
        if self.timeline.len() <= slot {
            self.timeline.resize(slot + 1, (0, 0));
        }
        let (n, max) = &mut self.timeline[slot];
        *n += 1;
        *max = (*max).max(micros);
    }

    fn merge(&mut self, other: Tally) -> Result<()> {
        self.writes.add(other.writes)?;
        self.reads.add(other.reads)?;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), (0, 0));
        }
        for (mine, (n, max)) in self.timeline.iter_mut().zip(other.timeline) {
            mine.0 += n;
            mine.1 = mine.1.max(max);
        }
        Ok(())
    }
}

async fn preload(args: &Args) -> Result<()> {
    let conn = Conn::open(args.target, &args.endpoint).await?;
    let mut tasks = Vec::new();
    for start in 0..PRELOAD_CLIENTS {
        let mut conn = conn.clone();
        let (keys, value) = (args.keys, vec![b'v'; args.value_bytes]);
        tasks.push(tokio::spawn(async move {
            for index in (start..keys).step_by(PRELOAD_CLIENTS as usize) {
                conn.put(key(index), value.clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    eprintln!("preloaded {} keys", args.keys);
    Ok(())
}

async fn client(
    mut conn: Conn,
    seed: u64,
    args: &Args,
    started: Instant,
    deadline: Instant,
) -> Result<Tally> {
    let mut rng = Rng(seed);
    let mut tally = Tally::new()?;
    let value = vec![b'v'; args.value_bytes];
    while Instant::now() < deadline {
        let k = key(rng.next() % args.keys);
        let read = rng.fraction() < args.read_ratio;
        let start = Instant::now();
        let outcome = if read { conn.get(k).await } else { conn.put(k, value.clone()).await };
        let micros = u64::try_from(start.elapsed().as_micros())?;
        if args.timeline {
            tally.record_slot(started.elapsed(), micros);
        }
        match outcome {
            Ok(()) if read => tally.reads.record(micros)?,
            Ok(()) => tally.writes.record(micros)?,
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    Ok(tally)
}

fn report(name: &str, h: &Histogram<u64>, secs: f64) {
    if h.is_empty() {
        return;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name}: {:.0} ops/s mean {:.3} p50 {:.3} p99 {:.2} max {:.2} ms",
        h.len() as f64 / secs,
        h.mean() / 1000.0,
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.read_ratio) || args.clients == 0 || args.keys == 0 {
        bail!("--read-ratio must be within 0..=1, --clients and --keys above 0");
    }
    if args.preload {
        return preload(&args).await;
    }
    let mut conns = Vec::new();
    for _ in 0..args.clients.div_ceil(CLIENTS_PER_CONNECTION) {
        conns.push(Conn::open(args.target, &args.endpoint).await?);
    }
    let args = std::sync::Arc::new(args);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::new();
    for (i, conn) in (0..args.clients).map(|i| (i, conns[i / CLIENTS_PER_CONNECTION].clone())) {
        let args = args.clone();
        let seed = 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0x0123_4567);
        tasks.push(tokio::spawn(async move { client(conn, seed, &args, started, deadline).await }));
    }
    let mut total = Tally::new()?;
    for task in tasks {
        total.merge(task.await??)?;
    }
    let secs = args.duration_secs as f64;
    report("write", &total.writes, secs);
    report("read", &total.reads, secs);
    println!("errors: {}", total.errors);
    for (i, (n, max)) in total.timeline.iter().enumerate() {
        let at = (i as u32 * SLOT).as_secs_f64();
        eprintln!("t={at:.1}s done={n} slowest={:.1}ms", *max as f64 / 1000.0);
    }
    if let Some(e) = total.first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}
