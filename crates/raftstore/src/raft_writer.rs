//! The raft writer: persists raft loops' raftdb batches in the background, in order, so the
//! loop goes on while a write and its fsync are in flight (a leader counts the followers'
//! acknowledgements meanwhile; a follower answers heartbeats and takes the next appends).
//!
//! Each task is one loop's group commit. Once it is durable, the writer itself sends the
//! messages that waited for it (append responses, votes: thesis §3.8), so an
//! acknowledgement does not wait for the loop to come round, and then tells the loop which
//! Readies are persisted (`StoreMsg::Persisted`). Tasks complete in submission order, which
//! is what `RawNode::on_persist_ready` requires. A failed write stops the store: the writer
//! reports it and takes no further task (never retry an fsync and carry on).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use engine::{Engine, WriteBatch};
use raftkv_proto::raft_serverpb::RaftMessage;

use crate::mailbox::Mailbox;
use crate::metrics;
use crate::msg::StoreMsg;
use crate::transport::Transport;
use crate::worker::Worker;

/// Bounds on what one write merges, so that one fsync does not wait behind an unbounded
/// batch (and the memory it holds stays bounded).
const MAX_TASKS_PER_WRITE: usize = 256;
const MAX_BYTES_PER_WRITE: usize = 4 << 20;

/// One raft loop's raftdb batch and what waits for it.
pub(crate) struct WriteTask {
    pub wb: WriteBatch,
    pub sync: bool,
    /// Sent once the batch is durable.
    pub messages: Vec<RaftMessage>,
    /// (region id, Ready number) of every Ready the batch persists.
    pub readies: Vec<(u64, u64)>,
}

pub(crate) struct RaftWriter {
    worker: Worker<WriteTask>,
    /// Set by a crash (`StoreMsg::Kill`): tasks not yet started are dropped, as a crash
    /// loses what was not written.
    killed: Arc<AtomicBool>,
}

impl RaftWriter {
    pub fn start(
        store_id: u64,
        raft: Engine,
        transport: Arc<dyn Transport>,
        loop_mailbox: Mailbox,
    ) -> std::io::Result<Self> {
        let killed = Arc::new(AtomicBool::new(false));
        let stop = killed.clone();
        let worker = Worker::start(&format!("raft-writer-{store_id}"), move |rx| {
            run(&rx, &raft, transport.as_ref(), &loop_mailbox, &stop);
        })?;
        Ok(RaftWriter { worker, killed })
    }

    pub fn submit(&self, task: WriteTask) {
        metrics::BACKGROUND_RAFT_BATCHES.inc();
        self.worker.schedule(task);
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }
}

fn run(
    rx: &Receiver<WriteTask>,
    raft: &Engine,
    transport: &dyn Transport,
    mailbox: &Mailbox,
    killed: &AtomicBool,
) {
    while let Ok(first) = rx.recv() {
        if killed.load(Ordering::SeqCst) {
            return;
        }
        let (task, writes) = coalesce(first, rx);
        metrics::BACKGROUND_RAFT_WRITES.inc();
        if let Err(e) = write_raft(raft, task.wb, task.sync) {
            let _ = mailbox.send(StoreMsg::Fatal(format!("raft log write failed: {e}")));
            return;
        }
        if killed.load(Ordering::SeqCst) {
            return;
        }
        if !task.messages.is_empty() {
            for m in task.messages {
                transport.send(m);
            }
            transport.flush();
        }
        if mailbox.send(StoreMsg::Persisted { readies: task.readies, writes }).is_err() {
            return;
        }
    }
}

/// Tasks queued behind one share its write and fsync (group commit across loops, which go
/// on while a write is in flight); returns the merged task and how many it stands for.
fn coalesce(mut task: WriteTask, rx: &Receiver<WriteTask>) -> (WriteTask, usize) {
    let mut writes = 1;
    while writes < MAX_TASKS_PER_WRITE && task.wb.size_bytes() < MAX_BYTES_PER_WRITE {
        let Ok(next) = rx.try_recv() else { break };
        task.wb.append(next.wb);
        task.sync |= next.sync;
        task.messages.extend(next.messages);
        task.readies.extend(next.readies);
        writes += 1;
    }
    (task, writes)
}

