//! What only the memory store promises: its `max_keys` bound, amortized expiry, URL options.

use std::sync::Arc;
use std::time::Duration;

use racefree::{Counter, Error, ManualClock, MemoryStore, SharedClock, SharedStore, StartLock};

fn bounded(max_keys: usize) -> (Arc<ManualClock>, SharedStore) {
    let clock = Arc::new(ManualClock::new(0));
    let shared: SharedClock = clock.clone();
    let store = MemoryStore::builder().clock(shared).max_keys(max_keys).build().expect("store");
    (clock, Arc::new(store))
}

#[test]
fn capacity_is_answered_not_exceeded() {
    let (_, store) = bounded(10);
    for i in 0..10 {
        Counter::new(&store, &format!("c{i}")).unwrap().next().unwrap();
    }
    let err = Counter::new(&store, "c10").unwrap().next().unwrap_err();
    assert_eq!(err, Error::CapacityExceeded { max_keys: 10 });
    assert_eq!(store.stats().unwrap().entries, 10);
    // Existing keys keep working at the bound.
    assert_eq!(Counter::new(&store, "c0").unwrap().next(), Ok(1));
}

#[test]
fn a_rejected_claim_records_nothing() {
    let (_, store) = bounded(3);
    let counter = Counter::new(&store, "task").unwrap();
    counter.claim("a").unwrap(); // the counter and one claim: 2 entries
    counter.claim("b").unwrap(); // 3
    assert_eq!(counter.claim("c").unwrap_err().code(), "capacity_exceeded");
    assert_eq!((counter.index_of("c"), counter.peek()), (Ok(None), Ok(2)));
    assert_eq!(counter.claim("a").unwrap().index, 0, "repeat claims need no room");
}

#[test]
fn expired_entries_make_room_when_full() {
    let (clock, store) = bounded(10);
    let lock = StartLock::new(&store, "tasks").unwrap();
    for i in 0..10 {
        lock.try_start(&format!("k{i}"), Duration::from_secs(1)).unwrap().unwrap();
    }
    assert_eq!(lock.try_start("k10", Duration::from_secs(1)).unwrap_err().code(), "capacity_exceeded");
    clock.advance(Duration::from_secs(1));
    // Ten new leases fit: the expired ones are removed to make room (lazily in the shards these
    // keys land in, and by a sweep when the store is still full).
    for i in 10..20 {
        assert!(lock.try_start(&format!("k{i}"), Duration::from_secs(1)).unwrap().is_some(), "k{i}");
    }
    assert_eq!(store.stats().unwrap().entries, 10);
    assert_eq!(lock.try_start("k20", Duration::from_secs(1)).unwrap_err().code(), "capacity_exceeded");
}

#[test]
fn expiry_is_amortized_over_ordinary_calls() {
    let (clock, store) = bounded(100_000);
    let lock = StartLock::new(&store, "tasks").unwrap();
    for i in 0..2_000 {
        lock.try_start(&format!("k{i}"), Duration::from_secs(1)).unwrap().unwrap();
    }
    clock.advance(Duration::from_secs(1));
    // No sweep(): just traffic on other keys.
    for i in 0..2_000 {
        lock.is_held(&format!("other{i}")).unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(stats.entries < 500, "only {} of 2,000 expired leases were removed", 2_000 - stats.entries);
    store.sweep().unwrap();
    assert_eq!(store.stats().unwrap().entries, 0);
}

#[test]
fn distinct_keys_do_not_share_state() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let a = Counter::new(&store, "a:b").unwrap();
    let b = Counter::new(&store, "a").unwrap();
    a.claim("b").unwrap();
    assert_eq!((b.index_of("b"), b.peek()), (Ok(None), Ok(0)));
}

#[test]
fn urls_open_or_explain() {
    let store = racefree::open("memory://?namespace=billing&max_keys=5").unwrap();
    assert_eq!(store.namespace(), "billing");
    for i in 0..5 {
        Counter::new(&store, &format!("c{i}")).unwrap().next().unwrap();
    }
    assert_eq!(Counter::new(&store, "c5").unwrap().next().unwrap_err().code(), "capacity_exceeded");
    let code = |url: &str| racefree::open(url).unwrap_err().code();
    assert_eq!(code("memory://?max_keys=0"), "invalid_argument");
    assert_eq!(code("memory://?max_keys=many"), "invalid_argument");
    assert_eq!(code("memory://?colour=blue"), "invalid_argument");
    assert_eq!(code("memory://somewhere"), "invalid_argument");
    assert_eq!(code("mysql://db"), "invalid_argument");
    // Not in the build, or nothing listening: either way the backend is unavailable.
    assert_eq!(code("postgres://127.0.0.1:1/db"), "backend_unavailable");
    assert_eq!(code("no-scheme"), "invalid_argument");
    #[cfg(not(feature = "sqlite"))]
    assert_eq!(code("sqlite:///tmp/x.db"), "backend_unavailable");
    assert_eq!(
        code("sqlite://relative.db"),
        if cfg!(feature = "sqlite") { "invalid_argument" } else { "backend_unavailable" }
    );
    assert_eq!(code("redis://127.0.0.1:6379/0"), "backend_unavailable");
}

#[test]
fn every_error_has_a_distinct_stable_code() {
    use std::time::Duration;
    let all = [
        Error::InvalidKey { reason: String::new() },
        Error::InvalidArgument { reason: String::new() },
        Error::Conflict { key: String::new(), current_version: None },
        Error::NotOwner { key: String::new(), token: 0 },
        Error::OutOfOrder { stream: String::new(), event: String::new(), missing: String::new() },
        Error::StaleToken { key: String::new(), token: 0, latest: 0 },
        Error::CapacityExceeded { max_keys: 0 },
        Error::BackendUnavailable { reason: String::new(), source: None },
        Error::CorruptData { reason: String::new() },
        Error::Timeout { waited: Duration::ZERO },
        Error::LeaseLost { key: String::new(), token: 0, reason: racefree::LossReason::NotOwner },
    ];
    let codes: Vec<&str> = all.iter().map(Error::code).collect();
    assert_eq!(codes, Error::CODES);
}

#[test]
fn acquire_waits_for_release_and_times_out() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let lock = StartLock::new(&store, "tasks").unwrap();
    let held = lock.try_start("k", Duration::from_secs(30)).unwrap().unwrap();
    let err = lock.acquire("k", Duration::from_secs(30), Duration::from_millis(30)).unwrap_err();
    assert!(matches!(err, Error::Timeout { waited } if waited >= Duration::from_millis(30)), "{err:?}");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            held.release().unwrap();
        });
        let next = lock.acquire("k", Duration::from_secs(30), Duration::from_secs(5)).unwrap();
        assert!(next.token() > held.token());
    });
}
