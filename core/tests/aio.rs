//! The async forms (`racefree::aio`): cancel safety at every await point, one holder under
//! contention on every store, and cancellation by timeouts against real servers.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use racefree::aio::{self, BoxFuture, Counter, EventGuard, Records, StartLock};
use racefree::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};
use racefree::{Mark, MemoryStore, Result, SharedClock};
use serde_json::{json, Value};

/// The memory store behind a gate: every call is `Pending` once before it applies, once after
/// it applied but before its reply, and once more after, as a remote store's call may be.
/// Claims to be remote, so the primitives treat it as one. `pretend_local` makes it claim to be
/// local instead (the broken variant: a lock that trusts it skips its in-flight protection).
#[derive(Debug)]
struct Gated {
    inner: aio::SharedStore,
    pretend_local: bool,
    /// Claims that its host runs every future to its end (a JavaScript event loop).
    runs_to_completion: bool,
    /// Renewals fail as if the server were unreachable.
    fail_renewals: std::sync::atomic::AtomicBool,
    /// Tasks the primitives started on it.
    spawned: Arc<AtomicUsize>,
}

/// `Pending` once, then ready: one await point.
struct Yield(bool);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn gated<'a, T: Send + 'a>(call: BoxFuture<'a, Result<T>>) -> BoxFuture<'a, Result<T>> {
    Box::pin(async move {
        Yield(false).await; // before the send
        let result = call.await; // applied (the memory store answers when first polled)
        Yield(false).await; // applied, reply not yet read
        let result = result;
        Yield(false).await; // after the reply
        result
    })
}

macro_rules! gate {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        gated($self.inner.$method($($arg),*))
    };
}

impl aio::Store for Gated {
    fn clock(&self) -> &SharedClock {
        self.inner.clock()
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn is_local(&self) -> bool {
        self.pretend_local
    }
    fn runs_to_completion(&self) -> bool {
        self.pretend_local || self.runs_to_completion
    }
    fn spawner(&self) -> aio::Spawner {
        let (runtime, spawned) = (tokio::runtime::Handle::current(), Arc::clone(&self.spawned));
        Arc::new(move |task| {
            spawned.fetch_add(1, Ordering::SeqCst);
            drop(runtime.spawn(task));
        })
    }
    fn counter_next<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        gate!(self.counter_next(counter))
    }
    fn counter_claim<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Claim>> {
        gate!(self.counter_claim(counter, id))
    }
    fn counter_index_of<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        gate!(self.counter_index_of(counter, id))
    }
    fn counter_peek<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        gate!(self.counter_peek(counter))
    }
    fn counter_set<'a>(&'a self, counter: &'a str, next: u64) -> BoxFuture<'a, Result<()>> {
        gate!(self.counter_set(counter, next))
    }
    fn counter_reset<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<()>> {
        gate!(self.counter_reset(counter))
    }
    fn guard_mark<'a>(
        &'a self,
        guard: &'a str,
        stream: &'a str,
        position: u32,
        retention_ms: u64,
    ) -> BoxFuture<'a, Result<MarkOutcome>> {
        gate!(self.guard_mark(guard, stream, position, retention_ms))
    }
    fn guard_marked<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<u32>> {
        gate!(self.guard_marked(guard, stream))
    }
    fn guard_forget<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<bool>> {
        gate!(self.guard_forget(guard, stream))
    }
    fn lease_try_grant<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        gate!(self.lease_try_grant(lock, key, ttl_ms))
    }
    fn lease_renew<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        token: u64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        if self.fail_renewals.load(Ordering::SeqCst) {
            let frozen = racefree::Error::BackendUnavailable { reason: "frozen".into(), source: None };
            return Box::pin(async { Err(frozen) });
        }
        gate!(self.lease_renew(lock, key, token, ttl_ms))
    }
    fn lease_release<'a>(&'a self, lock: &'a str, key: &'a str, token: u64) -> BoxFuture<'a, Result<()>> {
        gate!(self.lease_release(lock, key, token))
    }
    fn lease_holder<'a>(&'a self, lock: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        gate!(self.lease_holder(lock, key))
    }
    fn record_get<'a>(&'a self, space: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        gate!(self.record_get(space, key))
    }
    fn record_put<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: &'a Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> BoxFuture<'a, Result<u64>> {
        gate!(self.record_put(space, key, value, expected_version, fencing_token))
    }
    fn record_delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool>> {
        gate!(self.record_delete(space, key, expected_version))
    }
    fn sweep(&self) -> BoxFuture<'_, Result<u64>> {
        gate!(self.sweep())
    }
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        gate!(self.stats())
    }
    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>> {
        gate!(self.inspect())
    }
}

