//! One lane's task: a long-lived `Raft` client stream to one peer, fed from the lane's
//! bounded queue. It connects lazily (on the first batch), and on any failure marks the lane
//! down (so `flush` drops instead of queueing), reports the peer unreachable, drains what
//! was queued, and retries after a capped exponential backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use raftkv_proto::raft_serverpb::{Done, RaftMessage};
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use tonic::{Code, Response, Status};

use crate::metrics;
use crate::transport::LaneState;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings find a peer that vanished without closing its socket (power loss, a
/// partition); the write side alone might never notice.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Messages buffered between the task and the HTTP/2 body: backpressure from a slow peer
/// stops the task here, and the lane's queue bound then drops the overflow.
const STREAM_BUFFER: usize = 256;

/// The channel settings for one peer's lanes.
pub(crate) fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

pub(crate) struct LaneTask {
    pub(crate) state: Arc<LaneState>,
    pub(crate) endpoint: Endpoint,
    pub(crate) addr: String,
    pub(crate) rx: mpsc::Receiver<Vec<RaftMessage>>,
    pub(crate) max_message_bytes: usize,
}

enum StreamEnd {
    /// The transport closed the lane; everything queued was written.
    Closed,
    /// The stream broke or never opened; `rejected` if the peer refused our messages.
    Failed { why: String, rejected: bool },
}

impl LaneTask {
    pub(crate) async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        // Log state changes (up/down), not every retry against a peer that stays down.
        let mut was_up = true;
        while let Some(first) = self.rx.recv().await {
            self.taken(first.len());
            let started = Instant::now();
            match self.stream(first, &mut was_up).await {
                StreamEnd::Closed => return,
                StreamEnd::Failed { why, rejected } => {
                    metrics::RAFT_STREAM_FAILURES.with_label_values(&[self.lane()]).inc();
                    let (to_store, lane, addr) = (self.state.store_id, self.lane(), &self.addr);
                    if rejected {
                        tracing::warn!(
                            to_store,
                            lane,
                            addr,
                            "peer rejected our raft stream: {why}"
                        );
                    } else if was_up {
                        // Peers restart; a stop is logged by the store that stops.
                        tracing::info!(to_store, lane, addr, "lost the raft stream to peer: {why}");
                    } else {
                        tracing::debug!(to_store, lane, addr, "peer still unreachable: {why}");
                    }
                    was_up = false;
                    // A stream that worked for a while was a real connection: start over.
                    if started.elapsed() >= BACKOFF_MAX {
                        backoff = BACKOFF_MIN;
                    }
                    if !self.back_off(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn lane(&self) -> &'static str {
        self.state.kind.label()
    }

    fn taken(&self, n: usize) {
        self.state.queued.fetch_sub(n, Ordering::SeqCst);
    }

    /// Opens a stream and writes batches to it until it fails or the lane closes.
    async fn stream(&mut self, first: Vec<RaftMessage>, was_up: &mut bool) -> StreamEnd {
        let channel = match self.endpoint.connect().await {
            Ok(channel) => channel,
            Err(e) => {
                self.state.dropped("peer_down", first.len());
                return StreamEnd::Failed { why: format!("cannot connect: {e}"), rejected: false };
            }
        };
        if !*was_up {
            tracing::info!(
                to_store = self.state.store_id,
                lane = self.lane(),
                "peer reachable again"
            );
            *was_up = true;
        }
        let mut client = RaftKvClient::new(channel)
            .max_encoding_message_size(self.max_message_bytes)
            .max_decoding_message_size(self.max_message_bytes);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // The call resolves only when the stream ends: its result is how we learn that the
        // peer hung up or rejected us. It is polled alongside every wait below.
        let call = client.raft(ReceiverStream::new(rx));
        tokio::pin!(call);
        let mut batch = first;
        loop {
            let n = batch.len();
            let mut rest = batch.into_iter();
            while let Some(msg) = rest.next() {
                let broken = tokio::select! {
                    sent = tx.send(msg) => sent.is_err(),
                    ended = call.as_mut() => return self.ended(ended, rest.len() + 1),
                };
                if broken {
                    // The body's receiver is gone: the call has ended, or is about to.
                    return self.ended(call.await, rest.len() + 1);
                }
            }
            metrics::RAFT_MESSAGES_SENT.with_label_values(&[self.lane()]).inc_by(n as u64);
            tokio::select! {
                next = self.rx.recv() => match next {
                    Some(next) => {
                        self.taken(next.len());
                        batch = next;
                    }
                    None => {
                        // Closing: end our side so the peer answers `Done` for what it got.
                        drop(tx);
                        let _ = call.await;
                        return StreamEnd::Closed;
                    }
                },
                ended = call.as_mut() => return self.ended(ended, 0),
            }
        }
    }

    fn ended(&self, result: Result<Response<Done>, Status>, unsent: usize) -> StreamEnd {
        self.state.dropped("peer_down", unsent);
        match result {
            Ok(_) => StreamEnd::Failed { why: "peer ended the stream".into(), rejected: false },
            Err(status) => {
                let rejected =
                    matches!(status.code(), Code::InvalidArgument | Code::FailedPrecondition);
                let why = format!("{:?}: {}", status.code(), status.message());
                StreamEnd::Failed { why, rejected }
            }
        }
    }

    /// Waits `delay` with the lane marked down, dropping whatever is queued meanwhile.
    /// Returns false if the lane was closed.
    async fn back_off(&mut self, delay: Duration) -> bool {
        self.state.down.store(true, Ordering::SeqCst);
        self.state.report_unreachable();
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        let open = loop {
            tokio::select! {
                _ = &mut deadline => break true,
                next = self.rx.recv() => match next {
                    Some(batch) => {
                        self.taken(batch.len());
                        self.state.dropped("peer_down", batch.len());
                    }
                    None => break false,
                },
            }
        };
        self.state.down.store(false, Ordering::SeqCst);
        open
    }
}
