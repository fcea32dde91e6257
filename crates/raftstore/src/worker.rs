//! A background thread fed by a channel of tasks: the raftlog-gc worker and the region
//! worker. Dropping it closes the channel and waits for the thread to finish its current
//! task (the engines it writes to must outlive it).

use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

pub(crate) struct Worker<T> {
    tx: Sender<T>,
    handle: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// Spawns thread `name` running `run` over the task channel.
    pub fn start(
        name: &str,
        run: impl FnOnce(Receiver<T>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new().name(name.into()).spawn(move || run(rx))?;
        Ok(Worker { tx, handle: Some(handle) })
    }

    pub fn schedule(&self, task: T) {
        // The thread only stops on a fatal error it has already reported.
        let _ = self.tx.send(task);
    }

    /// Another handle to schedule tasks; the thread stops once every sender is gone.
    pub fn sender(&self) -> Sender<T> {
        self.tx.clone()
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        let (tx, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
