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
