//! Opening a store's data directory: the lock, the format marker, the two engines, and the
//! store's identity — written at the first start, checked at every later one — and what a
//! start finds of its regions, including a snapshot install a crash cut short.
//!
//! Layout: `DIR/LOCK`, `DIR/FORMAT`, `DIR/raftdb`, `DIR/kvdb`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::path::Path;

use engine::{CF_DEFAULT, CF_RAFT, DATA_CFS, Engine, WriteBatch};
use raft::eraftpb::HardState;
use raftkv_proto::metapb::{Peer, Region, RegionEpoch};
use raftkv_proto::raft_serverpb::{
    ApplyingSnapshotState, PeerState, RaftApplyState, RaftLocalState, RaftTruncatedState,
    RegionLocalState, StoreIdent,
};

use crate::config::StoreConfig;
use crate::errors::{Result, StoreError};
use crate::keys;
use crate::peer::Install;
use crate::peer_storage::{RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};

const FORMAT: &str = "raftkv-store-format 1\n";
/// Part B has one region covering every key.
pub const FIRST_REGION_ID: u64 = 1;

#[derive(Clone)]
pub struct Engines {
    pub raft: Engine,
    pub kv: Engine,
}

/// Holds the exclusive lock on a data directory for as long as the store runs.
pub struct DirLock {
    _file: File,
}

fn dir_error(dir: &Path, message: impl Into<String>) -> StoreError {
    StoreError::DataDir { path: dir.display().to_string(), message: message.into() }
}

/// Locks `dir` (creating it) and opens both engines, checking the format marker.
pub fn open_engines(dir: &Path) -> Result<(Engines, DirLock)> {
    std::fs::create_dir_all(dir).map_err(|e| dir_error(dir, format!("cannot create: {e}")))?;
    let lock_path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| dir_error(dir, format!("cannot open LOCK: {e}")))?;
    file.try_lock().map_err(|_| {
        dir_error(dir, "is locked by another raftkv process (two servers on one data dir?)")
    })?;
    let format_path = dir.join("FORMAT");
    match std::fs::read_to_string(&format_path) {
        Ok(f) if f == FORMAT => {}
        Ok(f) => {
            return Err(dir_error(
                dir,
                format!("unsupported format {:?} (expected {FORMAT:?})", f),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("kvdb").exists() || dir.join("raftdb").exists() {
                return Err(dir_error(dir, "holds engine files but no FORMAT marker"));
            }
            let mut f = File::create(&format_path)
                .map_err(|e| dir_error(dir, format!("cannot write FORMAT: {e}")))?;
            f.write_all(FORMAT.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| dir_error(dir, format!("cannot write FORMAT: {e}")))?;
        }
        Err(e) => return Err(dir_error(dir, format!("cannot read FORMAT: {e}"))),
    }
    let raft = Engine::open(&dir.join("raftdb"), &[CF_RAFT])?;
    let kv = Engine::open(&dir.join("kvdb"), &DATA_CFS)?;
    Ok((Engines { raft, kv }, DirLock { _file: file }))
}

/// Returns the store's identity, bootstrapping the store and its first region on the first
/// start; refuses a data dir that belongs to another store id or cluster.
pub fn load_or_bootstrap(cfg: &StoreConfig, engines: &Engines) -> Result<StoreIdent> {
    let dir = &cfg.data_dir;
    if let Some(ident) = engines.kv.get_msg::<StoreIdent>(CF_DEFAULT, &keys::STORE_IDENT_KEY)? {
        if ident.store_id != cfg.store_id {
            return Err(dir_error(
                dir,
                format!("belongs to store {}, not to --id {}", ident.store_id, cfg.store_id),
            ));
        }
        if ident.cluster_id != cfg.cluster_id {
            return Err(dir_error(
                dir,
                "belongs to another cluster (a different --cluster-token was used to create it)",
            ));
        }
        return Ok(ident);
    }
    if !cfg.initial_peers.contains_key(&cfg.store_id) {
        return Err(dir_error(dir, format!("store {} is not in --peers", cfg.store_id)));
    }
    bootstrap(cfg, engines)
}

fn bootstrap(cfg: &StoreConfig, engines: &Engines) -> Result<StoreIdent> {
    let region = Region {
        id: FIRST_REGION_ID,
        start_key: Default::default(),
        end_key: Default::default(),
        region_epoch: Some(RegionEpoch { conf_ver: 1, version: 1 }),
        peers: cfg.initial_peers.keys().map(|&id| Peer { id, store_id: id }).collect(),
    };
    let raft_state = RaftLocalState {
        hard_state: Some(HardState {
            term: RAFT_INIT_LOG_TERM,
            vote: 0,
            commit: RAFT_INIT_LOG_INDEX,
        }),
        last_index: RAFT_INIT_LOG_INDEX,
        last_term: RAFT_INIT_LOG_TERM,
    };
    let apply_state = RaftApplyState {
        applied_index: RAFT_INIT_LOG_INDEX,
        truncated_state: Some(RaftTruncatedState {
            index: RAFT_INIT_LOG_INDEX,
            term: RAFT_INIT_LOG_TERM,
        }),
    };
    let region_state = RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(region),
        store_incarnations: Default::default(),
    };
    let ident = StoreIdent {
        cluster_id: cfg.cluster_id,
        store_id: cfg.store_id,
        incarnation: RandomState::new().hash_one(std::time::SystemTime::now()).max(1),
    };

    let mut wb = WriteBatch::new();
    wb.put_msg(CF_RAFT, &keys::raft_state_key(FIRST_REGION_ID), &raft_state);
    engines.raft.write(wb, true)?;
    // The identity goes last: its presence marks a complete bootstrap.
    let mut wb = WriteBatch::new();
    wb.put_msg(CF_DEFAULT, &keys::apply_state_key(FIRST_REGION_ID), &apply_state);
    wb.put_msg(CF_DEFAULT, &keys::region_state_key(FIRST_REGION_ID), &region_state);
    wb.put_msg(CF_DEFAULT, &keys::STORE_IDENT_KEY, &ident);
    engines.kv.write(wb, true)?;
    tracing::info!(store_id = cfg.store_id, peers = ?cfg.initial_peers.keys(), "bootstrapped a new store");
    Ok(ident)
}

