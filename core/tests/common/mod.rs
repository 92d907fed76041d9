//! Scenarios shared by the conformance suite (every backend) and the racy-store proof.
//!
//! Each scenario takes a store factory and returns `Err(description)` when the store breaks a
//! promise, so the same code asserts success on real stores and failure on the racy one.
#![allow(dead_code)]

pub mod faulty;
#[cfg(all(feature = "tokio", feature = "redis"))]
pub mod hosted;
pub mod linearizability;
#[cfg(feature = "tokio")]
pub mod on_async;
#[cfg(feature = "postgres")]
pub mod postgres_server;
pub mod racy;
#[cfg(feature = "redis")]
pub mod redis_server;
#[cfg(any(feature = "redis", feature = "postgres"))]
pub mod test_server;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use racefree::{
    Clock as _, Counter, CounterEntry, Error, EventGuard, GuardOptions, ManualClock, Mark, RecordEntry,
    Records, SharedClock, SharedStore, StartLock,
};
use serde_json::json;

/// Makes a fresh, empty store judged by the given clock.
pub type Factory = dyn Fn(SharedClock) -> SharedStore + Sync;

pub type Outcome = Result<(), String>;

/// A fresh file path under the system's temp folder, unique to this process and call.
pub fn scratch_path(name: &str) -> std::path::PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static EMPTIED: std::sync::Once = std::sync::Once::new();
    let dir = std::env::temp_dir().join(format!("racefree-tests-{}", std::process::id()));
    // What a dead process with this PID left (PIDs wrap at 32,768 here: a run that reused one
    // found initdb's old data directory and failed): no living process can own it.
    EMPTIED.call_once(|| drop(std::fs::remove_dir_all(&dir)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// A test CA (`ca.pem`), a server and a client certificate signed by it (`server.pem`/`.key`,
/// `client.pem`/`.key`, both naming `subject_alt_names`, e.g. `IP:127.0.0.1,DNS:localhost`) and
/// another CA (`other-ca.pem`), made with openssl in a fresh directory.
pub fn certificates(subject_alt_names: &str) -> std::path::PathBuf {
    let dir = scratch_path("tls");
    std::fs::create_dir_all(&dir).expect("tls dir");
    let script = r#"
        set -e
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=racefree test CA"
        for who in server client; do
            openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj "/CN=$who"
            printf 'subjectAltName=%s\n' "$SANS" > $who.ext
            openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 -extfile $who.ext
        done
        openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 2 -subj "/CN=another CA"
    "#;
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .env("SANS", subject_alt_names)
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl (install it with scripts/setup.sh)");
    assert!(status.success(), "openssl could not make the test certificates");
    dir
}

pub fn manual() -> (Arc<ManualClock>, SharedClock) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let shared: SharedClock = clock.clone();
    (clock, shared)
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// Runs `work(thread_index)` on `threads` OS threads released together by a barrier.
pub fn on_threads<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(threads);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker thread panicked")).collect()
    })
}

/// A deterministic permutation of 0..n for each seed (no RNG dependency needed).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut items: Vec<usize> = (0..n).collect();
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407) | 1;
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
    items
}

// ---- contention: real threads, one key ----

/// 8 threads × 10,000 `next()` on one counter return exactly {0 … 79,999}.
pub fn counter_next_is_gap_free(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let per_thread = 10_000;
    let results = on_threads(8, |_| {
        let counter = Counter::new(&store, "task:1").expect("counter");
        (0..per_thread).map(|_| counter.next().expect("next")).collect::<Vec<u64>>()
    });
    let mut all: Vec<u64> = results.into_iter().flatten().collect();
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    check(all.len() == total, || format!("{} duplicate indexes among {total}", total - all.len()))?;
    check(all == (0..8 * per_thread).collect::<Vec<_>>(), || "indexes are not exactly 0..80000".into())
}

