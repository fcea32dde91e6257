//! The region worker: generates snapshots from a consistent point of kvdb and applies
//! received ones, off the raft thread. One thread per store; tasks run in order.
//!
//! Apply is crash-safe because it is idempotent: until its last write (region state back
//! to `Normal`, synced) the region stays `Applying` in kvdb, and a restart runs the whole
//! apply again from the received file — clear the region, ingest, mark `Normal`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use engine::{CF_DEFAULT, DATA_CFS, Engine, WriteBatch};
use prost::Message as _;
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};
use raftkv_proto::metapb::Region;
use raftkv_proto::raft_serverpb::{
    PeerState, RaftApplyState, RaftSnapshotData, RegionLocalState, SnapshotMeta,
};

use crate::errors::{Result, StoreError};
use crate::failpoints::{FailPoints, points};
use crate::keys;
use crate::mailbox::Mailbox;
use crate::metrics;
use crate::msg::StoreMsg;
use crate::snap::{Generated, SnapFileReader, SnapFileWriter, SnapKey, SnapManager};
use crate::worker::Worker;

/// Keys deleted per write while clearing a region.
const CLEAR_BATCH: usize = 4096;

pub(crate) enum RegionTask {
    /// Write a snapshot of the region as of `kv` (taken on the raft thread right after an
    /// apply, so it holds exactly the state at `index`).
    Generate { region_id: u64, kv: engine::Snapshot, index: u64, term: u64 },
    /// Install the received snapshot `key` into kvdb.
    /// `verified`: the file was checked against `meta` on receipt (else: check it first).
    Apply {
        key: SnapKey,
        meta: SnapshotMeta,
        verified: bool,
        region: Region,
        incarnations: BTreeMap<u64, u64>,
    },
}

struct Context {
    kv: Engine,
    mgr: Arc<SnapManager>,
    store: Mailbox,
    failpoints: FailPoints,
}

/// A failpoint fired: the store is being killed, the task stops where it is.
struct Crashed;

/// Starts the region worker; a failure is reported to the store through `store`.
pub(crate) fn start(
    kv: Engine,
    mgr: Arc<SnapManager>,
    store: Mailbox,
    failpoints: FailPoints,
) -> std::io::Result<Worker<RegionTask>> {
    let ctx = Context { kv, mgr, store, failpoints };
    Worker::start("region-worker", move |rx| run(&rx, &ctx))
}

fn run(rx: &Receiver<RegionTask>, ctx: &Context) {
    while let Ok(task) = rx.recv() {
        let outcome = match task {
            RegionTask::Generate { region_id, kv, index, term } => {
                generate(ctx, region_id, &kv, index, term)
            }
            RegionTask::Apply { key, meta, verified, region, incarnations } => {
                apply(ctx, key, (&meta, verified), region, incarnations).inspect(|r| {
                    if r.is_ok() {
                        let _ = ctx.store.send(StoreMsg::SnapshotApplied { key });
                    }
                })
            }
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(Crashed)) => {
                let _ = ctx.store.send(StoreMsg::Kill);
                return;
            }
            Err(e) => {
                let _ = ctx.store.send(StoreMsg::Fatal(format!("region worker: {e}")));
                return;
            }
        }
    }
}

fn data_range(region: &Region) -> (Vec<u8>, Vec<u8>) {
    (keys::data_key(&region.start_key), keys::data_end_key(&region.end_key))
}

