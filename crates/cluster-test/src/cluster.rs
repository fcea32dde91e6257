//! N stores in one process, each on its own data dir under one temp dir.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftstore::{FailPoints, Store, StoreConfig, StoreHandle, StoreStatus};

use crate::network::SimNetwork;

pub struct Cluster {
    _dir: tempfile::TempDir,
    configs: BTreeMap<u64, StoreConfig>,
    pub net: Arc<SimNetwork>,
}

impl Cluster {
    /// `n` stores with fast ticks (10 ms); `tweak` adjusts each store's config.
    pub fn new(n: u64, seed: u64, tweak: impl Fn(&mut StoreConfig)) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let peers: BTreeMap<u64, String> =
            (1..=n).map(|id| (id, format!("127.0.0.1:{}", 30000 + id))).collect();
        let configs = peers
            .keys()
            .map(|&id| {
                let mut cfg = StoreConfig::new(id, peers.clone(), store_dir(dir.path().into(), id));
                cfg.base_tick = Duration::from_millis(10);
                tweak(&mut cfg);
                (id, cfg)
            })
            .collect();
        Cluster { _dir: dir, configs, net: SimNetwork::new(seed) }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.configs.keys().copied().collect()
    }

    pub fn start_all(&self) {
        for id in self.ids() {
            self.start(id);
        }
    }

    /// Starts (or restarts from its data dir) store `id`.
    pub fn start(&self, id: u64) {
        if self.net.handle(id).is_some() {
            return;
        }
        let cfg = self.configs[&id].clone();
        match Store::start(cfg, self.net.transport(id)) {
            Ok(h) => self.net.register(h),
            Err(e) => panic!("store {id} failed to start: {e}"),
        }
    }

    /// Kills store `id` at once, as a crash: what it had not synced is lost.
    pub fn crash(&self, id: u64) {
        if let Some(h) = self.net.unregister(id) {
            h.kill();
            if let Err(e) = h.join() {
                panic!("store {id} had failed before the crash: {e}");
            }
        }
    }

    /// Stops store `id` the way SIGTERM does (leadership handed over first).
    pub fn stop(&self, id: u64) {
        if let Some(h) = self.net.handle(id) {
            h.shutdown();
            if let Err(e) = h.join() {
                panic!("store {id} failed: {e}");
            }
            self.net.unregister(id);
        }
    }

    /// Deletes store `id`'s data dir, as a lost disk would (the store must be down).
    pub fn wipe(&self, id: u64) {
        assert!(!self.is_up(id), "wipe store {id} only while it is down");
        let dir = &self.configs[&id].data_dir;
        std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("wipe {}: {e}", dir.display()));
    }

    pub fn handle(&self, id: u64) -> Option<StoreHandle> {
        self.net.handle(id)
    }

    pub fn is_up(&self, id: u64) -> bool {
        self.net.handle(id).is_some()
    }

    /// The store that believes it leads, if exactly one running store does.
    pub fn leader(&self) -> Option<u64> {
        let leaders: Vec<u64> = self
            .ids()
            .into_iter()
            .filter_map(|id| self.handle(id))
            .filter(|h| h.status().role == "leader")
            .map(|h| h.store_id())
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Waits for a leader that a majority of running stores follow.
    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                let followers = self
                    .ids()
                    .into_iter()
                    .filter_map(|id| self.handle(id))
                    .filter(|h| h.status().leader_id == l)
                    .count();
                if followers * 2 > self.configs.len() {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until every running store applied at least `index`.
    pub fn wait_applied(&self, index: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let behind: Vec<(u64, u64)> = self
                .ids()
                .into_iter()
                .filter_map(|id| self.handle(id))
                .map(|h| (h.store_id(), h.status().applied))
                .filter(|&(_, a)| a < index)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stores {behind:?} did not apply {index} in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Store `id`'s crash points; arming one arms it for every (re)start of the store.
    pub fn failpoints(&self, id: u64) -> FailPoints {
        self.configs[&id].failpoints.clone()
    }

    /// The status of store `id` if it runs.
    pub fn status(&self, id: u64) -> Option<StoreStatus> {
        self.handle(id).map(|h| h.status())
    }

    /// The statuses of the running stores.
    pub fn statuses(&self) -> Vec<StoreStatus> {
        self.ids().into_iter().filter_map(|id| self.status(id)).collect()
    }

    /// Waits until store `id` stopped by itself (e.g. a fired failpoint), then reaps it as a
    /// crash: it is down afterwards and can be restarted.
    pub fn wait_stopped(&self, id: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.handle(id).is_none_or(|h| h.is_stopped()) {
            assert!(Instant::now() < deadline, "store {id} did not stop within {timeout:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.crash(id);
    }

    /// Waits until the cluster is quiet (every running store applied the same index) and,
    /// once it is, until every running store keeps at most `2 * limit` applied entries in its
    /// log. The leader compacts on its GC tick, so a quiet cluster gets `gc_grace` for that
    /// before the bound is a failure; `timeout` bounds the wait for quiet.
    pub fn wait_log_bounded(&self, limit: u64, gc_grace: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut quiet_since: Option<Instant> = None;
        loop {
            let statuses = self.statuses();
            let max_applied = statuses.iter().map(|s| s.applied).max().unwrap_or(0);
            let quiet = !statuses.is_empty() && statuses.iter().all(|s| s.applied == max_applied);
            if quiet {
                if statuses.iter().all(|s| s.applied.saturating_sub(s.truncated) <= 2 * limit) {
                    return;
                }
                let since = *quiet_since.get_or_insert_with(Instant::now);
                assert!(
                    since.elapsed() < gc_grace,
                    "quiet for {gc_grace:?} but some log keeps more than 2 x {limit} applied \
                     entries: {statuses:?}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never became quiet (all stores applied the same index) within \
                 {timeout:?}: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn shutdown(&self) {
        for id in self.ids() {
            self.crash(id);
        }
        self.net.shutdown();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.ids() {
            if let Some(h) = self.net.unregister(id) {
                h.kill();
                let _ = h.join();
            }
        }
        self.net.shutdown();
    }
}

fn store_dir(base: PathBuf, id: u64) -> PathBuf {
    base.join(format!("store-{id}"))
}