/// 8 threads claim the same 1,000 execution ids in shuffled orders: one index per id, and the
/// indexes are exactly {0 … 999}.
pub fn claims_are_unique_and_stable(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let ids = 1_000;
    let results = on_threads(8, |t| {
        let counter = Counter::new(&store, "task:claims").expect("counter");
        shuffled(ids, t as u64 + 1)
            .into_iter()
            .map(|i| (i, counter.claim(&format!("exec-{i}")).expect("claim")))
            .collect::<Vec<_>>()
    });
    let mut index_of: HashMap<usize, u64> = HashMap::new();
    let mut new_claims = 0;
    for (id, claim) in results.into_iter().flatten() {
        new_claims += usize::from(claim.is_new);
        if let Some(&seen) = index_of.get(&id) {
            check(seen == claim.index, || format!("exec-{id} got index {seen} and then {}", claim.index))?;
        }
        index_of.insert(id, claim.index);
    }
    check(new_claims == ids, || format!("{new_claims} claims said `new` for {ids} ids"))?;
    let indexes: BTreeSet<u64> = index_of.values().copied().collect();
    check(indexes == (0..ids as u64).collect(), || {
        format!("{} distinct indexes for {ids} ids", indexes.len())
    })?;
    let counter = Counter::new(&store, "task:claims").expect("counter");
    for (id, index) in &index_of {
        let stored = counter.index_of(&format!("exec-{id}")).expect("index_of");
        check(stored == Some(*index), || format!("index_of(exec-{id}) = {stored:?}, claimed {index}"))?;
    }
    check(counter.peek().expect("peek") == ids as u64, || "peek is not the next index".into())
}

/// 100 threads `try_start` one key, in 10 rounds of a fresh key each, every round released by its
/// own barrier: exactly one lease per key; after release a new start wins with a larger token.
/// One round is one chance for a racy store's window to be hit, which a loaded machine can miss;
/// ten rounds make the miss vanishingly rare while costing a real store 1,000 calls.
pub fn one_starter_wins(factory: &Factory) -> Outcome {
    const STARTERS: usize = 100;
    const ROUNDS: usize = 10;
    let store = factory(manual().1);
    let round_start = Barrier::new(STARTERS);
    let leases = on_threads(STARTERS, |_| {
        let lock = StartLock::new(&store, "tasks").expect("lock");
        (0..ROUNDS)
            .map(|round| {
                round_start.wait();
                lock.try_start(&format!("tests.ExampleTask:{round}"), Duration::from_secs(60))
                    .expect("try_start")
                    .map(|lease| (round, lease))
            })
            .collect::<Vec<_>>()
    });
    let mut winners: Vec<Vec<racefree::Lease>> = (0..ROUNDS).map(|_| Vec::new()).collect();
    for (round, lease) in leases.into_iter().flatten().flatten() {
        winners[round].push(lease);
    }
    for (round, won) in winners.iter().enumerate() {
        check(won.len() == 1, || {
            format!("round {round}: {} of {STARTERS} concurrent starters got a lease", won.len())
        })?;
    }
    let first = &winners[0][0];
    let lock = StartLock::new(&store, "tasks").expect("lock");
    first.release().map_err(|e| format!("release: {e}"))?;
    let again = lock.try_start("tests.ExampleTask:0", Duration::from_secs(60)).expect("try_start");
    let again = again.ok_or("no lease after release")?;
    check(again.token() > first.token(), || "token did not grow after release".into())
}

/// 8 threads × 1,000 `update` increments of one record end at 8,000. An update that gives up
/// after its bounded retries says so with `Conflict` (never silently); the caller then tries
/// again, as an application would — so every increment must be in the final count.
pub fn updates_are_not_lost(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let per_thread = 1_000;
    let gave_up = AtomicUsize::new(0);
    on_threads(8, |_| {
        let records = Records::new(&store, "status").expect("records");
        for _ in 0..per_thread {
            loop {
                let result = records.update("job", |current| {
                    let n = current.and_then(|v| v["count"].as_u64()).unwrap_or(0);
                    json!({ "count": n + 1 })
                });
                match result {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) => gave_up.fetch_add(1, Ordering::Relaxed),
                    Err(other) => panic!("update failed: {other}"),
                };
            }
        }
    });
    let records = Records::new(&store, "status").expect("records");
    let stored = records.get("job").expect("get").ok_or("record missing")?;
    let retried = gave_up.load(Ordering::Relaxed);
    check(stored.value["count"] == 8 * per_thread, || {
        format!("8,000 increments ended at {} ({retried} gave up and were retried)", stored.value["count"])
    })?;
    check(stored.version == 8_000, || format!("version {} after 8,000 writes", stored.version))
}

