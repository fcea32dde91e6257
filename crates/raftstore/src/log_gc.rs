//! The raftlog-gc worker: deletes compacted raft log entries physically, in the
//! background and in bounded batches, once the apply state that records the compaction is
//! durable (a log entry never disappears before a durable `CompactLog` covers it).

use std::sync::mpsc::Receiver;

use engine::{CF_RAFT, Engine, WriteBatch};

use crate::keys;
use crate::mailbox::Mailbox;
use crate::msg::StoreMsg;
use crate::worker::Worker;

/// Entries deleted per raftdb write. Small: a write holds raftdb's journal while its
/// tombstones go into the memtable, and the raft loop's writes wait behind it (4096 per
/// write held it for 15-50 ms on a loaded 2-core box; 256 for about 1 ms).
const BATCH: usize = 256;

/// Delete the log entries of `region_id` with index in `start..end`; with `start` unknown
/// (`None`: at start-up, after a snapshot), every entry below `end`.
pub struct GcTask {
    pub region_id: u64,
    pub start: Option<u64>,
    pub end: u64,
}

/// Starts the worker; a disk failure is reported to the store through `fatal`.
pub fn start(raft: Engine, kv: Engine, fatal: Mailbox) -> std::io::Result<Worker<GcTask>> {
    Worker::start("raftlog-gc", move |rx| run(&rx, &raft, &kv, &fatal))
}

fn run(rx: &Receiver<GcTask>, raft: &Engine, kv: &Engine, fatal: &Mailbox) {
    while let Ok(task) = rx.recv() {
        if let Err(e) = collect(raft, kv, &task) {
            let _ = fatal.send(StoreMsg::Fatal(format!("raft log GC failed: {e}")));
            return;
        }
    }
}

fn collect(raft: &Engine, kv: &Engine, task: &GcTask) -> engine::Result<()> {
    // The CompactLog's apply state was written unsynced; make it durable first, or a crash
    // could bring back an apply state that still needs the entries deleted here.
    kv.sync()?;
    if let Some(start) = task.start {
        // The entries are known: delete them by key, with no read (reading them back
        // through the LSM cost as much as the deletes).
        let mut index = start;
        while index < task.end {
            let upto = task.end.min(index + BATCH as u64);
            let mut wb = WriteBatch::with_capacity((upto - index) as usize);
            for i in index..upto {
                wb.delete(CF_RAFT, &keys::raft_log_key(task.region_id, i));
            }
            raft.write(wb, false)?;
            index = upto;
        }
        return Ok(());
    }
    let end = keys::raft_log_key(task.region_id, task.end);
    let mut start = keys::raft_log_key(task.region_id, 0).to_vec();
    loop {
        let doomed = raft.scan_keys(CF_RAFT, &start, Some(&end), BATCH)?;
        let Some(last) = doomed.last() else { return Ok(()) };
        let mut wb = WriteBatch::with_capacity(doomed.len());
        for k in &doomed {
            wb.delete(CF_RAFT, k);
        }
        start = last.to_vec();
        start.push(0);
        // Unsynced: an entry that survives a crash is garbage below the truncated index,
        // collected again at the next start.
        raft.write(wb, false)?;
        if doomed.len() < BATCH {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_exactly_the_entries_below_the_end_in_batches() {
        let dir = tempfile::tempdir().expect("temp dir");
        let raft = Engine::open(&dir.path().join("raft"), &[CF_RAFT]).expect("raft engine");
        let kv = Engine::open(&dir.path().join("kv"), &engine::DATA_CFS).expect("kv engine");
        let mut wb = WriteBatch::new();
        for i in 1..=10_000u64 {
            wb.put(CF_RAFT, &keys::raft_log_key(1, i), b"e");
        }
        wb.put(CF_RAFT, &keys::raft_log_key(2, 3), b"other region");
        wb.put(CF_RAFT, &keys::raft_state_key(1), b"state");
        raft.write(wb, true).expect("write");

        let left = |raft: &Engine| {
            let (start, end) = (keys::raft_log_key(1, 0), keys::raft_log_key(1, u64::MAX));
            raft.scan_keys(CF_RAFT, &start, Some(&end), usize::MAX).expect("scan")
        };
        // Known range (a CompactLog): by key, no scan.
        collect(&raft, &kv, &GcTask { region_id: 1, start: Some(1), end: 2_001 }).expect("gc");
        assert_eq!(keys::raft_log_index(&left(&raft)[0]), Some(2_001));
        // Unknown start (start-up): whatever is left below the end.
        collect(&raft, &kv, &GcTask { region_id: 1, start: None, end: 5_001 }).expect("gc");
        assert_eq!(left(&raft).len(), 5_000);
        assert_eq!(keys::raft_log_index(&left(&raft)[0]), Some(5_001));
        assert!(raft.get(CF_RAFT, &keys::raft_log_key(2, 3)).expect("get").is_some());
        assert!(raft.get(CF_RAFT, &keys::raft_state_key(1)).expect("get").is_some());
    }
}
