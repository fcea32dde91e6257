//! Part C: raft log GC and snapshots. Every part-C row of SPEC's scenario matrix on five
//! stores (a failure prints the seed; `RAFTKV_TEST_SEED=N` replays the fault schedule), then
//! the snapshot paths one at a time on three stores: an isolated follower, a follower that
//! was down, a store's late first start, a crash at every snapshot failpoint, and writes
//! while a large, rate-limited snapshot streams.
//!
//! A store whose data matters is checked on its own kvdb: it is made the leader (see
//! `make_leader`) and read there, never through another store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use raftkv_cluster_test::{Cluster, ClusterClient, OpResult, Scenario, run_scenario, test_seed};
use raftstore::StoreConfig;
use raftstore::failpoints::points;

// ---------------------------------------------------------------------------------------
// SPEC's scenario matrix, part C.

#[test]
fn snapshot_recover() {
    run_scenario(&Scenario {
        crash: true,
        gc_limit: Some(100),
        ..Scenario::new("snapshot recover", 1)
    });
}

#[test]
fn snapshot_recover_many_clients() {
    run_scenario(&Scenario {
        crash: true,
        gc_limit: Some(100),
        ..Scenario::new("snapshot recover, many clients", 20)
    });
}

#[test]
fn snapshot_unreliable() {
    run_scenario(&Scenario {
        unreliable: true,
        gc_limit: Some(100),
        ..Scenario::new("snapshot, unreliable", 5)
    });
}

