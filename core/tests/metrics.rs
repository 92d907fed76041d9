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
use racefree::metrics::{Recorder, Sample, Value};
use racefree::{
    Cache, Coordinator, Counter, Error, EventGuard, KeeperOptions, KeeperStep, Lookup, ManualClock,
    MemoryStore, Records, SharedClock, SharedStore, StartLock,
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
        ("racefree_leases_lost_total", format!("{lock_labels},reason=not_owner"), 0),
        ("racefree_leases_lost_total", format!("{lock_labels},reason=renewals_failed"), 0),
        ("racefree_leases_lost_total", format!("{lock_labels},reason=max_hold_reached"), 0),
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

/// The sample of `name` whose labels include every one of `labels` (`k=v,…`).
fn sample<'a>(samples: &'a [Sample], name: &str, labels: &str) -> &'a Value {
    let wanted: Vec<(String, String)> = labels
        .split(',')
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).expect("k=v"))
        .collect();
    &samples
        .iter()
        .find(|s| s.name == name && wanted.iter().all(|w| s.labels.contains(w)))
        .unwrap_or_else(|| panic!("no {name} with {labels} in {samples:?}"))
        .value
}

/// A histogram's count and sum.
fn histogram(value: &Value) -> (u64, f64) {
    match value {
        Value::Histogram { count, sum, .. } => (*count, *sum),
        other => panic!("not a histogram: {other:?}"),
    }
}

#[test]
fn keepers_count_each_loss_by_reason_and_time_each_renewal() {
    let recorder = Recorder::new();
    let store = memory();
    let lock = metrics::with_local_recorder(&recorder, || StartLock::new(&store, "tasks").expect("lock"));
    let ms = Duration::from_millis;
    let options = KeeperOptions::new(ms(900)).expect("options");

    // Renewed once (answered 20 ms after it was sent), then refused: not_owner.
    let mut refused = lock.keeper(&options, "a", 1, ms(0));
    assert_eq!(refused.poll(ms(300)), KeeperStep::Renew);
    refused.on_reply(Ok(0), ms(320));
    assert_eq!(refused.poll(ms(600)), KeeperStep::Renew);
    refused.on_reply(Err(Error::NotOwner { key: "a".into(), token: 1 }), ms(605));
    for _ in 0..3 {
        assert!(matches!(refused.poll(ms(700)), KeeperStep::Lost(_)), "lost once, counted once");
    }
    // Renewals that fail until the safe deadline: renewals_failed.
    let mut failing = lock.keeper(&options, "b", 2, ms(0));
    assert_eq!(failing.poll(ms(300)), KeeperStep::Renew);
    failing.on_reply(Err(Error::Timeout { waited: ms(50) }), ms(350));
    assert!(failing.check(ms(2_000)).is_some());
    assert!(failing.check(ms(3_000)).is_some());
    // Held for its max_hold: max_hold_reached.
    let bounded = options.with_max_hold(ms(1_000)).expect("max hold");
    let mut held = lock.keeper(&bounded, "c", 3, ms(0));
    assert!(matches!(held.poll(ms(1_000)), KeeperStep::Lost(_)));
    // A keeper made by the options alone counts nothing.
    let mut uncounted = options.keep("d", 4, ms(0));
    assert!(uncounted.check(ms(5_000)).is_some());

    let stats = lock.stats();
    assert_eq!((stats.lost_not_owner, stats.lost_renewals_failed, stats.lost_max_hold), (1, 1, 1));
    let samples = recorder.snapshot();
    for reason in ["not_owner", "renewals_failed", "max_hold_reached"] {
        let labels = format!("name=tasks,reason={reason}");
        assert_eq!(sample(&samples, "racefree_leases_lost_total", &labels), &Value::Counter(1), "{reason}");
    }
    // Three replies came back in time: 20 ms, 5 ms and 50 ms after they were sent.
    let (count, sum) =
        histogram(sample(&samples, "racefree_renewal_seconds", "name=tasks,primitive=start_lock"));
    assert_eq!(count, 3);
    assert!((sum - 0.075).abs() < 1e-9, "{sum}");
}

#[test]
fn a_keeper_whose_renewals_hang_past_the_ttl_counts_one_renewals_failed() {
    let recorder = Recorder::new();
    let faulty = Arc::new(FaultyStore::new(memory()));
    let store: SharedStore = faulty.clone();
    let options = KeeperOptions::new(Duration::from_millis(300)).expect("options");
    let tasks = metrics::with_local_recorder(&recorder, || {
        Coordinator::new(&store, "jobs", options).expect("coordinator")
    });
    // The store answers no renewal in time: a frozen server, as the keeper sees it.
    faulty.slow_renewals(Duration::from_secs(2));
    let running =
        tasks.start("k", |holding| holding.wait_lost(Duration::from_secs(10))).expect("start").expect("free");
    let finished = running.join();
    assert!(finished.value, "the work was told the lease was lost");
    assert_eq!(finished.lost.as_ref().map(Error::code), Some("lease_lost"));
    let stats = tasks.lock().stats();
    assert_eq!((stats.lost_not_owner, stats.lost_renewals_failed, stats.lost_max_hold), (0, 1, 0));
    let samples = recorder.snapshot();
    assert_eq!(
        sample(&samples, "racefree_leases_lost_total", "name=jobs,reason=renewals_failed"),
        &Value::Counter(1)
    );
    assert_eq!(
        sample(&samples, "racefree_leases_lost_total", "name=jobs,reason=not_owner"),
        &Value::Counter(0)
    );
}

#[test]
fn acquire_waits_are_timed_by_outcome() {
    let recorder = Recorder::new();
    let store = memory();
    let lock = metrics::with_local_recorder(&recorder, || StartLock::new(&store, "jobs").expect("lock"));
    let ms = Duration::from_millis;
    let lease = lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free");
    assert_eq!(
        lock.acquire("k", Duration::from_secs(30), ms(30)).map(|_| ()).map_err(|e| e.code()),
        Err("timeout")
    );
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(ms(40));
        lease.release().expect("release");
    });
    lock.acquire("k", Duration::from_secs(30), Duration::from_secs(10)).expect("granted once released");
    releaser.join().expect("releaser");
    lock.acquire("free", Duration::from_secs(30), ms(0)).expect("a free key at once");

    let samples = recorder.snapshot();
    let (timed_out, waited) =
        histogram(sample(&samples, "racefree_acquire_wait_seconds", "outcome=timed_out"));
    assert_eq!(timed_out, 1);
    assert!(waited >= 0.030, "the timed-out wait lasted its timeout: {waited}");
    let (granted, waited) = histogram(sample(&samples, "racefree_acquire_wait_seconds", "outcome=granted"));
    assert_eq!(granted, 2);
    assert!(waited >= 0.040, "one wait lasted until the release: {waited}");
}
