//! Moving one snapshot file between stores, independent of the wire: a transport reads
//! chunks from an `OutgoingSnapshot` and writes them into the receiver's `IncomingSnapshot`
//! (the gRPC `Snapshot` stream in the server, a thread in the test network).
//!
//! Both ends hold one of the store's bounded transfer slots and pass every chunk through
//! the store's byte-rate limiter, so only a chunk or two is in memory per transfer. Both
//! block (file I/O and the rate limit): run them on threads that may block.
//!
//! The sender always learns the outcome: `finish(true)` once the receiver has the whole
//! file, and `report_snapshot(false)` to Raft in every other case (an error, an early
//! drop), so the leader retries.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::Arc;

use prost::Message as _;
use raftkv_proto::eraftpb::MessageType;
use raftkv_proto::raft_serverpb::{RaftMessage, RaftSnapshotData, SnapshotMeta};

use super::file::BYTES_PER_SYNC;
use super::{Pin, Slot, SnapKey, SnapManager, remove_file, sync_dir};
use crate::store::RejectedMessage;

#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error(transparent)]
    Rejected(#[from] RejectedMessage),
    #[error("too many snapshot {0} in progress; retry later")]
    Busy(&'static str),
    #[error("snapshot of {0} is no longer available (a newer one replaced it)")]
    Gone(SnapKey),
    #[error("malformed snapshot message: {0}")]
    Malformed(&'static str),
    #[error("snapshot transfer failed: {0}")]
    Transfer(String),
}

type Report = Box<dyn FnOnce(bool) + Send>;
type Deliver = Box<dyn FnOnce(RaftMessage) -> Result<(), RejectedMessage> + Send>;

/// The `MsgSnapshot` inside `msg`, its key and the file's meta.
fn parse(msg: &RaftMessage) -> Result<(SnapKey, SnapshotMeta), SnapError> {
    let m = msg.message.as_ref().ok_or(SnapError::Malformed("no raft message"))?;
    if m.msg_type() != MessageType::MsgSnapshot {
        return Err(SnapError::Malformed("not a MsgSnapshot"));
    }
    let snap = m.snapshot.as_ref().ok_or(SnapError::Malformed("MsgSnapshot without snapshot"))?;
    let data = RaftSnapshotData::decode(snap.data.as_ref())
        .map_err(|_| SnapError::Malformed("undecodable snapshot data"))?;
    let meta = data.meta.ok_or(SnapError::Malformed("snapshot data without file meta"))?;
    let key = SnapKey::of(msg.region_id, snap);
    if key.index == 0 || data.region.is_none_or(|r| r.id != msg.region_id) {
        return Err(SnapError::Malformed("snapshot metadata disagrees with the message"));
    }
    Ok((key, meta))
}

/// The sending end: reads a generated snapshot file in chunks.
pub struct OutgoingSnapshot {
    msg: RaftMessage,
    key: SnapKey,
    file: File,
    remaining: u64,
    size: u64,
    mgr: Arc<SnapManager>,
    report: Option<Report>,
    _pin: Pin,
    _slot: Slot,
}

impl OutgoingSnapshot {
    /// `report` tells Raft the outcome; on an error here it has already been told.
    pub(crate) fn open(
        mgr: &Arc<SnapManager>,
        msg: RaftMessage,
        report: Report,
    ) -> Result<Self, SnapError> {
        let opened = (|| {
            let (key, meta) = parse(&msg)?;
            let slot = mgr.try_slot(false).ok_or(SnapError::Busy("sends"))?;
            let pin = mgr.pin(key).ok_or(SnapError::Gone(key))?;
            let path = mgr.generated_path(&key);
            let file = File::open(&path)
                .map_err(|e| SnapError::Transfer(format!("open {}: {e}", path.display())))?;
            Ok((key, meta.size_bytes, file, pin, slot))
        })();
        match opened {
            Ok((key, size, file, pin, slot)) => Ok(OutgoingSnapshot {
                msg,
                key,
                file,
                remaining: size,
                size,
                mgr: mgr.clone(),
                report: Some(report),
                _pin: pin,
                _slot: slot,
            }),
            Err(e) => {
                crate::metrics::SNAPSHOT_SEND_FAILURES.inc();
                report(false);
                Err(e)
            }
        }
    }

    /// The MsgSnapshot, with the snapshot's metadata, size and checksum: the first chunk.
    pub fn message(&self) -> &RaftMessage {
        &self.msg
    }

    pub fn key(&self) -> SnapKey {
        self.key
    }

    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// The next chunk of the file (`snap_chunk_bytes` at most), waiting for the rate limit;
    /// `None` at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, SnapError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let len = self.remaining.min(self.mgr.cfg.chunk_bytes as u64) as usize;
        let mut chunk = vec![0u8; len];
        self.file
            .read_exact(&mut chunk)
            .map_err(|e| SnapError::Transfer(format!("read {}: {e}", self.key)))?;
        self.remaining -= len as u64;
        super::drop_cached(&self.file, self.size - self.remaining);
        self.mgr.limiter.consume_blocking(len as u64);
        crate::metrics::SNAPSHOT_BYTES_SENT.inc_by(len as u64);
        Ok(Some(chunk))
    }

    /// Tells Raft whether the receiver got the whole snapshot.
    pub fn finish(mut self, delivered: bool) {
        if let Some(report) = self.report.take() {
            let delivered = delivered && self.remaining == 0;
            if delivered {
                crate::metrics::SNAPSHOTS_SENT.inc();
            } else {
                crate::metrics::SNAPSHOT_SEND_FAILURES.inc();
            }
            report(delivered);
        }
    }
}

impl Drop for OutgoingSnapshot {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            crate::metrics::SNAPSHOT_SEND_FAILURES.inc();
            report(false);
        }
    }
}

