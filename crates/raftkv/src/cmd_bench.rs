//! `raftkv bench`: closed-loop load from N concurrent clients over uniformly random keys,
//! with a progress bar, then throughput and latency percentiles for reads and writes.
//!
//! Every client is its own task and waits for each answer before sending again. Clients
//! share one `Client` (one connection per endpoint) per `CLIENTS_PER_CONNECTION`. Keys and
//! the value are built once, so an operation allocates nothing of the benchmark's own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use client::Client;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use crate::client_args::{CfArg, ClientArgs};
use crate::exit::{Exit, UsageError};

/// Clients sharing one connection per endpoint.
const CLIENTS_PER_CONNECTION: usize = 8;
/// The largest latency the histograms record exactly, in microseconds (one minute).
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Debug, Clone, Args)]
pub struct BenchCmd {
    /// Concurrent closed-loop clients
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub clients: u64,
    /// How long to run, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Number of distinct keys (key-000000000000, key-000000000001, ...)
    #[arg(long, value_name = "K", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub keys: u64,
    /// Bytes per written value
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub value_size: usize,
    /// Fraction of operations that are reads, from 0.0 (all writes) to 1.0 (all reads)
    #[arg(long, value_name = "R", default_value = "0.0")]
    pub read_ratio: f64,
    /// Load phase instead of a timed run: write every key once, in order, then stop
    /// (fills a store to a known size; --duration and --read-ratio are ignored)
    #[arg(long)]
    pub load: bool,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub cf: CfArg,
}

/// What a client task measured.
struct Stats {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: ErrorCounts,
}

/// Failed operations by what the client promised about them.
#[derive(Debug, Default, Clone, Copy)]
struct ErrorCounts {
    invalid: u64,
    unavailable: u64,
    unknown: u64,
}

impl ErrorCounts {
    fn count(&mut self, e: &client::Error) {
        match e {
            client::Error::InvalidRequest(_) | client::Error::InvalidConfig(_) => self.invalid += 1,
            client::Error::Unavailable { .. } => self.unavailable += 1,
            client::Error::Unknown(_) => self.unknown += 1,
        }
    }

    fn total(&self) -> u64 {
        self.invalid + self.unavailable + self.unknown
    }

    fn add(&mut self, other: &ErrorCounts) {
        self.invalid += other.invalid;
        self.unavailable += other.unavailable;
        self.unknown += other.unknown;
    }
}

/// Counters the progress bar reads while the clients run.
#[derive(Default)]
struct Live {
    ops: AtomicU64,
    errors: AtomicU64,
}

/// What every client task shares, read-only.
struct Workload {
    keys: Vec<Bytes>,
    value: Bytes,
    read_ratio: f64,
    cf: String,
    end: Instant,
    /// Load phase: the next key to write, in order; `None` for a timed run.
    load_next: Option<AtomicU64>,
}

