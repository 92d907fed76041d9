//! The Redis store through Redis Sentinel (`redis+sentinel://`), on real servers started by the
//! tests: a primary, a replica and three sentinels. The store finds the primary through the
//! sentinels and, after a failover, the new one without being reopened; calls during the switch
//! fail promptly with a typed error.
#![cfg(feature = "redis")]

mod common;

use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, SentinelGroup, ONE_GROUP_AT_A_TIME};
use racefree::{Counter, Records, SharedStore, StartLock};
use serde_json::json;

const MASTER: &str = SentinelGroup::MASTER;

/// Calls `next` until it answers: while the sentinels have no primary to name, every call must
/// fail at once (within 5 s) with a typed error. Returns the index and how many calls failed.
fn first_answer(mut next: impl FnMut() -> racefree::Result<u64>) -> (u64, usize) {
    let mut failed = 0;
    loop {
        let started = Instant::now();
        match next() {
            Ok(index) => return (index, failed),
            Err(err) => {
                assert!(matches!(err.code(), "backend_unavailable" | "timeout"), "{err:?}");
                assert!(started.elapsed() < Duration::from_secs(5), "a call took {:?}", started.elapsed());
                failed += 1;
                assert!(failed < 300, "no new primary after {failed} calls: {err}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn open(url: &str) -> SharedStore {
    racefree::open(url).expect("open through the sentinels")
}

#[test]
fn the_store_follows_a_failover_after_the_primary_is_killed() {
    let mut group = SentinelGroup::start(&[]);
    let store = open(&group.url("namespace=killed"));
    let counter = Counter::new(&store, "jobs").expect("counter");
    for index in 0..5 {
        assert_eq!(counter.next(), Ok(index));
    }
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let before = lock.try_start("k", Duration::from_secs(60)).expect("grant").expect("free");
    before.release().expect("release");
    let records = Records::new(&store, "status").expect("records");
    assert_eq!(records.put("pod", &json!({ "phase": "Running" }), None), Ok(1));
    group.replicated();

    group.primary.kill();
    // Until the sentinels agree on a new primary every call fails, each at once and typed.
    let (next, failed) = first_answer(|| counter.next());
    assert_eq!(next, 5, "the same store, on the promoted replica, after {failed} failed calls");
    assert!(group.replica.command(&["INFO", "replication"]).contains("role:master"));
    let after = lock.try_start("k", Duration::from_secs(60)).expect("grant").expect("free");
    assert!(after.token() > before.token(), "token {} after {}", after.token(), before.token());
    assert_eq!(
        records.get("pod").expect("get").map(|r| (r.value, r.version)),
        Some((json!({ "phase": "Running" }), 1))
    );
}

#[test]
fn a_primary_demoted_under_a_pooled_connection_is_left_for_the_new_one() {
    let group = SentinelGroup::start(&[]);
    let store = open(&group.url("namespace=demoted"));
    let counter = Counter::new(&store, "jobs").expect("counter");
    assert_eq!(counter.next(), Ok(0));
    group.replicated();
    // A failover the operator asks for: the old primary lives on as a replica, so the store's
    // pooled connection to it now meets READONLY.
    let sentinel = RedisServer::command_on(group.sentinels[0].port, &["SENTINEL", "FAILOVER", MASTER]);
    assert!(sentinel.starts_with("+OK"), "{sentinel}");
    group.wait_until(|| {
        group.primary.command(&["INFO", "replication"]).contains("role:slave")
            && group.replica.command(&["INFO", "replication"]).contains("role:master")
    });
    let (next, refused) = first_answer(|| counter.next());
    assert_eq!(next, 1);
    assert!(refused <= 1, "one call may meet READONLY; then the pool is empty ({refused} refused)");
    // Nothing reached the old primary after it was demoted, and both now agree.
    group.wait_until(|| group.primary.command(&["INFO", "replication"]).contains("master_link_status:up"));
    assert_eq!(counter.next(), Ok(2));
}

#[test]
fn sentinel_urls_are_checked_before_any_connection() {
    for (url, says) in [
        ("redis+sentinel://127.0.0.1:1", "names no master"),
        ("redis+sentinel://127.0.0.1:1/", "names no master"),
        ("redis+sentinel://127.0.0.1:1/m/zero", "not a number"),
        ("redis+sentinel://127.0.0.1:1/m?tls_ca=/ca.pem", "rediss"),
    ] {
        let err = racefree::store::StoreUrl::parse(url).expect_err(url);
        assert_eq!(err.code(), "invalid_argument", "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    // Nobody listening: a prompt, typed error naming what was tried.
    let err =
        racefree::open("redis+sentinel://127.0.0.1:1,127.0.0.1:2/m?timeout_ms=500").expect_err("no sentinel");
    assert_eq!(err.code(), "backend_unavailable", "{err}");
    assert!(err.to_string().contains("2 sentinel(s)"), "{err}");
}

/// How many connections `server` has accepted since it started.
fn connections_received(server: &RedisServer) -> u64 {
    let stats = server.command(&["INFO", "stats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_connections_received")
}

#[test]
fn a_readonly_reply_drops_the_pooled_connections() {
    let _turn = ONE_GROUP_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let primary = RedisServer::start(&[]);
    let other = RedisServer::start(&[]);
    let store = open(&format!("redis://127.0.0.1:{}/0", primary.port));
    let counter = Counter::new(&store, "jobs").expect("counter");
    assert_eq!(counter.next(), Ok(0));
    // Demoted without its clients being disconnected: the pooled connection now meets READONLY.
    assert!(primary.command(&["REPLICAOF", "127.0.0.1", &other.port.to_string()]).starts_with("+OK"));
    let before = connections_received(&primary);
    for _ in 0..3 {
        let err = counter.next().expect_err("a replica refuses writes");
        assert_eq!(err.code(), "backend_unavailable", "{err}");
        assert!(err.to_string().contains("READONLY"), "{err}");
    }
    // Each call after a READONLY connected afresh (to find the primary anew), never reusing the
    // connection to a server that had stopped being one. (The first reused the pooled one.)
    // (Less the one this check's own INFO opens.)
    assert_eq!(connections_received(&primary) - before - 1, 2);
}

/// The tokio store through the same sentinels: the primary found, and after a failover the new
/// one, on its one multiplexed connection.
#[cfg(feature = "tokio")]
#[test]
fn the_tokio_store_follows_a_failover_too() {
    let mut group = SentinelGroup::start(&[]);
    let url = group.url("namespace=tokio");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let store = runtime.block_on(racefree::aio::open(&url)).expect("open through the sentinels");
    let counter = racefree::aio::Counter::new(&store, "jobs").expect("counter");
    for index in 0..3 {
        assert_eq!(runtime.block_on(counter.next()), Ok(index));
    }
    group.replicated();
    group.primary.kill();
    let (next, failed) = first_answer(|| runtime.block_on(counter.next()));
    assert_eq!(next, 3, "after {failed} failed calls");
}
