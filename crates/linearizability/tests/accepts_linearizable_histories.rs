//! Histories a correct store can produce: the checker must accept every one.

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

fn verdict(events: Vec<Event>) -> CheckResult {
    check(&events.into_iter().collect::<History>(), Duration::from_secs(10))
}

#[track_caller]
fn assert_accepted(events: Vec<Event>) {
    let result = verdict(events);
    assert_eq!(result, CheckResult::Ok, "{result}");
}

#[test]
fn empty_history() {
    assert_accepted(vec![]);
}

#[test]
fn a_key_nobody_wrote_reads_absent() {
    assert_accepted(vec![get(1, "k", None, 0, 1)]);
}

#[test]
fn sequential_puts_deletes_and_reads() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        get(1, "k", Some("a"), 2, 3),
        put(2, "k", "b", 4, 5),
        get(3, "k", Some("b"), 6, 7),
        delete(1, "k", 8, 9),
        get(2, "k", None, 10, 11),
        put(3, "k", "a", 12, 13),
        get(1, "k", Some("a"), 14, 15),
    ]);
}

#[test]
fn a_read_overlapping_a_put_may_see_the_old_value() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        put(1, "k", "b", 2, 10),
        get(2, "k", Some("a"), 3, 5),
    ]);
}

#[test]
fn a_read_overlapping_a_put_may_see_the_new_value() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        put(1, "k", "b", 2, 10),
        get(2, "k", Some("b"), 3, 5),
    ]);
}

#[test]
fn concurrent_puts_may_take_effect_in_either_order() {
    let puts = || vec![put(1, "k", "a", 0, 10), put(2, "k", "b", 1, 9)];
    let mut a_last = puts();
    a_last.push(get(3, "k", Some("a"), 11, 12));
    assert_accepted(a_last);
    let mut b_last = puts();
    b_last.push(get(3, "k", Some("b"), 11, 12));
    assert_accepted(b_last);
}

#[test]
fn windows_that_touch_count_as_concurrent() {
    // The read is invoked on the tick the put returned: either may come first.
    assert_accepted(vec![put(1, "k", "a", 0, 5), get(2, "k", None, 5, 6)]);
}

#[test]
fn all_readers_agree_on_one_order_of_concurrent_puts() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 20),
        put(2, "k", "b", 0, 20),
        get(3, "k", Some("a"), 1, 2),
        get(3, "k", Some("b"), 3, 4),
        get(4, "k", Some("a"), 1, 2),
        get(4, "k", Some("b"), 5, 6),
    ]);
}

#[test]
fn an_unknown_write_observed_later() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        put_unknown(2, "k", "b", 2),
        get(3, "k", Some("a"), 3, 4),
        get(3, "k", Some("b"), 100, 101),
        get(1, "k", Some("b"), 102, 103),
    ]);
}

#[test]
fn an_unknown_write_never_observed() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        put_unknown(2, "k", "b", 2),
        get(3, "k", Some("a"), 3, 4),
        get(3, "k", Some("a"), 100, 101),
    ]);
}

#[test]
fn an_unknown_delete_observed_later() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        Event::unknown(2, "k", Op::Delete, 2),
        get(3, "k", Some("a"), 3, 4),
        get(3, "k", None, 5, 6),
    ]);
}

#[test]
fn an_unknown_write_may_take_effect_after_later_acknowledged_writes() {
    // The unknown put of "b" lands after client 3's put of "c" was acknowledged.
    assert_accepted(vec![
        put_unknown(1, "k", "b", 0),
        put(3, "k", "c", 10, 11),
        get(2, "k", Some("c"), 12, 13),
        get(2, "k", Some("b"), 14, 15),
    ]);
}

#[test]
fn an_unknown_read_is_ignored() {
    assert_accepted(vec![
        put(1, "k", "a", 0, 1),
        Event::unknown(2, "k", Op::Get(Some("never written".into())), 2),
    ]);
}

#[test]
fn keys_are_independent_registers() {
    // On a single register these reads would contradict each other; on two keys they fit.
    assert_accepted(vec![
        put(1, "x", "1", 0, 1),
        put(1, "y", "2", 2, 3),
        get(2, "x", Some("1"), 4, 5),
        get(2, "y", Some("2"), 4, 5),
        get(3, "z", None, 6, 7),
    ]);
}

#[test]
fn many_clients_hammering_one_key_with_wide_windows() {
    // 16 overlapping puts, then readers that each see the same final value.
    let mut events: Vec<Event> = (0..16)
        .map(|client| put(client, "k", &format!("v{client}"), client, 100 + client))
        .collect();
    events.extend((0..8).map(|client| get(100 + client, "k", Some("v7"), 200, 201)));
    assert_accepted(events);
}