/// The receiving end: writes chunks into a temp file; `finish` checks, syncs and renames it
/// and hands the MsgSnapshot to the store.
pub struct IncomingSnapshot {
    msg: Option<RaftMessage>,
    key: SnapKey,
    meta: SnapshotMeta,
    temp: std::path::PathBuf,
    file: File,
    hasher: crc32fast::Hasher,
    written: u64,
    synced: u64,
    mgr: Arc<SnapManager>,
    deliver: Option<Deliver>,
    _slot: Slot,
}

impl IncomingSnapshot {
    pub(crate) fn create(
        mgr: &Arc<SnapManager>,
        msg: RaftMessage,
        deliver: Deliver,
    ) -> Result<Self, SnapError> {
        let (key, meta) = parse(&msg)?;
        let slot = mgr.try_slot(true).ok_or(SnapError::Busy("receives"))?;
        let temp = mgr.temp_path(&key);
        let file = File::create(&temp)
            .map_err(|e| SnapError::Transfer(format!("create {}: {e}", temp.display())))?;
        Ok(IncomingSnapshot {
            msg: Some(msg),
            key,
            meta,
            temp,
            file,
            hasher: crc32fast::Hasher::new(),
            written: 0,
            synced: 0,
            mgr: mgr.clone(),
            deliver: Some(deliver),
            _slot: slot,
        })
    }

    /// Appends a chunk, waiting for the rate limit.
    pub fn write(&mut self, data: &[u8]) -> Result<(), SnapError> {
        if self.written + data.len() as u64 > self.meta.size_bytes {
            return Err(SnapError::Transfer(format!(
                "{}: more than the announced {} bytes",
                self.key, self.meta.size_bytes
            )));
        }
        self.mgr.limiter.consume_blocking(data.len() as u64);
        self.file
            .write_all(data)
            .map_err(|e| SnapError::Transfer(format!("write {}: {e}", self.temp.display())))?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        crate::metrics::SNAPSHOT_BYTES_RECEIVED.inc_by(data.len() as u64);
        if self.written - self.synced >= BYTES_PER_SYNC {
            self.file.sync_data().map_err(|e| SnapError::Transfer(format!("fsync: {e}")))?;
            self.synced = self.written;
            super::drop_cached(&self.file, self.synced);
        }
        Ok(())
    }

