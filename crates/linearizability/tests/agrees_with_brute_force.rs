//! Differential test: on small random histories — duplicate values, deletes, unknown
//! outcomes, touching windows, mostly *not* linearizable — the checker's verdict must
//! equal that of a brute-force search over every order, and every witness it reports must
//! itself be refuted by the brute force.
//!
//! Rerun one case with `SEED=<n> cargo test -p raftkv-linearizability --test
//! agrees_with_brute_force`.

use std::collections::BTreeMap;
use std::time::Duration;

use linearizability::{CheckResult, Event, History, Op, check};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Whether `events` (one key) have a linearization, by trying every order: each
/// acknowledged operation exactly once, each write with an unknown outcome at most once,
/// reads with an unknown outcome never.
fn brute_force(events: &[&Event]) -> bool {
    let ops: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|event| event.op.is_write() || event.returned_at.is_some())
        .collect();
    let mut placed = vec![false; ops.len()];
    extend(&ops, &mut placed, None)
}

fn extend(ops: &[&Event], placed: &mut [bool], state: Option<&[u8]>) -> bool {
    let all_known_placed =
        ops.iter().zip(placed.iter()).all(|(op, &done)| done || op.returned_at.is_none());
    if all_known_placed {
        return true;
    }
    for next in 0..ops.len() {
        if placed[next] {
            continue;
        }
        // Everything that returned before `next` was invoked must already be placed.
        let ready = (0..ops.len()).all(|other| {
            placed[other] || ops[other].returned_at.is_none_or(|ret| ret >= ops[next].invoked_at)
        });
        if !ready {
            continue;
        }
        let new_state = match &ops[next].op {
            Op::Put(value) => Some(value.as_slice()),
            Op::Delete => None,
            Op::Get(observed) if observed.as_deref() == state => state,
            Op::Get(_) => continue,
        };
        placed[next] = true;
        let found = extend(ops, placed, new_state);
        placed[next] = false;
        if found {
            return true;
        }
    }
    false
}

fn random_history(rng: &mut StdRng) -> History {
    let values = [&b"a"[..], b"b", b"c"];
    let keys = rng.random_range(1..3);
    let len = rng.random_range(1..9);
    (0..len)
        .map(|client| {
            let key = format!("k{}", rng.random_range(0..keys));
            let invoked_at = rng.random_range(0..20u64);
            let returned_at = invoked_at + rng.random_range(0..8u64);
            let value = values[rng.random_range(0..values.len())].to_vec();
            let op = match rng.random_range(0..10) {
                0..=3 => Op::Put(value),
                4 => Op::Delete,
                _ if rng.random_bool(0.25) => Op::Get(None),
                _ => Op::Get(Some(value)),
            };
            if rng.random_bool(0.2) {
                Event::unknown(client, key, op, invoked_at)
            } else {
                Event::ok(client, key, op, invoked_at, returned_at)
            }
        })
        .collect()
}

fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(seed) => vec![seed.parse().expect("SEED is a number")],
        Err(_) => (0..count).collect(),
    }
}

#[test]
fn verdicts_and_witnesses_match_brute_force() {
    let (mut accepted, mut rejected) = (0, 0);
    for seed in seeds(20_000) {
        let history = random_history(&mut StdRng::seed_from_u64(seed));
        let mut per_key: BTreeMap<&[u8], Vec<&Event>> = BTreeMap::new();
        for event in history.events() {
            per_key.entry(&event.key).or_default().push(event);
        }
        let expected = per_key.values().all(|events| brute_force(events));
        let result = check(&history, Duration::from_secs(10));
        match &result {
            CheckResult::Ok => {
                assert!(expected, "seed {seed}: accepted a non-linearizable history {history:#?}");
                accepted += 1;
            }
            CheckResult::Violation { key, ops, .. } => {
                assert!(!expected, "seed {seed}: rejected a linearizable history: {result}");
                assert!(!brute_force(&per_key[key.as_slice()]), "seed {seed}: wrong key: {result}");
                let witness: Vec<&Event> = ops.iter().collect();
                assert!(
                    !brute_force(&witness),
                    "seed {seed}: the witness is linearizable: {result}"
                );
                for op in ops {
                    assert!(
                        history.events().contains(op),
                        "seed {seed}: foreign witness: {result}"
                    );
                }
                rejected += 1;
            }
            CheckResult::Timeout { .. } => panic!("seed {seed}: {result}"),
        }
    }
    if std::env::var("SEED").is_err() {
        // Both verdicts are well represented.
        assert!(accepted > 2_000 && rejected > 2_000, "accepted {accepted}, rejected {rejected}");
    }
}
