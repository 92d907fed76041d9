//! A loom model of the memory store's synchronization: every interleaving of a few threads (up
//! to a bounded number of preemptions) on the store's real code, built with loom's mutexes,
//! read-write lock and atomics.
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" cargo test -p racefree --release --test loom
//! ```
//! `LOOM_MAX_PREEMPTIONS` (default 3 here) bounds the preemptions per execution.
#![cfg(loom)]

use std::sync::Arc;

use loom::thread;
use racefree::{ManualClock, MemoryStore, Store};
use serde_json::json;

fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(body);
}

fn new_store(max_keys: usize) -> Arc<MemoryStore> {
    let clock = Arc::new(ManualClock::new(1_000_000));
    Arc::new(MemoryStore::builder().clock(clock).max_keys(max_keys).build().expect("store"))
}

/// Runs `work` on two loom threads and returns both results.
fn two<T: Send + 'static>(store: &Arc<MemoryStore>, work: fn(&MemoryStore, usize) -> T) -> (T, T) {
    let other = Arc::clone(store);
    let handle = thread::spawn(move || work(&other, 1));
    let mine = work(store, 0);
    (mine, handle.join().expect("thread"))
}

#[test]
fn next_gives_distinct_indexes() {
    model(|| {
        let store = new_store(100);
        let (a, b) = two(&store, |s, _| s.counter_next("c").expect("next"));
        assert_eq!(a.min(b), 0);
        assert_eq!(a.max(b), 1);
        assert_eq!(store.counter_peek("c"), Ok(2));
    });
}

#[test]
fn one_claim_of_an_id_is_new() {
    model(|| {
        let store = new_store(100);
        let (a, b) = two(&store, |s, _| s.counter_claim("c", "exec").expect("claim"));
        assert_eq!(a.index, b.index);
        assert!(a.is_new != b.is_new, "{a:?} {b:?}");
        assert_eq!(store.counter_peek("c"), Ok(1));
    });
}

#[test]
fn one_grant_per_key_and_tokens_never_repeat() {
    model(|| {
        let store = new_store(100);
        let (a, b) = two(&store, |s, _| s.lease_try_grant("l", "k", 1_000).expect("grant"));
        assert!(a.is_some() != b.is_some(), "{a:?} {b:?}");
        // Distinct keys of one lock: the token counter is created once, tokens differ.
        let fresh = new_store(100);
        let (x, y) = two(&fresh, |s, t| s.lease_try_grant("l", &format!("k{t}"), 1_000).expect("grant"));
        let (x, y) = (x.expect("free").token, y.expect("free").token);
        assert!(x != y && x.max(y) == 2, "tokens {x} and {y}");
    });
}

#[test]
fn ended_is_marked_once() {
    model(|| {
        let store = new_store(100);
        store.guard_mark("g", "s", 0, 60_000).expect("started");
        let (a, b) = two(&store, |s, _| s.guard_mark("g", "s", 1, 60_000).expect("ended"));
        let firsts = [a, b].iter().filter(|m| **m == racefree::MarkOutcome::First).count();
        assert_eq!(firsts, 1, "{a:?} {b:?}");
    });
}

#[test]
fn one_compare_and_swap_wins() {
    model(|| {
        let store = new_store(100);
        store.record_put("r", "k", &json!(0), None, None).expect("create");
        let (a, b) = two(&store, |s, t| s.record_put("r", "k", &json!(t), Some(1), None));
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        assert_eq!(store.record_get("r", "k").expect("get").map(|v| v.version), Some(2));
    });
}

#[test]
fn max_keys_is_never_passed() {
    model(|| {
        let store = new_store(2);
        store.counter_next("existing").expect("next");
        let (a, b) = two(&store, |s, t| s.counter_next(&format!("c{t}")).map_err(|e| e.code()));
        assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
        assert_eq!(store.stats().expect("stats").entries, 2);
    });
}
