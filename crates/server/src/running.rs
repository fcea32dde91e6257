//! One store's server, started and stopped as a unit: the store, its gRPC transport to the
//! other stores, the `RaftKv` service and the optional status HTTP server.
//!
//! Stop order matters: the store stops first (a leader hands leadership over, which needs
//! both the transport and the service), then the transport drains, then the listeners
//! close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raftkv_proto::raftkvpb::raft_kv_server::RaftKvServer;
use raftstore::{SnapConfig, Store, StoreConfig, StoreHandle, cluster_id_from_token};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::service::KvService;
use crate::status_http;
use crate::transport::GrpcTransport;
use crate::validate::Limits;
use crate::{ServerArgs, ServerError};

/// How long the transport may take to write out what it holds at shutdown.
const TRANSPORT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long open connections may take to finish at shutdown before they are cut.
const SERVE_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often `stopped` looks at the store.
const STOPPED_POLL: Duration = Duration::from_millis(50);
/// HTTP/2 receive windows of the server: store-to-store streams carry megabytes of
/// entries, and h2's 64 KiB default would stall them on round trips.
const STREAM_WINDOW_BYTES: u32 = 4 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RunningServer {
    id: u64,
    addr: SocketAddr,
    status_addr: Option<SocketAddr>,
    store: StoreHandle,
    transport: Arc<GrpcTransport>,
    /// Set to true to end `Raft` streams and stop both listeners.
    stopping: watch::Sender<bool>,
    /// `None` once shut down.
    grpc: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    status: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Starts the store in `args.data_dir` and serves it on the address `args.id` has in
    /// `args.peers` (and on `server.status_addr` if set). Listeners are bound before the
    /// store starts, so a taken port fails fast without touching the data dir.
    pub async fn start(args: ServerArgs) -> Result<Self, ServerError> {
        args.config.validate()?;
        let address = args.peers.get(&args.id).ok_or(ServerError::NotInPeers(args.id))?.clone();
        let listener = bind(&address).await?;
        let addr = local_addr(&listener, &address)?;
        let status_listener = match args.config.server.status_addr.as_str() {
            "" => None,
            status_addr => Some(bind(status_addr).await?),
        };
        let status_addr = match &status_listener {
            Some(l) => Some(local_addr(l, &args.config.server.status_addr)?),
            None => None,
        };

        let max_message_bytes = args.config.server.max_message_bytes;
        let transport = GrpcTransport::new(args.id, &args.peers, max_message_bytes)
            .map_err(ServerError::PeerAddress)?;
        let transport = Arc::new(transport);
        let store_cfg = store_config(&args);
        let store_transport = transport.clone();
        // Opening the engines reads (and may replay) the data dir: keep it off the workers.
        let opened = tokio::task::spawn_blocking(move || Store::open(store_cfg, store_transport))
            .await
            .map_err(|e| ServerError::Task(format!("store start: {e}")))?;
        let (store, runner) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                transport.close(Duration::ZERO).await;
                return Err(e.into());
            }
        };
        transport.set_store(store.clone());
        // The raft worker is a task of this runtime: requests, raft messages and their
        // answers pass between tasks of one thread instead of waking threads.
        tokio::spawn(runner.run());

        let (stopping, stopping_rx) = watch::channel(false);
        let limits = Limits::from_config(&args.config.server);
        let service = KvService::new(store.clone(), address.clone(), limits, stopping_rx.clone());
        let service = RaftKvServer::new(service)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut stop_grpc = stopping_rx.clone();
        let grpc = tokio::spawn(
            Server::builder()
                // Pings find a peer that vanished mid-stream, so its `Raft` handler ends.
                .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
                .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
                .initial_stream_window_size(STREAM_WINDOW_BYTES)
                .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
                .serve_with_incoming_shutdown(service, incoming, async move {
                    let _ = stop_grpc.wait_for(|stopping| *stopping).await;
                }),
        );
        let status = status_listener
            .map(|l| tokio::spawn(status_http::serve(l, store.clone(), stopping_rx)));
        tracing::info!(
            store_id = args.id,
            %addr,
            status_addr = ?status_addr,
            peers = ?args.peers,
            data_dir = %args.data_dir.display(),
            "raftkv server started"
        );
        Ok(RunningServer {
            id: args.id,
            addr,
            status_addr,
            store,
            transport,
            stopping,
            grpc: Some(grpc),
            status,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the gRPC service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    pub fn store(&self) -> &StoreHandle {
        &self.store
    }

    /// Resolves when the server stopped by itself: the store hit a fatal error (a failed
    /// write or fsync) or the gRPC server failed. `shutdown` then says why.
    pub async fn stopped(&self) {
        let grpc_ended = || self.grpc.as_ref().is_none_or(JoinHandle::is_finished);
        while !self.store.is_stopped() && !grpc_ended() {
            tokio::time::sleep(STOPPED_POLL).await;
        }
    }

    /// Stops the store (a leader hands leadership over first), waits for it, then stops
    /// the transport and the listeners. Returns the store's error if it had failed.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        tracing::info!(store_id = self.id, "shutting down");
        self.store.shutdown();
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || store.join())
            .await
            .map_err(|e| ServerError::Task(format!("store join: {e}")));
        self.transport.close(TRANSPORT_CLOSE_TIMEOUT).await;
        let _ = self.stopping.send(true);
        let served = match self.grpc.take() {
            Some(task) => finish(task).await.and_then(|r| r.map_err(ServerError::Serve)),
            None => Ok(()),
        };
        let status = match self.status.take() {
            Some(task) => finish(task).await.and_then(|r| r.map_err(ServerError::StatusServer)),
            None => Ok(()),
        };
        tracing::info!(store_id = self.id, "stopped");
        // The store's own error (a failed fsync) is the one that matters most.
        stored??;
        served?;
        status
    }
}

