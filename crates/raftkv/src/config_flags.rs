//! `raftkv server`'s configuration flags: one per key of the TOML file, named after it with
//! dashes (`raft.election_tick` is `--election-tick`). A flag given wins over the file.

use clap::{ArgAction, Args};
use server::config::FileConfig;

/// Declares the override flags and how each lands in its `FileConfig` section, from one
/// list, so a key cannot be added to one and forgotten in the other.
macro_rules! config_flags {
    ($( [$section:ident] $key:ident: $ty:ty => $value_name:literal, $doc:literal; )*) => {
        /// Every configuration key as an optional flag.
        #[derive(Debug, Clone, Default, Args)]
        #[command(next_help_heading = "Configuration (flags win over --config; defaults as in SPEC)")]
        pub struct ConfigFlags {
            $(
                #[doc = $doc]
                #[arg(long, value_name = $value_name, action = ArgAction::Set)]
                pub $key: Option<$ty>,
            )*
        }

        impl ConfigFlags {
            /// Overwrites the keys given as flags.
            pub fn apply(&self, config: &mut FileConfig) {
                $(
                    if let Some(value) = &self.$key {
                        config.$section.$key = value.clone();
                    }
                )*
            }
        }
    };
}

config_flags! {
    [raft] base_tick_ms: u64 => "MS", "[raft] Milliseconds per Raft tick (default 50)";
    [raft] election_tick: usize => "TICKS", "[raft] Ticks of silence before an election (default 10)";
    [raft] heartbeat_tick: usize => "TICKS", "[raft] Ticks between leader heartbeats (default 2)";
    [raft] pre_vote: bool => "true|false", "[raft] Run a pre-vote before campaigning (default true)";
    [raft] check_quorum: bool => "true|false", "[raft] A leader steps down without a quorum (default true)";
    [raft] max_inflight_msgs: usize => "N", "[raft] Appends in flight per follower (default 256)";
    [raft] max_size_per_msg_bytes: u64 => "BYTES", "[raft] Bytes of entries per append (default 1048576)";
    [raftstore] raft_log_gc_tick_interval_ms: u64 => "MS", "[raftstore] How often the leader checks the log size (default 10000)";
    [raftstore] raft_log_gc_count_limit: u64 => "ENTRIES", "[raftstore] Compact the log beyond this many entries (default 100000)";
    [raftstore] raft_log_gc_size_limit_bytes: u64 => "BYTES", "[raftstore] Compact the log beyond this many bytes (default 268435456)";
    [raftstore] snap_chunk_bytes: u64 => "BYTES", "[raftstore] Snapshot chunk size (default 1048576)";
    [raftstore] snap_max_bytes_per_sec: u64 => "BYTES", "[raftstore] Snapshot transfer rate limit (default 104857600)";
    [raftstore] snap_max_concurrent_send: usize => "N", "[raftstore] Snapshots sent at once (default 4)";
    [raftstore] snap_max_concurrent_recv: usize => "N", "[raftstore] Snapshots received at once (default 4)";
    [server] max_key_bytes: usize => "BYTES", "[server] Largest key accepted (default 8192)";
    [server] max_value_bytes: usize => "BYTES", "[server] Largest value accepted (default 1048576)";
    [server] max_scan_limit: u32 => "N", "[server] Largest scan limit accepted (default 10000)";
    [server] max_message_bytes: usize => "BYTES", "[server] Largest gRPC message accepted (default 67108864)";
    [server] status_addr: String => "ADDR", "[server] Serve /metrics and /health on ADDR (default: none)";
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        flags: ConfigFlags,
    }

    fn parse(args: &[&str]) -> Result<ConfigFlags, clap::Error> {
        let argv = std::iter::once("raftkv").chain(args.iter().copied());
        Harness::try_parse_from(argv).map(|h| h.flags)
    }

    #[test]
    fn flags_win_over_the_file_and_the_rest_stays() {
        let mut config = FileConfig::from_toml(
            "[raft]\nelection_tick = 20\nheartbeat_tick = 3\n[server]\nmax_scan_limit = 50\n",
            "test.toml".into(),
        )
        .expect("valid toml");
        let flags = parse(&[
            "--election-tick",
            "30",
            "--pre-vote",
            "false",
            "--raft-log-gc-count-limit",
            "10",
            "--status-addr",
            "127.0.0.1:20181",
        ])
        .expect("valid flags");
        flags.apply(&mut config);
        assert_eq!(config.raft.election_tick, 30, "the flag wins");
        assert_eq!(config.raft.heartbeat_tick, 3, "the file's value stays");
        assert!(!config.raft.pre_vote);
        assert!(config.raft.check_quorum, "the default stays");
        assert_eq!(config.raftstore.raft_log_gc_count_limit, 10);
        assert_eq!(config.server.max_scan_limit, 50);
        assert_eq!(config.server.status_addr, "127.0.0.1:20181");
    }

    #[test]
    fn no_flags_change_nothing() {
        let mut config = FileConfig::default();
        parse(&[]).expect("no flags").apply(&mut config);
        assert_eq!(config, FileConfig::default());
    }

    #[test]
    fn every_key_has_a_flag() {
        let toml = toml_keys(&FileConfig::default());
        for key in &toml {
            let flag = format!("--{}", key.replace('_', "-"));
            let value = if key.ends_with("vote") || key == "check_quorum" { "true" } else { "7" };
            let value = if key == "status_addr" { "127.0.0.1:1" } else { value };
            assert!(parse(&[&flag, value]).is_ok(), "{flag} is missing");
        }
        assert_eq!(toml.len(), 19);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [&["--pre-vote", "maybe"][..], &["--election-tick", "-1"], &["--base-tick-ms"]]
        {
            let err = parse(args).expect_err("rejected");
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    /// The keys of the TOML file, as the server crate defines them.
    fn toml_keys(config: &FileConfig) -> Vec<String> {
        let text = serde_json::to_value(config).expect("config serializes");
        let mut keys = Vec::new();
        for (_, section) in text.as_object().expect("tables").iter() {
            keys.extend(section.as_object().expect("keys").keys().cloned());
        }
        keys
    }
}