fn gated_store(pretend_local: bool) -> aio::SharedStore {
    Arc::new(Gated { pretend_local, ..remote_gated() })
}

/// The memory store behind the gate, claiming to be remote.
fn remote_gated() -> Gated {
    let memory: racefree::SharedStore = Arc::new(MemoryStore::new());
    Gated {
        inner: aio::from_blocking(memory),
        pretend_local: false,
        runs_to_completion: false,
        fail_renewals: false.into(),
        spawned: Arc::default(),
    }
}

/// Polls `future` `k` times (or until it is ready) and drops it; whether it finished.
fn poll_then_drop<F: Future>(future: F, k: usize) -> bool {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    (0..k).any(|_| future.as_mut().poll(&mut cx).is_ready())
}

/// Lets the tasks a dropped future left behind (a grant finishing, a release) run to their end.
async fn settle() {
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
}

/// How many polls a call takes at most through the gate (each primitive call is a few store calls).
const POLLS: usize = 16;

/// Every lock operation that grants, dropped after every number of polls: the key is free
/// afterwards (a grant nobody took is released), and tokens never repeat.
async fn grants_dropped_at_every_await(store: aio::SharedStore) -> std::result::Result<(), String> {
    let text = |err: racefree::Error| err.to_string();
    let lock = StartLock::new(&store, "gate").map_err(text)?;
    let ttl = Duration::from_secs(30);
    let mut largest_token = 0;
    for k in 0..POLLS {
        for (operation, key) in [("try_start", "a"), ("try_grant", "b"), ("acquire", "c")] {
            let finished = match operation {
                "try_start" => poll_then_drop(lock.try_start(key, ttl), k),
                "try_grant" => poll_then_drop(lock.try_grant(key, ttl), k),
                _ => poll_then_drop(lock.acquire(key, ttl, Duration::from_secs(5)), k),
            };
            settle().await;
            if let Some(holder) = lock.holder(key).await.map_err(text)? {
                return Err(format!(
                    "{operation} dropped after {k} polls (finished: {finished}) left key {key:?} held by token {}",
                    holder.token
                ));
            }
            let lease = lock
                .try_start(key, ttl)
                .await
                .map_err(text)?
                .ok_or(format!("{key:?} not free after {operation}"))?;
            if lease.token() <= largest_token {
                return Err(format!("token {} after {largest_token}: reused", lease.token()));
            }
            largest_token = lease.token();
            lease.release().await.map_err(text)?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn grants_dropped_at_any_await_point_leave_no_holder() {
    if let Err(violation) = grants_dropped_at_every_await(gated_store(false)).await {
        panic!("{violation}");
    }
}

/// The proof that the scenario above can fail: a lock that takes the gated store for a local
/// one grants inline, and a grant dropped in flight is then held by nobody until its TTL.
#[tokio::test(flavor = "current_thread")]
async fn the_gate_catches_a_grant_dropped_in_flight() {
    let outcome = grants_dropped_at_every_await(gated_store(true)).await;
    let violation = outcome.expect_err("a grant dropped in flight must leave the key held");
    assert!(violation.contains("left key"), "{violation}");
}

/// A mark dropped after every number of polls, then marked again on the same handle: `First`
/// exactly once between the two (a dropped `First` is delivered by the retry), then `Duplicate`.
async fn marks_dropped_at_every_await(store: aio::SharedStore) -> std::result::Result<(), String> {
    let text = |err: racefree::Error| err.to_string();
    let guard = EventGuard::new(&store, "gate-marks", &["started", "ended"]).map_err(text)?;
    for k in 0..POLLS {
        for event in ["started", "ended"] {
            let stream = format!("s{k}");
            let dropped_delivered = poll_then_drop(guard.mark(&stream, event), k);
            let retried = guard.mark(&stream, event).await.map_err(text)?;
            let firsts = usize::from(dropped_delivered) + usize::from(retried == Mark::First);
            if firsts != 1 {
                return Err(format!(
                    "{event} of {stream}: First {firsts} times (dropped after {k} polls, finished: \
                     {dropped_delivered}; retry: {retried:?})"
                ));
            }
            let third = guard.mark(&stream, event).await.map_err(text)?;
            if third != Mark::Duplicate {
                return Err(format!("{event} of {stream}: a third mark answered {third:?}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn marks_dropped_at_any_await_point_are_delivered_once() {
    if let Err(violation) = marks_dropped_at_every_await(gated_store(false)).await {
        panic!("{violation}");
    }
}

/// The proof that the scenario above can fail: a guard that marks inline loses the `First` of
/// a mark dropped in flight, and the retry is told `Duplicate`.
#[tokio::test(flavor = "current_thread")]
async fn the_gate_catches_a_mark_dropped_in_flight() {
    let violation = marks_dropped_at_every_await(gated_store(true)).await.expect_err("a lost First");
    assert!(violation.contains("First 0 times"), "{violation}");
}

/// A host that hands marks on to callers of its own (a binding's event loop): a `First` it
/// drops undelivered, or gives back with `keep_undelivered`, is the next mark's; one it delivers
/// is nobody else's. On an inline (memory) store and on one whose calls wait.
#[tokio::test(flavor = "current_thread")]
async fn a_first_is_the_handles_until_it_is_delivered() {
    let memory = aio::from_blocking(std::sync::Arc::new(racefree::MemoryStore::new()));
    for store in [memory, gated_store(false)] {
        let guard = EventGuard::new(&store, "to-deliver", &["started"]).expect("guard");
        let dropped = guard.mark_to_deliver("a", "started").await.expect("mark");
        assert_eq!(dropped.mark(), Mark::First);
        drop(dropped);
        let taken_over = guard.mark_to_deliver("a", "started").await.expect("mark");
        assert_eq!(taken_over.mark(), Mark::First, "a First dropped undelivered was lost");
        assert_eq!(taken_over.deliver(), Mark::First);
        assert_eq!(guard.mark("a", "started").await.expect("mark"), Mark::Duplicate);

        assert_eq!(guard.mark("b", "started").await.expect("mark"), Mark::First);
        guard.keep_undelivered("b", "started").expect("kept");
        assert_eq!(
            guard.mark("b", "started").await.expect("mark"),
            Mark::First,
            "a given-back First was lost"
        );
        assert_eq!(guard.mark("b", "started").await.expect("mark"), Mark::Duplicate);
        assert!(guard.keep_undelivered("b", "nope").is_err(), "an undeclared event was kept");
    }
}

/// A store whose host runs every future to its end (the npm package's hosted stores): marks and
/// grants go inline, no task of their own, and concurrent callers on one handle still get one
/// `First` per event and one holder per key. The same calls on a store without the promise take
/// a task each (what the inline path saves).
#[tokio::test(flavor = "current_thread")]
async fn a_store_run_to_completion_marks_and_grants_inline_with_one_winner() {
    for runs_to_completion in [true, false] {
        let gated = Gated { runs_to_completion, ..remote_gated() };
        let spawned = Arc::clone(&gated.spawned);
        let store: aio::SharedStore = Arc::new(gated);
        let guard = Arc::new(EventGuard::new(&store, "inline", &["ended"]).expect("guard"));
        let lock = Arc::new(StartLock::new(&store, "inline").expect("lock"));
        let marks: Vec<_> = (0..32)
            .map(|_| {
                let guard = Arc::clone(&guard);
                tokio::spawn(async move { guard.mark("s", "ended").await })
            })
            .collect();
        let grants: Vec<_> = (0..32)
            .map(|_| {
                let lock = Arc::clone(&lock);
                tokio::spawn(async move { lock.try_start("k", Duration::from_secs(30)).await })
            })
            .collect();
        let mut firsts = 0;
        for mark in marks {
            firsts += usize::from(mark.await.expect("task").expect("mark") == Mark::First);
        }
        let mut holders = 0;
        for grant in grants {
            holders += usize::from(grant.await.expect("task").expect("grant").is_some());
        }
        assert_eq!((firsts, holders), (1, 1), "run to completion: {runs_to_completion}");
        let tasks = spawned.load(Ordering::SeqCst);
        if runs_to_completion {
            assert_eq!(tasks, 0, "a store run to completion needs no task per call");
        } else {
            assert_eq!(tasks, 64, "each mark and grant in a task of its own");
        }
    }
}

/// Every other operation dropped after every number of polls, then checked by what it promises.
#[tokio::test(flavor = "current_thread")]
async fn other_operations_dropped_at_any_await_point_keep_their_promises() {
    let store = gated_store(false);
    let counter = Counter::new(&store, "gate").unwrap();
    let guard = EventGuard::new(&store, "gate", &["started", "ended"]).unwrap();
    let records = Records::new(&store, "gate").unwrap();
    let lock = StartLock::new(&store, "gate-held").unwrap();
    let ttl = Duration::from_secs(30);
    let mut issued = Vec::new();
    for k in 0..POLLS {
        // `next` may lose an index to a drop, never repeat one.
        poll_then_drop(counter.next(), k);
        issued.push(counter.next().await.unwrap());
        // A claim dropped at any point is claimed again with its index, once.
        let id = format!("exec-{k}");
        poll_then_drop(counter.claim(&id), k);
        let claim = counter.claim(&id).await.unwrap();
        assert_eq!(counter.index_of(&id).await.unwrap(), Some(claim.index));
        issued.push(claim.index);
        // A forget dropped at any point: the stream's marks are gone or still there, whole.
        let stream = format!("s{k}");
        guard.mark(&stream, "started").await.unwrap();
        poll_then_drop(guard.forget(&stream), k);
        let last = guard.last_marked(&stream).await.unwrap();
        assert!(last.is_none() || last == Some("started"), "{last:?}");
        // A record write dropped at any point landed whole or not at all; versions never repeat.
        let key = format!("r{k}");
        poll_then_drop(records.put(&key, &json!({"k": k}), None), k);
        match records.get(&key).await.unwrap() {
            Some(found) => assert_eq!((found.value, found.version), (json!({"k": k}), 1)),
            None => assert_eq!(records.put(&key, &json!({"k": k}), None).await.unwrap(), 1),
        }
        poll_then_drop(records.update(&key, |_| json!("updated")), k);
        let updated = records.update(&key, |_| json!("again")).await.unwrap();
        assert!(updated.version == 2 || updated.version == 3, "version {}", updated.version);
        // Renewal and release of a lease dropped at any point: it is still ours, or released.
        let lease = lock.try_start("held", ttl).await.unwrap().expect("free");
        poll_then_drop(lease.renew(ttl), k);
        lease.renew(ttl).await.unwrap();
        poll_then_drop(lease.release(), k);
        settle().await;
        match lease.release().await {
            Ok(()) => {}
            Err(racefree::Error::NotOwner { .. }) => {}
            Err(other) => panic!("release after a dropped release: {other}"),
        }
        assert!(!lock.is_held("held").await.unwrap());
    }
    let mut sorted = issued.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), issued.len(), "an index was issued twice: {issued:?}");
}

/// Tasks on a multi-thread runtime race for one key on `store`: never two holders at once, and
/// every lease's token larger than the one before.
async fn one_holder_at_a_time(store: aio::SharedStore, tasks: usize, rounds: usize) -> Contention {
    let lock = StartLock::new(&store, "contended").unwrap();
    let (running, most, runs) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let refused = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (lock, running, most, runs) = (lock.clone(), running.clone(), most.clone(), runs.clone());
            let refused = refused.clone();
            tokio::spawn(async move {
                for _ in 0..rounds {
                    if let Some(lease) = lock.try_start("key", Duration::from_secs(30)).await.unwrap() {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await; // the window another holder would need
                        running.fetch_sub(1, Ordering::SeqCst);
                        // Refused only if another holder took the key from under this one.
                        if lease.release().await.is_err() {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    Contention {
        runs: runs.load(Ordering::SeqCst),
        most: most.load(Ordering::SeqCst),
        refused: refused.load(Ordering::SeqCst),
    }
}

#[derive(Debug)]
struct Contention {
    runs: usize,
    /// The most holders at once.
    most: usize,
    /// Releases refused (`not_owner`): a lease taken over while held.
    refused: usize,
}

async fn contended(url: &str) {
    let store = aio::open(url).await.unwrap();
    let seen = one_holder_at_a_time(store, 64, 20).await;
    assert!(seen.runs > 0 && seen.most == 1 && seen.refused == 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_one_holder_under_contention() {
    contended("memory://").await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_one_holder_under_contention() {
    contended(&format!("sqlite://{}", common::scratch_path("aio.db").display())).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_one_holder_under_contention() {
    contended(&common::redis_server::RedisServer::shared().fresh_url()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_holder_under_contention() {
    contended(&common::postgres_server::PostgresServer::shared().fresh_url()).await;
}

/// How many times each remote store's grant is cut short by a timeout.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn trials() -> usize {
    std::env::var("RACEFREE_AIO_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

/// `try_start` cut short by `timeout` after a delay around one round trip, `trials()` times on
/// fresh keys: every key is free soon after (a grant that landed for nobody is released, long
/// before its 30 s TTL), and the store still answers on every pooled connection.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn grants_cut_by_timeouts(url: &str) {
    let store = aio::open(url).await.unwrap();
    let lock = StartLock::new(&store, "timeouts").unwrap();
    // One round trip, measured here.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        lock.is_held("probe").await.unwrap();
    }
    let round_trip = started.elapsed() / 20;
    let (mut cut, mut granted) = (0, 0);
    for trial in 0..trials() {
        let key = format!("k{trial}");
        let delay = round_trip.mul_f64((trial % 25) as f64 / 12.0); // 0 to 2 round trips
                                                                    // A thread's sleep, not tokio's timer: the timer's 1 ms grain is longer than a loopback round trip.
        let cut_at = tokio::task::spawn_blocking(move || std::thread::sleep(delay));
        tokio::select! {
            biased;
            lease = lock.try_start(&key, Duration::from_secs(30)) => {
                lease.unwrap().expect("a fresh key is free").release().await.unwrap();
                granted += 1;
            }
            _ = cut_at => cut += 1,
        }
    }
    // The grants' own tasks finish within a few round trips; then no key may be held.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let held = loop {
        let mut held = Vec::new();
        for trial in 0..trials() {
            if lock.is_held(&format!("k{trial}")).await.unwrap() {
                held.push(trial);
            }
        }
        if held.is_empty() || std::time::Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(cut > 0, "no call was cut short (round trip {round_trip:?}): the test tested nothing");
    assert!(
        held.is_empty(),
        "{} of {cut} cut grants left their key held: {held:?} ({granted} completed)",
        held.len()
    );
    // Every pooled connection still works: as many concurrent calls as the pool has.
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let lock = lock.clone();
            tokio::spawn(async move { lock.try_start(&format!("after{i}"), Duration::from_secs(1)).await })
        })
        .collect();
    for call in calls {
        assert!(call.await.unwrap().unwrap().is_some());
    }
    eprintln!(
        "{url}: {cut} grants cut short, {granted} completed, round trip {round_trip:?}, none left held"
    );
}

/// A mark cut short at a random point around one round trip, then retried on the same handle,
/// `trials()` times on fresh streams: each event is delivered (`First`) exactly once.
#[cfg(any(feature = "redis", feature = "postgres"))]
async fn marks_cut_by_timeouts(url: &str) {
    let store = aio::open(url).await.unwrap();
    let guard = EventGuard::new(&store, "timeouts", &["started"]).unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        guard.is_marked("probe", "started").await.unwrap();
    }
    let round_trip = started.elapsed() / 20;
    let mut cut = 0;
    for trial in 0..trials() {
        let stream = format!("s{trial}");
        let delay = round_trip.mul_f64((trial % 25) as f64 / 12.0);
        let cut_at = tokio::task::spawn_blocking(move || std::thread::sleep(delay));
        let first_try = tokio::select! {
            biased;
            mark = guard.mark(&stream, "started") => Some(mark.unwrap()),
            _ = cut_at => None,
        };
        cut += usize::from(first_try.is_none());
        let retried = guard.mark(&stream, "started").await.unwrap();
        let firsts = usize::from(first_try == Some(Mark::First)) + usize::from(retried == Mark::First);
        assert_eq!(
            firsts, 1,
            "{stream}: delivered {firsts} times (first try {first_try:?}, retry {retried:?})"
        );
    }
    assert!(cut > 0, "no mark was cut short (round trip {round_trip:?})");
    eprintln!("{url}: {cut} marks cut short and retried, each event delivered once");
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_marks_cut_by_timeouts_are_delivered_once() {
    marks_cut_by_timeouts(&common::redis_server::RedisServer::shared().fresh_url()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_marks_cut_by_timeouts_are_delivered_once() {
    marks_cut_by_timeouts(&common::postgres_server::PostgresServer::shared().fresh_url()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_grants_cut_by_timeouts_leave_no_holder() {
    grants_cut_by_timeouts(&common::redis_server::RedisServer::shared().fresh_url()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_grants_cut_by_timeouts_leave_no_holder() {
    let server = common::postgres_server::PostgresServer::shared();
    grants_cut_by_timeouts(&server.fresh_url()).await;
    // A call cut inside its transaction dropped its connection: none is left open in one.
    let stuck = server.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'racefree' \
         AND state LIKE 'idle in transaction%' AND state_change < now() - interval '500 milliseconds'",
    );
    assert_eq!(stuck.trim(), "0", "connections left inside a transaction");
}

/// Bad input keeps its typed errors on the async forms.
#[tokio::test(flavor = "current_thread")]
async fn bad_input_is_refused_by_the_async_forms() {
    let store = aio::open("memory://").await.unwrap();
    assert_eq!(Counter::new(&store, "").unwrap_err().code(), "invalid_key");
    let counter = Counter::new(&store, "c").unwrap();
    assert_eq!(counter.claim("").await.unwrap_err().code(), "invalid_key");
    let lock = StartLock::new(&store, "l").unwrap();
    assert_eq!(lock.try_start("k", Duration::ZERO).await.unwrap_err().code(), "invalid_argument");
    assert_eq!(
        lock.acquire("k", Duration::ZERO, Duration::from_secs(1)).await.unwrap_err().code(),
        "invalid_argument"
    );
    let guard = EventGuard::new(&store, "g", &["a"]).unwrap();
    assert_eq!(guard.mark("s", "undeclared").await.unwrap_err().code(), "invalid_argument");
    let records = Records::new(&store, "r").unwrap();
    let options = racefree::UpdateOptions::default().with_max_attempts(0);
    let refused = records.try_update_with("k", &options, |_| Ok::<_, racefree::Error>(json!(1))).await;
    assert_eq!(refused.unwrap_err().code(), "invalid_argument");
}

/// `acquire` waits by tokio's clock: on paused time a held key times out without real waiting.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn acquire_times_out_on_tokios_clock() {
    let store = aio::open("memory://").await.unwrap();
    let lock = StartLock::new(&store, "paused").unwrap();
    let _held = lock.try_start("k", Duration::from_secs(3600)).await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let err = lock.acquire("k", Duration::from_secs(5), Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(err.code(), "timeout");
    assert!(started.elapsed() >= Duration::from_secs(60));
}

/// The proof that the contention scenario can fail: on a store whose grant is a check and an
/// act in two steps, run on tokio's blocking pool, two tasks hold the key at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_contention_scenario_catches_a_racy_store() {
    let racy: racefree::SharedStore = Arc::new(common::racy::RacyStore::new(Arc::new(racefree::SystemClock)));
    let seen = one_holder_at_a_time(aio::from_blocking(racy), 64, 5).await;
    assert!(seen.most > 1 || seen.refused > 0, "the racy store was not caught: {seen:?}");
    eprintln!("the racy store was caught: {seen:?}");
}

/// A work that records when it is dropped.
struct DropFlag(Arc<parking_lot::Mutex<Option<tokio::time::Instant>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0.lock() = Some(tokio::time::Instant::now());
    }
}

fn coordinator(store: &aio::SharedStore, ttl: Duration) -> aio::Coordinator {
    aio::Coordinator::new(store, "coordinated", racefree::KeeperOptions::new(ttl).unwrap()).unwrap()
}

/// A work that outlives its TTL many times over keeps its lease (renewed by its task), then
/// releases it when it returns.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn coordinator_keeps_the_lease_for_as_long_as_the_work_runs() {
    let store = gated_store(false);
    let tasks = coordinator(&store, Duration::from_secs(3));
    let run = tasks
        .start("k", |holding| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            holding.check().map(|()| holding.token())
        })
        .await
        .unwrap()
        .expect("free");
    assert!(tasks.start("k", |_| async {}).await.unwrap().is_none(), "a second start while running");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(tasks.is_running("k").await.unwrap() && !run.holding().is_lost());
    let finished = run.join().await;
    assert!(matches!(finished.value, Some(Ok(_))) && finished.lost.is_none(), "{finished:?}");
    assert!(!tasks.is_running("k").await.unwrap(), "released when the work returned");
}

/// A lease taken from under the work (released by its token elsewhere): the holding is told
/// `not_owner` and the work dropped at the next renewal, before it returns.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn coordinator_drops_a_work_whose_lease_is_taken() {
    let store = gated_store(false);
    let tasks = coordinator(&store, Duration::from_secs(3));
    let dropped_at = Arc::new(parking_lot::Mutex::new(None));
    let flag = DropFlag(dropped_at.clone());
    let run = tasks
        .start("k", move |_| async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .await
        .unwrap()
        .expect("free");
    let watcher = run.holding().clone();
    let told = tokio::spawn(async move { watcher.wait_lost().await });
    tasks.lock().release_token("k", run.holding().token()).await.unwrap();
    let lost = told.await.unwrap();
    assert!(
        matches!(&lost, racefree::Error::LeaseLost { reason: racefree::LossReason::NotOwner, .. }),
        "{lost}"
    );
    let finished = run.join().await;
    assert!(finished.value.is_none() && finished.lost.is_some(), "{finished:?}");
    assert!(dropped_at.lock().is_some(), "the work was not dropped");
}

/// Renewals failing (a frozen server): the work is dropped by the lease's safe deadline, never
/// after, and told `renewals_failed`.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn coordinator_drops_the_work_by_the_safe_deadline_when_renewals_fail() {
    let gated = Arc::new(remote_gated());
    let store: aio::SharedStore = gated.clone();
    let ttl = Duration::from_secs(3);
    let tasks = coordinator(&store, ttl);
    let dropped_at = Arc::new(parking_lot::Mutex::new(None));
    let flag = DropFlag(dropped_at.clone());
    let requested = tokio::time::Instant::now();
    gated.fail_renewals.store(true, Ordering::SeqCst);
    let run = tasks
        .start("k", move |_| async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .await
        .unwrap()
        .expect("free");
    let finished = run.join().await;
    let dropped = dropped_at.lock().expect("the work was dropped");
    let safe_deadline = requested + ttl - racefree::safety_margin(ttl);
    assert!(dropped <= safe_deadline, "dropped {:?} after the safe deadline", dropped - safe_deadline);
    assert!(
        dropped + Duration::from_millis(50) >= safe_deadline,
        "dropped {:?} early",
        safe_deadline - dropped
    );
    match finished.lost {
        Some(racefree::Error::LeaseLost { reason: racefree::LossReason::RenewalsFailed { .. }, .. }) => {}
        other => panic!("lost: {other:?}"),
    }
}

/// A work that panics: its lease is released first, then the panic reaches `join`.
#[tokio::test(flavor = "current_thread")]
async fn coordinator_releases_the_lease_of_a_work_that_panics() {
    let store = aio::open("memory://").await.unwrap();
    let tasks = coordinator(&store, Duration::from_secs(30));
    let run = tasks.start("k", |_| async { panic!("the work failed") }).await.unwrap().expect("free");
    let joined = tokio::spawn(run.join()).await;
    assert!(joined.unwrap_err().is_panic());
    assert!(!tasks.is_running("k").await.unwrap(), "the lease of a panicked work is released");
}

/// The example host (`examples/tokio_host.rs`, built by `cargo test` beside this binary) on
/// memory, Redis and PostgreSQL: runs happen, one at a time.
#[test]
fn the_tokio_host_example_runs_one_at_a_time_on_every_store() {
    let test_binary = std::env::current_exe().expect("this test's path");
    let example =
        test_binary.parent().and_then(|deps| deps.parent()).expect("target dir").join("examples/tokio_host");
    assert!(
        example.exists(),
        "{} is missing: cargo test builds the examples of its features",
        example.display()
    );
    #[allow(unused_mut)]
    let mut urls = vec!["memory://".to_owned()];
    #[cfg(feature = "redis")]
    urls.push(common::redis_server::RedisServer::shared().fresh_url());
    #[cfg(feature = "postgres")]
    urls.push(common::postgres_server::PostgresServer::shared().fresh_url());
    for url in urls {
        let output = std::process::Command::new(&example).arg(&url).output().expect("the example runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{url}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("most at once: 1"), "{url}: {stdout}");
        eprint!("{stdout}");
    }
}
