//! raftkv's wire protocol: the protobuf packages of `proto/`, generated at build time.
//!
//! The package names follow TinyKV's (and so TiKV's) protos, so readers of either recognize
//! them. `eraftpb` is all the `raft` crate needs; the rest belongs to the KV server.

#![allow(clippy::all, missing_docs, rust_2018_idioms)]

pub mod eraftpb {
    include!(concat!(env!("OUT_DIR"), "/eraftpb.rs"));
}
pub mod metapb {
    include!(concat!(env!("OUT_DIR"), "/metapb.rs"));
}
pub mod errorpb {
    include!(concat!(env!("OUT_DIR"), "/errorpb.rs"));
}
pub mod kvrpcpb {
    include!(concat!(env!("OUT_DIR"), "/kvrpcpb.rs"));
}
pub mod raft_cmdpb {
    include!(concat!(env!("OUT_DIR"), "/raft_cmdpb.rs"));
}
pub mod raft_serverpb {
    include!(concat!(env!("OUT_DIR"), "/raft_serverpb.rs"));
}
pub mod raftkvpb {
    include!(concat!(env!("OUT_DIR"), "/raftkvpb.rs"));
}
