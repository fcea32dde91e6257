//! Seeded random histories from a simulated linearizable store: the checker must accept
//! every one of them, and reject each after one read's output is made impossible.
//!
//! A failure prints its seed; rerun one with `SEED=<n> cargo test -p
//! raftkv-linearizability --test random_histories`.

use std::collections::HashMap;
use std::time::Duration;

use linearizability::{CheckResult, Event, History, Op, check};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BUDGET: Duration = Duration::from_secs(60);

/// The shape of a simulated workload.
#[derive(Clone, Copy, Debug)]
struct Workload {
    clients: usize,
    ops: usize,
    keys: usize,
    /// Chance that a request ends with "outcome unknown".
    unknown: f64,
    /// Chance that a request certainly fails (and is left out of the history).
    failed: f64,
}

/// A request a simulated client has in flight.
#[derive(Clone, Debug)]
struct InFlight {
    key: Vec<u8>,
    op: Op,
    invoked_at: u64,
    /// Whether it took effect already (for a Get, `op` then holds what it read).
    applied: bool,
}

/// Runs `workload` against one in-memory map and returns the recorded history.
///
/// Every request takes effect at one instant of the simulation between its invocation and
/// its response — or, for a write with an unknown outcome, at any later instant or never —
/// so the history is linearizable by construction. Ticks advance by 0..=2 per action, so
/// windows often touch, and all clients run concurrently.
fn simulate(seed: u64, workload: Workload) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut clients: Vec<Option<InFlight>> = vec![None; workload.clients];
    // Unknown-outcome writes not applied yet: they may land later, or never.
    let mut limbo: Vec<(Vec<u8>, Op)> = Vec::new();
    let mut history = History::new();
    let (mut now, mut issued, mut next_value) = (0u64, 0usize, 0u64);
    let apply = |store: &mut HashMap<Vec<u8>, Vec<u8>>, key: &[u8], op: &Op| -> Op {
        match op {
            Op::Put(value) => {
                store.insert(key.to_vec(), value.clone());
                op.clone()
            }
            Op::Delete => {
                store.remove(key);
                Op::Delete
            }
            Op::Get(_) => Op::Get(store.get(key).cloned()),
        }
    };
    while issued < workload.ops || clients.iter().any(Option::is_some) {
        now += rng.random_range(0..3u64);
        if !limbo.is_empty() && rng.random_bool(0.05) {
            let (key, op) = limbo.swap_remove(rng.random_range(0..limbo.len()));
            if rng.random_bool(0.5) {
                apply(&mut store, &key, &op);
            }
        }
        let client = rng.random_range(0..workload.clients);
        match clients[client].take() {
            None if issued < workload.ops => {
                issued += 1;
                let key = format!("key{}", rng.random_range(0..workload.keys)).into_bytes();
                let op = match rng.random_range(0..10) {
                    0 => Op::Delete,
                    1..=4 => {
                        next_value += 1;
                        Op::Put(format!("v{next_value}").into_bytes())
                    }
                    _ => Op::Get(None),
                };
                clients[client] = Some(InFlight { key, op, invoked_at: now, applied: false });
            }
            None => {}
            Some(request) if rng.random_bool(workload.failed) && !request.applied => {}
            Some(request) if rng.random_bool(workload.unknown) => {
                // The client gives up. Garbage in an unknown read's output must not matter.
                let op = match request.op {
                    Op::Get(_) => Op::Get(Some(b"garbage".to_vec())),
                    write => {
                        if !request.applied {
                            limbo.push((request.key.clone(), write.clone()));
                        }
                        write
                    }
                };
                history.push(Event::unknown(client as u64, request.key, op, request.invoked_at));
            }
            Some(mut request) if !request.applied => {
                request.op = apply(&mut store, &request.key, &request.op);
                request.applied = true;
                clients[client] = Some(request);
            }
            Some(request) => {
                history.push(Event::ok(
                    client as u64,
                    request.key,
                    request.op,
                    request.invoked_at,
                    now,
                ));
            }
        }
    }
    history
}

/// The seeds to run: `SEED` alone if set, else `0..count`.
fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(seed) => vec![seed.parse().expect("SEED is a number")],
        Err(_) => (0..count).collect(),
    }
}

fn small_workload(rng: &mut StdRng) -> Workload {
    Workload {
        clients: rng.random_range(1..9),
        ops: rng.random_range(1..300),
        keys: rng.random_range(1..5),
        unknown: if rng.random_bool(0.5) { 0.05 } else { 0.0 },
        failed: 0.05,
    }
}

#[test]
fn every_simulated_history_is_accepted() {
    for seed in seeds(300) {
        let workload = small_workload(&mut StdRng::seed_from_u64(seed ^ 0xfeed));
        let history = simulate(seed, workload);
        let result = check(&history, BUDGET);
        assert_eq!(result, CheckResult::Ok, "seed {seed} ({workload:?}): {result}");
    }
}

