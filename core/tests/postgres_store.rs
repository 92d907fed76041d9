//! The PostgreSQL store against real servers started by the tests: a server that goes away and
//! comes back, a server whose default isolation is serializable, the schema's versions, the
//! privileges the README documents, and TLS. (Calls from inside a tokio runtime are a
//! conformance scenario, on every store.)
#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres_server::PostgresServer;
use racefree::{Error, PostgresOptions, PostgresStore, SystemClock};

/// A database of its own on the shared server (for tests of the schema itself).
fn fresh_database(name: &str) -> String {
    let server = PostgresServer::shared();
    let database = format!("{name}_{}", std::process::id());
    server.psql("postgres", &format!("CREATE DATABASE {database}"));
    database
}

fn url_of(database: &str, options: &str) -> String {
    let server = PostgresServer::shared();
    format!("postgres://racefree@127.0.0.1:{}/{database}?{options}", server.port)
}

#[test]
fn a_stopped_server_fails_calls_promptly_and_the_store_recovers_when_it_is_back() {
    let mut server = PostgresServer::start(&[]);
    let store = racefree::open(&server.url("timeout_ms=5000")).expect("open");
    assert_eq!(store.counter_next("c"), Ok(0));
    server.stop();
    let started = Instant::now();
    let failed = store.counter_next("c").expect_err("the server is stopped");
    let waited = started.elapsed();
    assert_eq!(failed.code(), "backend_unavailable", "{failed:?}");
    assert!(waited < Duration::from_secs(1), "a call took {waited:?} to fail; its timeout is 5 s");
    server.start_again();
    assert_eq!(store.counter_next("c"), Ok(1), "the same store after the server came back");
}

/// A server whose transactions default to SERIALIZABLE: every operation still runs at READ
/// COMMITTED (its own `BEGIN ISOLATION LEVEL`), so contended calls neither fail nor lose
/// anything.
#[test]
fn a_server_defaulting_to_serializable_gives_the_same_results() {
    let server = PostgresServer::start(&["default_transaction_isolation=serializable"]);
    assert_eq!(server.psql("postgres", "SHOW default_transaction_isolation"), "serializable");
    let url = server.url("namespace=serializable");
    let factory = move |clock| racefree::open_with_clock(&url, clock).expect("open");
    for (name, scenario) in [
        (
            "counter_next_is_gap_free",
            common::counter_next_is_gap_free as fn(&common::Factory) -> common::Outcome,
        ),
        ("claims_are_unique_and_stable", common::claims_are_unique_and_stable),
        ("one_starter_wins", common::one_starter_wins),
        ("updates_are_not_lost", common::updates_are_not_lost),
        ("ended_is_delivered_once", common::ended_is_delivered_once),
    ] {
        if let Err(violation) = scenario(&factory) {
            panic!("{name} on a serializable-by-default server: {violation}");
        }
    }
}

#[test]
fn a_database_with_a_newer_schema_is_refused_and_not_written_to() {
    let database = fresh_database("newer");
    let store = racefree::open(&url_of(&database, "")).expect("open creates the schema");
    store.counter_next("c").expect("next");
    let server = PostgresServer::shared();
    server.psql(&database, "UPDATE racefree_meta SET value = 3 WHERE name = 'schema_version'");
    let refused = racefree::open(&url_of(&database, "")).expect_err("a newer schema");
    assert_eq!(refused.code(), "backend_unavailable");
    assert!(refused.to_string().contains("schema version 3"), "{refused}");
    assert_eq!(server.psql(&database, "SELECT next FROM racefree_counters"), "1", "it was written to");
}

#[test]
fn create_schema_false_refuses_a_database_without_one_until_it_is_migrated() {
    let database = fresh_database("migrate");
    let refused = racefree::open(&url_of(&database, "create_schema=false")).expect_err("no schema");
    assert_eq!(refused.code(), "backend_unavailable");
    assert!(refused.to_string().contains("racefree migrate"), "{refused}");
    let server = PostgresServer::shared();
    assert_eq!(
        server.psql(&database, "SELECT to_regclass('racefree_meta') IS NULL"),
        "t",
        "it created tables"
    );
    let url = url_of(&database, "");
    assert_eq!(
        PostgresStore::migrate(&url, PostgresOptions::default()),
        Ok(racefree::store::postgres::SCHEMA_VERSION)
    );
    // Again: nothing to do.
    assert_eq!(
        PostgresStore::migrate(&url, PostgresOptions::default()),
        Ok(racefree::store::postgres::SCHEMA_VERSION)
    );
    let store = racefree::open(&url_of(&database, "create_schema=false")).expect("migrated");
    assert_eq!(store.counter_next("c"), Ok(0));
}

