//! The SQLite store's own promises, beyond the conformance suite every store passes.
#![cfg(feature = "sqlite")]

mod common;

use std::sync::Arc;

use racefree::{Counter, SharedStore, SqliteOptions, SqliteStore, SystemClock};

/// Eight threads open one fresh file at the same instant, 20 times over: every open succeeds.
/// The first opener turns the file to WAL while the others read its header; SQLite answers
/// `SQLITE_BUSY` at once (without waiting on the busy timeout) to a connection that would
/// otherwise deadlock, so the open itself must wait and retry.
#[test]
fn threads_opening_a_fresh_file_together_all_open_it() {
    for round in 0..20 {
        let path = common::scratch_path(&format!("open-{round}.db"));
        let opened = common::on_threads(8, |_| {
            let store: SharedStore =
                Arc::new(SqliteStore::open(&path, Arc::new(SystemClock), SqliteOptions::default())?);
            Counter::new(&store, "task:1")?.next()
        });
        let failed: Vec<_> = opened.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(failed.is_empty(), "round {round}: {} of 8 opens failed: {failed:?}", failed.len());
        let mut indexes: Vec<u64> = opened.into_iter().map(Result::unwrap).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..8).collect::<Vec<_>>());
    }
}

/// A row holding what racefree could not have written is `corrupt_data`, never a guessed value
/// (a negative counter once answered 0: a duplicate index); a version 1 file is upgraded.
#[test]
fn foreign_values_are_corrupt_data_and_a_version_1_file_is_upgraded() {
    let path = common::scratch_path("corrupt.db");
    let open = || -> SharedStore {
        Arc::new(SqliteStore::open(&path, Arc::new(SystemClock), SqliteOptions::default()).expect("open"))
    };
    let store = open();
    store.counter_next("c").expect("next");
    store.counter_claim("c", "e").expect("claim");
    store.record_put("r", "k", &serde_json::json!(1), None, None).expect("put");
    drop(store);
    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute_batch(
        "UPDATE counters SET next = -5; UPDATE claims SET idx = 'x'; UPDATE records SET value = '{no';
         DROP TABLE record_floors; DROP TABLE record_tombstones;
         UPDATE racefree_meta SET value = 1 WHERE name = 'schema_version'",
    )
    .expect("corrupt");
    let store = open();
    let version: i64 = raw.query_row("SELECT value FROM racefree_meta", [], |r| r.get(0)).expect("version");
    assert_eq!(version, racefree::store::sqlite::SCHEMA_VERSION, "a version 1 file is upgraded");
    let code = |e: racefree::Error| e.code();
    assert_eq!(store.counter_next("c").map_err(code), Err("corrupt_data"));
    assert_eq!(store.counter_peek("c").map_err(code), Err("corrupt_data"));
    assert_eq!(store.counter_index_of("c", "e").map_err(code), Err("corrupt_data"));
    assert_eq!(store.record_get("r", "k").map_err(code), Err("corrupt_data"));
    assert_eq!(store.inspect().map_err(code), Err("corrupt_data"));
    let fenced =
        store.record_put("r", "new", &serde_json::json!(1), None, Some(u64::MAX)).expect_err("huge token");
    assert_eq!(fenced.code(), "invalid_argument", "a token past i64::MAX is refused, not clamped");
}
