//! Isolation: two namespaces sharing one SQLite file or one Redis server can neither read nor
//! change each other's keys (not even with the other's fencing token), and a lease is released
//! or renewed only by its holder.
#![cfg(all(feature = "sqlite", feature = "redis"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use racefree::{CounterEntry, ManualClock, RecordEntry, SharedClock, SharedStore};
use serde_json::json;

fn check_isolation(open: &dyn Fn(&str, SharedClock) -> SharedStore) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let (a, b) = (open("a", clock.clone()), open("b", clock.clone()));

    // Counters and claims.
    for _ in 0..3 {
        a.counter_next("c").expect("next");
    }
    a.counter_claim("c", "exec-1").expect("claim");
    assert_eq!(b.counter_peek("c"), Ok(0));
    assert_eq!(b.counter_index_of("c", "exec-1"), Ok(None));
    assert_eq!(b.counter_next("c"), Ok(0));
    b.counter_reset("c").expect("reset");
    assert_eq!(a.counter_peek("c"), Ok(4), "b's reset reached a's counter");

    // Leases: b cannot see, release or renew a's, even with a's token.
    let grant = a.lease_try_grant("tasks", "k", 10_000).expect("grant").expect("free");
    assert_eq!(b.lease_holder("tasks", "k"), Ok(None));
    assert_eq!(b.lease_release("tasks", "k", grant.token).map_err(|e| e.code()), Err("not_owner"));
    assert_eq!(b.lease_renew("tasks", "k", grant.token, 60_000).map_err(|e| e.code()), Err("not_owner"));
    let other = b.lease_try_grant("tasks", "k", 1_000).expect("grant");
    assert!(other.is_some(), "a's lease blocked b's namespace");
    // Within a's namespace, only the holder's token releases or renews.
    for wrong in [grant.token + 1, grant.token.saturating_sub(1), 0, u64::MAX] {
        assert_eq!(a.lease_release("tasks", "k", wrong).map_err(|e| e.code()), Err("not_owner"));
        assert_eq!(a.lease_renew("tasks", "k", wrong, 60_000).map_err(|e| e.code()), Err("not_owner"));
    }
    assert_eq!(a.lease_holder("tasks", "k").expect("holder").map(|g| g.token), Some(grant.token));

    // Marks and records.
    a.guard_mark("g", "s", 0, 60_000).expect("mark");
    assert_eq!(b.guard_marked("g", "s"), Ok(0));
    assert_eq!(b.guard_forget("g", "s"), Ok(false));
    assert_eq!(a.guard_marked("g", "s"), Ok(1));
    a.record_put("pods", "web-1", &json!({"phase": "Running"}), None, Some(7)).expect("put");
    assert_eq!(b.record_get("pods", "web-1"), Ok(None));
    assert_eq!(b.record_delete("pods", "web-1", None), Ok(false));
    assert_eq!(b.record_put("pods", "web-1", &json!("b"), None, Some(1)), Ok(1), "a's fence reached b");
    assert_eq!(
        a.record_get("pods", "web-1").expect("get").map(|v| v.value),
        Some(json!({"phase": "Running"}))
    );

    // Expiry and sweeps stay in their namespace; operators see only theirs.
    clock.advance(Duration::from_secs(2));
    assert_eq!(b.sweep(), Ok(1), "b's expired lease");
    assert_eq!(a.lease_holder("tasks", "k").expect("holder").map(|g| g.token), Some(grant.token));
    let (seen_a, seen_b) = (a.inspect().expect("inspect"), b.inspect().expect("inspect"));
    assert_eq!(seen_a.counters, vec![CounterEntry { counter: "c".into(), next: 4, claims: 1 }]);
    assert_eq!(seen_b.counters, vec![]);
    assert_eq!(seen_a.leases.len(), 1);
    assert_eq!(seen_b.leases.len(), 0);
    assert_eq!(seen_b.records, vec![RecordEntry { space: "pods".into(), key: "web-1".into(), version: 1 }]);
    assert_eq!(a.stats().expect("stats").entries, 5, "counter, claim, lease, stream, record");
    assert_eq!(b.stats().expect("stats").entries, 1, "record");
}

#[test]
fn namespaces_sharing_a_sqlite_file_are_isolated() {
    let path = common::scratch_path("isolation.db");
    check_isolation(&|namespace, clock| {
        let options = racefree::SqliteOptions::default().with_namespace(namespace);
        Arc::new(racefree::SqliteStore::open(&path, clock, options).expect("sqlite"))
    });
}

#[test]
fn namespaces_sharing_a_redis_server_are_isolated() {
    let base = common::redis_server::RedisServer::shared().fresh_url();
    check_isolation(&|namespace, clock| {
        racefree::open_with_clock(&format!("{base}-{namespace}"), clock).expect("redis")
    });
}

#[test]
#[cfg(feature = "postgres")]
fn namespaces_sharing_a_postgres_database_are_isolated() {
    let base = common::postgres_server::PostgresServer::shared().fresh_url();
    check_isolation(&|namespace, clock| {
        racefree::open_with_clock(&format!("{base}-{namespace}"), clock).expect("postgres")
    });
}