/// 16 threads mark "ended" on each of 50 streams: exactly one `First` per stream.
pub fn ended_is_delivered_once(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let guard = EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard");
    let streams = 50;
    for s in 0..streams {
        guard.mark(&format!("s{s}"), "started").expect("started");
    }
    let firsts = on_threads(16, |_| {
        let guard = EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard");
        (0..streams).filter(|s| guard.mark(&format!("s{s}"), "ended").expect("mark") == Mark::First).count()
    });
    let total: usize = firsts.iter().sum();
    check(total == streams, || format!("{total} `First` marks of `ended` for {streams} streams"))
}

// ---- semantics, with the manual clock ----

pub fn counter_semantics(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let c = Counter::new(&store, "task:sem").expect("counter");
    check(c.peek() == Ok(0), || "new counter does not peek 0".into())?;
    check(c.next() == Ok(0) && c.next() == Ok(1), || "next is not 0, 1".into())?;
    let a = c.claim("a").expect("claim");
    check(a.index == 2 && a.is_new, || format!("first claim {a:?}"))?;
    check(c.claim("a").expect("claim") == racefree::Claim { index: 2, is_new: false }, || {
        "repeat claim".into()
    })?;
    check(c.index_of("a") == Ok(Some(2)) && c.index_of("zz") == Ok(None), || "index_of".into())?;
    c.set(10).expect("set");
    check(c.next() == Ok(10), || "next after set(10)".into())?;
    check(c.index_of("a") == Ok(Some(2)), || "set forgot claims".into())?;
    c.reset().expect("reset");
    check(c.peek() == Ok(0) && c.index_of("a") == Ok(None), || "reset kept state".into())?;
    check(c.claim("a").map(|x| x.index) == Ok(0), || "claim after reset".into())?;
    c.reset().expect("reset");
    check(store.stats().expect("stats").entries == 0, || "reset left entries".into())
}

pub fn expired_lease_goes_to_next_starter(factory: &Factory) -> Outcome {
    let (clock, shared) = manual();
    let store = factory(shared);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let first = lock.try_start("k", Duration::from_secs(10)).expect("start").ok_or("no first lease")?;
    clock.advance(Duration::from_millis(9_999));
    check(lock.is_held("k") == Ok(true), || "lease expired early".into())?;
    check(lock.try_start("k", Duration::from_secs(10)).expect("start").is_none(), || {
        "second starter won".into()
    })?;
    clock.advance(Duration::from_millis(1));
    check(lock.is_held("k") == Ok(false), || "lease outlived its TTL".into())?;
    let second =
        lock.try_start("k", Duration::from_secs(10)).expect("start").ok_or("no lease after expiry")?;
    check(second.token() > first.token(), || "token did not grow across expiry".into())?;
    check(matches!(first.release(), Err(Error::NotOwner { .. })), || "old holder released".into())?;
    check(matches!(first.renew(Duration::from_secs(5)), Err(Error::NotOwner { .. })), || {
        "old holder renewed".into()
    })?;
    check(lock.holder("k").expect("holder").map(|g| g.token) == Some(second.token()), || {
        "holder changed".into()
    })?;
    // Renewal extends from now.
    clock.advance(Duration::from_secs(9));
    second.renew(Duration::from_secs(10)).map_err(|e| format!("renew: {e}"))?;
    clock.advance(Duration::from_secs(5));
    check(lock.is_held("k") == Ok(true), || "renewal did not extend".into())?;
    check(second.time_left() == Duration::from_secs(5), || format!("time_left {:?}", second.time_left()))?;
    second.release().map_err(|e| format!("release: {e}"))?;
    check(matches!(second.release(), Err(Error::NotOwner { .. })), || "double release accepted".into())
}

