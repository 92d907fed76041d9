//! The `metrics` feature: each primitive's counts reach the recorder the application installed,
//! labelled by primitive, instance name and backend, and each moves by exactly what a scripted
//! run implies (compared with the handles' own `stats()` too).
#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::faulty::FaultyStore;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use racefree::{
    Cache, Counter, Error, EventGuard, Lookup, ManualClock, MemoryStore, Records, SharedClock, SharedStore,
    StartLock,
};
use serde_json::json;

/// Every counter the recorder holds: its name and sorted labels (`k=v,…`), and its value.
fn counters(snapshotter: &Snapshotter) -> BTreeMap<(String, String), u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let DebugValue::Counter(value) = value else { return None };
            let (_, key) = key.into_parts();
            let mut labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            Some(((key.name().to_owned(), labels.join(",")), value))
        })
        .collect()
}

/// `k=v,…` labels in the order [`counters`] gives them.
fn sorted(labels: &str) -> String {
    let mut labels: Vec<&str> = labels.split(',').collect();
    labels.sort_unstable();
    labels.join(",")
}

fn memory() -> SharedStore {
    let clock: SharedClock = Arc::new(ManualClock::new(1_000_000));
    Arc::new(MemoryStore::with_clock(clock))
}

#[test]
fn each_count_reaches_the_recorder_with_its_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = memory();
    // Handles are made while the recorder is installed: their counters are registered then.
    let (counter, lock, guard, records) = metrics::with_local_recorder(&recorder, || {
        (
            Counter::new(&store, "task:42").expect("counter"),
            StartLock::new(&store, "tasks").expect("lock"),
            EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard"),
            Records::new(&store, "pods").expect("records"),
        )
    });

    for _ in 0..3 {
        counter.next().expect("next");
    }
    counter.claim("exec-a").expect("claim");
    counter.claim("exec-a").expect("claim again");

    let lease = lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free");
    assert!(lock.try_start("k", Duration::from_secs(30)).expect("start").is_none());
    lease.renew(Duration::from_secs(30)).expect("renew");
    lease.release().expect("release");
    assert_eq!(lease.release().map_err(|e| e.code()), Err("not_owner"));

    guard.mark("s", "started").expect("mark");
    guard.mark("s", "started").expect("duplicate");
    assert_eq!(guard.mark("t", "ended").map_err(|e| e.code()), Err("out_of_order"));

    records.put("p", &json!(1), None).expect("put");
    assert_eq!(records.put("p", &json!(2), None).map_err(|e| e.code()), Err("conflict"));
    records.put_fenced("p", &json!(3), Some(1), 9).expect("fenced");
    assert_eq!(records.put_fenced("p", &json!(4), Some(2), 5).map_err(|e| e.code()), Err("stale_token"));

    let counter_labels = "backend=memory,primitive=counter";
    let lock_labels = "backend=memory,name=tasks,primitive=start_lock";
    let guard_labels = "backend=memory,name=streams,primitive=event_guard";
    let records_labels = "backend=memory,name=pods,primitive=records";
    let expected: BTreeMap<(String, String), u64> = [
        ("racefree_indexes_total", format!("{counter_labels},outcome=next"), 3),
        ("racefree_indexes_total", format!("{counter_labels},outcome=new_claim"), 1),
        ("racefree_indexes_total", format!("{counter_labels},outcome=repeated_claim"), 1),
        ("racefree_starts_total", format!("{lock_labels},outcome=granted"), 1),
        ("racefree_starts_total", format!("{lock_labels},outcome=refused"), 1),
        ("racefree_renewals_total", format!("{lock_labels},outcome=renewed"), 1),
        ("racefree_renewals_total", format!("{lock_labels},outcome=not_owner"), 0),
        ("racefree_releases_total", format!("{lock_labels},outcome=released"), 1),
        ("racefree_releases_total", format!("{lock_labels},outcome=not_owner"), 1),
        ("racefree_marks_total", format!("{guard_labels},outcome=first"), 1),
        ("racefree_marks_total", format!("{guard_labels},outcome=duplicate"), 1),
        ("racefree_marks_total", format!("{guard_labels},outcome=out_of_order"), 1),
        ("racefree_record_writes_total", format!("{records_labels},outcome=written"), 2),
        ("racefree_record_writes_total", format!("{records_labels},outcome=conflict"), 1),
        ("racefree_record_writes_total", format!("{records_labels},outcome=stale_token"), 1),
        ("racefree_record_retries_total", records_labels.to_owned(), 0),
    ]
    .into_iter()
    .map(|(name, labels, value)| ((name.to_owned(), sorted(&labels)), value))
    .collect();
    assert_eq!(counters(&snapshotter), expected);
    // The handles' own stats count the same.
    assert_eq!((counter.stats().new_claims, counter.stats().repeated_claims), (1, 1));
    let stats = lock.stats();
    assert_eq!(
        (stats.granted, stats.contended, stats.renewed, stats.released, stats.rejected_not_owner),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(records.stats().stale_tokens, 1);
}

