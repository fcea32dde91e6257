//! A real `raftkv server` process: flags reach the server crate, the client commands work
//! against it, SIGTERM stops it cleanly and a restart on the same data resumes.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

fn start(addr: &str, data_dir: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["server", "--id", "1", "--peers", &format!("1={addr}"), "--data-dir"])
        .arg(data_dir)
        .args(["--base-tick-ms", "10", "--cluster-token", "test"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start raftkv server")
}

fn client(args: &[&str], addr: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--endpoints", addr, "--timeout-ms", "3000"])
        .output()
        .expect("run raftkv")
}

/// Waits until `status` says the store leads; generous, since the machine may be busy.
fn wait_for_leader(addr: &str) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while Instant::now() < give_up {
        let out = client(&["status"], addr);
        if String::from_utf8_lossy(&out.stdout).contains("role=leader") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no leader within 30 s");
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the server") {
            return status;
        }
        if Instant::now() > give_up {
            let _ = child.kill();
            panic!("the server ignored SIGTERM for 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_single_store_serves_stops_on_sigterm_and_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{}", free_port());

    let server = start(&addr, dir.path());
    wait_for_leader(&addr);
    let put = client(&["put", "hello", "world"], &addr);
    assert_eq!(put.status.code(), Some(0), "{}", String::from_utf8_lossy(&put.stderr));
    let status = terminate(server);
    assert_eq!(status.code(), Some(0), "a clean shutdown exits 0");

    let server = start(&addr, dir.path());
    wait_for_leader(&addr);
    let get = client(&["get", "hello"], &addr);
    assert_eq!(String::from_utf8_lossy(&get.stdout), "world\n", "the write survived a restart");
    assert_eq!(terminate(server).code(), Some(0));
}
