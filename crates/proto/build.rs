//! Generates the protobuf code from `proto/` with protox, a pure-Rust protobuf compiler, so a
//! build needs no system `protoc`.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "eraftpb.proto",
    "metapb.proto",
    "errorpb.proto",
    "kvrpcpb.proto",
    "raft_cmdpb.proto",
    "raft_serverpb.proto",
    "raftkvpb.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(FILES, [&root])?;
    let mut config = prost_build::Config::new();
    // Entry payloads are shared between the log, messages and Ready without copying.
    config.bytes(["."]);
    // Deterministic iteration (and encoding) of protobuf maps.
    config.btree_map(["."]);
    // A snapshot rides in a message only rarely; boxing it keeps every Message small, and
    // messages are moved many times through step, send and Ready.
    config.boxed(".eraftpb.Message.snapshot");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}
