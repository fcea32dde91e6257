//! Histories no linearizable store can produce: the checker must reject each one, name
//! the key, and show the operations that contradict each other.

use std::time::Duration;

use linearizability::{CheckResult, Event, History, Op, check};

fn put(client: u64, key: &str, value: &str, invoked_at: u64, returned_at: u64) -> Event {
    Event::ok(client, key, Op::Put(value.into()), invoked_at, returned_at)
}

fn put_unknown(client: u64, key: &str, value: &str, invoked_at: u64) -> Event {
    Event::unknown(client, key, Op::Put(value.into()), invoked_at)
}

fn delete(client: u64, key: &str, invoked_at: u64, returned_at: u64) -> Event {
    Event::ok(client, key, Op::Delete, invoked_at, returned_at)
}

fn get(client: u64, key: &str, observed: Option<&str>, invoked_at: u64, returned_at: u64) -> Event {
    Event::ok(client, key, Op::Get(observed.map(Into::into)), invoked_at, returned_at)
}

/// Checks `events`, asserts a violation on `key` and returns its witness.
#[track_caller]
fn assert_rejected(events: Vec<Event>, key: &str) -> Vec<Event> {
    let result = check(&events.into_iter().collect::<History>(), Duration::from_secs(10));
    match result {
        CheckResult::Violation { key: bad_key, ops, explanation } => {
            assert_eq!(bad_key, key.as_bytes(), "{explanation}");
            assert!(explanation.contains(&format!("key \"{key}\"")), "{explanation}");
            for op in &ops {
                assert!(explanation.contains(&op.to_string()), "{explanation}");
            }
            ops
        }
        other => panic!("expected a violation on {key:?}, got: {other}"),
    }
}

#[test]
fn stale_read_after_a_completed_write() {
    let witness = assert_rejected(
        vec![
            put(1, "k", "a", 0, 1),
            get(2, "k", Some("a"), 2, 3),
            put(1, "k", "b", 4, 5),
            get(2, "k", Some("a"), 6, 7),
        ],
        "k",
    );
    assert_eq!(
        witness,
        vec![put(1, "k", "a", 0, 1), put(1, "k", "b", 4, 5), get(2, "k", Some("a"), 6, 7)]
    );
}

#[test]
fn read_of_a_value_never_written() {
    let result = check(
        &History::from_iter([put(1, "k", "a", 0, 1), get(2, "k", Some("zzz"), 2, 3)]),
        Duration::from_secs(10),
    );
    let CheckResult::Violation { ops, explanation, .. } = &result else {
        panic!("expected a violation, got: {result}");
    };
    assert_eq!(ops, &vec![get(2, "k", Some("zzz"), 2, 3)]);
    assert!(explanation.contains("no operation on this key ever wrote"), "{explanation}");
}

#[test]
fn read_of_a_value_written_only_to_another_key() {
    let witness =
        assert_rejected(vec![put(1, "other", "a", 0, 1), get(2, "k", Some("a"), 2, 3)], "k");
    assert_eq!(witness, vec![get(2, "k", Some("a"), 2, 3)]);
}

#[test]
fn read_of_a_value_before_its_write_was_invoked() {
    let witness = assert_rejected(vec![get(2, "k", Some("a"), 0, 1), put(1, "k", "a", 2, 3)], "k");
    assert_eq!(witness.len(), 2);
}

#[test]
fn read_of_an_unknown_write_before_it_was_invoked() {
    assert_rejected(vec![get(2, "k", Some("a"), 0, 1), put_unknown(1, "k", "a", 2)], "k");
}

#[test]
fn two_clients_observe_concurrent_writes_in_contradictory_orders() {
    let events = vec![
        put(1, "k", "a", 0, 100),
        put(2, "k", "b", 0, 100),
        get(3, "k", Some("a"), 10, 11),
        get(3, "k", Some("b"), 12, 13),
        get(4, "k", Some("b"), 10, 11),
        get(4, "k", Some("a"), 12, 13),
    ];
    let witness = assert_rejected(events.clone(), "k");
    // Each of the six operations is needed for the contradiction.
    assert_eq!(witness.len(), 6);
}

#[test]
fn a_read_going_back_in_time() {
    // Client 2 sees the new value "b"; afterwards client 3 still sees the old "a".
    let events = vec![
        put(1, "k", "a", 0, 1),
        put(1, "k", "b", 2, 100),
        get(2, "k", Some("b"), 10, 20),
        get(3, "k", Some("a"), 30, 40),
    ];
    let witness = assert_rejected(events.clone(), "k");
    assert_eq!(witness, events);
}

#[test]
fn a_lost_acknowledged_write() {
    let witness = assert_rejected(
        vec![
            put(1, "k", "a", 0, 1),
            get(2, "k", Some("a"), 2, 3),
            put(1, "k", "b", 4, 5),
            get(2, "k", None, 6, 7),
        ],
        "k",
    );
    assert_eq!(witness, vec![put(1, "k", "b", 4, 5), get(2, "k", None, 6, 7)]);
}

#[test]
fn a_delete_that_did_not_stick() {
    assert_rejected(
        vec![put(1, "k", "a", 0, 1), delete(2, "k", 2, 3), get(3, "k", Some("a"), 4, 5)],
        "k",
    );
}

#[test]
fn a_violation_on_one_key_is_found_among_many_good_keys() {
    let mut events = Vec::new();
    for key in 0..50 {
        let key = format!("good{key:02}");
        events.push(put(1, &key, "v", 0, 1));
        events.push(get(2, &key, Some("v"), 2, 3));
    }
    events.push(put(1, "bad", "v", 0, 1));
    events.push(get(2, "bad", None, 2, 3));
    let witness = assert_rejected(events, "bad");
    assert_eq!(witness, vec![put(1, "bad", "v", 0, 1), get(2, "bad", None, 2, 3)]);
}

#[test]
fn a_timeout_is_a_failure_not_a_pass() {
    // Long enough that the search looks at the clock at least once; the budget is zero.
    let events: Vec<Event> =
        (0..4_000).map(|i| put(1, "k", &format!("v{i}"), 2 * i, 2 * i + 1)).collect();
    let result = check(&events.into_iter().collect(), Duration::ZERO);
    assert_eq!(result, CheckResult::Timeout { key: b"k".to_vec() });
    assert!(!result.is_ok());
    let message = result.to_string();
    assert!(message.contains("time budget") && message.contains("failure"), "{message}");
    let panic = std::panic::catch_unwind(|| result.assert_linearizable());
    assert!(panic.is_err(), "a timeout must fail assert_linearizable");
}