fn generate(
    ctx: &Context,
    region_id: u64,
    kv: &engine::Snapshot,
    index: u64,
    term: u64,
) -> Result<std::result::Result<(), Crashed>> {
    let started = std::time::Instant::now();
    let state: RegionLocalState = kv
        .get_msg(CF_DEFAULT, &keys::region_state_key(region_id))?
        .ok_or_else(|| StoreError::Corrupt(format!("region {region_id}: region state missing")))?;
    let apply: RaftApplyState = kv
        .get_msg(CF_DEFAULT, &keys::apply_state_key(region_id))?
        .ok_or_else(|| StoreError::Corrupt(format!("region {region_id}: apply state missing")))?;
    if apply.applied_index != index {
        return Err(StoreError::Corrupt(format!(
            "region {region_id}: snapshot point at applied index {} but asked for {index}",
            apply.applied_index
        )));
    }
    let region = state.region.clone().unwrap_or_default();
    let key = SnapKey { region_id, term, index };
    let temp = ctx.mgr.temp_path(&key);
    let mut w = SnapFileWriter::create(&temp)?;
    let (start, end) = data_range(&region);
    let (mut pairs, mut crashed) = (0u64, false);
    let mut pace = Pacer::new(&ctx.mgr);
    for (cf_id, cf) in DATA_CFS.iter().enumerate() {
        let written = kv.for_each(cf, &start, Some(&end), |k, v| {
            w.add(cf_id as u8, k, v)?;
            pace.add((k.len() + v.len()) as u64);
            pairs += 1;
            crashed = ctx.failpoints.fire(points::SNAPSHOT_MID_GENERATE);
            // Ends the scan; told apart from a real failure by `crashed`.
            if crashed { Err(StoreError::Stopped) } else { Ok(()) }
        });
        match written {
            Err(_) if crashed => return Ok(Err(Crashed)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    // Not synced: a generated file is garbage after a restart anyway.
    let meta = w.finish(&DATA_CFS, false)?;
    let path = ctx.mgr.generated_path(&key);
    std::fs::rename(&temp, &path).map_err(|e| {
        StoreError::Corrupt(format!("cannot rename snapshot file {}: {e}", temp.display()))
    })?;
    let conf_state =
        ConfState { voters: region.peers.iter().map(|p| p.id).collect(), learners: vec![] };
    let data = RaftSnapshotData {
        region: Some(region),
        meta: Some(meta.clone()),
        store_incarnations: state.store_incarnations,
    };
    let snapshot = Snapshot {
        data: data.encode_to_vec().into(),
        metadata: Some(SnapshotMetadata { conf_state: Some(conf_state), index, term }),
    };
    ctx.mgr.finish_generating(Generated { key, snapshot, at: std::time::Instant::now() });
    metrics::SNAPSHOTS_GENERATED.inc();
    tracing::info!(
        %key, pairs, bytes = meta.size_bytes, ms = started.elapsed().as_millis() as u64,
        "generated a snapshot"
    );
    Ok(Ok(()))
}

fn apply(
    ctx: &Context,
    key: SnapKey,
    (meta, verified): (&SnapshotMeta, bool),
    region: Region,
    incarnations: BTreeMap<u64, u64>,
) -> Result<std::result::Result<(), Crashed>> {
    let started = std::time::Instant::now();
    let path = ctx.mgr.received_path(&key);
    // The whole file is checked before the region's old data goes: on receipt, or here
    // when a restart finishes an install.
    if !verified {
        crate::snap::verify(&path, meta)?;
    }
    let (start, end) = data_range(&region);
    for cf in DATA_CFS {
        loop {
            let doomed = ctx.kv.scan_keys(cf, &start, Some(&end), CLEAR_BATCH)?;
            if doomed.is_empty() {
                break;
            }
            let mut wb = WriteBatch::with_capacity(doomed.len());
            for k in &doomed {
                wb.delete(cf, k);
            }
            // Unsynced: until the final synced write the region stays Applying, and a
            // restart clears it again.
            ctx.kv.write(wb, false)?;
        }
    }
    if ctx.failpoints.fire(points::SNAPSHOT_AFTER_CLEAR) {
        return Ok(Err(Crashed));
    }
    // Each column family's pairs are sorted in the file: they go straight into new table
    // files (no journal, no memtable), so memory stays flat whatever the snapshot's size.
    let mut reader = SnapFileReader::open(&path)?;
    let mut next = reader.next_pair()?;
    let (mut pairs, mut bytes) = (0u64, 0u64);
    let mut pace = Pacer::new(&ctx.mgr);
    while let Some(first) = next.take() {
        let cf_id = first.cf;
        let cf = DATA_CFS.get(cf_id as usize).ok_or_else(|| {
            StoreError::Corrupt(format!("snapshot {key}: unknown column family id {cf_id}"))
        })?;
        let mut failed: Option<StoreError> = None;
        let mut head = Some(first);
        let section = std::iter::from_fn(|| {
            let p = match head.take() {
                Some(p) => p,
                None => match reader.next_pair() {
                    Ok(Some(p)) if p.cf == cf_id => p,
                    Ok(other) => {
                        next = other;
                        return None;
                    }
                    Err(e) => {
                        failed = Some(e);
                        return None;
                    }
                },
            };
            if p.key.as_slice() < start.as_slice() || p.key.as_slice() >= end.as_slice() {
                failed =
                    Some(StoreError::Corrupt(format!("snapshot {key}: a key outside the region")));
                return None;
            }
            bytes += (p.key.len() + p.value.len()) as u64;
            pace.add((p.key.len() + p.value.len()) as u64);
            Some((p.key, p.value))
        });
        pairs += ctx.kv.ingest_sorted(cf, section)?;
        // Whatever was ingested before a failure stays invisible to users: the region is
        // still Applying, and the restart clears it and ingests again.
        if let Some(e) = failed {
            return Err(e);
        }
        if next.is_some() && ctx.failpoints.fire(points::SNAPSHOT_MID_INGEST) {
            return Ok(Err(Crashed));
        }
    }
    if ctx.failpoints.fire(points::SNAPSHOT_MID_INGEST)
        || ctx.failpoints.fire(points::SNAPSHOT_BEFORE_NORMAL)
    {
        return Ok(Err(Crashed));
    }
    let mut wb = WriteBatch::new();
    let state = RegionLocalState {
        state: PeerState::Normal as i32,
        region: Some(region),
        store_incarnations: incarnations,
    };
    wb.put_msg(CF_DEFAULT, &keys::region_state_key(key.region_id), &state);
    wb.delete(CF_DEFAULT, &keys::applying_snapshot_key(key.region_id));
    // The ingested tables are durable already; this fsync covers the clearing deletes.
    ctx.kv.write(wb, true)?;
    crate::snap::remove_file(&path);
    metrics::SNAPSHOTS_APPLIED.inc();
    tracing::info!(%key, pairs, bytes, ms = started.elapsed().as_millis() as u64, "applied a snapshot");
    Ok(Ok(()))
}

/// Spreads a generation's or an install's disk writes over time within the store's
/// snapshot I/O budget: a burst of a gigabyte would stall every fsync on the machine.
struct Pacer<'a> {
    mgr: &'a SnapManager,
    owed: u64,
}

impl<'a> Pacer<'a> {
    /// Bytes accounted at once.
    const STEP: u64 = 1024 * 1024;

    fn new(mgr: &'a SnapManager) -> Self {
        Pacer { mgr, owed: 0 }
    }

    fn add(&mut self, bytes: u64) {
        self.owed += bytes;
        if self.owed >= Self::STEP {
            self.mgr.throttle(self.owed);
            self.owed = 0;
        }
    }
}