#[test]
fn snapshot_unreliable_recover() {
    run_scenario(&Scenario {
        unreliable: true,
        crash: true,
        gc_limit: Some(100),
        ..Scenario::new("snapshot, unreliable, recover", 5)
    });
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition() {
    run_scenario(&Scenario {
        unreliable: true,
        crash: true,
        partitions: true,
        gc_limit: Some(100),
        ..Scenario::new("snapshot, unreliable, recover, concurrent partition", 5)
    });
}

// ---------------------------------------------------------------------------------------
// Helpers of the targeted tests.

/// Bound of every wait for recovery (generous: seconds, not milliseconds).
const WAIT: Duration = Duration::from_secs(30);
const LIMIT: u64 = 10;

/// Three stores with log GC at `LIMIT` entries checked every 20 ms.
fn gc_cluster(name: &str, tweak: impl Fn(&mut StoreConfig)) -> Cluster {
    raftkv_cluster_test::init_logging();
    let seed = test_seed();
    eprintln!("{name}: seed {seed} (replay with RAFTKV_TEST_SEED={seed})");
    Cluster::new(3, seed, |cfg| {
        cfg.raft_log_gc_count_limit = LIMIT;
        cfg.raft_log_gc_tick_interval = Duration::from_millis(20);
        tweak(cfg);
    })
}

/// What the tests wrote: cf -> key -> value, all acknowledged.
type Data = BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Puts `n` keys `{prefix}{i:05}` with values of at least `value_len` bytes into the
/// default column family, and every third key into the `lock` column family too; all must
/// be acknowledged. Records them in `data`.
fn put_many(client: &mut ClusterClient, data: &mut Data, prefix: &str, n: usize, value_len: usize) {
    for i in 0..n {
        let key = format!("{prefix}{i:05}").into_bytes();
        let mut value = format!("{prefix} value {i} ").into_bytes();
        value.resize(value_len.max(value.len()), b'.');
        client.must_put(&key, &value);
        data.entry("default").or_default().insert(key.clone(), value.clone());
        if i % 3 == 0 {
            let lock_value = format!("lock of {prefix}{i}").into_bytes();
            match client.put_cf("lock", &key, &lock_value) {
                OpResult::Ok(()) => {}
                other => panic!("put of lock-cf key {prefix}{i:05} failed: {other:?}"),
            }
            data.entry("lock").or_default().insert(key, lock_value);
        }
    }
}

fn leader_applied(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_leader(WAIT);
    cluster.status(leader).map_or(0, |s| s.applied)
}

/// Every running store applied what the leader has applied now.
fn wait_all_caught_up(cluster: &Cluster) -> u64 {
    let index = leader_applied(cluster);
    cluster.wait_applied(index, WAIT);
    index
}

/// Waits until every running store other than `behind` compacted its log past `index` (so
/// `behind`, at `index`, can only catch up through a snapshot); returns the lowest truncated
/// index among them.
fn wait_compacted_past(cluster: &Cluster, behind: u64, index: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let others: Vec<_> =
            cluster.statuses().into_iter().filter(|s| s.store_id != behind).collect();
        let lowest = others.iter().map(|s| s.truncated).min().unwrap_or(0);
        if !others.is_empty() && lowest > index {
            return lowest;
        }
        assert!(
            Instant::now() < deadline,
            "the logs were not compacted past index {index} (store {behind}'s) within {WAIT:?}: \
             {others:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Makes `target` the leader of a three-store cluster whose running stores are caught up:
/// with the third store isolated, one more write commits on the leader and `target` only;
/// then the leader crashes and the network heals, and `target` is the only store with a log
/// complete enough to be elected. The crashed store restarts as a follower.
fn make_leader(cluster: &Cluster, target: u64) {
    let ids = cluster.ids();
    assert_eq!(ids.len(), 3, "make_leader works on three stores");
    wait_all_caught_up(cluster);
    let leader = cluster.wait_leader(WAIT);
    if leader == target {
        return;
    }
    let other = ids.into_iter().find(|&id| id != leader && id != target).expect("third store");
    cluster.net.isolate(other);
    let mut client = ClusterClient::new(cluster.net.clone(), vec![leader, target]);
    client.must_put(format!("~make-leader-{target}").as_bytes(), b"1");
    cluster.crash(leader);
    cluster.net.heal();
    let elected = cluster.wait_leader(WAIT);
    assert_eq!(elected, target, "store {other} lacks a committed entry yet was elected");
    cluster.start(leader);
}

/// Checks on store `store`'s own kvdb (it serves the reads, so it must lead) that every cf
/// of `data` holds exactly what `data` says: nothing missing, wrong or unexpected (keys
/// starting with `~` are the tests' own bookkeeping and skipped).
fn check_on(cluster: &Cluster, store: u64, data: &Data, what: &str) {
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.deadline = WAIT;
    for (cf, expected) in data {
        let pairs = match client.scan_cf_on(store, cf, b"", expected.len() + 100) {
            OpResult::Ok(pairs) => pairs,
            other => panic!("{what}: scan of cf {cf} on store {store} failed: {other:?}"),
        };
        let found: BTreeMap<Vec<u8>, Vec<u8>> = pairs
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"~"))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let missing = expected.keys().filter(|k| !found.contains_key(*k)).count();
        let wrong = expected.iter().filter(|(k, v)| found.get(*k).is_some_and(|f| f != *v)).count();
        let extra = found.keys().filter(|k| !expected.contains_key(*k)).count();
        assert!(
            missing == 0 && wrong == 0 && extra == 0,
            "{what}: store {store}, cf {cf}: {missing} keys missing, {wrong} with a wrong value, \
             {extra} never written (expected {}, found {})",
            expected.len(),
            found.len()
        );
    }
}

/// The two stores other than `leader`.
fn follower_of(cluster: &Cluster, leader: u64) -> (u64, u64) {
    let others: Vec<u64> = cluster.ids().into_iter().filter(|&id| id != leader).collect();
    (others[0], others[1])
}

// ---------------------------------------------------------------------------------------
// The "one snapshot" row and the snapshot paths.

/// SPEC's "one snapshot" row: an isolated follower falls so far behind that the log it
/// needs is compacted everywhere; healed, it catches up through a snapshot that carries the
/// `lock` column family too, and still has everything after a crash and restart.
#[test]
fn one_snapshot() {
    let cluster = gc_cluster("one snapshot", |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(WAIT);
    let (isolated, _) = follower_of(&cluster, leader);
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    let mut data = Data::new();
    put_many(&mut client, &mut data, "a-", 10, 16);
    wait_all_caught_up(&cluster);
    let behind_at = cluster.status(isolated).map_or(0, |s| s.applied);

    cluster.net.isolate(isolated);
    put_many(&mut client, &mut data, "b-", 150, 100);
    let truncated = wait_compacted_past(&cluster, isolated, behind_at + 5 * LIMIT);
    cluster.net.heal();
    let caught_up_to = wait_all_caught_up(&cluster);

    let status = cluster.status(isolated).expect("isolated store runs");
    assert!(
        cluster.net.snapshots_delivered_to(isolated) >= 1,
        "store {isolated} caught up to {caught_up_to} without a snapshot: {status:?}"
    );
    assert!(
        status.truncated >= truncated,
        "store {isolated} applied past the compaction point {truncated} without installing a \
         snapshot: {status:?}"
    );
    make_leader(&cluster, isolated);
    check_on(&cluster, isolated, &data, "after the snapshot");

    cluster.crash(isolated);
    cluster.start(isolated);
    wait_all_caught_up(&cluster);
    make_leader(&cluster, isolated);
    check_on(&cluster, isolated, &data, "after a restart");
    assert!(cluster.net.rejections().is_empty(), "{:?}", cluster.net.rejections());
    cluster.shutdown();
}

/// A follower that was down while the log was compacted far past its last index restarts
/// while a client keeps writing: writes go on, the follower catches up (through a snapshot,
/// then the log) to the leader's index, and every acknowledged write is there.
#[test]
fn follower_down_during_compaction_catches_up_while_clients_write() {
    let cluster = gc_cluster("down follower catches up under writes", |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(WAIT);
    let (down, _) = follower_of(&cluster, leader);
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    let mut data = Data::new();
    put_many(&mut client, &mut data, "a-", 20, 16);
    wait_all_caught_up(&cluster);
    let behind_at = cluster.status(down).map_or(0, |s| s.applied);
    cluster.crash(down);
    put_many(&mut client, &mut data, "b-", 200, 100);
    wait_compacted_past(&cluster, down, behind_at + 10 * LIMIT);

    // The writer runs before, during and after the catch-up.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_since_restart = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let writer = {
        let (net, ids) = (cluster.net.clone(), cluster.ids());
        let (stop, acked_since_restart, restarted) =
            (stop.clone(), acked_since_restart.clone(), restarted.clone());
        std::thread::spawn(move || {
            let mut client = ClusterClient::new(net, ids);
            client.deadline = Duration::from_secs(5);
            let (mut acked, mut unknown) = (BTreeMap::new(), BTreeMap::new());
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("w-{n:06}").into_bytes();
                let value = format!("written {n}").into_bytes();
                match client.put(&key, &value) {
                    OpResult::Ok(()) => {
                        acked.insert(key, value);
                        if restarted.load(Ordering::SeqCst) {
                            acked_since_restart.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    OpResult::Unknown(_) => {
                        unknown.insert(key, value);
                    }
                    OpResult::Failed(why) => panic!("a write failed during the catch-up: {why}"),
                }
            }
            (acked, unknown)
        })
    };

    restarted.store(true, Ordering::SeqCst);
    cluster.start(down);
    // Caught up with a moving target: at least 50 more writes acknowledged since the
    // restart, and the restarted store applied what the leader had applied by then.
    let deadline = Instant::now() + WAIT;
    loop {
        let target = leader_applied(&cluster);
        let applied = cluster.status(down).map_or(0, |s| s.applied);
        if acked_since_restart.load(Ordering::SeqCst) >= 50 && applied >= target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store {down} did not catch up while writes went on: applied {applied}, leader \
             {target}, {} writes acknowledged since its restart",
            acked_since_restart.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let (acked, unknown) = writer.join().expect("writer thread panicked");
    wait_all_caught_up(&cluster);
    assert!(
        cluster.net.snapshots_delivered_to(down) >= 1,
        "store {down} caught up without a snapshot although its log was compacted away"
    );

    // Every acknowledged write is there; an unknown one may be; nothing else is.
    let pairs = match client.scan(b"w-", acked.len() + unknown.len() + 10) {
        OpResult::Ok(p) => p,
        other => panic!("scan failed: {other:?}"),
    };
    let found: BTreeMap<Vec<u8>, Vec<u8>> = pairs
        .into_iter()
        .filter(|(k, _)| k.starts_with(b"w-"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    for (k, v) in &acked {
        assert_eq!(found.get(k), Some(v), "acknowledged write {} lost", String::from_utf8_lossy(k));
    }
    for (k, v) in &found {
        assert!(
            acked.get(k) == Some(v) || unknown.get(k) == Some(v),
            "{} was never written",
            String::from_utf8_lossy(k)
        );
    }
    // The restarted store's own copy holds the same (writes of unknown outcome included).
    data.entry("default").or_default().extend(found);
    make_leader(&cluster, down);
    check_on(&cluster, down, &data, "after catching up under writes");
    cluster.shutdown();
}

/// A store of the initial members that starts for the first time after the log was
/// compacted past the bootstrap index catches up through a snapshot.
#[test]
fn late_first_start_catches_up_through_a_snapshot() {
    let cluster = gc_cluster("late first start", |_| {});
    cluster.start(1);
    cluster.start(2);
    cluster.wait_leader(WAIT);
    let mut client = ClusterClient::new(cluster.net.clone(), vec![1, 2]);
    let mut data = Data::new();
    put_many(&mut client, &mut data, "a-", 100, 64);
    let truncated = wait_compacted_past(&cluster, 3, raftstore::RAFT_INIT_LOG_INDEX + 5 * LIMIT);

    cluster.start(3);
    wait_all_caught_up(&cluster);
    let status = cluster.status(3).expect("store 3 runs");
    assert!(cluster.net.snapshots_delivered_to(3) >= 1, "no snapshot reached store 3: {status:?}");
    assert!(status.truncated >= truncated, "store 3 did not install a snapshot: {status:?}");
    assert!(cluster.net.rejections().is_empty(), "{:?}", cluster.net.rejections());
    make_leader(&cluster, 3);
    check_on(&cluster, 3, &data, "after the late first start");
    cluster.shutdown();
}

/// A store stops (as `kill -9`) at failpoint `point` on the snapshot path; restarted with
/// the point disarmed, it starts without error, the cluster converges, and the follower
/// that needed the snapshot has all the data.
fn crash_at_failpoint(point: &'static str) {
    let cluster = gc_cluster(point, |_| {});
    cluster.start_all();
    let leader = cluster.wait_leader(WAIT);
    let (follower, _) = follower_of(&cluster, leader);
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.deadline = WAIT;
    let mut data = Data::new();
    put_many(&mut client, &mut data, "a-", 10, 16);
    wait_all_caught_up(&cluster);
    let behind_at = cluster.status(follower).map_or(0, |s| s.applied);

    cluster.net.isolate(follower);
    // Past the region worker's 4 MiB ingest batch, so the mid-ingest point is mid-way.
    let value_len = if point == points::SNAPSHOT_MID_INGEST { 64 * 1024 } else { 100 };
    put_many(&mut client, &mut data, "b-", 90, value_len);
    wait_compacted_past(&cluster, follower, behind_at + 5 * LIMIT);

    // The leader generates the snapshot; the follower installs it.
    let victim = if point == points::SNAPSHOT_MID_GENERATE { leader } else { follower };
    let failpoints = cluster.failpoints(victim);
    failpoints.arm(point);
    cluster.net.heal();
    cluster.wait_stopped(victim, WAIT);
    assert!(!failpoints.is_armed(point), "store {victim} stopped without reaching {point}");

    cluster.start(victim);
    put_many(&mut client, &mut data, "c-", 10, 16);
    wait_all_caught_up(&cluster);
    assert!(
        cluster.net.snapshots_delivered_to(follower) >= 1,
        "store {follower} caught up without a snapshot"
    );
    make_leader(&cluster, follower);
    check_on(&cluster, follower, &data, &format!("after a crash at {point}"));
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.must_put(b"~after", b"1");
    cluster.shutdown();
}

#[test]
fn crash_before_the_snapshot_raft_write() {
    crash_at_failpoint(points::SNAPSHOT_BEFORE_RAFT_WRITE);
}

#[test]
fn crash_after_clearing_the_region() {
    crash_at_failpoint(points::SNAPSHOT_AFTER_CLEAR);
}

#[test]
fn crash_mid_ingest() {
    crash_at_failpoint(points::SNAPSHOT_MID_INGEST);
}

#[test]
fn crash_before_the_region_is_normal_again() {
    crash_at_failpoint(points::SNAPSHOT_BEFORE_NORMAL);
}

#[test]
fn crash_mid_generate_on_the_leader() {
    crash_at_failpoint(points::SNAPSHOT_MID_GENERATE);
}

/// A follower needs a snapshot of several MiB streamed at a low byte rate, which takes
/// seconds; all the while a client's writes keep being acknowledged.
#[test]
fn writes_flow_while_a_large_snapshot_streams() {
    const RATE: u64 = 3 * 1024 * 1024;
    let cluster = gc_cluster("writes during a large snapshot", |cfg| {
        cfg.snap.max_bytes_per_sec = RATE;
        cfg.snap.chunk_bytes = 128 * 1024;
    });
    cluster.start_all();
    let leader = cluster.wait_leader(WAIT);
    let (follower, _) = follower_of(&cluster, leader);
    let mut client = ClusterClient::new(cluster.net.clone(), cluster.ids());
    client.deadline = WAIT;
    let mut data = Data::new();
    put_many(&mut client, &mut data, "a-", 10, 16);
    wait_all_caught_up(&cluster);
    let behind_at = cluster.status(follower).map_or(0, |s| s.applied);
    cluster.net.isolate(follower);
    // 96 values of 64 KiB: a snapshot of about 6 MiB.
    put_many(&mut client, &mut data, "big-", 96, 64 * 1024);
    wait_compacted_past(&cluster, follower, behind_at + 5 * LIMIT);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (net, ids, stop) = (cluster.net.clone(), cluster.ids(), stop.clone());
        std::thread::spawn(move || {
            let mut client = ClusterClient::new(net, ids);
            let mut acks = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("w-{n:06}");
                if client.put(key.as_bytes(), b"small") == OpResult::Ok(()) {
                    acks.push((Instant::now(), key));
                }
            }
            acks
        })
    };
    cluster.net.heal();
    let deadline = Instant::now() + Duration::from_secs(60);
    let transfer = loop {
        let delivered =
            cluster.net.snapshot_transfers().into_iter().find(|t| t.to == follower && t.delivered);
        if let Some(t) = delivered {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot reached store {follower}: {:?}",
            cluster.net.snapshot_transfers()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, Ordering::SeqCst);
    let acks = writer.join().expect("writer thread panicked");
    // With writes faster than the log limit, a follower may need several snapshots in a row;
    // once they stop it catches up for good.
    wait_all_caught_up(&cluster);

    let finished = transfer.finished.expect("a delivered transfer has ended");
    let window = finished - transfer.started;
    let during = acks.iter().filter(|(t, _)| *t >= transfer.started && *t <= finished).count();
    eprintln!(
        "snapshot of {} bytes at index {} streamed in {window:?}; {during} writes acknowledged \
         meanwhile ({} in all)",
        transfer.size_bytes,
        transfer.index,
        acks.len()
    );
    assert!(transfer.size_bytes > 4 * 1024 * 1024, "the snapshot is small: {transfer:?}");
    assert!(during >= 10, "only {during} writes acknowledged in the {window:?} of the transfer");
    for (_, key) in acks.iter().step_by(7) {
        assert_eq!(client.must_get(key.as_bytes()).as_deref(), Some(&b"small"[..]), "{key} lost");
    }
    make_leader(&cluster, follower);
    let mut big = Data::new();
    big.insert("lock", data.remove("lock").unwrap_or_default());
    check_on(&cluster, follower, &big, "after the large snapshot");
    cluster.shutdown();
}