/// The privileges the README documents are enough: an application role without CREATE, given
/// only those on a database migrated by its owner, runs every operation.
#[test]
fn the_documented_privileges_are_enough_for_an_application_role() {
    let database = fresh_database("privileges");
    let server = PostgresServer::shared();
    let owner_url = url_of(&database, "");
    PostgresStore::migrate(&owner_url, PostgresOptions::default()).expect("migrate");
    let role = format!("app_{}", std::process::id());
    server.psql(&database, &format!("CREATE ROLE {role} LOGIN"));
    server.psql(&database, &format!("REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE ALL ON DATABASE {database} FROM PUBLIC; GRANT CONNECT ON DATABASE {database} TO {role}"));
    // What the README lists.
    server.psql(
        &database,
        &format!(
            "GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role};"
        ),
    );
    let app_url = format!("postgres://{role}@127.0.0.1:{}/{database}?create_schema=false", server.port);
    let store = racefree::open(&app_url).expect("the application role opens the store");
    assert_eq!(store.counter_claim("c", "x").map(|c| c.index), Ok(0));
    let lease = store.lease_try_grant("l", "k", 10_000).expect("grant").expect("free");
    store.lease_renew("l", "k", lease.token, 10_000).expect("renew");
    store.lease_release("l", "k", lease.token).expect("release");
    store.guard_mark("g", "s", 0, 10_000).expect("mark");
    store.record_put("r", "k", &serde_json::json!(1), None, Some(lease.token)).expect("put");
    store.record_delete("r", "k", Some(1)).expect("delete");
    store.counter_reset("c").expect("reset");
    store.sweep().expect("sweep");
    store.inspect().expect("inspect");
    // It cannot create the schema in a database that has none: the error says what to do.
    let bare = fresh_database("bare");
    server.psql(
        &bare,
        &format!("REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT CONNECT ON DATABASE {bare} TO {role}"),
    );
    let refused = racefree::open(&format!("postgres://{role}@127.0.0.1:{}/{bare}", server.port))
        .expect_err("no CREATE privilege");
    assert_eq!(refused.code(), "backend_unavailable");
    assert!(refused.to_string().contains("permission denied"), "{refused}");
}

#[test]
fn keys_hold_any_string_the_other_stores_hold() {
    let store = racefree::open(&PostgresServer::shared().fresh_url()).expect("open");
    for key in ["nul\0inside", "ünïcödé ✓", "'; DROP TABLE racefree_counters; --", "a\\b%_*"] {
        let claim = store.counter_claim(key, key).expect("claim");
        assert_eq!(store.counter_index_of(key, key), Ok(Some(claim.index)));
        store.record_put("space", key, &serde_json::json!({ "k": key }), None, None).expect("put");
        assert_eq!(
            store.record_get("space", key).expect("get").map(|v| v.value),
            Some(serde_json::json!({ "k": key }))
        );
    }
    let inventory = store.inspect().expect("inspect");
    assert!(inventory.counters.iter().any(|c| c.counter == "nul\0inside"));
}