/// A lease kept as its token (`try_grant`, `renew_token`, `release_token`) behaves as a `Lease`.
pub fn leases_kept_by_token(factory: &Factory) -> Outcome {
    let (clock, shared) = manual();
    let store = factory(shared);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let grant = lock.try_grant("k", Duration::from_secs(10)).expect("grant").ok_or("no grant")?;
    check(grant.deadline_ms == clock.now_ms() + 10_000, || format!("deadline {}", grant.deadline_ms))?;
    check(lock.try_grant("k", Duration::from_secs(10)).expect("grant").is_none(), || "second grant".into())?;
    check(lock.try_start("k", Duration::from_secs(10)).expect("start").is_none(), || {
        "started over a grant".into()
    })?;
    for wrong in [0, grant.token - 1, grant.token + 1, u64::MAX] {
        check(matches!(lock.release_token("k", wrong), Err(Error::NotOwner { .. })), || {
            format!("released with token {wrong}")
        })?;
        check(
            matches!(lock.renew_token("k", wrong, Duration::from_secs(1)), Err(Error::NotOwner { .. })),
            || format!("renewed with token {wrong}"),
        )?;
    }
    check(matches!(lock.release_token("other", grant.token), Err(Error::NotOwner { .. })), || {
        "released another key".into()
    })?;
    clock.advance(Duration::from_secs(9));
    let deadline =
        lock.renew_token("k", grant.token, Duration::from_secs(10)).map_err(|e| format!("renew: {e}"))?;
    check(deadline == clock.now_ms() + 10_000, || format!("renewed deadline {deadline}"))?;
    check(
        lock.holder("k").expect("holder")
            == Some(racefree::LeaseGrant { token: grant.token, deadline_ms: deadline }),
        || "holder differs from the renewal".into(),
    )?;
    check(
        lock.renew_token("k", grant.token, Duration::ZERO).is_err_and(|e| e.code() == "invalid_argument"),
        || "a zero TTL renewed".into(),
    )?;
    check(lock.release_token("", grant.token).is_err_and(|e| e.code() == "invalid_key"), || {
        "empty key".into()
    })?;
    lock.release_token("k", grant.token).map_err(|e| format!("release: {e}"))?;
    check(matches!(lock.release_token("k", grant.token), Err(Error::NotOwner { .. })), || {
        "double release".into()
    })?;
    let next =
        lock.try_start("k", Duration::from_secs(1)).expect("start").ok_or("key not free after release")?;
    check(next.token() > grant.token, || "token did not grow".into())?;
    let stats = lock.stats();
    check((stats.granted, stats.released, stats.renewed, stats.rejected_not_owner) == (2, 1, 1, 10), || {
        format!("stats {stats:?}")
    })
}

pub fn tokens_grow_across_keys(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let mut last = 0;
    for i in 0..20 {
        let lease = lock.try_start(&format!("k{}", i % 3), Duration::from_secs(1)).expect("start");
        let lease = lease.ok_or("key unexpectedly held")?;
        check(lease.token() > last, || format!("token {} after {last}", lease.token()))?;
        last = lease.token();
        lease.release().expect("release");
    }
    Ok(())
}

pub fn marks_are_ordered_and_retained(factory: &Factory) -> Outcome {
    let (clock, shared) = manual();
    let store = factory(shared);
    let options = GuardOptions::retention(Duration::from_secs(60));
    let guard = EventGuard::with_options(&store, "streams", &["started", "ended"], options).expect("guard");
    let err = guard.mark("s", "ended").expect_err("ended before started");
    check(
        err == Error::OutOfOrder { stream: "s".into(), event: "ended".into(), missing: "started".into() },
        || format!("{err:?}"),
    )?;
    check(store.stats().expect("stats").entries == 0, || "out-of-order mark recorded something".into())?;
    check(guard.mark("s", "started") == Ok(Mark::First), || "started".into())?;
    check(guard.mark("s", "started") == Ok(Mark::Duplicate), || "started twice".into())?;
    check(guard.last_marked("s") == Ok(Some("started")), || "last_marked".into())?;
    check(guard.mark("s", "ended") == Ok(Mark::First), || "ended".into())?;
    check(guard.is_marked("s", "ended") == Ok(true), || "is_marked".into())?;
    let stats = guard.stats();
    check(stats.delivered == 2 && stats.duplicates_suppressed == 1 && stats.out_of_order == 1, || {
        format!("{stats:?}")
    })?;
    clock.advance(Duration::from_secs(60));
    check(guard.is_marked("s", "started") == Ok(false), || "marks outlived retention".into())?;
    store.sweep().expect("sweep");
    let stats = store.stats().expect("stats");
    check(stats.entries == 0 && stats.expired_swept == 1, || {
        format!("after retention and sweep: {stats:?}")
    })?;
    check(guard.mark("s", "started") == Ok(Mark::First), || "stream not forgotten".into())?;
    check(guard.forget("s") == Ok(true) && store.stats().expect("stats").entries == 0, || "forget".into())
}

