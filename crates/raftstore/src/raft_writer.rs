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