#[test]
fn bad_urls_are_invalid_arguments_before_any_connection() {
    for (url, says) in [
        ("postgres://h/db?sslmode=require", "verify-full"),
        ("postgres://h/db?sslmode=bogus", "sslmode"),
        ("postgres://h/db?sslrootcert=/ca.pem", "verify-full"),
        ("postgres://h/db?pool_size=0", "pool_size"),
        ("postgres://h/db?timeout_ms=soon", "timeout_ms"),
        ("postgres://h/db?create_schema=maybe", "create_schema"),
        ("postgres://h/db?prepare_statements=yes", "prepare_statements"),
        ("postgres://h/db?statement_timeout=1", "unknown postgres:// option"),
        ("postgres://h1,h2/db?target_session_attrs=read-only", "target_session_attrs"),
        ("postgres://h:port/db", "bad postgres URL"),
        ("postgres://h/db#frag", "fragment"),
    ] {
        let err = racefree::store::StoreUrl::parse(url).expect_err(url);
        assert_eq!(err.code(), "invalid_argument", "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    let options = PostgresOptions::default().with_pool_size(0);
    let err =
        PostgresStore::open("postgres://127.0.0.1/db", Arc::new(SystemClock), options).expect_err("pool");
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
}

#[test]
fn verify_full_checks_the_servers_certificate_and_its_name() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = common::certificates("DNS:localhost");
    let file = |name: &str| dir.join(name).display().to_string();
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    common::postgres_server::give_to_server_user(&key);
    // TCP connections must use TLS: a store that opens at all has used it.
    let hba = dir.join("hba.conf");
    std::fs::write(&hba, "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").expect("hba");
    common::postgres_server::give_to_server_user(&hba);
    let server = PostgresServer::start(&[
        "ssl=on",
        &format!("ssl_cert_file={}", file("server.pem")),
        &format!("ssl_key_file={}", key.display()),
        &format!("hba_file={}", hba.display()),
    ]);
    let url = |host: &str, options: &str| {
        format!("postgres://racefree@{host}:{}/postgres?timeout_ms=3000&{options}", server.port)
    };
    let trusted = format!("sslmode=verify-full&sslrootcert={}", file("ca.pem"));

    let store = racefree::open(&url("localhost", &trusted)).expect("a verified TLS connection");
    assert_eq!((store.counter_next("c"), store.counter_next("c")), (Ok(0), Ok(1)));

    let refused = |url: String, expected: &str| {
        let err = racefree::open(&url).map(drop).expect_err(&url);
        assert_eq!(err.code(), "backend_unavailable", "{url}: {err}");
        assert!(err.to_string().contains(expected), "{url}: expected {expected:?} in {err}");
    };
    // Without TLS the server refuses the connection (its hba file takes TLS only).
    refused(url("localhost", "sslmode=disable"), "no encryption");
    // A certificate signed by a CA the client does not trust.
    refused(
        url("localhost", &format!("sslmode=verify-full&sslrootcert={}", file("other-ca.pem"))),
        "UnknownIssuer",
    );
    // The right CA, but the certificate names localhost, not 127.0.0.1.
    refused(url("127.0.0.1", &trusted), "not valid for name \"127.0.0.1\"");

    // The async store verifies alike.
    #[cfg(feature = "tokio")]
    {
        let store = common::on_async::open(&url("localhost", &trusted), Arc::new(SystemClock));
        assert_eq!(store.counter_next("c"), Ok(2));
        let refused_async = |url: String| {
            common::on_async::wait(
                async move { racefree::aio::open(&url).await.map(drop).map_err(|e| e.code()) },
            )
        };
        assert_eq!(refused_async(url("localhost", "sslmode=disable")), Err("backend_unavailable"));
        assert_eq!(refused_async(url("127.0.0.1", &trusted)), Err("backend_unavailable"));
    }
}

/// A version 1 database (no record floors or tombstones) is upgraded to version 2 when opened,
/// keeping what it holds; with `create_schema=false` it is refused until migrated. (Version 1 is
/// made by taking version 2's additions away: the upgrade replaces both record functions and the
/// grant and mark functions.)
#[test]
fn a_version_1_database_is_upgraded() {
    let database = fresh_database("upgrade");
    let server = PostgresServer::shared();
    let store = racefree::open(&url_of(&database, "")).expect("open creates the schema");
    store.record_put("r", "k", &serde_json::json!(1), None, None).expect("put");
    drop(store);
    server.psql(
        &database,
        "DROP TABLE racefree_record_floors; ALTER TABLE racefree_records ALTER COLUMN value SET NOT NULL;
         DROP FUNCTION racefree_grant(bytea, bytea, bytea, bigint, bigint, bytea);
         DROP FUNCTION racefree_mark(bytea, bytea, bytea, integer, bigint, bigint, bytea);
         ALTER TABLE racefree_leases DROP COLUMN request; ALTER TABLE racefree_marks DROP COLUMN request;
         UPDATE racefree_meta SET value = 1 WHERE name = 'schema_version'",
    );
    let refused = racefree::open(&url_of(&database, "create_schema=false")).expect_err("version 1");
    assert!(refused.to_string().contains("racefree migrate"), "{refused}");
    let store = racefree::open(&url_of(&database, "")).expect("open upgrades");
    assert_eq!(server.psql(&database, "SELECT value FROM racefree_meta"), "2");
    assert_eq!(store.record_get("r", "k").map(|r| r.map(|r| r.version)), Ok(Some(1)), "kept");
    assert_eq!(store.record_delete("r", "k", None), Ok(true));
    assert_eq!(store.record_put("r", "k", &serde_json::json!(2), None, None), Ok(2));
    assert!(store.lease_try_grant("l", "k", 30_000).expect("grant").is_some(), "the new grant function");
    assert_eq!(
        store.guard_mark("g", "s", 0, 30_000),
        Ok(racefree::MarkOutcome::First),
        "the new mark function"
    );
}

/// The server-side grant and mark called twice with one request id (a client resending after a
/// lost reply) answer alike; another request gets "held" and `Duplicate`.
#[test]
fn replayed_grants_and_marks_get_the_same_answer() {
    let database = fresh_database("replay");
    let server = PostgresServer::shared();
    drop(racefree::open(&url_of(&database, "")).expect("open creates the schema"));
    let grant = |request: &str| {
        server.psql(
            &database,
            &format!(
                "SELECT token, left_ms > 0 FROM racefree_grant('ns', 'lock', 'k', 30000, NULL, '{request}')"
            ),
        )
    };
    let first = grant("req-1");
    let token: Option<u64> = first.strip_suffix("|t").and_then(|token| token.parse().ok());
    assert!(token.is_some(), "a fresh key is granted: {first:?}");
    assert_eq!(grant("req-1"), first, "the same request gets the same lease");
    assert_eq!(grant("req-2"), "|", "another request finds the key held");
    assert_eq!(grant(""), "|", "a request without an id finds the key held");
    let mark = |position: u32, request: &str| {
        server.psql(
            &database,
            &format!(
                "SELECT outcome FROM racefree_mark('ns', 'g', 's', {position}, 60000, NULL, '{request}')"
            ),
        )
    };
    assert_eq!(mark(0, "m-1"), "0");
    assert_eq!(mark(0, "m-1"), "0", "the same mark replayed is first again");
    assert_eq!(mark(0, "m-2"), "1", "another caller's mark is a duplicate");
    assert_eq!(mark(1, "m-3"), "0");
    assert_eq!(mark(0, "m-1"), "1", "no longer the last mark");
}

/// A row holding what racefree could not have written is `corrupt_data`, never a guessed value
/// (a negative counter once answered 0: a duplicate index).
#[test]
fn foreign_values_are_corrupt_data() {
    let url = PostgresServer::shared().fresh_url();
    let store = racefree::open(&url).expect("open");
    let namespace = url.split("namespace=").nth(1).expect("a namespace");
    let server = PostgresServer::shared();
    store.counter_next("c").expect("next");
    store.counter_claim("c", "e").expect("claim");
    store.guard_mark("g", "s", 0, 60_000).expect("mark");
    store.record_put("r", "k", &serde_json::json!(1), None, None).expect("put");
    let ns = format!("convert_to('{namespace}', 'UTF8')");
    server.psql("postgres", &format!("UPDATE racefree_counters SET next = -5 WHERE ns = {ns}"));
    server.psql("postgres", &format!("UPDATE racefree_claims SET idx = -3 WHERE ns = {ns}"));
    server.psql("postgres", &format!("UPDATE racefree_marks SET marked = -1 WHERE ns = {ns}"));
    server.psql(
        "postgres",
        &format!("UPDATE racefree_records SET value = '{{no', version = 1 WHERE ns = {ns}"),
    );
    let code = |e: Error| e.code();
    assert_eq!(store.counter_next("c").map_err(code), Err("corrupt_data"));
    assert_eq!(store.counter_peek("c").map_err(code), Err("corrupt_data"));
    assert_eq!(store.counter_index_of("c", "e").map_err(code), Err("corrupt_data"));
    assert_eq!(store.counter_claim("c", "e").map_err(code), Err("corrupt_data"));
    assert_eq!(store.guard_marked("g", "s").map_err(code), Err("corrupt_data"));
    assert_eq!(store.record_get("r", "k").map_err(code), Err("corrupt_data"));
    assert_eq!(store.inspect().map_err(code), Err("corrupt_data"));
    // A server error keeps the client's own error as its source.
    server.psql("postgres", &format!("UPDATE racefree_records SET value = '1' WHERE ns = {ns}"));
    let fenced =
        store.record_put("r", "k", &serde_json::json!(2), Some(1), Some(u64::MAX)).expect_err("huge token");
    assert_eq!(fenced.code(), "invalid_argument", "a token past i64::MAX is refused, not clamped");
}

/// `inspect` reports deadlines on the store's clock, as `lease_holder` does, also when the
/// server's clock judges them: with a wall clock an hour ahead of the server's, both agree.
#[test]
fn inspect_and_lease_holder_report_deadlines_on_one_clock() {
    #[derive(Debug)]
    struct AnHourAhead;
    impl racefree::Clock for AnHourAhead {
        fn now_ms(&self) -> u64 {
            racefree::Clock::now_ms(&SystemClock) + 3_600_000
        }
        fn is_wall_clock(&self) -> bool {
            true
        }
    }
    let store = racefree::open_with_clock(&PostgresServer::shared().fresh_url(), Arc::new(AnHourAhead))
        .expect("open");
    let granted = store.lease_try_grant("l", "k", 60_000).expect("grant").expect("free");
    let holder = store.lease_holder("l", "k").expect("holder").expect("held");
    let listed = store.inspect().expect("inspect").leases[0].deadline_ms;
    for deadline in [holder.deadline_ms, listed] {
        assert!(
            deadline.abs_diff(granted.deadline_ms) < 5_000,
            "{deadline} vs granted {}",
            granted.deadline_ms
        );
    }
}
