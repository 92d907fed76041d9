//! One suite, every backend: each scenario runs unchanged against each store.
//!
//! Adding a backend is one line: `conformance!(name, |clock| -> SharedStore { ... });`

mod common;

use std::sync::Arc;

use racefree::{MemoryStore, SharedStore};

macro_rules! conformance {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            use super::*;

            fn factory(clock: racefree::SharedClock) -> SharedStore {
                let make: fn(racefree::SharedClock) -> SharedStore = $factory;
                make(clock)
            }

            conformance!(@tests
                counter_next_is_gap_free,
                claims_are_unique_and_stable,
                one_starter_wins,
                updates_are_not_lost,
                ended_is_delivered_once,
                counter_semantics,
                expired_lease_goes_to_next_starter,
                leases_kept_by_token,
                tokens_grow_across_keys,
                first_grants_of_fresh_locks_race,
                callable_from_inside_tokio_runtimes,
                marks_are_ordered_and_retained,
                nothing_left_after_release_or_expiry,
                records_compare_and_swap,
                records_never_repeat_a_version,
                updates_never_land_on_a_new_incarnation,
                bad_input_is_rejected,
                inventory_lists_live_entries,
            );
        }
    };
    (@tests $($scenario:ident),* $(,)?) => {
        $(
            #[test]
            fn $scenario() {
                if let Err(violation) = common::$scenario(&factory) {
                    panic!("{}: {violation}", stringify!($scenario));
                }
            }
        )*
    };
}

conformance!(memory, |clock| Arc::new(MemoryStore::with_clock(clock)));

#[cfg(feature = "sqlite")]
conformance!(sqlite, |clock| {
    let path = common::scratch_path("conformance.db");
    Arc::new(
        racefree::SqliteStore::open(&path, clock, racefree::SqliteOptions::default()).expect("sqlite store"),
    )
});

#[cfg(feature = "redis")]
conformance!(redis, |clock| {
    let url = common::redis_server::RedisServer::shared().fresh_url();
    racefree::open_with_clock(&url, clock).expect("redis store")
});

#[cfg(feature = "postgres")]
conformance!(postgres, |clock| {
    let url = common::postgres_server::PostgresServer::shared().fresh_url();
    racefree::open_with_clock(&url, clock).expect("postgres store")
});

// A primary and its standby, named standby first (`target_session_attrs=read-write`).
#[cfg(feature = "postgres")]
conformance!(postgres_with_standby, |clock| {
    let url = common::postgres_server::PostgresServer::fresh_pair_url();
    racefree::open_with_clock(&url, clock).expect("postgres store over a primary and its standby")
});

// Statements prepared once per connection (`prepare_statements=true`), on a direct connection.
#[cfg(feature = "postgres")]
conformance!(postgres_prepared, |clock| {
    let url = common::postgres_server::PostgresServer::shared().fresh_url() + "&prepare_statements=true";
    racefree::open_with_clock(&url, clock).expect("postgres store preparing statements")
});

// The same suite through PgBouncer in transaction pooling mode: no named statements, no session
// state (a store that prepared statements by name fails here with "prepared statement does not
// exist").
#[cfg(feature = "postgres")]
conformance!(postgres_through_pgbouncer, |clock| {
    let url = common::postgres_server::PgBouncer::shared().fresh_url();
    racefree::open_with_clock(&url, clock).expect("postgres store through pgbouncer")
});

// The async stores (`racefree::aio`), each call driven on a tokio runtime and waited for.
#[cfg(all(feature = "tokio", feature = "sqlite"))]
conformance!(sqlite_async, |clock| {
    common::on_async::open(
        &format!("sqlite://{}", common::scratch_path("conformance-async.db").display()),
        clock,
    )
});

// A Redis Cluster of 3 primaries: each request routed to its slot's primary, walks on each.
#[cfg(feature = "redis")]
conformance!(redis_cluster, |clock| {
    racefree::open_with_clock(&common::redis_server::RedisCluster::shared().fresh_url(), clock)
        .expect("redis cluster store")
});

