//! SPEC's scenario matrix: concurrent clients put and read their own keys (and a few
//! shared ones) for three rounds while faults are injected; after each round every
//! acknowledged put must be present exactly once and in order, and at the end the whole
//! recorded history must be linearizable. With a log GC limit (part C), the log must also
//! stay within twice the limit once the cluster is quiet after each round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use linearizability::{Call, Recorder};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::client::{ClusterClient, OpResult};
use crate::cluster::Cluster;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub stores: u64,
    pub clients: usize,
    pub unreliable: bool,
    pub crash: bool,
    pub partitions: bool,
    pub rounds: usize,
    pub round_duration: Duration,
    pub seed: u64,
    /// Log GC on (part C): `raft_log_gc_count_limit`, checked after each round.
    pub gc_limit: Option<u64>,
}

impl Scenario {
    pub fn new(name: &'static str, clients: usize) -> Self {
        Scenario {
            name,
            stores: 5,
            clients,
            unreliable: false,
            crash: false,
            partitions: false,
            rounds: 3,
            round_duration: Duration::from_secs(2),
            seed: test_seed(),
            gc_limit: None,
        }
    }
}

/// `RAFTKV_TEST_SEED` if set, else a fresh seed from the clock (print it to replay).
pub fn test_seed() -> u64 {
    std::env::var("RAFTKV_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    })
}

const SHARED_KEYS: u64 = 4;

/// The leader's GC check interval when a scenario turns log GC on.
const GC_TICK: Duration = Duration::from_millis(30);

/// What one client has done to its own keys, carried across rounds.
#[derive(Default, Clone)]
struct ClientLog {
    next: u64,
    /// key -> (value, acknowledged?) for every put attempted (acked or unknown outcome).
    puts: BTreeMap<String, (String, bool)>,
}

fn own_key(client: usize, n: u64) -> String {
    format!("c{client:02}-{n:08}")
}

pub fn run_scenario(s: &Scenario) {
    crate::init_logging();
    eprintln!("scenario {:?}: seed {} (replay with RAFTKV_TEST_SEED={})", s.name, s.seed, s.seed);
    let cluster = Arc::new(Cluster::new(s.stores, s.seed, |cfg| {
        if let Some(limit) = s.gc_limit {
            cfg.raft_log_gc_count_limit = limit;
            cfg.raft_log_gc_tick_interval = GC_TICK;
        }
    }));
    cluster.start_all();
    cluster.wait_leader(Duration::from_secs(10));
    if s.unreliable {
        cluster.net.set_unreliable(0.1, Duration::from_millis(5));
    }
    let recorder = Recorder::new();
    let mut logs: Vec<ClientLog> = vec![ClientLog::default(); s.clients];
    for round in 0..s.rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for (c, log) in logs.drain(..).enumerate() {
            let (cluster, stop, recorder) = (cluster.clone(), stop.clone(), recorder.clone());
            let seed = s.seed ^ ((round as u64) << 32) ^ c as u64;
            workers.push(std::thread::spawn(move || {
                client_loop(c, log, &cluster, &stop, &recorder, seed)
            }));
        }
        let faults = {
            let (cluster, stop, s) = (cluster.clone(), stop.clone(), s.clone());
            std::thread::spawn(move || inject_faults(&cluster, &stop, &s, round))
        };
        // The round's length is the workload's duration, not a synchronization.
        std::thread::sleep(s.round_duration);
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            logs.push(w.join().expect("client thread panicked"));
        }
        faults.join().expect("fault thread panicked");
        cluster.net.heal();
        if s.crash {
            for id in cluster.ids() {
                cluster.crash(id);
            }
            cluster.start_all();
        }
        for id in cluster.ids() {
            cluster.start(id);
        }
        cluster.wait_leader(Duration::from_secs(15));
        check_round(&cluster, &logs, round, s);
        if let Some(limit) = s.gc_limit {
            // Awaited, not slept: quiet = every store applied the same index.
            cluster.wait_log_bounded(limit, Duration::from_secs(3), Duration::from_secs(30));
        }
    }
    let history = recorder.history();
    let result = linearizability::check(&history, Duration::from_secs(60));
    assert!(
        result.is_ok(),
        "scenario {:?} (seed {}): history of {} operations is not linearizable: {result}",
        s.name,
        s.seed,
        history.len()
    );
    let acked: usize = logs.iter().map(|l| l.puts.values().filter(|(_, a)| *a).count()).sum();
    let snapshots = cluster.net.snapshot_transfers().iter().filter(|t| t.delivered).count();
    eprintln!(
        "scenario {:?}: {} acknowledged puts, {} recorded operations, linearizable; {} \
         snapshots delivered",
        s.name,
        acked,
        history.len(),
        snapshots
    );
    assert!(acked > 0, "scenario {:?} made no progress at all", s.name);
    cluster.shutdown();
}

