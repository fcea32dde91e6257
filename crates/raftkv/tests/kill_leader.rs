//! Black-box: three real `raftkv server` processes on loopback with production timing.
//! SIGKILL the leader under load; a new leader serves within a generous bound (the
//! measured time is printed); the killed store restarts and catches up; no acknowledged
//! write is missing.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use client::{Client, ClientOptions, Error};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

struct Node {
    id: u64,
    addr: String,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

fn spawn(node: &Node, peers: &str) -> Child {
    let log = std::fs::File::create(node.dir.with_extension("log")).expect("log file");
    Command::new(BIN)
        .args(["server", "--id", &node.id.to_string(), "--peers", peers, "--data-dir"])
        .arg(&node.dir)
        .args(["--cluster-token", "kill-leader-test"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start raftkv server")
}

async fn leader_of(client: &Client) -> Option<(u64, u64)> {
    client.status_all().await.into_iter().find_map(|(_, s)| {
        let s = s.ok()?;
        (s.role == "leader").then_some((s.store_id, s.applied))
    })
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_leader_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node {
            id,
            addr: format!("127.0.0.1:{}", free_port()),
            dir: dir.path().join(format!("store-{id}")),
            child: None,
        })
        .collect();
    let peers = nodes.iter().map(|n| format!("{}={}", n.id, n.addr)).collect::<Vec<_>>().join(",");
    for n in nodes.iter_mut() {
        n.child = Some(spawn(n, &peers));
    }
    let endpoints: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let options = ClientOptions { deadline: Duration::from_secs(5), ..Default::default() };
    let client = Client::new(endpoints, options).expect("client");
    wait_for("a first leader", Duration::from_secs(30), async || leader_of(&client).await).await;

    // Writers put unique keys until told to stop; each remembers what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (client, stop) = (client.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let key = format!("w{w}-{n:08}");
                let value = format!("value {w} {n}");
                match client.put(key.clone(), value.clone(), "").await {
                    Ok(()) => {
                        acked.insert(key, value);
                    }
                    Err(Error::Unknown(_) | Error::Unavailable { .. }) => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // load before the kill

    let (old_leader, _) = leader_of(&client).await.expect("a leader under load");
    let victim = nodes.iter_mut().find(|n| n.id == old_leader).expect("leader node");
    let killed_at = Instant::now();
    victim.child.as_mut().expect("running").kill().expect("SIGKILL the leader");
    let _ = victim.child.take().map(|mut c| c.wait());

    let new_leader = wait_for("a new leader serving writes", Duration::from_secs(10), async || {
        let (id, _) = leader_of(&client).await?;
        if id == old_leader {
            return None;
        }
        client.put("probe", "after the kill", "").await.ok().map(|()| id)
    })
    .await;
    let failover = killed_at.elapsed();
    println!(
        "new leader (store {new_leader}) served a write {failover:?} after SIGKILL of store {old_leader}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await; // more load on the new leader
    stop.store(true, Ordering::SeqCst);
    let mut acked = BTreeMap::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    assert!(acked.len() > 50, "too little load to mean anything: {} writes", acked.len());

    // The killed store restarts on its data and catches up with the leader.
    let victim = nodes.iter_mut().find(|n| n.id == old_leader).expect("victim");
    victim.child = Some(spawn(victim, &peers));
    let victim_addr = victim.addr.clone();
    let (_, leader_applied) = leader_of(&client).await.expect("leader");
    let solo = Client::new(vec![victim_addr], ClientOptions::default()).expect("client");
    wait_for("the restarted store to catch up", Duration::from_secs(30), async || {
        let s = solo.status_all().await.into_iter().next()?.1.ok()?;
        (s.applied >= leader_applied).then_some(())
    })
    .await;

    for (key, value) in &acked {
        let got = client.get(key.clone(), "").await.expect("read back");
        assert_eq!(got.as_deref(), Some(value.as_bytes()), "acknowledged write {key} is missing");
    }
    println!("{} acknowledged writes all present after the kill and the restart", acked.len());

    for n in nodes.iter_mut() {
        if let Some(mut c) = n.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let status = c.wait().expect("wait");
            assert!(status.success(), "store {} did not stop cleanly: {status}", n.id);
        }
    }
}
