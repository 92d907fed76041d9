//! `replicas=N`: each write waits (`WAIT`) until N replicas acknowledged it, on real servers
//! started by the tests (a primary and one replica). A write the replica does not acknowledge —
//! the replica frozen by SIGSTOP — fails after `replicas_timeout_ms` instead of being reported as
//! done; a grant is released before its error; on the tokio store, a waiting write holds up no
//! other call.
#![cfg(feature = "redis")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use racefree::{Counter, EventGuard, Mark, Records, SharedStore, StartLock};
use serde_json::json;

const WAIT_MS: u64 = 600;

struct Pair {
    primary: RedisServer,
    replica: RedisServer,
}

impl Pair {
    fn start() -> Self {
        let primary = RedisServer::start(&[]);
        let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !replica.command(&["INFO", "replication"]).contains("master_link_status:up") {
            assert!(Instant::now() < deadline, "the replica did not connect in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The replica's "link up" can come before the primary counts it for `WAIT` (seen once,
        // in a CI run: the first writes' `WAIT` timed out): wait until the primary has it online
        // with everything so far acknowledged.
        while !counted_by_primary(&primary.command(&["INFO", "replication"])) {
            assert!(Instant::now() < deadline, "the primary did not count the replica in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { primary, replica }
    }

    fn url(&self, options: &str) -> String {
        format!(
            "redis://127.0.0.1:{}/0?timeout_ms=3000&replicas_timeout_ms={WAIT_MS}&{options}",
            self.primary.port
        )
    }

    /// Freezes (`-STOP`) or thaws (`-CONT`) the replica: frozen, it acknowledges nothing.
    fn signal_replica(&self, signal: &str) {
        let pid = self.replica.pid().expect("running").to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().expect("kill").success());
    }
}

/// Whether the primary's `INFO replication` shows its replica online, having acknowledged the
/// primary's whole replication stream so far.
fn counted_by_primary(info: &str) -> bool {
    let Some(offset) = info.lines().find_map(|line| line.strip_prefix("master_repl_offset:")) else {
        return false;
    };
    let acknowledged = format!("offset={},", offset.trim());
    info.lines().any(|line| {
        line.starts_with("slave0:") && line.contains("state=online") && line.contains(&acknowledged)
    })
}

/// Runs `call`, returning its result and how long it took.
fn timed<T>(call: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = call();
    (result, started.elapsed())
}

#[test]
fn every_write_the_replica_acknowledged_is_on_it_when_the_call_returns() {
    let pair = Pair::start();
    let store: SharedStore = racefree::open(&pair.url("replicas=1&namespace=acked")).expect("open");
    let counter = Counter::new(&store, "jobs").expect("counter");
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let records = Records::new(&store, "pods").expect("records");
    let guard = EventGuard::new(&store, "streams", &["start", "end"]).expect("guard");
    let layout = racefree::store::redis::protocol::Layout::new("acked");
    for i in 0..20_u64 {
        assert_eq!(counter.next(), Ok(i));
        // Read on the replica straight away: no waiting, no retry.
        assert_eq!(pair.replica.command(&["GET", &layout.key("jobs", 'c', None)]), (i + 1).to_string());
    }
    let lease = lock.try_start("k", Duration::from_secs(30)).expect("grant").expect("free");
    let on_replica = pair.replica.command(&["HGET", &layout.key("tasks", 'l', Some("k")), "t"]);
    assert_eq!(on_replica, lease.token().to_string());
    lease.renew(Duration::from_secs(60)).expect("renew");
    lease.release().expect("release");
    assert_eq!(records.put("p", &json!({ "phase": "Running" }), None), Ok(1));
    assert_eq!(guard.mark("s", "start"), Ok(Mark::First));
    assert_eq!(counter.claim("job-1").map(|c| c.index), Ok(20));
    assert_eq!(records.delete("p", Some(1)), Ok(true));
}

#[test]
fn a_write_the_replica_does_not_acknowledge_fails_and_a_grant_is_released_first() {
    let pair = Pair::start();
    let store = racefree::open(&pair.url("replicas=1&namespace=frozen")).expect("open");
    let counter = Counter::new(&store, "jobs").expect("counter");
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let records = Records::new(&store, "pods").expect("records");
    assert_eq!(counter.next(), Ok(0));

    pair.signal_replica("-STOP");
    let (next, took) = timed(|| counter.next());
    let refused = next.expect_err("the replica acknowledged nothing");
    assert_eq!(refused.code(), "timeout", "applied on the primary, not replicated: {refused:?}");
    assert!(took >= Duration::from_millis(WAIT_MS) && took < Duration::from_millis(2_500), "took {took:?}");
    assert_eq!(records.put("p", &json!(1), None).map_err(|e| e.code()), Err("timeout"));

    let (grant, took) = timed(|| lock.try_start("k", Duration::from_secs(30)));
    let refused = grant.expect_err("the replica acknowledged nothing");
    assert_eq!(refused.code(), "backend_unavailable", "{refused:?}");
    assert!(refused.to_string().contains("0 of 1 replicas"), "{refused}");
    assert!(took < Duration::from_millis(2_500), "took {took:?}");
    // Released before the error: the primary holds no lease on the key.
    let reads = racefree::open(&format!("redis://127.0.0.1:{}/0?namespace=frozen", pair.primary.port))
        .expect("a store that waits for nothing");
    assert_eq!(StartLock::new(&reads, "tasks").expect("lock").holder("k").map(|h| h.is_none()), Ok(true));

    pair.signal_replica("-CONT");
    let lease = lock.try_start("k", Duration::from_secs(30)).expect("grant").expect("free again");
    lease.release().expect("release");
    // The refused `next` was applied on the primary all the same (its outcome was unknown).
    assert_eq!(counter.next(), Ok(2));
}

#[test]
fn an_answer_that_rests_on_a_write_no_replica_has_is_not_passed_on_as_replicated() {
    // Two stores: two connections, each with acknowledged writes of its own before the replica
    // freezes. One claim and one mark are applied on the primary only (they time out); the other
    // store's claim of the same id and mark of the same event change nothing — their answers rest
    // on those unreplicated writes, lost with the primary in a failover — and must fail too.
    let pair = Pair::start();
    let first = racefree::open(&pair.url("replicas=1&namespace=rests")).expect("open");
    let second = racefree::open(&pair.url("replicas=1&namespace=rests")).expect("open");
    let stream = ["start"];
    let (counter_1, counter_2) =
        (Counter::new(&first, "jobs").expect("c"), Counter::new(&second, "jobs").expect("c"));
    let (guard_1, guard_2) = (
        EventGuard::new(&first, "s", &stream).expect("g"),
        EventGuard::new(&second, "s", &stream).expect("g"),
    );
    assert_eq!((counter_1.next(), counter_2.next()), (Ok(0), Ok(1)));

    pair.signal_replica("-STOP");
    assert_eq!(counter_1.claim("job").map_err(|e| e.code()), Err("timeout"));
    assert_eq!(guard_1.mark("s", "start").map_err(|e| e.code()), Err("timeout"));
    assert_eq!(counter_2.claim("job").map(|c| c.index).map_err(|e| e.code()), Err("timeout"));
    assert_eq!(guard_2.mark("s", "start").map_err(|e| e.code()), Err("timeout"));
    pair.signal_replica("-CONT");

    let claim = counter_2.claim("job").expect("replicated now");
    assert_eq!((claim.index, claim.is_new), (2, false));
    assert_eq!(guard_2.mark("s", "start"), Ok(Mark::Duplicate));
}

#[test]
fn more_replicas_than_the_server_has_fail_every_write_and_no_read() {
    let pair = Pair::start();
    let store = racefree::open(&pair.url("replicas=2&namespace=two")).expect("open");
    let counter = Counter::new(&store, "jobs").expect("counter");
    assert_eq!(counter.next().map_err(|e| e.code()), Err("timeout"));
    assert_eq!(counter.peek(), Ok(1), "reads wait for no replica");
}

#[test]
fn replication_options_are_checked_before_any_connection() {
    let refused = |options: &str| {
        let url = format!("redis://127.0.0.1:1/0?{options}");
        let err = racefree::open(&url).expect_err(options);
        assert_eq!(err.code(), "invalid_argument", "{options}: {err:?}");
        err.to_string()
    };
    assert!(refused("replicas=-1").contains("replicas must be a whole number"));
    assert!(refused("replicas=one").contains("replicas must be a whole number"));
    assert!(refused("replicas=1&replicas_timeout_ms=0").contains("at least 1"));
    assert!(refused("replicas=1&replicas_timeout_ms=5000").contains("below timeout_ms"));
    assert!(
        refused("replicas=1&timeout_ms=500&replicas_timeout_ms=800").contains("below timeout_ms (500 ms)")
    );
    assert!(refused("replicas_timeout_ms=x").contains("milliseconds"));
}

/// On the tokio store a write that waits for its replica has a connection of its own: the
/// shared one (multiplexed) goes on answering other calls meanwhile.
#[cfg(feature = "tokio")]
#[test]
fn on_the_tokio_store_a_waiting_write_holds_up_no_other_call() {
    let pair = Pair::start();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let store = runtime.block_on(racefree::aio::open(&pair.url("replicas=1&namespace=tokio"))).expect("open");
    let counter = racefree::aio::Counter::new(&store, "jobs").expect("counter");
    assert_eq!(runtime.block_on(counter.next()), Ok(0));

    pair.signal_replica("-STOP");
    let (waiting, reads) = runtime.block_on(async {
        let write = counter.next();
        let reads = async {
            // Ten reads on the shared connection while the write waits for the frozen replica.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut took = Vec::new();
            for _ in 0..10 {
                let started = Instant::now();
                counter.peek().await.expect("peek");
                took.push(started.elapsed());
            }
            took
        };
        tokio::join!(timed_async(write), reads)
    });
    pair.signal_replica("-CONT");
    let (written, write_took) = waiting;
    assert_eq!(written.map_err(|e| e.code()), Err("timeout"));
    assert!(write_took >= Duration::from_millis(WAIT_MS), "the write took {write_took:?}");
    let slowest = reads.iter().max().copied().unwrap_or_default();
    assert!(slowest < Duration::from_millis(WAIT_MS / 2), "a read waited behind the WAIT: {reads:?}");
    assert_eq!(runtime.block_on(counter.next()), Ok(2), "the store works on after the refusal");
}

#[cfg(feature = "tokio")]
async fn timed_async<T>(call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let result = call.await;
    (result, started.elapsed())
}