fn client_loop(
    c: usize,
    mut log: ClientLog,
    cluster: &Cluster,
    stop: &AtomicBool,
    recorder: &Recorder,
    seed: u64,
) -> ClientLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.deadline = Duration::from_secs(3);
    while !stop.load(Ordering::SeqCst) {
        let dice = rng.random_range(0..10u32);
        if dice < 6 {
            log.next += 1;
            let key = own_key(c, log.next);
            let value = format!("x {c} {} y", log.next);
            let pending =
                recorder.invoke(c as u64, key.as_bytes(), Call::Put(value.clone().into_bytes()));
            match client.put(key.as_bytes(), value.as_bytes()) {
                OpResult::Ok(()) => {
                    pending.complete_ok(None);
                    log.puts.insert(key, (value, true));
                }
                OpResult::Unknown(_) => {
                    pending.complete_unknown();
                    log.puts.insert(key, (value, false));
                }
                OpResult::Failed(_) => pending.fail(),
            }
        } else if dice < 8 {
            let key = format!("shared-{}", rng.random_range(0..SHARED_KEYS));
            let value = format!("c{c} {}", rng.random_range(0..u64::MAX));
            let pending =
                recorder.invoke(c as u64, key.as_bytes(), Call::Put(value.clone().into_bytes()));
            match client.put(key.as_bytes(), value.as_bytes()) {
                OpResult::Ok(()) => pending.complete_ok(None),
                OpResult::Unknown(_) => pending.complete_unknown(),
                OpResult::Failed(_) => pending.fail(),
            }
        } else {
            let key = if dice == 8 && log.next > 0 {
                own_key(c, rng.random_range(1..=log.next))
            } else {
                format!("shared-{}", rng.random_range(0..SHARED_KEYS))
            };
            let pending = recorder.invoke(c as u64, key.as_bytes(), Call::Get);
            match client.get(key.as_bytes()) {
                OpResult::Ok(v) => pending.complete_ok(v.map(|b| b.to_vec())),
                OpResult::Unknown(_) => pending.complete_unknown(),
                OpResult::Failed(_) => pending.fail(),
            }
        }
    }
    log
}

fn inject_faults(cluster: &Cluster, stop: &AtomicBool, s: &Scenario, round: usize) {
    let mut rng = StdRng::seed_from_u64(s.seed ^ 0xFA17 ^ round as u64);
    let ids = cluster.ids();
    while !stop.load(Ordering::SeqCst) {
        if s.partitions {
            let mut groups = vec![Vec::new(), Vec::new()];
            for &id in &ids {
                groups[rng.random_range(0..2usize)].push(id);
            }
            cluster.net.partition(&groups);
        }
        let crashed =
            (s.crash && rng.random_bool(0.5)).then(|| ids[rng.random_range(0..ids.len())]);
        if let Some(id) = crashed {
            cluster.crash(id);
        }
        pause(stop, Duration::from_millis(rng.random_range(100..400)));
        if let Some(id) = crashed {
            cluster.start(id);
        }
        if s.partitions {
            cluster.net.heal();
            pause(stop, Duration::from_millis(rng.random_range(50..200)));
        }
        if !s.partitions && !s.crash {
            pause(stop, Duration::from_millis(100));
        }
    }
}

/// Sleeps up to `d`, returning early once the round stops.
fn pause(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every acknowledged put is present exactly once, with its value, in key (= put) order;
/// nothing is present that was never attempted.
fn check_round(cluster: &Cluster, logs: &[ClientLog], round: usize, s: &Scenario) {
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    for (c, log) in logs.iter().enumerate() {
        let prefix = format!("c{c:02}-");
        let pairs = match client.scan(prefix.as_bytes(), log.puts.len() + 10) {
            OpResult::Ok(p) => p,
            other => {
                panic!("scenario {:?} round {round}: scan of client {c} failed: {other:?}", s.name)
            }
        };
        let mut seen = BTreeMap::new();
        for (k, v) in pairs.iter().filter(|(k, _)| k.starts_with(prefix.as_bytes())) {
            let k = String::from_utf8_lossy(k).into_owned();
            let v = String::from_utf8_lossy(v).into_owned();
            assert!(seen.insert(k.clone(), v).is_none(), "key {k} returned twice by one scan");
        }
        for (k, (v, acked)) in &log.puts {
            match seen.get(k) {
                Some(found) => assert_eq!(
                    found, v,
                    "scenario {:?} round {round}: key {k} has a wrong value",
                    s.name
                ),
                None => assert!(
                    !acked,
                    "scenario {:?} (seed {}) round {round}: acknowledged put of {k} is missing",
                    s.name, s.seed
                ),
            }
        }
        for k in seen.keys() {
            assert!(log.puts.contains_key(k), "scenario {:?}: key {k} was never written", s.name);
        }
    }
}
