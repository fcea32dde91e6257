//! Three in-memory nodes (RawNode + MemStorage) committing 128-byte proposals through the
//! whole Ready loop: propose on the leader, then send, persist, apply and advance on every
//! node until the leader has applied the batch. Reports entries committed per second.
//!
//! Run: `cargo bench -p raftkv-raft --bench ready_loop`.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use raft::eraftpb::Message;
use raft::{Config, MemStorage, RawNode, StateRole};

const PAYLOAD_BYTES: usize = 128;

struct Cluster {
    nodes: Vec<RawNode<MemStorage>>,
    in_flight: VecDeque<Message>,
}

impl Cluster {
    fn new() -> Self {
        let voters = vec![1, 2, 3];
        let nodes = voters
            .iter()
            .map(|&id| {
                let config = Config { id, ..Config::default() };
                let store = MemStorage::new_with_conf_state(voters.clone(), vec![]);
                RawNode::new(&config, store).expect("node")
            })
            .collect();
        let mut c = Cluster { nodes, in_flight: VecDeque::new() };
        c.nodes[0].campaign().expect("campaign");
        c.run_until_quiet();
        assert_eq!(c.nodes[0].raft().state(), StateRole::Leader);
        c
    }

    /// One pass of the application loop over every node, then delivery of what was sent.
    fn run_until_quiet(&mut self) {
        loop {
            let mut busy = false;
            for node in &mut self.nodes {
                if !node.has_ready() {
                    continue;
                }
                busy = true;
                let mut rd = node.ready();
                self.in_flight.extend(rd.take_messages());
                let store = node.store_mut();
                store.append(rd.entries()).expect("append");
                if let Some(hs) = rd.hs() {
                    store.set_hard_state(*hs);
                }
                self.in_flight.extend(rd.take_persisted_messages());
                // Applying is a no-op state machine: the benchmark measures consensus.
                let _ = rd.take_committed_entries();
                node.advance(rd);
            }
            while let Some(m) = self.in_flight.pop_front() {
                busy = true;
                let to = (m.to - 1) as usize;
                let _ = self.nodes[to].step(m);
            }
            if !busy {
                return;
            }
        }
    }

    fn commit_batch(&mut self, batch: usize, payload: &Bytes) {
        let target = self.nodes[0].raft().raft_log().last_index() + batch as u64;
        for _ in 0..batch {
            self.nodes[0].propose(payload.clone()).expect("propose");
        }
        self.run_until_quiet();
        debug_assert!(self.nodes[0].raft().raft_log().applied() >= target);
    }

    /// Keeps memory flat over millions of iterations, as a real store's log GC would.
    fn compact(&mut self) {
        for node in &mut self.nodes {
            let applied = node.raft().raft_log().applied();
            node.store_mut().compact(applied).expect("compact");
        }
    }
}

fn bench_commit(c: &mut Criterion) {
    let payload = Bytes::from(vec![7u8; PAYLOAD_BYTES]);
    let mut group = c.benchmark_group("three_nodes_commit_128B");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            let mut cluster = Cluster::new();
            let mut rounds = 0u64;
            b.iter(|| {
                cluster.commit_batch(batch, &payload);
                rounds += 1;
                if rounds.is_multiple_of(64) {
                    cluster.compact();
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_commit);
criterion_main!(benches);
