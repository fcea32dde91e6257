//! A client over the stores' handles, with the semantics of the real client library:
//! a leader cache, following not-leader hints, retrying only what certainly did not
//! happen, and reporting an unknown outcome as such.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftkv_proto::errorpb;
use raftstore::{Modify, RequestContext};

use crate::network::SimNetwork;

#[derive(Debug, Clone, PartialEq)]
pub enum OpResult<T> {
    Ok(T),
    /// The write may or may not have happened.
    Unknown(String),
    /// It certainly did not happen (the deadline passed while retrying).
    Failed(String),
}

pub struct ClusterClient {
    net: Arc<SimNetwork>,
    ids: Vec<u64>,
    leader: u64,
    pub deadline: Duration,
    attempt_timeout: Duration,
}

enum Attempt<T> {
    Done(T),
    /// Did not happen; try `next` (a hinted leader) or another store.
    Retry {
        next: Option<u64>,
    },
    Unknown(String),
}

fn classify<T>(e: &errorpb::Error) -> Attempt<T> {
    if e.stale_command.is_some() {
        return Attempt::Unknown(e.message.clone());
    }
    let hint = e.not_leader.as_ref().and_then(|nl| nl.leader).map(|p| p.store_id);
    Attempt::Retry { next: hint }
}

impl ClusterClient {
    pub fn new(net: Arc<SimNetwork>, ids: Vec<u64>) -> Self {
        let leader = ids.first().copied().unwrap_or(1);
        ClusterClient {
            net,
            ids,
            leader,
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
        }
    }

