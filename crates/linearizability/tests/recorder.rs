//! The recorder: windows from one clock, outcomes mapped to what the checker may assume,
//! and many threads sharing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use linearizability::{Call, CheckResult, Event, Op, Outcome, Recorder, check};

const BUDGET: Duration = Duration::from_secs(10);

#[test]
fn sequential_operations_get_ordered_windows() {
    let recorder = Recorder::new();
    recorder.invoke(1, "k", Call::Put(b"a".to_vec())).complete_ok(None);
    recorder.invoke(1, "k", Call::Get).complete_ok(Some(b"a".to_vec()));
    let history = recorder.history();
    let [put, get] = history.events() else { panic!("two events expected: {history:?}") };
    assert_eq!(put.op, Op::Put(b"a".to_vec()));
    assert_eq!(get.op, Op::Get(Some(b"a".to_vec())));
    let put_returned = put.returned_at.expect("put completed");
    assert!(put.invoked_at <= put_returned);
    assert!(put_returned <= get.invoked_at);
    assert_eq!(check(&history, BUDGET), CheckResult::Ok);
}

#[test]
fn failed_operations_are_left_out() {
    let recorder = Recorder::new();
    recorder.invoke(1, "k", Call::Put(b"a".to_vec())).fail();
    recorder.invoke(1, "k", Call::Delete).fail();
    recorder.invoke(2, "k", Call::Get).fail();
    recorder.invoke(2, "k", Call::Get).complete_ok(None);
    let history = recorder.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(check(&history, BUDGET), CheckResult::Ok);
}

#[test]
fn a_failed_write_is_not_an_excuse_for_a_read() {
    // A failed put certainly did not happen, so reading its value is a violation.
    let recorder = Recorder::new();
    recorder.invoke(1, "k", Call::Put(b"a".to_vec())).fail();
    recorder.invoke(2, "k", Call::Get).complete_ok(Some(b"a".to_vec()));
    assert!(matches!(check(&recorder.history(), BUDGET), CheckResult::Violation { .. }));
}

#[test]
fn unknown_writes_stay_without_a_response_and_unknown_reads_go() {
    let recorder = Recorder::new();
    recorder.invoke(1, "k", Call::Put(b"a".to_vec())).complete_unknown();
    recorder.invoke(2, "k", Call::Get).complete_unknown();
    let history = recorder.history();
    let [put] = history.events() else { panic!("one event expected: {history:?}") };
    assert_eq!(put.outcome(), Outcome::Unknown);
    assert_eq!(put.returned_at, None);
}

#[test]
fn a_dropped_or_still_pending_write_counts_as_unknown() {
    let recorder = Recorder::new();
    drop(recorder.invoke(1, "k", Call::Put(b"dropped".to_vec())));
    let in_flight = recorder.invoke(2, "k", Call::Delete);
    let in_flight_read = recorder.invoke(3, "k", Call::Get);
    let history = recorder.history();
    let outcomes: Vec<(Op, Outcome)> =
        history.events().iter().map(|event| (event.op.clone(), event.outcome())).collect();
    assert_eq!(
        outcomes,
        vec![(Op::Put(b"dropped".to_vec()), Outcome::Unknown), (Op::Delete, Outcome::Unknown)]
    );
    in_flight.complete_ok(None);
    in_flight_read.complete_ok(None);
    assert_eq!(recorder.history().len(), 3);
}

#[test]
#[should_panic(expected = "only a Get has an output")]
fn a_write_cannot_complete_with_an_output() {
    let recorder = Recorder::new();
    recorder.invoke(1, "k", Call::Put(b"a".to_vec())).complete_ok(Some(b"a".to_vec()));
}

#[test]
fn a_scan_becomes_one_read_per_key_with_the_scan_window() {
    let recorder = Recorder::new();
    recorder.invoke(1, "a", Call::Put(b"1".to_vec())).complete_ok(None);
    let scan = recorder.invoke_scan(2);
    scan.complete_ok([(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]);
    recorder.invoke_scan(3).complete_unknown();
    let history = recorder.history();
    let reads: Vec<&Event> = history.events().iter().skip(1).collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(reads[0].op, Op::Get(Some(b"1".to_vec())));
    assert_eq!(reads[1].op, Op::Get(None));
    assert_eq!(
        (reads[0].invoked_at, reads[0].returned_at),
        (reads[1].invoked_at, reads[1].returned_at)
    );
    assert_eq!(check(&history, BUDGET), CheckResult::Ok);
}

/// A store that is linearizable by construction: one map behind a mutex.
#[test]
fn threads_sharing_a_recorder_against_a_locked_map_are_linearizable() {
    let recorder = Recorder::new();
    let store: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
    let threads: Vec<_> = (0..8u64)
        .map(|client| {
            let recorder = recorder.clone();
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for i in 0..200u64 {
                    let key = format!("k{}", (client + i) % 4).into_bytes();
                    let map = || store.lock().unwrap_or_else(|e| e.into_inner());
                    match (client + i) % 5 {
                        0 => {
                            let pending = recorder.invoke(client, key.clone(), Call::Delete);
                            map().remove(&key);
                            pending.complete_ok(None);
                        }
                        1 | 2 => {
                            let value = format!("{client}-{i}").into_bytes();
                            let pending =
                                recorder.invoke(client, key.clone(), Call::Put(value.clone()));
                            map().insert(key, value);
                            pending.complete_ok(None);
                        }
                        _ => {
                            let pending = recorder.invoke(client, key.clone(), Call::Get);
                            let value = map().get(&key).cloned();
                            pending.complete_ok(value);
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client thread");
    }
    let history = recorder.history();
    assert_eq!(history.len(), 8 * 200);
    let result = check(&history, Duration::from_secs(60));
    assert_eq!(result, CheckResult::Ok, "{result}");
}