impl Drop for RunningServer {
    /// A server dropped without `shutdown` (a failing test) still stops, so nothing keeps
    /// running behind the caller's back; it just does not wait.
    fn drop(&mut self) {
        if self.grpc.is_some() {
            self.store.shutdown();
            let _ = self.stopping.send(true);
        }
    }
}

async fn bind(address: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind { addr: address.to_string(), source })
}

fn local_addr(listener: &TcpListener, address: &str) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Bind { addr: address.to_string(), source })
}

/// Waits for a listener's task to end after the stop signal. Connections still open after
/// `SERVE_STOP_TIMEOUT` are cut: the store is already stopped, nothing is lost.
async fn finish<E>(mut task: JoinHandle<Result<(), E>>) -> Result<Result<(), E>, ServerError> {
    match tokio::time::timeout(SERVE_STOP_TIMEOUT, &mut task).await {
        Ok(joined) => joined.map_err(|e| ServerError::Task(e.to_string())),
        Err(_) => {
            tracing::warn!("connections still open after {SERVE_STOP_TIMEOUT:?}; cutting them");
            task.abort();
            Ok(Ok(()))
        }
    }
}

/// The store's configuration: `[raft]` and the cluster token mapped onto raftstore's.
fn store_config(args: &ServerArgs) -> StoreConfig {
    let r = &args.config.raft;
    let mut cfg = StoreConfig::new(args.id, args.peers.clone(), args.data_dir.clone());
    cfg.cluster_id = cluster_id_from_token(&args.cluster_token);
    cfg.base_tick = Duration::from_millis(r.base_tick_ms);
    cfg.election_tick = r.election_tick;
    cfg.heartbeat_tick = r.heartbeat_tick;
    cfg.pre_vote = r.pre_vote;
    cfg.check_quorum = r.check_quorum;
    cfg.max_inflight_msgs = r.max_inflight_msgs;
    cfg.max_size_per_msg_bytes = r.max_size_per_msg_bytes;
    let rs = &args.config.raftstore;
    cfg.raft_log_gc_tick_interval = Duration::from_millis(rs.raft_log_gc_tick_interval_ms);
    cfg.raft_log_gc_count_limit = rs.raft_log_gc_count_limit;
    cfg.raft_log_gc_size_limit_bytes = rs.raft_log_gc_size_limit_bytes;
    cfg.snap = SnapConfig {
        chunk_bytes: rs.snap_chunk_bytes as usize,
        max_bytes_per_sec: rs.snap_max_bytes_per_sec,
        max_concurrent_send: rs.snap_max_concurrent_send,
        max_concurrent_recv: rs.snap_max_concurrent_recv,
    };
    cfg
}
