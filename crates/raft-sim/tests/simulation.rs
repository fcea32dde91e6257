//! Seeded randomized simulation of 1-, 3- and 5-node groups (see `raftkv-raft-sim`).
//!
//! Defaults cover 2,200 seeds of 8,000 steps each. `RAFT_SIM_SEEDS=N` runs N seeds per group size;
//! `RAFT_SIM_SEED=S RAFT_SIM_NODES=K ... -- --ignored replay` replays one seed (a failure prints
//! the exact command).

use raftkv_raft_sim::{Options, Outcome, run_seed};

const STEPS: usize = 8000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn run_many(nodes: u64, default_seeds: u64) {
    let seeds = env_u64("RAFT_SIM_SEEDS").unwrap_or(default_seeds);
    let base = env_u64("RAFT_SIM_BASE_SEED").unwrap_or(0);
    let mut total = Outcome::default();
    for seed in base..base + seeds {
        let o = run_seed(&Options::from_seed(seed, nodes, STEPS));
        total.proposals_committed += o.proposals_committed;
        total.reads_answered += o.reads_answered;
        total.crashes += o.crashes;
        total.snapshots_applied += o.snapshots_applied;
        total.leader_changes += o.leader_changes;
        total.conf_changes += o.conf_changes;
        total.liveness_ticks = total.liveness_ticks.max(o.liveness_ticks);
    }
    println!("{nodes}-node groups: {seeds} seeds from {base}: {total:?}");
    assert!(total.proposals_committed > 0, "the simulation committed nothing");
    if nodes > 1 {
        assert!(total.leader_changes > seeds as usize, "no leader changes were exercised");
        assert!(total.snapshots_applied > 0, "no snapshot was ever sent");
    }
}

#[test]
fn one_node_groups() {
    run_many(1, 200);
}

#[test]
fn three_node_groups() {
    run_many(3, 1000);
}

#[test]
fn five_node_groups() {
    run_many(5, 1000);
}

/// Replays the seed named by RAFT_SIM_SEED (with RAFT_SIM_NODES), as a failure prints.
#[test]
#[ignore = "a replay tool, not a test: set RAFT_SIM_SEED and run with --ignored"]
fn replay() {
    let seed = env_u64("RAFT_SIM_SEED").expect("set RAFT_SIM_SEED to the seed to replay");
    let nodes = env_u64("RAFT_SIM_NODES").unwrap_or(3);
    let o = run_seed(&Options::from_seed(seed, nodes, STEPS));
    println!("seed {seed}, {nodes} nodes: {o:?}");
}
