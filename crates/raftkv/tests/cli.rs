//! The `raftkv` binary against fake in-process stores: output format, escaping and SPEC's
//! exit codes, as scripts see them.

#[path = "../../client/tests/fake/mod.rs"]
mod fake;

use std::process::{Command, Output};

use fake::{FakeCluster, dead_endpoint};

struct Harness {
    /// Runs the fake stores while the binary runs.
    _runtime: tokio::runtime::Runtime,
    cluster: FakeCluster,
}

impl Harness {
    /// `stores` fake stores, store 1 leading; they serve while the binary runs.
    fn new(stores: u64) -> Harness {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let cluster = runtime.block_on(FakeCluster::start(stores, Some(1)));
        Harness { _runtime: runtime, cluster }
    }

    fn endpoints(&self) -> String {
        self.cluster.addrs().join(",")
    }

    /// Runs `raftkv ARGS --endpoints <the fake stores>`.
    fn raftkv(&self, args: &[&str]) -> Output {
        run(args, &self.endpoints())
    }
}

fn run(args: &[&str], endpoints: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(args)
        .args(["--endpoints", endpoints, "--timeout-ms", "2000"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run raftkv")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

#[test]
fn put_get_delete_round_trip() {
    let h = Harness::new(3);
    let put = h.raftkv(&["put", "hello", "world"]);
    assert_eq!(code(&put), 0, "{}", stderr(&put));
    assert_eq!(stdout(&put), "");

    let get = h.raftkv(&["get", "hello"]);
    assert_eq!((code(&get), stdout(&get).as_str()), (0, "world\n"), "{}", stderr(&get));

    assert_eq!(code(&h.raftkv(&["delete", "hello"])), 0);
    let missing = h.raftkv(&["get", "hello"]);
    assert_eq!(code(&missing), 1, "a missing key exits 1");
    assert_eq!(stdout(&missing), "", "and prints nothing on stdout");
    assert!(stderr(&missing).contains("key not found: hello"), "{}", stderr(&missing));
}

#[test]
fn output_escapes_tab_newline_backslash_and_non_ascii() {
    let h = Harness::new(1);
    assert_eq!(code(&h.raftkv(&["put", "a\tb", "line\nnext\\é"])), 0);
    assert_eq!(code(&h.raftkv(&["put", "c", "plain"])), 0);
    let scan = h.raftkv(&["scan"]);
    assert_eq!(code(&scan), 0, "{}", stderr(&scan));
    assert_eq!(stdout(&scan), "a\\x09b\tline\\x0anext\\x5c\\xc3\\xa9\nc\tplain\n");
    let get = h.raftkv(&["get", "a\tb"]);
    assert_eq!(stdout(&get), "line\\x0anext\\x5c\\xc3\\xa9\n");
}

#[test]
fn scan_starts_at_start_and_stops_at_the_limit() {
    let h = Harness::new(1);
    for key in ["k1", "k2", "k3", "k4"] {
        assert_eq!(code(&h.raftkv(&["put", key, &key.to_uppercase()])), 0);
    }
    let scan = h.raftkv(&["scan", "k2", "--limit", "2"]);
    assert_eq!(stdout(&scan), "k2\tK2\nk3\tK3\n");
}

#[test]
fn column_families_are_separate() {
    let h = Harness::new(1);
    assert_eq!(code(&h.raftkv(&["put", "k", "in-lock", "--cf", "lock"])), 0);
    assert_eq!(code(&h.raftkv(&["get", "k"])), 1);
    assert_eq!(stdout(&h.raftkv(&["get", "k", "--cf", "lock"])), "in-lock\n");
    let bad = h.raftkv(&["get", "k", "--cf", "nope"]);
    assert_eq!(code(&bad), 2, "an unknown cf is an invalid request");
    assert!(stderr(&bad).contains("unknown column family"), "{}", stderr(&bad));
}

#[test]
fn status_json_has_one_object_per_endpoint() {
    let h = Harness::new(2);
    let dead = dead_endpoint();
    let endpoints = format!("{},{dead}", h.endpoints());
    let out = run(&["status", "--json"], &endpoints);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid json");
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[0]["role"], "leader");
    assert_eq!(rows[0]["leader"], 1);
    assert_eq!(rows[1]["role"], "follower");
    for field in ["address", "term", "commit", "applied"] {
        assert!(!rows[0][field].is_null(), "{field} missing");
    }
    assert_eq!(rows[2]["address"], dead);
    assert!(rows[2]["error"].is_string());
    assert!(rows[2].get("id").is_none());

    let text = run(&["status"], &endpoints);
    let lines: Vec<String> = stdout(&text).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("id=1 address="), "{}", lines[0]);
    assert!(lines[0].contains(" role=leader term=6 "), "{}", lines[0]);
    assert!(lines[2].starts_with(&format!("address={dead} error=")), "{}", lines[2]);
}

#[test]
fn status_with_no_endpoint_answering_exits_3() {
    let out = run(&["status"], &format!("{},{}", dead_endpoint(), dead_endpoint()));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
}

#[test]
fn an_invalid_request_exits_2() {
    let h = Harness::new(1);
    let out = h.raftkv(&["put", "", "v"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("key must not be empty"), "{}", stderr(&out));
}

#[test]
fn a_write_nothing_accepted_exits_3() {
    let out = run(&["put", "k", "v"], &dead_endpoint());
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was applied"), "{}", stderr(&out));
}

#[test]
fn a_write_of_unknown_outcome_exits_4() {
    let h = Harness::new(1);
    h.cluster.store(1).behave(|b| b.stale_writes = 1);
    let out = h.raftkv(&["put", "k", "v"]);
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(stderr(&out).contains("outcome unknown"), "{}", stderr(&out));
    assert_eq!(h.cluster.total_writes(), 1, "never retried");
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["put", "only-a-key"][..], &["scan", "--limit", "many"], &["no-such-command"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_raftkv")).args(args).output().expect("run");
        assert_eq!(code(&out), 2, "{args:?}");
    }
    let server = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["server", "--id", "4", "--peers", "1=127.0.0.1:1", "--data-dir", "/nonexistent"])
        .output()
        .expect("run");
    assert_eq!(code(&server), 2);
    assert!(stderr(&server).contains("--id 4 is not in --peers"), "{}", stderr(&server));
}

#[test]
fn help_lists_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_raftkv")).arg("--help").output().expect("run");
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for command in ["server", "put", "get", "delete", "scan", "status", "playground", "bench"] {
        assert!(help.contains(command), "{command} missing from --help");
    }
}

#[test]
fn bench_runs_against_a_store_and_reports_latencies() {
    let h = Harness::new(1);
    let out = h.raftkv(&[
        "bench",
        "--clients",
        "4",
        "--duration",
        "1",
        "--keys",
        "100",
        "--value-size",
        "16",
        "--read-ratio",
        "0.5",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("ops/s"), "{report}");
    assert!(report.contains("writes: ") && report.contains("reads: "), "{report}");
    assert!(report.contains("p99"), "{report}");
    assert!(report.contains("errors: none"), "{report}");
}