// The primary of a Sentinel group, found through its three sentinels.
#[cfg(feature = "redis")]
conformance!(redis_sentinel, |clock| {
    racefree::open_with_clock(&common::redis_server::SharedSentinelGroup::get().fresh_url(), clock)
        .expect("redis sentinel store")
});

// The same cluster through the tokio store (a multiplexed connection per node).
#[cfg(all(feature = "tokio", feature = "redis"))]
conformance!(redis_cluster_async, |clock| {
    common::on_async::open(&common::redis_server::RedisCluster::shared().fresh_url(), clock)
});

#[cfg(all(feature = "tokio", feature = "redis"))]
conformance!(redis_async, |clock| {
    common::on_async::open(&common::redis_server::RedisServer::shared().fresh_url(), clock)
});

// The Redis store over a host's own client (as Node's ioredis carries it), here redis-rs's.
#[cfg(all(feature = "tokio", feature = "redis"))]
conformance!(redis_hosted, |clock| {
    common::hosted::open(&common::redis_server::RedisServer::shared().fresh_url(), clock)
});

#[cfg(all(feature = "tokio", feature = "postgres"))]
conformance!(postgres_async, |clock| {
    common::on_async::open(&common::postgres_server::PostgresServer::shared().fresh_url(), clock)
});

/// A host's client that resends every request whose reply it lost (here: every script, twice)
/// gets the answers of one send: a grant, a mark, and each write of an update apply once, so
/// 50 increments through `update` make 50, not 100 or a conflict.
#[cfg(all(feature = "tokio", feature = "redis"))]
#[test]
fn a_host_client_that_resends_applies_each_grant_mark_and_write_once() {
    let url = common::redis_server::RedisServer::shared().fresh_url();
    let store = common::hosted::open_resending(&url, Arc::new(racefree::SystemClock));
    let lease = racefree::StartLock::new(&store, "resent")
        .unwrap()
        .try_start("k", std::time::Duration::from_secs(30));
    assert!(lease.expect("a grant").is_some(), "a resent grant is the same grant, not \"held\"");
    let guard = racefree::EventGuard::new(&store, "resent", &["started"]).unwrap();
    assert_eq!(guard.mark("s", "started"), Ok(racefree::Mark::First), "a resent mark is still the first");
    let records = racefree::Records::new(&store, "resent").unwrap();
    records.put("n", &serde_json::json!(0), None).expect("created once");
    for _ in 0..50 {
        records
            .update("n", |n| serde_json::json!(n.and_then(serde_json::Value::as_u64).unwrap_or(0) + 1))
            .expect("an update");
    }
    let read = records.get("n").unwrap().expect("the record");
    assert_eq!((read.value, read.version), (serde_json::json!(50), 51), "each write applied once");
}

/// A host's client after the server lost its scripts (a restart, a failover): the hosted store
/// answers `NOSCRIPT` by loading the script and sending the request again.
#[cfg(all(feature = "tokio", feature = "redis"))]
#[test]
fn the_hosted_store_reloads_scripts_the_server_lost() {
    let url = common::redis_server::RedisServer::shared().fresh_url();
    let store = common::hosted::open(&url, Arc::new(racefree::SystemClock));
    let lock = racefree::StartLock::new(&store, "hosted").expect("lock");
    let flush = || {
        let mut connection =
            ::redis::Client::open(url.split('?').next().unwrap()).unwrap().get_connection().unwrap();
        ::redis::cmd("SCRIPT").arg("FLUSH").query::<()>(&mut connection).expect("SCRIPT FLUSH");
    };
    flush();
    let lease = lock.try_start("k", std::time::Duration::from_secs(30)).expect("a grant after the flush");
    flush();
    lease.expect("granted").release().expect("a release after the flush");
    assert!(!lock.is_held("k").expect("holder"), "released");
}