pub fn nothing_left_after_release_or_expiry(factory: &Factory) -> Outcome {
    let (clock, shared) = manual();
    let store = factory(shared);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let lease = lock.try_start("a", Duration::from_secs(5)).expect("start").ok_or("no lease")?;
    let _expiring = lock.try_start("b", Duration::from_secs(5)).expect("start").ok_or("no lease")?;
    check(store.stats().expect("stats").entries == 2, || "two leases are not two entries".into())?;
    lease.release().expect("release");
    check(store.stats().expect("stats").entries == 1, || "release left the entry".into())?;
    clock.advance(Duration::from_secs(5));
    store.sweep().expect("sweep");
    let stats = store.stats().expect("stats");
    check(stats.entries == 0 && stats.expired_swept >= 1, || format!("after expiry and sweep: {stats:?}"))
}

pub fn records_compare_and_swap(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let r = Records::new(&store, "pods").expect("records");
    check(r.get("p") == Ok(None), || "missing record".into())?;
    check(r.put("p", &json!({"a": 1}), None) == Ok(1), || "create".into())?;
    check(
        r.put("p", &json!({"a": 2}), None)
            == Err(Error::Conflict { key: "p".into(), current_version: Some(1) }),
        || "create-only accepted an existing record".into(),
    )?;
    check(
        r.put("q", &json!(1), Some(1)) == Err(Error::Conflict { key: "q".into(), current_version: None }),
        || "CAS on a missing record".into(),
    )?;
    check(r.put("p", &json!({"a": 2}), Some(1)) == Ok(2), || "CAS".into())?;
    check(
        r.put("p", &json!({"a": 3}), Some(1)).is_err()
            && r.get("p").expect("get").map(|v| v.value) == Some(json!({"a": 2})),
        || "stale CAS changed the value".into(),
    )?;
    // Fencing: a token older than one already seen is rejected and changes nothing.
    check(r.put_fenced("p", &json!("t5"), Some(2), 5) == Ok(3), || "fenced write".into())?;
    let stale = r.put_fenced("p", &json!("t3"), Some(3), 3);
    check(stale == Err(Error::StaleToken { key: "p".into(), token: 3, latest: 5 }), || format!("{stale:?}"))?;
    check(r.put_fenced("p", &json!("t7"), Some(3), 7) == Ok(4), || "newer token".into())?;
    let updated = r
        .try_update_with("p", &racefree::UpdateOptions::fenced(6), |_| Ok::<_, Error>(json!("late")))
        .expect_err("stale fenced update");
    check(updated.code() == "stale_token", || format!("{updated:?}"))?;
    check(r.get("p").expect("get").map(|v| (v.value, v.version)) == Some((json!("t7"), 4)), || {
        "value".into()
    })?;
    check(r.delete("p", Some(1)).is_err() && r.delete("p", Some(4)) == Ok(true), || "delete".into())?;
    // The record accepted tokens, so its tombstone (the largest token) stays as its one entry.
    check(r.delete("p", None) == Ok(false) && store.stats().expect("stats").entries == 1, || "deleted".into())
}