impl Workload {
    /// The next operation's key and whether it reads; `None` once the run is over.
    fn next_op(&self, rng: &mut SplitMix64) -> Option<(Bytes, bool)> {
        let key_count = self.keys.len() as u64;
        match &self.load_next {
            Some(next) => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                // Below `key_count`, a `usize`: the cast cannot truncate.
                (i < key_count).then(|| (self.keys[i as usize].clone(), false))
            }
            None if Instant::now() < self.end => {
                let key = self.keys[rng.below(key_count) as usize].clone();
                Some((key, rng.unit() < self.read_ratio))
            }
            None => None,
        }
    }
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<Exit> {
    if !(0.0..=1.0).contains(&cmd.read_ratio) {
        return Err(
            UsageError(format!("--read-ratio {} is not within 0.0..=1.0", cmd.read_ratio)).into()
        );
    }
    let clients = usize::try_from(cmd.clients).context("too many clients")?;
    let key_count = usize::try_from(cmd.keys).context("too many keys")?;
    let duration = Duration::from_secs(cmd.duration);
    if cmd.load {
        println!(
            "bench: load phase, {clients} clients, {key_count} keys, {}-byte values, endpoints {}",
            cmd.value_size,
            cmd.client.endpoints.join(",")
        );
    } else {
        println!(
            "bench: {clients} clients, {} s, {key_count} keys, {}-byte values, read ratio {:.2}, endpoints {}",
            cmd.duration,
            cmd.value_size,
            cmd.read_ratio,
            cmd.client.endpoints.join(",")
        );
    }

    let connections = clients.div_ceil(CLIENTS_PER_CONNECTION);
    let shared: Vec<Client> =
        (0..connections).map(|_| cmd.client.client()).collect::<Result<_, _>>()?;
    let started = Instant::now();
    let workload = Arc::new(Workload {
        keys: (0..key_count).map(|i| Bytes::from(format!("key-{i:012}"))).collect(),
        value: Bytes::from(pattern(cmd.value_size)),
        read_ratio: cmd.read_ratio,
        cf: cmd.cf.name().to_string(),
        end: started + duration,
        load_next: cmd.load.then(|| AtomicU64::new(0)),
    });
    let live = Arc::new(Live::default());
    let mut tasks = JoinSet::new();
    for i in 0..clients {
        let client = shared[i / CLIENTS_PER_CONNECTION].clone();
        let seed = seed_for(i);
        tasks.spawn(closed_loop(client, workload.clone(), live.clone(), seed));
    }

    let progress = if cmd.load { Progress::Keys(cmd.keys) } else { Progress::Time(duration) };
    let bar = progress_bar(&progress);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut all = Stats::new()?;
    let mut remaining = clients;
    while remaining > 0 {
        tokio::select! {
            _ = ticker.tick() => update(&bar, &live, started, &progress),
            joined = tasks.join_next() => match joined {
                Some(result) => {
                    remaining -= 1;
                    let stats = result.context("a client task failed")??;
                    all.add(&stats)?;
                }
                None => break,
            },
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    print_report(&all, elapsed);
    let succeeded = all.reads.len() + all.writes.len();
    Ok(if succeeded == 0 && all.errors.total() > 0 { Exit::NotApplied } else { Exit::Success })
}

/// One client: operations back to back until the end.
async fn closed_loop(
    client: Client,
    work: Arc<Workload>,
    live: Arc<Live>,
    seed: u64,
) -> anyhow::Result<Stats> {
    let mut rng = SplitMix64(seed);
    let mut stats = Stats::new()?;
    while let Some((key, read)) = work.next_op(&mut rng) {
        let sent = Instant::now();
        let result = if read {
            client.get(key, &work.cf).await.map(drop)
        } else {
            client.put(key, work.value.clone(), &work.cf).await
        };
        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
        match result {
            Ok(()) => {
                let histogram = if read { &mut stats.reads } else { &mut stats.writes };
                histogram.saturating_record(micros);
                live.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!("bench operation failed: {e}");
                stats.errors.count(&e);
                live.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(stats)
}

impl Stats {
    fn new() -> anyhow::Result<Stats> {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("cannot create a histogram")
        };
        Ok(Stats { reads: histogram()?, writes: histogram()?, errors: ErrorCounts::default() })
    }

    fn add(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.reads.add(&other.reads).context("cannot merge read latencies")?;
        self.writes.add(&other.writes).context("cannot merge write latencies")?;
        self.errors.add(&other.errors);
        Ok(())
    }
}

/// What the progress bar counts: time for a timed run, keys written for a load phase.
enum Progress {
    Time(Duration),
    Keys(u64),
}

fn progress_bar(progress: &Progress) -> ProgressBar {
    let total = match progress {
        Progress::Time(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        Progress::Keys(k) => *k,
    };
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{wide_bar}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn update(bar: &ProgressBar, live: &Live, started: Instant, progress: &Progress) {
    let elapsed = started.elapsed();
    let ops = live.ops.load(Ordering::Relaxed);
    bar.set_position(match progress {
        Progress::Time(d) => u64::try_from(elapsed.min(*d).as_millis()).unwrap_or(u64::MAX),
        Progress::Keys(_) => ops + live.errors.load(Ordering::Relaxed),
    });
    let errors = live.errors.load(Ordering::Relaxed);
    bar.set_message(format!("{:.0} ops/s, {errors} errors", per_second(ops, elapsed)));
}

fn print_report(stats: &Stats, elapsed: Duration) {
    let ops = stats.reads.len() + stats.writes.len();
    println!(
        "done: {ops} ops in {:.2} s = {:.1} ops/s",
        elapsed.as_secs_f64(),
        per_second(ops, elapsed)
    );
    println!("{}", latency_line("writes", &stats.writes, elapsed));
    println!("{}", latency_line("reads", &stats.reads, elapsed));
    println!("{}", errors_line(&stats.errors));
}

/// `writes: 1234 ops, 123.4 ops/s, latency ms p50 1.23 p95 2.34 p99 3.45 max 9.87`.
fn latency_line(label: &str, h: &Histogram<u64>, elapsed: Duration) -> String {
    if h.is_empty() {
        return format!("{label}: 0 ops");
    }
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{label}: {} ops, {:.1} ops/s, latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}",
        h.len(),
        per_second(h.len(), elapsed),
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    )
}

fn errors_line(e: &ErrorCounts) -> String {
    if e.total() == 0 {
        return "errors: none".into();
    }
    format!(
        "errors: {} (unavailable, not applied: {}; outcome unknown: {}; invalid request: {})",
        e.total(),
        e.unavailable,
        e.unknown,
        e.invalid
    )
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// A value of `size` printable bytes.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| b'a' + (i % 26) as u8).collect()
}

fn seed_for(client: usize) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ (client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A tiny, fast, seedable generator (SplitMix64); statistical quality is plenty for picking
/// keys.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_16_bytes() {
        assert_eq!(format!("key-{:012}", 42), "key-000000000042");
        assert_eq!(format!("key-{:012}", 42).len(), 16);
    }

    #[test]
    fn the_generator_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64(7);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let k = rng.below(10);
            assert!(k < 10);
            seen[k as usize] = true;
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn report_lines_print_milliseconds_with_two_decimals() {
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("histogram");
        for us in [1000, 2000, 3000, 40_000] {
            h.record(us).expect("in range");
        }
        let line = latency_line("writes", &h, Duration::from_secs(2));
        assert!(line.starts_with("writes: 4 ops, 2.0 ops/s, latency ms p50 2.00"), "{line}");
        // Three significant digits: 40 ms is recorded in a bucket ending at 40.03 ms.
        assert!(line.ends_with("p95 40.03 p99 40.03 max 40.03"), "{line}");
        assert_eq!(errors_line(&ErrorCounts::default()), "errors: none");
        let e = ErrorCounts { invalid: 0, unavailable: 2, unknown: 1 };
        assert_eq!(
            errors_line(&e),
            "errors: 3 (unavailable, not applied: 2; outcome unknown: 1; invalid request: 0)"
        );
    }
}