    /// Checks size and checksum, makes the file durable under its final name, and steps the
    /// MsgSnapshot into the store.
    pub fn finish(mut self) -> Result<(), SnapError> {
        let crc = std::mem::take(&mut self.hasher).finalize();
        if self.written != self.meta.size_bytes || crc != self.meta.crc32 {
            return Err(SnapError::Transfer(format!(
                "{}: got {} bytes with crc {crc:#010x}, expected {} bytes with crc {:#010x}",
                self.key, self.written, self.meta.size_bytes, self.meta.crc32
            )));
        }
        let io = |what: &str, e: std::io::Error| SnapError::Transfer(format!("{what}: {e}"));
        self.file.sync_all().map_err(|e| io("fsync", e))?;
        let path = self.mgr.received_path(&self.key);
        std::fs::rename(&self.temp, &path).map_err(|e| io("rename", e))?;
        sync_dir(self.mgr.dir()).map_err(|e| io("fsync dir", e))?;
        let (Some(msg), Some(deliver)) = (self.msg.take(), self.deliver.take()) else {
            return Err(SnapError::Malformed("finished twice"));
        };
        deliver(msg).map_err(SnapError::Rejected)
    }
}

impl Drop for IncomingSnapshot {
    fn drop(&mut self) {
        if self.deliver.is_some() {
            remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use raftkv_proto::eraftpb::{Message, Snapshot, SnapshotMetadata};
    use raftkv_proto::metapb::Region;

    use super::*;
    use crate::snap::SnapConfig;

    fn announce(payload: &[u8]) -> RaftMessage {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(payload);
        let data = RaftSnapshotData {
            region: Some(Region { id: 1, ..Default::default() }),
            meta: Some(SnapshotMeta {
                size_bytes: payload.len() as u64,
                crc32: hasher.finalize(),
                cfs: vec![],
            }),
            ..Default::default()
        };
        let snapshot = Snapshot {
            data: data.encode_to_vec().into(),
            metadata: Some(SnapshotMetadata { index: 9, term: 3, ..Default::default() }),
        };
        RaftMessage {
            region_id: 1,
            message: Some(Message {
                msg_type: MessageType::MsgSnapshot as i32,
                snapshot: Some(Box::new(snapshot)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn manager(dir: &std::path::Path) -> Arc<SnapManager> {
        let cfg = SnapConfig {
            chunk_bytes: 4,
            max_bytes_per_sec: 0,
            max_concurrent_send: 1,
            max_concurrent_recv: 1,
        };
        SnapManager::open(dir, cfg).expect("open")
    }

    fn receive(mgr: &Arc<SnapManager>, announced: &[u8], sent: &[&[u8]]) -> (bool, bool) {
        let delivered = Arc::new(AtomicBool::new(false));
        let flag = delivered.clone();
        let deliver: Deliver = Box::new(move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let mut incoming = IncomingSnapshot::create(mgr, announce(announced), deliver)
            .expect("a well-formed announcement is accepted");
        let wrote = sent.iter().all(|c| incoming.write(c).is_ok());
        let finished = wrote && incoming.finish().is_ok();
        (finished, delivered.load(Ordering::SeqCst))
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_a_complete_intact_file_reaches_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let mgr = manager(dir.path());
        assert_eq!(receive(&mgr, b"abcdefgh", &[b"abcd", b"efgX"]), (false, false), "bad crc");
        assert_eq!(receive(&mgr, b"abcdefgh", &[b"abcd"]), (false, false), "short");
        assert_eq!(receive(&mgr, b"abcd", &[b"abcd", b"e"]), (false, false), "too long");
        assert!(
            files(dir.path()).is_empty(),
            "refused transfers leave no file: {:?}",
            files(dir.path())
        );
        assert_eq!(receive(&mgr, b"abcdefgh", &[b"abcd", b"efgh"]), (true, true));
        assert_eq!(files(dir.path()), vec!["rev_1_3_9.snap".to_string()]);
    }

    #[test]
    fn receives_beyond_the_bound_are_refused_while_one_runs() {
        let dir = tempfile::tempdir().expect("dir");
        let mgr = manager(dir.path());
        let deliver = || -> Deliver { Box::new(|_| Ok(())) };
        let first = IncomingSnapshot::create(&mgr, announce(b"x"), deliver()).expect("first");
        let second = IncomingSnapshot::create(&mgr, announce(b"x"), deliver());
        assert!(matches!(second, Err(SnapError::Busy(_))));
        drop(first);
        assert!(IncomingSnapshot::create(&mgr, announce(b"x"), deliver()).is_ok());
    }
}