/// A key's versions never repeat, so a compare-and-swap computed from a deleted record cannot
/// land on the record created after it (ABA); a deleted record's fence still refuses old tokens.
pub fn records_never_repeat_a_version(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let (recs, other) =
        (Records::new(&store, "aba").expect("records"), Records::new(&store, "aba").expect("records"));
    recs.put("k", &json!("a"), None).expect("create");
    // The change runs between update's read and its write: the record it read is replaced.
    let updated = recs
        .update("k", |value| {
            if value == Some(&json!("a")) {
                other.delete("k", None).expect("delete");
                other.put("k", &json!("b"), None).expect("re-create");
            }
            json!(format!("{}+1", value.and_then(|v| v.as_str()).unwrap_or("none")))
        })
        .map_err(|e| format!("update: {e}"))?;
    check(updated.value == json!("b+1"), || format!("the write of \"b\" was lost: update gave {updated:?}"))?;
    check(updated.version == 3, || format!("version {} after a, delete, b, b+1", updated.version))?;
    // The space remembers the largest version it deleted: every new record starts above it.
    recs.delete("k", Some(3)).expect("delete");
    check(recs.put("k", &json!(1), None) == Ok(4), || "re-created below a deleted version".into())?;
    check(recs.put("fresh", &json!(1), None) == Ok(4), || "a new key starts above the space's floor".into())?;
    let elsewhere = Records::new(&store, "other space").expect("records");
    check(elsewhere.put("k", &json!(1), None) == Ok(1), || "another space's versions moved".into())?;
    // A deleted record's largest token refuses older ones, also to create it again.
    recs.put_fenced("t", &json!(1), None, 7).expect("fenced create");
    recs.delete("t", None).expect("delete");
    check(recs.get("t") == Ok(None), || "a tombstone reads as a record".into())?;
    let stale = recs.put_fenced("t", &json!("resurrected"), None, 5);
    check(stale == Err(Error::StaleToken { key: "t".into(), token: 5, latest: 7 }), || {
        format!("an older token re-created a deleted record: {stale:?}")
    })?;
    check(
        recs.put("t", &json!(2), Some(1)) == Err(Error::Conflict { key: "t".into(), current_version: None }),
        || "a compare-and-swap matched a tombstone".into(),
    )?;
    check(recs.delete("t", None) == Ok(false), || "a tombstone was deleted as a record".into())?;
    let records_listed = store.inspect().expect("inspect").records.iter().any(|r| r.key == "t");
    check(!records_listed, || "inspect lists a tombstone".into())?;
    // Unfenced, the key is created again and keeps the largest token it ever saw.
    check(recs.put("t", &json!(3), None) == Ok(5), || "re-create over a tombstone".into())?;
    let stale = recs.put_fenced("t", &json!(4), Some(5), 6);
    check(stale.as_ref().err().map(Error::code) == Some("stale_token"), || format!("{stale:?}"))?;
    check(recs.put_fenced("t", &json!(4), Some(5), 7) == Ok(6), || "the same token is accepted".into())
}

/// Slow updates (their change takes a while) race one thread that deletes the record and
/// creates a new incarnation of it, again and again: no update computed from one incarnation
/// may land on the next. Each incarnation carries its number; only the deleter creates them, so
/// every read it makes must show the last one it created.
pub fn updates_never_land_on_a_new_incarnation(factory: &Factory) -> Outcome {
    #[derive(Debug)]
    enum Skip {
        Absent,
        Store(Error),
    }
    impl From<Error> for Skip {
        fn from(error: Error) -> Self {
            Skip::Store(error)
        }
    }
    let store = factory(manual().1);
    let incarnations = 300;
    let done = std::sync::atomic::AtomicBool::new(false);
    let records = Records::new(&store, "incarnations").expect("records");
    records.put("k", &json!({"incarnation": 0, "n": 0}), None).expect("create");
    let violations = on_threads(5, |t| -> Vec<String> {
        let records = Records::new(&store, "incarnations").expect("records");
        if t > 0 {
            let options = racefree::UpdateOptions::default().with_initial_backoff(Duration::from_micros(100));
            while !done.load(Ordering::Relaxed) {
                let result = records.try_update_with("k", &options, |current| {
                    let current = current.ok_or(Skip::Absent)?;
                    thread::sleep(Duration::from_micros(300)); // the window: a slow change
                    Ok(json!({"incarnation": current["incarnation"], "n": current["n"].as_u64().unwrap_or(0) + 1}))
                });
                match result {
                    Ok(_) | Err(Skip::Absent) | Err(Skip::Store(Error::Conflict { .. })) => {}
                    Err(Skip::Store(other)) => return vec![format!("update failed: {other}")],
                }
            }
            return Vec::new();
        }
        let mut seen = Vec::new();
        for created in 0..incarnations {
            loop {
                let current = records.get("k").expect("get").expect("only this thread deletes");
                if current.value["incarnation"] != created {
                    seen.push(format!(
                        "incarnation {} came back after {created} was created (version {})",
                        current.value["incarnation"], current.version
                    ));
                }
                match records.delete("k", Some(current.version)) {
                    Ok(true) => break,
                    Ok(false) => return vec!["a delete found nothing to delete".into()],
                    Err(Error::Conflict { .. }) => {} // an update landed: read again
                    Err(other) => return vec![format!("delete failed: {other}")],
                }
            }
            if let Err(e) = records.put("k", &json!({"incarnation": created + 1, "n": 0}), None) {
                seen.push(format!("creating incarnation {} failed: {e}", created + 1));
            }
            thread::sleep(Duration::from_micros(200));
        }
        done.store(true, Ordering::Relaxed);
        seen
    });
    let violations: Vec<String> = violations.into_iter().flatten().collect();
    check(violations.is_empty(), || format!("{} violations, first: {}", violations.len(), violations[0]))
}

