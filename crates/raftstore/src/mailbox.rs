//! The raft worker's inbox. Every thread sends to it; the worker drains it once per loop.
//!
//! The worker runs either on its own thread, blocking in `recv`, or as a task on the
//! server's async runtime, which must not block there: so each send also wakes a `Notify`
//! the task awaits. A send before the task waits leaves a permit, so no wake-up is lost.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SendError, Sender};

use tokio::sync::Notify;

use crate::msg::StoreMsg;

#[derive(Clone)]
pub(crate) struct Mailbox {
    tx: Sender<StoreMsg>,
    wake: Arc<Notify>,
}

impl Mailbox {
    /// A mailbox, its receiving end, and what an async worker awaits.
    pub(crate) fn new() -> (Mailbox, Receiver<StoreMsg>, Arc<Notify>) {
        let (tx, rx) = mpsc::channel();
        let wake = Arc::new(Notify::new());
        (Mailbox { tx, wake: wake.clone() }, rx, wake)
    }

    /// Fails only once the worker is gone.
    pub(crate) fn send(&self, msg: StoreMsg) -> Result<(), SendError<StoreMsg>> {
        self.tx.send(msg)?;
        self.wake.notify_one();
        Ok(())
    }
}
