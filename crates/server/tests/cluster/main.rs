//! Whole clusters of real servers in one process, over real gRPC on 127.0.0.1.
//! One file per feature; `harness.rs` starts, stops and polls the cluster.

mod harness;

mod bad_input_changes_nothing;
mod foreign_raft_messages_change_nothing;
mod kv_through_the_leader;
mod leader_shutdown_hands_over;
mod restart_resumes_on_the_data_dir;
mod snapshot_over_grpc;
mod status_http;