/// Every bad input class gets its typed error, and a rejected call records nothing.
pub fn bad_input_is_rejected(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let long = "k".repeat(racefree::MAX_KEY_BYTES + 1);
    let max = "k".repeat(racefree::MAX_KEY_BYTES);
    let ttl = Duration::from_secs(1);
    let code = |r: Result<(), Error>| r.err().map(|e| e.code());
    let key = Some("invalid_key");
    let arg = Some("invalid_argument");

    check(code(Counter::new(&store, "").map(drop)) == key, || "empty counter key".into())?;
    check(code(Counter::new(&store, &long).map(drop)) == key, || "oversized counter key".into())?;
    let c = Counter::new(&store, &max).expect("a key of exactly MAX_KEY_BYTES is valid");
    check(code(c.claim("").map(drop)) == key && code(c.claim(&long).map(drop)) == key, || "claim id".into())?;
    check(code(c.index_of("").map(drop)) == key, || "index_of id".into())?;

    let lock = StartLock::new(&store, "l").expect("lock");
    check(code(StartLock::new(&store, "").map(drop)) == key, || "lock name".into())?;
    check(code(lock.try_start("", ttl).map(drop)) == key, || "lease key".into())?;
    check(code(lock.try_start("k", Duration::ZERO).map(drop)) == arg, || "zero ttl".into())?;
    check(code(lock.try_start("k", Duration::from_micros(500)).map(drop)) == arg, || "sub-ms ttl".into())?;
    check(code(lock.try_start("k", Duration::MAX).map(drop)) == arg, || "huge ttl".into())?;
    let lease = lock.try_start("k", ttl).expect("start").ok_or("no lease")?;
    check(code(lease.renew(Duration::ZERO)) == arg, || "zero renew ttl".into())?;
    lease.release().expect("release");

    check(code(EventGuard::new(&store, "g", &[] as &[&str]).map(drop)) == arg, || "no events".into())?;
    check(code(EventGuard::new(&store, "g", &["a", "a"]).map(drop)) == arg, || "duplicate event".into())?;
    check(code(EventGuard::new(&store, "g", &["a", ""]).map(drop)) == key, || "empty event".into())?;
    let zero = GuardOptions::retention(Duration::ZERO);
    check(code(EventGuard::with_options(&store, "g", &["a"], zero).map(drop)) == arg, || {
        "zero retention".into()
    })?;
    let guard = EventGuard::new(&store, "g", &["started", "ended"]).expect("guard");
    check(code(guard.mark("s", "paused").map(drop)) == arg, || "undeclared event".into())?;
    check(code(guard.mark("", "started").map(drop)) == key, || "empty stream".into())?;

    let r = Records::new(&store, "r").expect("records");
    check(code(r.put("", &json!(1), None).map(drop)) == key, || "record key".into())?;
    let zero_attempts = racefree::UpdateOptions::default().with_max_attempts(0);
    check(
        code(r.try_update_with("k", &zero_attempts, |_| Ok::<_, Error>(json!(1))).map(drop)) == arg,
        || "zero attempts".into(),
    )?;

    let stats = store.stats().expect("stats");
    check(stats.entries == 0, || format!("rejected calls recorded {} entries", stats.entries))
}