/// Which impossible value a mutated read returns.
#[derive(Clone, Copy, Debug)]
enum Mutation {
    /// A value no operation on the key ever wrote.
    NeverWritten,
    /// A value whose only write was overwritten by an acknowledged write that completed
    /// before the read began.
    Overwritten,
    /// A value whose only write was invoked after the read returned.
    FromTheFuture,
}

/// Makes one acknowledged read return a value that was never current in its window *in
/// any linearization* — not only in the simulation's — so every mutated history is
/// provably not linearizable. Returns the mutated read's index, or `None` if the history
/// has no acknowledged read. Relies on the simulation writing each value at most once.
fn mutate(history: &History, rng: &mut StdRng) -> Option<(History, usize, Mutation)> {
    let mut events = history.events().to_vec();
    let reads: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i].op, Op::Get(_)) && events[i].returned_at.is_some())
        .collect();
    if reads.is_empty() {
        return None;
    }
    let read = reads[rng.random_range(0..reads.len())];
    let (key, read_invoked, read_returned) =
        (events[read].key.clone(), events[read].invoked_at, events[read].returned_at?);
    let same_key = |event: &&Event| event.key == key;
    let overwritten: Vec<Vec<u8>> = events
        .iter()
        .filter(same_key)
        .filter_map(|put| match (&put.op, put.returned_at) {
            (Op::Put(value), Some(put_returned)) => events
                .iter()
                .filter(same_key)
                .any(|write| {
                    write.op.is_write()
                        && write.op != put.op
                        && write.invoked_at > put_returned
                        && write.returned_at.is_some_and(|returned| returned < read_invoked)
                })
                .then(|| value.clone()),
            _ => None,
        })
        .collect();
    let future: Vec<Vec<u8>> = events
        .iter()
        .filter(same_key)
        .filter_map(|put| match &put.op {
            Op::Put(value) if put.invoked_at > read_returned => Some(value.clone()),
            _ => None,
        })
        .collect();
    let mut choices = vec![(Mutation::NeverWritten, b"never-written".to_vec())];
    if !overwritten.is_empty() {
        let value = overwritten[rng.random_range(0..overwritten.len())].clone();
        choices.extend([(Mutation::Overwritten, value.clone()), (Mutation::Overwritten, value)]);
    }
    if !future.is_empty() {
        choices.push((Mutation::FromTheFuture, future[rng.random_range(0..future.len())].clone()));
    }
    let (mutation, value) = choices.swap_remove(rng.random_range(0..choices.len()));
    events[read].op = Op::Get(Some(value));
    Some((events.into_iter().collect(), read, mutation))
}

#[test]
fn every_history_with_one_impossible_read_is_rejected() {
    let mut mutations: HashMap<String, usize> = HashMap::new();
    for seed in seeds(300) {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xbad);
        let workload = small_workload(&mut rng);
        let history = simulate(seed, workload);
        let Some((mutated, read, mutation)) = mutate(&history, &mut rng) else { continue };
        *mutations.entry(format!("{mutation:?}")).or_default() += 1;
        let result = check(&mutated, BUDGET);
        let bad_read = &mutated.events()[read];
        match &result {
            CheckResult::Violation { key, ops, .. } => {
                assert_eq!(key, &bad_read.key, "seed {seed} ({mutation:?}): {result}");
                assert!(ops.contains(bad_read), "seed {seed} ({mutation:?}): {result}");
            }
            _ => panic!(
                "seed {seed} ({mutation:?}, read {bad_read}): expected a violation, got: {result}"
            ),
        }
    }
    if std::env::var("SEED").is_err() {
        // The seeds exercise every kind of mutation, not just the trivial one.
        assert_eq!(mutations.len(), 3, "{mutations:?}");
    }
}

#[test]
fn a_large_history_is_checked() {
    let workload = Workload { clients: 10, ops: 2_000, keys: 50, unknown: 0.02, failed: 0.02 };
    for seed in seeds(3) {
        let history = simulate(seed, workload);
        let result = check(&history, BUDGET);
        assert_eq!(result, CheckResult::Ok, "seed {seed}: {result}");
    }
}

#[test]
fn a_very_large_history_over_many_keys_is_checked() {
    let workload = Workload { clients: 20, ops: 20_000, keys: 300, unknown: 0.02, failed: 0.02 };
    let seed = seeds(1)[0];
    let history = simulate(seed, workload);
    let result = check(&history, BUDGET);
    assert_eq!(result, CheckResult::Ok, "seed {seed}: {result}");
}

#[test]
fn a_hot_key_hammered_by_many_clients_is_checked() {
    let workload = Workload { clients: 20, ops: 3_000, keys: 1, unknown: 0.02, failed: 0.02 };
    for seed in seeds(2) {
        let history = simulate(seed, workload);
        let result = check(&history, BUDGET);
        assert_eq!(result, CheckResult::Ok, "seed {seed}: {result}");
        let Some((mutated, _, mutation)) = mutate(&history, &mut StdRng::seed_from_u64(seed))
        else {
            continue;
        };
        let result = check(&mutated, BUDGET);
        assert!(
            matches!(result, CheckResult::Violation { .. }),
            "seed {seed} ({mutation:?}): {result}"
        );
    }
}