/// Writes a loop's raftdb batch, fsynced if `sync`. A batch that need not be synced only
/// moves the commit index, which a crash may lose (the leader tells it again, and a start
/// raises it to the applied index): it stays in the journal's buffer until the next synced
/// write takes it along, saving a `write(2)` on the path of every commit. A failed write or
/// fsync must stop the store: the caller never retries it.
pub(crate) fn write_raft(raft: &Engine, wb: WriteBatch, sync: bool) -> engine::Result<()> {
    if wb.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    if sync {
        raft.write(wb, true)?;
    } else {
        raft.write_buffered(wb)?;
    }
    metrics::FSYNC_SECONDS.observe(start.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::mpsc::Receiver;
    use std::time::Duration;

    use engine::CF_RAFT;
    use raftkv_proto::metapb::Peer as PeerMeta;

    use super::*;

    /// Records what the writer sends, and what the engine held at that moment.
    struct Recorder {
        engine: Engine,
        sent: Mutex<Vec<(u64, Option<bytes::Bytes>)>>,
    }

    impl Transport for Recorder {
        fn send(&self, msg: RaftMessage) {
            let held = self.engine.get(CF_RAFT, b"key").expect("get");
            if let Ok(mut sent) = self.sent.lock() {
                sent.push((msg.region_id, held));
            }
        }
    }

    /// A writer over a fresh engine, what it sends recorded, what it reports received.
    struct Setup {
        _dir: tempfile::TempDir,
        raft: Engine,
        transport: Arc<Recorder>,
        reports: Receiver<StoreMsg>,
        writer: RaftWriter,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().expect("dir");
        let raft = Engine::open(dir.path(), &[CF_RAFT]).expect("engine");
        let transport = Arc::new(Recorder { engine: raft.clone(), sent: Mutex::new(Vec::new()) });
        let (mailbox, reports, _wake) = Mailbox::new();
        let writer =
            RaftWriter::start(1, raft.clone(), transport.clone(), mailbox).expect("writer");
        Setup { _dir: dir, raft, transport, reports, writer }
    }

    fn task(value: &[u8], tag: u64, sync: bool) -> WriteTask {
        let mut wb = WriteBatch::new();
        wb.put(CF_RAFT, b"key", value);
        let to = PeerMeta { id: 2, store_id: 2 };
        let msg = RaftMessage { region_id: tag, to_peer: Some(to), ..Default::default() };
        WriteTask { wb, sync, messages: vec![msg], readies: vec![(1, tag)] }
    }

    /// Every `Persisted` the writer reports until `writes` batches are accounted for.
    fn persisted(rx: &Receiver<StoreMsg>, writes: usize) -> Vec<(u64, u64)> {
        let mut readies = Vec::new();
        let mut seen = 0;
        while seen < writes {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(StoreMsg::Persisted { readies: r, writes: w }) => {
                    readies.extend(r);
                    seen += w;
                }
                Ok(_) => panic!("the writer sent something other than Persisted"),
                Err(e) => panic!("no Persisted within 10 s: {e}"),
            }
        }
        readies
    }

    #[test]
    fn batches_are_written_in_order_and_acknowledged_once_written() {
        let Setup { _dir, raft, transport, reports: rx, writer } = setup();
        for tag in 1..=50 {
            writer.submit(task(format!("v{tag}").as_bytes(), tag, tag % 2 == 0));
        }
        let readies = persisted(&rx, 50);
        assert_eq!(readies, (1..=50).map(|tag| (1, tag)).collect::<Vec<_>>(), "in order");
        let sent = transport.sent.lock().map(|s| s.clone()).unwrap_or_default();
        let tags: Vec<u64> = sent.iter().map(|(tag, _)| *tag).collect();
        assert_eq!(tags, (1..=50).collect::<Vec<_>>(), "acknowledgements in order");
        for (tag, held) in sent {
            // Written before its acknowledgement left: this batch's value, or a later one
            // merged into the same write.
            let held = held.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
            let written: u64 = held.trim_start_matches('v').parse().unwrap_or(0);
            assert!(written >= tag, "ack {tag} left while the engine held {held:?}");
        }
        // The last batch wins: merged batches keep their order.
        assert_eq!(raft.get(CF_RAFT, b"key").expect("get").as_deref(), Some(&b"v50"[..]));
    }

    #[test]
    fn a_killed_writer_writes_and_sends_nothing_more() {
        let Setup { _dir, raft, transport, reports: rx, writer } = setup();
        writer.kill();
        writer.submit(task(b"lost", 7, true));
        drop(writer); // joins the thread
        assert!(rx.try_recv().is_err(), "nothing reported persisted");
        assert!(transport.sent.lock().map(|s| s.is_empty()).unwrap_or(false), "nothing sent");
        assert_eq!(raft.get(CF_RAFT, b"key").expect("get"), None, "nothing written");
    }
}