/// `inspect` lists exactly what is live, sorted, in every backend.
pub fn inventory_lists_live_entries(factory: &Factory) -> Outcome {
    let (clock, shared) = manual();
    let store = factory(shared);
    let counter = Counter::new(&store, "task:1").expect("counter");
    counter.claim("a").expect("claim");
    counter.claim("b").expect("claim");
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let lease = lock.try_start("k", Duration::from_secs(10)).expect("start").ok_or("no lease")?;
    lock.try_start("brief", Duration::from_secs(1)).expect("start").ok_or("no lease")?;
    EventGuard::new(&store, "g", &["started"]).expect("guard").mark("s", "started").expect("mark");
    Records::new(&store, "pods").expect("records").put("p", &json!(1), None).expect("put");
    clock.advance(Duration::from_secs(1));
    let inventory = store.inspect().expect("inspect");
    let counters = vec![CounterEntry { counter: "task:1".into(), next: 2, claims: 2 }];
    check(inventory.counters == counters, || format!("{:?}", inventory.counters))?;
    let leases: Vec<_> =
        inventory.leases.iter().map(|l| (l.lock.as_str(), l.key.as_str(), l.token)).collect();
    check(leases == vec![("tasks", "k", lease.token())], || format!("{leases:?}"))?;
    check(inventory.streams.len() == 1 && inventory.streams[0].marked == 1, || {
        format!("{:?}", inventory.streams)
    })?;
    check(
        inventory.records == vec![RecordEntry { space: "pods".into(), key: "p".into(), version: 1 }],
        || format!("{:?}", inventory.records),
    )
}

/// The first grants of fresh locks race: for each of 40 new locks, 8 threads released by one
/// barrier each take a different key at the same instant, so every grant finds the lock without
/// its token counter and some create it together. Every grant must succeed, with 8 different tokens.
/// (A first grant once took the token row another had just created for an exhausted lock.)
pub fn first_grants_of_fresh_locks_race(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let (threads, locks) = (8, 40);
    let round = Barrier::new(threads);
    let tokens = on_threads(threads, |t| {
        (0..locks)
            .map(|l| {
                let lock = StartLock::new(&store, &format!("fresh-{l}")).expect("lock");
                round.wait();
                lock.try_grant(&format!("k{t}"), Duration::from_secs(60)).map(|g| g.map(|g| g.token))
            })
            .collect::<Vec<_>>()
    });
    for l in 0..locks {
        let mut granted = Vec::new();
        for (t, results) in tokens.iter().enumerate() {
            match &results[l] {
                Ok(Some(token)) => granted.push(*token),
                Ok(None) => return Err(format!("lock fresh-{l}: k{t} was refused, though nobody held it")),
                Err(e) => return Err(format!("lock fresh-{l}: the first grant of k{t} failed: {e}")),
            }
        }
        granted.sort_unstable();
        granted.dedup();
        check(granted.len() == threads, || format!("lock fresh-{l}: {threads} grants, tokens {granted:?}"))?;
    }
    Ok(())
}

/// Every store's blocking calls work from inside a tokio runtime: on the workers of a
/// multi-thread one (4 tasks on 2 workers, every primitive), and on a current-thread one, where
/// a store is also opened and dropped (a store that ran a runtime of its own there, or blocked
/// on one, would panic or deadlock). Blocking calls park the worker for their round trip: the
/// async forms are what a tokio service should call; this is what the blocking ones promise.
pub fn callable_from_inside_tokio_runtimes(factory: &Factory) -> Outcome {
    let store = factory(manual().1);
    let work = |store: SharedStore, task: usize| -> Result<u64, Error> {
        let index = Counter::new(&store, "inside-tokio")?.next()?;
        let lock = StartLock::new(&store, "inside-tokio")?;
        lock.try_start(&format!("k{task}"), Duration::from_secs(30))?
            .ok_or_else(|| Error::Timeout { waited: Duration::ZERO })?
            .release()?;
        EventGuard::new(&store, "inside-tokio", &["started"])?.mark(&format!("s{task}"), "started")?;
        Records::new(&store, "inside-tokio")?.put(&format!("r{task}"), &json!(task), None)?;
        Ok(index)
    };
    let workers =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut indexes = workers.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                tokio::spawn({
                    let store = store.clone();
                    async move { work(store, t) }
                })
            })
            .collect();
        let mut indexes = Vec::new();
        for task in tasks {
            indexes
                .push(task.await.map_err(|e| format!("a task panicked: {e}"))?.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(indexes)
    })?;
    indexes.sort_unstable();
    check(indexes == [0, 1, 2, 3], || format!("indexes {indexes:?} from 4 tasks"))?;
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    current.block_on(async {
        let index = work(store, 4).map_err(|e| e.to_string())?;
        check(index == 4, || format!("index {index} on a current-thread runtime"))?;
        // A store opened and dropped on the runtime's own thread.
        let own = factory(manual().1);
        Counter::new(&own, "c").expect("counter").next().map_err(|e| e.to_string())?;
        drop(own);
        Ok(())
    })
}