/// The persisted state of every region this store has a peer of.
pub fn load_regions(engines: &Engines) -> Result<Vec<RegionLocalState>> {
    let state: Option<RegionLocalState> =
        engines.kv.get_msg(CF_DEFAULT, &keys::region_state_key(FIRST_REGION_ID))?;
    let state = state.ok_or_else(|| StoreError::Corrupt("region 1 state missing".into()))?;
    match state.state() {
        PeerState::Normal | PeerState::Applying => Ok(vec![state]),
        other => Err(StoreError::Corrupt(format!("region 1 is in state {other:?}"))),
    }
}

/// A region found `Applying` at start: a snapshot install was cut short. Puts raftdb in the
/// state the install's raft write gives (if that write did not land) and returns what the
/// region worker needs to redo the install from the received file.
pub(crate) fn recover_applying(
    engines: &Engines,
    region: &Region,
    incarnations: BTreeMap<u64, u64>,
) -> Result<Install> {
    let id = region.id;
    let corrupt = |what: &str| StoreError::Corrupt(format!("region {id} is Applying but {what}"));
    let pending: ApplyingSnapshotState = engines
        .kv
        .get_msg(CF_DEFAULT, &keys::applying_snapshot_key(id))?
        .ok_or_else(|| corrupt("its snapshot state is missing"))?;
    let target = pending.raft_state.ok_or_else(|| corrupt("it has no raft state"))?;
    let meta = pending.meta.clone().ok_or_else(|| corrupt("it has no snapshot meta"))?;
    let (index, term) = (pending.snapshot_index, pending.snapshot_term);
    let current: RaftLocalState = engines
        .raft
        .get_msg(CF_RAFT, &keys::raft_state_key(id))?
        .ok_or_else(|| corrupt("its raft state is missing"))?;
    if current != target {
        // The raft write never landed: raftdb still holds the log the snapshot replaces.
        // Install the snapshot's raft state without that Ready's entries (they were never
        // durable, so never acknowledged); term and vote from it are safe to keep.
        let mut hs = target.hard_state.unwrap_or_default();
        hs.commit = index;
        let state = RaftLocalState { hard_state: Some(hs), last_index: index, last_term: term };
        let mut wb = WriteBatch::new();
        for stale in index + 1..=current.last_index {
            wb.delete(CF_RAFT, &keys::raft_log_key(id, stale));
        }
        wb.put_msg(CF_RAFT, &keys::raft_state_key(id), &state);
        engines.raft.write(wb, true)?;
    }
    let key = crate::snap::SnapKey { region_id: id, term, index };
    Ok(Install { key, meta, verified: false, region: region.clone(), incarnations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, id: u64, token: &str) -> StoreConfig {
        let peers = [(1, "127.0.0.1:1".to_string()), (2, "127.0.0.1:2".to_string())].into();
        let mut cfg = StoreConfig::new(id, peers, dir.to_path_buf());
        cfg.cluster_id = crate::config::cluster_id_from_token(token);
        cfg
    }

    fn start(cfg: &StoreConfig) -> Result<StoreIdent> {
        let (engines, _lock) = open_engines(&cfg.data_dir)?;
        load_or_bootstrap(cfg, &engines)
    }

    fn refusal(r: Result<StoreIdent>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_else(|| "accepted".into())
    }

    #[test]
    fn a_restart_keeps_its_identity() {
        let dir = tempfile::tempdir().expect("dir");
        let first = start(&config(dir.path(), 1, "t")).expect("bootstrap");
        let again = start(&config(dir.path(), 1, "t")).expect("restart");
        assert_eq!(first, again);
        assert_ne!(first.incarnation, 0);
    }

    #[test]
    fn another_store_id_or_cluster_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        start(&config(dir.path(), 1, "t")).expect("bootstrap");
        assert!(refusal(start(&config(dir.path(), 2, "t"))).contains("belongs to store 1"));
        assert!(refusal(start(&config(dir.path(), 1, "other"))).contains("another cluster"));
    }

    #[test]
    fn a_locked_or_foreign_dir_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let (_engines, _lock) = open_engines(dir.path()).expect("first opener");
        let second = open_engines(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(second.contains("locked"), "{second}");

        let other = tempfile::tempdir().expect("dir");
        std::fs::write(other.path().join("FORMAT"), "something else\n").expect("write");
        let foreign = open_engines(other.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(foreign.contains("unsupported format"), "{foreign}");
    }

    #[test]
    fn a_store_not_in_peers_does_not_bootstrap() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(refusal(start(&config(dir.path(), 7, "t"))).contains("not in --peers"));
    }
}
