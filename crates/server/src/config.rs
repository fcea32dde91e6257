//! The server's configuration: SPEC's TOML tables, keys and defaults, exactly.
//!
//! `--id`, `--peers`, `--data-dir` and `--cluster-token` are flags only (see `NodeFlags`);
//! everything else comes from the TOML file and may be overridden by a flag of the same
//! name with dashes, e.g. `--election-tick 20` (flags win).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSection {
    pub base_tick_ms: u64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub max_inflight_msgs: usize,
    pub max_size_per_msg_bytes: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            base_tick_ms: 50,
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            max_inflight_msgs: 256,
            max_size_per_msg_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftstoreSection {
    pub raft_log_gc_tick_interval_ms: u64,
    pub raft_log_gc_count_limit: u64,
    pub raft_log_gc_size_limit_bytes: u64,
    pub snap_chunk_bytes: u64,
    pub snap_max_bytes_per_sec: u64,
    pub snap_max_concurrent_send: usize,
    pub snap_max_concurrent_recv: usize,
}

impl Default for RaftstoreSection {
    fn default() -> Self {
        RaftstoreSection {
            raft_log_gc_tick_interval_ms: 10_000,
            raft_log_gc_count_limit: 100_000,
            raft_log_gc_size_limit_bytes: 268_435_456,
            snap_chunk_bytes: 1_048_576,
            snap_max_bytes_per_sec: 104_857_600,
            snap_max_concurrent_send: 4,
            snap_max_concurrent_recv: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_scan_limit: u32,
    pub max_message_bytes: usize,
    /// Where `/metrics` and `/health` are served; empty: no status server.
    pub status_addr: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            max_key_bytes: 8192,
            max_value_bytes: 1_048_576,
            max_scan_limit: 10_000,
            max_message_bytes: 67_108_864,
            status_addr: String::new(),
        }
    }
}

/// The whole TOML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub raft: RaftSection,
    pub raftstore: RaftstoreSection,
    pub server: ServerSection,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid --peers: {0}")]
    Peers(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl FileConfig {
    pub fn from_toml(text: &str, path: PathBuf) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path, message: e.to_string() })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text, path.to_path_buf())
    }

    /// Checks relations between keys that each parse fine alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.raft;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if r.base_tick_ms == 0 {
            return bad("raft.base_tick_ms must be greater than 0");
        }
        if r.heartbeat_tick == 0 || r.election_tick <= r.heartbeat_tick {
            return bad("raft.election_tick must be greater than raft.heartbeat_tick > 0");
        }
        if r.max_inflight_msgs == 0 {
            return bad("raft.max_inflight_msgs must be greater than 0");
        }
        let s = &self.server;
        if s.max_key_bytes == 0 || s.max_value_bytes == 0 || s.max_scan_limit == 0 {
            return bad("server limits must be greater than 0");
        }
        if s.max_message_bytes < s.max_key_bytes + s.max_value_bytes + 1024 {
            return bad("server.max_message_bytes must hold a maximal key and value");
        }
        // Raft fills an append up to max_size_per_msg and may exceed it by one entry: a
        // message over max_message_bytes could never be delivered, stalling replication.
        let max_append = r.max_size_per_msg_bytes as usize + s.max_key_bytes + s.max_value_bytes;
        if max_append + 4096 > s.max_message_bytes {
            return bad("raft.max_size_per_msg_bytes is too large for server.max_message_bytes");
        }
        let rs = &self.raftstore;
        if rs.snap_chunk_bytes == 0
            || rs.snap_max_concurrent_send == 0
            || rs.snap_max_concurrent_recv == 0
        {
            return bad("raftstore snapshot limits must be greater than 0");
        }
        Ok(())
    }
}

/// Parses `--peers 1=127.0.0.1:20161,2=127.0.0.1:20162,...` into store id -> address.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| ConfigError::Peers(format!("`{part}` is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| ConfigError::Peers(format!("`{id}` is not a store id")))?;
        if id == 0 {
            return Err(ConfigError::Peers("store ids start at 1".into()));
        }
        let addr = addr.trim();
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Peers(format!("`{addr}` is not an IP:PORT address")));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(ConfigError::Peers(format!("store {id} is listed twice")));
        }
    }
    if peers.is_empty() {
        return Err(ConfigError::Peers("no peers given".into()));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_specs() {
        let c = FileConfig::from_toml("", "x".into()).expect("empty file");
        assert_eq!(c, FileConfig::default());
        assert_eq!(c.raft.base_tick_ms, 50);
        assert!(c.raft.pre_vote && c.raft.check_quorum);
        assert_eq!(c.raftstore.raft_log_gc_count_limit, 100_000);
        assert_eq!(c.server.max_scan_limit, 10_000);
        assert_eq!(c.server.status_addr, "");
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn file_overrides_and_rejects_unknown_keys() {
        let c = FileConfig::from_toml("[raft]\nelection_tick = 20\n", "x".into()).expect("ok");
        assert_eq!(c.raft.election_tick, 20);
        assert_eq!(c.raft.heartbeat_tick, 2);
        let too_big = "[raft]\nmax_size_per_msg_bytes = 67108864\n";
        let c = FileConfig::from_toml(too_big, "x".into()).expect("parses");
        assert!(c.validate().is_err(), "appends that cannot fit in a gRPC message");
        let err = FileConfig::from_toml("[raft]\nelection_ticks = 20\n", "x".into());
        assert!(err.is_err(), "a misspelt key must not be silently ignored");
    }

    #[test]
    fn peers_parse_and_reject_garbage() {
        let p = parse_peers("1=127.0.0.1:20161,2=127.0.0.1:20162").expect("ok");
        assert_eq!(p[&2], "127.0.0.1:20162");
        assert!(parse_peers("1=127.0.0.1:20161,1=127.0.0.1:20162").is_err());
        assert!(parse_peers("0=127.0.0.1:1").is_err());
        assert!(parse_peers("1=localhost").is_err());
        assert!(parse_peers("").is_err());
    }
}
