//! Store errors, and the region errors a client can act on (`errorpb::Error`).
//!
//! Every region error but `stale_command` promises the request did not happen.

use raftkv_proto::errorpb;
use raftkv_proto::metapb;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("engine: {0}")]
    Engine(#[from] engine::Error),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("data directory {path}: {message}")]
    DataDir { path: String, message: String },
    /// The data on disk breaks an invariant; the store refuses to run on it.
    #[error("corrupt store state: {0}")]
    Corrupt(String),
    #[error("store is shutting down")]
    Stopped,
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn not_leader(region_id: u64, leader_store: u64) -> errorpb::Error {
    let leader =
        (leader_store != 0).then_some(metapb::Peer { id: leader_store, store_id: leader_store });
    errorpb::Error {
        message: format!("not leader of region {region_id}"),
        not_leader: Some(errorpb::NotLeader { region_id, leader }),
        ..Default::default()
    }
}

pub fn region_not_found(region_id: u64) -> errorpb::Error {
    errorpb::Error {
        message: format!("region {region_id} not found"),
        region_not_found: Some(errorpb::RegionNotFound { region_id }),
        ..Default::default()
    }
}

pub fn key_not_in_region(key: &[u8], region: &metapb::Region) -> errorpb::Error {
    errorpb::Error {
        message: format!("key is not in region {}", region.id),
        key_not_in_region: Some(errorpb::KeyNotInRegion {
            key: key.to_vec().into(),
            region_id: region.id,
            start_key: region.start_key.clone(),
            end_key: region.end_key.clone(),
        }),
        ..Default::default()
    }
}

pub fn epoch_not_match(region: &metapb::Region) -> errorpb::Error {
    errorpb::Error {
        message: format!("region {} epoch does not match", region.id),
        epoch_not_match: Some(errorpb::EpochNotMatch { current_regions: vec![region.clone()] }),
        ..Default::default()
    }
}

pub fn store_not_match(request_store_id: u64, actual_store_id: u64) -> errorpb::Error {
    errorpb::Error {
        message: format!(
            "request is for store {request_store_id}, this is store {actual_store_id}"
        ),
        store_not_match: Some(errorpb::StoreNotMatch { request_store_id, actual_store_id }),
        ..Default::default()
    }
}

pub fn server_is_busy(reason: &str) -> errorpb::Error {
    errorpb::Error {
        message: format!("server is busy: {reason}"),
        server_is_busy: Some(errorpb::ServerIsBusy { reason: reason.to_string(), backoff_ms: 10 }),
        ..Default::default()
    }
}

/// The proposal was in the log when leadership changed: it may still commit.
pub fn stale_command(why: &str) -> errorpb::Error {
    errorpb::Error {
        message: format!("stale command, outcome unknown: {why}"),
        stale_command: Some(errorpb::StaleCommand {}),
        ..Default::default()
    }
}

/// The store stopped before it could answer (shutdown or a fatal disk error).
pub fn store_stopped() -> errorpb::Error {
    errorpb::Error {
        message: "store is stopped".to_string(),
        server_is_busy: Some(errorpb::ServerIsBusy {
            reason: "store stopped".into(),
            backoff_ms: 100,
        }),
        ..Default::default()
    }
}
