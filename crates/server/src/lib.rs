//! raftkv's server: the `raftkvpb.RaftKv` gRPC service over a raftstore `Store`, the
//! store-to-store transport, configuration, and the status HTTP endpoint.

pub mod config;
