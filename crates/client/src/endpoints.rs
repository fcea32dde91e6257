//! The endpoints a client was given, one lazily connected gRPC channel each, the store id
//! each turned out to serve (learnt from `Status`), and the leader cache.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use raftkv_proto::raftkvpb::StatusResponse;
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};

use crate::{ClientOptions, Error, Result};

/// `leader` when no leader is cached.
const NO_LEADER: usize = usize::MAX;

/// One address given by the user.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// As given, e.g. `127.0.0.1:20161`; used in messages.
    pub(crate) addr: String,
    /// Multiplexes every request to this endpoint over one HTTP/2 connection, opened on
    /// first use and reopened after a failure.
    channel: Channel,
    /// The store id this endpoint answered `Status` with; 0 until known.
    store_id: AtomicU64,
}

/// The fixed list of endpoints plus what the client learnt about them.
#[derive(Debug)]
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    /// Index of the endpoint believed to be the leader's, or `NO_LEADER`.
    leader: AtomicUsize,
    max_response_bytes: usize,
}

impl Endpoints {
    /// Parses `host:port` addresses (an `http://` prefix is added) into lazily connected
    /// channels. Duplicates are dropped. Must run inside a Tokio runtime.
    pub(crate) fn new(addrs: Vec<String>, options: &ClientOptions) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig(
                "a Client must be created inside a Tokio runtime".into(),
            ));
        }
        let mut list: Vec<Endpoint> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let addr = addr.trim().to_string();
            if addr.is_empty() || list.iter().any(|e| e.addr == addr) {
                continue;
            }
            let channel = connect_lazy(&addr, options)?;
            list.push(Endpoint { addr, channel, store_id: AtomicU64::new(0) });
        }
        if list.is_empty() {
            return Err(Error::InvalidConfig("no endpoints given".into()));
        }
        Ok(Endpoints {
            list,
            leader: AtomicUsize::new(NO_LEADER),
            max_response_bytes: options.max_response_bytes,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn get(&self, index: usize) -> &Endpoint {
        &self.list[index % self.list.len()]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.list.iter()
    }

    /// A generated client for endpoint `index`; cheap (the channel is shared).
    pub(crate) fn client(&self, index: usize) -> RaftKvClient<Channel> {
        RaftKvClient::new(self.get(index).channel.clone())
            .max_decoding_message_size(self.max_response_bytes)
    }

    /// Where a request starts: the cached leader, else the first endpoint.
    pub(crate) fn first_choice(&self) -> usize {
        match self.leader.load(Ordering::Relaxed) {
            NO_LEADER => 0,
            index => index,
        }
    }

    /// The endpoint after `index`, wrapping around.
    pub(crate) fn next_after(&self, index: usize) -> usize {
        (index + 1) % self.list.len()
    }

    /// Records that endpoint `index` just served a request as leader.
    pub(crate) fn set_leader(&self, index: usize) {
        self.leader.store(index, Ordering::Relaxed);
    }

    /// Drops the leader cache if it points at `index`, which just refused or failed.
    pub(crate) fn forget_leader(&self, index: usize) {
        let _ =
            self.leader.compare_exchange(index, NO_LEADER, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The endpoint known to serve store `store_id`.
    pub(crate) fn find_store(&self, store_id: u64) -> Option<usize> {
        self.list.iter().position(|e| e.store_id.load(Ordering::Relaxed) == store_id)
    }

    /// Endpoints whose store id is not known yet.
    pub(crate) fn unidentified(&self) -> Vec<usize> {
        (0..self.list.len())
            .filter(|&i| self.list[i].store_id.load(Ordering::Relaxed) == 0)
            .collect()
    }

    /// Remembers what a `Status` answer from endpoint `index` says about it.
    pub(crate) fn learn(&self, index: usize, status: &StatusResponse) {
        if status.store_id != 0 {
            self.get(index).store_id.store(status.store_id, Ordering::Relaxed);
        }
        if status.role == "leader" {
            self.set_leader(index);
        }
    }
}

fn connect_lazy(addr: &str, options: &ClientOptions) -> Result<Channel> {
    let invalid = |why: String| Error::InvalidConfig(format!("endpoint `{addr}`: {why}"));
    let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let endpoint = TonicEndpoint::from_shared(uri)
        .map_err(|e| invalid(format!("not a HOST:PORT address ({e})")))?;
    if endpoint.uri().port_u16().is_none() {
        return Err(invalid("no port (expected HOST:PORT)".into()));
    }
    Ok(endpoint
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // Notice a dead peer on an idle connection instead of waiting for the deadline.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy())
}