    fn run<T>(
        &mut self,
        is_write: bool,
        mut attempt: impl FnMut(&Self, u64) -> Attempt<T>,
    ) -> OpResult<T> {
        let deadline = Instant::now() + self.deadline;
        let mut tries = 0usize;
        loop {
            let target = self.leader;
            match attempt(self, target) {
                Attempt::Done(v) => return OpResult::Ok(v),
                Attempt::Unknown(why) if is_write => return OpResult::Unknown(why),
                Attempt::Unknown(_) | Attempt::Retry { next: None } => {
                    tries += 1;
                    self.leader = self.ids[tries % self.ids.len()];
                }
                Attempt::Retry { next: Some(n) } => {
                    if n == target {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    self.leader = n;
                }
            }
            if Instant::now() >= deadline {
                return OpResult::Failed(format!(
                    "no success before the deadline after {tries} tries"
                ));
            }
            if tries.is_multiple_of(self.ids.len()) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) -> OpResult<()> {
        let m = Modify::Put {
            cf: String::new(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        };
        self.write(m)
    }

    pub fn put_cf(&mut self, cf: &str, key: &[u8], value: &[u8]) -> OpResult<()> {
        let m = Modify::Put {
            cf: cf.into(),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        };
        self.write(m)
    }

    pub fn delete(&mut self, key: &[u8]) -> OpResult<()> {
        self.write(Modify::Delete { cf: String::new(), key: Bytes::copy_from_slice(key) })
    }

    fn write(&mut self, m: Modify) -> OpResult<()> {
        self.run(true, |c, target| {
            let Some(h) = c.net.handle(target) else { return Attempt::Retry { next: None } };
            let (tx, rx) = mpsc::channel();
            h.write(
                RequestContext::default(),
                vec![m.clone()],
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            match rx.recv_timeout(c.attempt_timeout) {
                Ok(Ok(())) => Attempt::Done(()),
                Ok(Err(e)) => classify(&e),
                // Proposed but never answered (timeout, or the store died): unknown.
                Err(_) => Attempt::Unknown("no answer".into()),
            }
        })
    }

    pub fn get(&mut self, key: &[u8]) -> OpResult<Option<Bytes>> {
        self.get_cf("", key)
    }

    pub fn get_cf(&mut self, cf: &str, key: &[u8]) -> OpResult<Option<Bytes>> {
        let key = Bytes::copy_from_slice(key);
        let cf = raftstore::cf_name(cf).to_string();
        self.run(false, |c, target| {
            let Some(h) = c.net.handle(target) else { return Attempt::Retry { next: None } };
            let (tx, rx) = mpsc::channel();
            let (k, cf) = (key.clone(), cf.clone());
            h.read(
                RequestContext::default(),
                key.clone(),
                Box::new(move |r| {
                    let _ = tx.send(r.map(|snap| snap.get(&cf, &k)));
                }),
            );
            match rx.recv_timeout(c.attempt_timeout) {
                Ok(Ok(Ok(v))) => Attempt::Done(v),
                Ok(Ok(Err(e))) => Attempt::Unknown(format!("engine: {e}")),
                Ok(Err(e)) => classify(&e),
                Err(_) => Attempt::Unknown("no answer".into()),
            }
        })
    }

    pub fn scan(&mut self, start: &[u8], limit: usize) -> OpResult<Vec<(Bytes, Bytes)>> {
        let start = Bytes::copy_from_slice(start);
        self.run(false, |c, target| {
            let Some(h) = c.net.handle(target) else { return Attempt::Retry { next: None } };
            let (tx, rx) = mpsc::channel();
            let s = start.clone();
            h.read(
                RequestContext::default(),
                start.clone(),
                Box::new(move |r| {
                    let _ = tx.send(r.map(|snap| snap.scan(engine::CF_DEFAULT, &s, limit)));
                }),
            );
            match rx.recv_timeout(c.attempt_timeout) {
                Ok(Ok(Ok(v))) => Attempt::Done(v),
                Ok(Ok(Err(e))) => Attempt::Unknown(format!("engine: {e}")),
                Ok(Err(e)) => classify(&e),
                Err(_) => Attempt::Unknown("no answer".into()),
            }
        })
    }

    /// Reads `key` of `cf` on store `store` only (never following a hint elsewhere): the
    /// answer comes from that store's own kvdb, so it must lead. Retries until the deadline
    /// while it does not.
    pub fn get_cf_on(&mut self, store: u64, cf: &str, key: &[u8]) -> OpResult<Option<Bytes>> {
        let (cf, key) = (raftstore::cf_name(cf).to_string(), Bytes::copy_from_slice(key));
        let k = key.clone();
        self.read_on(store, key, move |snap| snap.get(&cf, &k))
    }

    /// Like `scan` of `cf`, on store `store` only (see `get_cf_on`).
    pub fn scan_cf_on(
        &mut self,
        store: u64,
        cf: &str,
        start: &[u8],
        limit: usize,
    ) -> OpResult<Vec<(Bytes, Bytes)>> {
        let (cf, start) = (raftstore::cf_name(cf).to_string(), Bytes::copy_from_slice(start));
        let s = start.clone();
        self.read_on(store, start, move |snap| snap.scan(&cf, &s, limit))
    }

    fn read_on<T: Send + 'static>(
        &mut self,
        store: u64,
        key: Bytes,
        f: impl Fn(raftstore::RegionSnapshot) -> engine::Result<T> + Send + Clone + 'static,
    ) -> OpResult<T> {
        let deadline = Instant::now() + self.deadline;
        let mut last = String::from("store is down");
        while Instant::now() < deadline {
            if let Some(h) = self.net.handle(store) {
                let (tx, rx) = mpsc::channel();
                let f = f.clone();
                h.read(
                    RequestContext::default(),
                    key.clone(),
                    Box::new(move |r| {
                        let _ = tx.send(r.map(f));
                    }),
                );
                match rx.recv_timeout(self.attempt_timeout) {
                    Ok(Ok(Ok(v))) => return OpResult::Ok(v),
                    Ok(Ok(Err(e))) => return OpResult::Unknown(format!("engine: {e}")),
                    Ok(Err(e)) => last = format!("{e:?}"),
                    Err(_) => last = "no answer".into(),
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        OpResult::Failed(format!(
            "store {store} did not serve the read before the deadline: {last}"
        ))
    }

    /// Like `put`, panicking unless it is acknowledged.
    pub fn must_put(&mut self, key: &[u8], value: &[u8]) {
        match self.put(key, value) {
            OpResult::Ok(()) => {}
            other => panic!("put {:?} failed: {other:?}", String::from_utf8_lossy(key)),
        }
    }

    pub fn must_get(&mut self, key: &[u8]) -> Option<Bytes> {
        match self.get(key) {
            OpResult::Ok(v) => v,
            other => panic!("get {:?} failed: {other:?}", String::from_utf8_lossy(key)),
        }
    }
}