#[test]
fn errors_are_counted_by_code_and_caches_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let faulty = Arc::new(FaultyStore::new(memory()));
    let store: SharedStore = faulty.clone();
    let clock: SharedClock = Arc::new(ManualClock::new(0));
    let (lock, cache) = metrics::with_local_recorder(&recorder, || {
        (StartLock::new(&store, "jobs").expect("lock"), Cache::<u32, String>::new(clock))
    });
    let lease = lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free");
    // An error's counter is registered when the error first happens, with the recorder of then.
    metrics::with_local_recorder(&recorder, || {
        faulty.fail_renewals(Some(Error::Timeout { waited: Duration::from_secs(1) }));
        assert_eq!(lease.renew(Duration::from_secs(30)).map_err(|e| e.code()), Err("timeout"));
        assert_eq!(lease.renew(Duration::from_secs(30)).map_err(|e| e.code()), Err("timeout"));
        faulty.fail_renewals(Some(Error::BackendUnavailable { reason: "down".into(), source: None }));
        assert_eq!(lease.renew(Duration::from_secs(30)).map_err(|e| e.code()), Err("backend_unavailable"));
    });

    let Lookup::Load(loader) = cache.lookup("a", Duration::from_secs(60)).expect("lookup") else {
        panic!("an empty cache loads")
    };
    let Lookup::Wait(_waiter) = cache.lookup("a", Duration::from_secs(60)).expect("lookup") else {
        panic!("a load in flight is waited for")
    };
    loader.complete(Ok(7)).expect("loaded");
    assert!(matches!(cache.lookup("a", Duration::from_secs(60)).expect("lookup"), Lookup::Hit(7)));

    let counters = counters(&snapshotter);
    let count = |name: &str, labels: &str| counters.get(&(name.to_owned(), sorted(labels))).copied();
    let lock_labels = "backend=custom,name=jobs,primitive=start_lock";
    assert_eq!(
        count("racefree_errors_total", "backend=custom,code=timeout,name=jobs,primitive=start_lock"),
        Some(2)
    );
    assert_eq!(
        count(
            "racefree_errors_total",
            "backend=custom,code=backend_unavailable,name=jobs,primitive=start_lock"
        ),
        Some(1)
    );
    assert_eq!(count("racefree_renewals_total", &format!("{lock_labels},outcome=renewed")), Some(0));
    let cache_labels = "backend=local,primitive=cache";
    assert_eq!(count("racefree_cache_lookups_total", &format!("{cache_labels},outcome=miss")), Some(1));
    assert_eq!(count("racefree_cache_lookups_total", &format!("{cache_labels},outcome=coalesced")), Some(1));
    assert_eq!(count("racefree_cache_lookups_total", &format!("{cache_labels},outcome=hit")), Some(1));
}

#[test]
fn a_handle_made_before_any_recorder_counts_only_its_own_stats() {
    let store = memory();
    let lock = StartLock::new(&store, "early").expect("lock");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free");
    });
    assert!(counters(&snapshotter).is_empty(), "{:?}", counters(&snapshotter));
    assert_eq!(lock.stats().granted, 1);
}
