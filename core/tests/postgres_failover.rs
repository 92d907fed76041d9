//! The PostgreSQL store across a failover, on real servers started by the tests: a primary and a
//! streaming standby, the store given both hosts with `target_session_attrs=read-write`. The
//! store finds the new primary without being reopened; calls during the switch fail promptly
//! with a typed error; a call whose connection is lost with its commit in flight reports the
//! outcome as unknown (`timeout`), never as not applied.
#![cfg(feature = "postgres")]

mod common;

use std::time::{Duration, Instant};

use common::postgres_server::PostgresServer;
use racefree::{Records, SharedStore, StartLock};
use serde_json::json;

/// A store over both servers, in the order given, taking only a server that takes writes.
fn store_over(first: &PostgresServer, second: &PostgresServer) -> SharedStore {
    let url = format!(
        "postgres://racefree@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&timeout_ms=3000",
        first.port, second.port
    );
    racefree::open(&url).expect("open")
}

#[test]
fn a_promoted_standby_takes_over_without_reopening_the_store() {
    let mut primary = PostgresServer::start(&[]);
    let standby = PostgresServer::standby_of(&primary);
    let store = store_over(&primary, &standby);
    for index in 0..5 {
        assert_eq!(store.counter_next("jobs"), Ok(index));
    }
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let before = lock.try_start("k", Duration::from_secs(60)).expect("grant").expect("free");
    before.release().expect("release");
    let records = Records::new(&store, "status").expect("records");
    assert_eq!(records.put("pod", &json!({ "phase": "Running" }), None), Ok(1));
    standby.catch_up_with(&primary);

    primary.kill();
    // No server takes writes: the call fails at once with a typed error, nothing guessed —
    // `backend_unavailable` when the pool finds no writable host, or `timeout` (outcome unknown)
    // when the statement went out on a pooled connection before its end was seen (one CI run).
    let started = Instant::now();
    let failed = store.counter_next("jobs").expect_err("no primary");
    assert!(["backend_unavailable", "timeout"].contains(&failed.code()), "{failed:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "a call took {:?} to fail", started.elapsed());

    standby.promote();
    assert_eq!(store.counter_next("jobs"), Ok(5), "the same store, on the new primary");
    let after = lock.try_start("k", Duration::from_secs(60)).expect("grant").expect("free");
    assert!(after.token() > before.token(), "token {} after {}", after.token(), before.token());
    assert_eq!(
        records.get("pod").expect("get").map(|r| (r.value, r.version)),
        Some((json!({ "phase": "Running" }), 1))
    );
}

#[test]
fn a_primary_turned_read_only_empties_the_pool_and_the_next_call_finds_the_writable_host() {
    let old = PostgresServer::start(&[]);
    let new = PostgresServer::standby_of(&old);
    let store = store_over(&old, &new);
    for index in 0..3 {
        assert_eq!(store.counter_next("jobs"), Ok(index));
    }
    new.catch_up_with(&old);
    new.promote();
    // The old primary, demoted as a failover tool fences it: its sessions, the store's pooled
    // connection among them, refuse writes from their next transaction.
    old.psql("postgres", "ALTER SYSTEM SET default_transaction_read_only = on");
    old.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(200));
    let refused = store.counter_next("jobs").expect_err("a read-only server");
    assert_eq!(refused.code(), "backend_unavailable", "{refused:?}");
    assert!(refused.to_string().contains("25006"), "{refused}");
    // Nothing was written there; the next call connects afresh and skips the read-only host.
    assert_eq!(store.counter_next("jobs"), Ok(3));
    assert_eq!(old.psql("postgres", "SELECT count(*) FROM racefree_counters"), "1");
}

#[test]
fn a_connection_lost_with_the_commit_in_flight_reports_the_outcome_unknown() {
    let mut server = PostgresServer::start(&[]);
    let store = racefree::open(&server.url("timeout_ms=10000")).expect("open");
    assert_eq!(store.counter_next("jobs"), Ok(0));
    // Frozen, the server (its backends too) takes the request into its socket and never
    // answers; killed, it closes the connection with the request sent. The store cannot know
    // whether it committed.
    server.signal_all("-STOP");
    let call = std::thread::spawn({
        let store = store.clone();
        move || store.counter_next("jobs")
    });
    std::thread::sleep(Duration::from_millis(300));
    server.signal_all("-KILL");
    server.kill();
    let outcome = call.join().expect("the call's thread");
    let err = outcome.expect_err("the server is gone");
    assert_eq!(err.code(), "timeout", "sent, then lost: the outcome is unknown, not {err:?}");
}
