//! The four client RPCs seen uniformly by the routing loop: how to send one, whether it may
//! be retried after an unknown outcome, and where its response keeps its errors.

use std::future::Future;

use raftkv_proto::errorpb;
use raftkv_proto::kvrpcpb::{
    RawDeleteRequest, RawDeleteResponse, RawGetRequest, RawGetResponse, RawPutRequest,
    RawPutResponse, RawScanRequest, RawScanResponse,
};
use raftkv_proto::raftkvpb::raft_kv_client::RaftKvClient;
use tonic::transport::Channel;
use tonic::{Response, Status};

/// One client request type. Requests are cheap to clone (keys and values are `Bytes`), so
/// a retry resends the same request.
pub(crate) trait Rpc: Clone + Send + Sync + 'static {
    type Response: Send;
    /// For messages: `get`, `put`, ...
    const NAME: &'static str;
    /// A read changes nothing, so it may be retried even when an attempt's outcome is
    /// unknown; a write may not.
    const IDEMPOTENT: bool;

    fn send(
        client: RaftKvClient<Channel>,
        request: tonic::Request<Self>,
    ) -> impl Future<Output = Result<Response<Self::Response>, Status>> + Send;
    fn region_error(response: &Self::Response) -> Option<&errorpb::Error>;
    fn error(response: &Self::Response) -> &str;
}

macro_rules! rpc {
    ($req:ty, $resp:ty, $method:ident, $name:literal, $idempotent:literal) => {
        impl Rpc for $req {
            type Response = $resp;
            const NAME: &'static str = $name;
            const IDEMPOTENT: bool = $idempotent;

            async fn send(
                mut client: RaftKvClient<Channel>,
                request: tonic::Request<Self>,
            ) -> Result<Response<$resp>, Status> {
                client.$method(request).await
            }
            fn region_error(response: &$resp) -> Option<&errorpb::Error> {
                response.region_error.as_ref()
            }
            fn error(response: &$resp) -> &str {
                &response.error
            }
        }
    };
}

rpc!(RawGetRequest, RawGetResponse, raw_get, "get", true);
rpc!(RawScanRequest, RawScanResponse, raw_scan, "scan", true);
rpc!(RawPutRequest, RawPutResponse, raw_put, "put", false);
rpc!(RawDeleteRequest, RawDeleteResponse, raw_delete, "delete", false);
