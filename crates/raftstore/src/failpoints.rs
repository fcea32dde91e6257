//! Named points where a test can make a store crash, to prove that a crash there leaves the
//! store restartable and consistent. Each armed point fires once: the store then stops at
//! once, as `kill -9` would, without writing anything more.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Points on the snapshot path (see `docs/log-gc-and-snapshots.md`).
pub mod points {
    /// Follower: the `Applying` state is in kvdb, the snapshot's raft state not yet in raftdb.
    pub const SNAPSHOT_BEFORE_RAFT_WRITE: &str = "snapshot_before_raft_write";
    /// Region worker: the region's old data is cleared, nothing ingested yet.
    pub const SNAPSHOT_AFTER_CLEAR: &str = "snapshot_after_clear";
    /// Region worker: half of the snapshot's pairs are ingested.
    pub const SNAPSHOT_MID_INGEST: &str = "snapshot_mid_ingest";
    /// Region worker: everything ingested, the region not yet back to `Normal`.
    pub const SNAPSHOT_BEFORE_NORMAL: &str = "snapshot_before_normal";
    /// Region worker, leader side: half of a generated snapshot file is written.
    pub const SNAPSHOT_MID_GENERATE: &str = "snapshot_mid_generate";
}

/// The armed points of one store. Cloning shares them, so a test keeps a handle to the
/// points of a store it started.
#[derive(Clone, Default)]
pub struct FailPoints(Arc<Mutex<HashSet<String>>>);

impl FailPoints {
    pub fn arm(&self, name: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(name.to_string());
        }
    }

    pub fn is_armed(&self, name: &str) -> bool {
        self.0.lock().is_ok_and(|set| set.contains(name))
    }

    /// True (once) if `name` is armed: the caller must stop as a crash would.
    pub(crate) fn fire(&self, name: &str) -> bool {
        let fired = self.0.lock().is_ok_and(|mut set| set.remove(name));
        if fired {
            tracing::warn!(failpoint = name, "failpoint fired: the store stops as if killed");
        }
        fired
    }
}

impl std::fmt::Debug for FailPoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let armed: Vec<String> =
            self.0.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default();
        f.debug_tuple("FailPoints").field(&armed).finish()
    }
}
