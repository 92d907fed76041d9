//! Stores used after `fork()`: parent and children share one store object, inherited with its
//! connections, and all work on one counter and one lock at once. A child must never read a
//! reply meant for its parent (Redis, PostgreSQL: one socket, two readers; PostgreSQL also a
//! runtime whose worker thread the child does not have) or touch the parent's SQLite
//! connection: every index comes out exactly once, every call succeeds.
//!
//! `harness = false`: it forks, so it runs alone in its process, one scenario after another,
//! and prints `N passed, N failed`.
#![allow(unsafe_code)] // fork, pipe, waitpid, _exit

mod common;

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::Duration;

use common::postgres_server::PostgresServer;
use common::redis_server::RedisServer;
use racefree::{Counter, SharedStore, StartLock};

const CHILDREN: usize = 3;
const CALLS: usize = 2_000;

/// What one process does: `CALLS` indexes from one counter, with a lease grant and release after
/// each (replies of other shapes, so a crossed reply shows as an error).
fn work(store: &SharedStore, who: usize) -> Result<Vec<u64>, String> {
    let counter = Counter::new(store, "forked").map_err(|e| e.to_string())?;
    let lock = StartLock::new(store, "forked").map_err(|e| e.to_string())?;
    let mut indexes = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        indexes.push(counter.next().map_err(|e| format!("next: {e}"))?);
        let key = format!("p{who}-{}", i % 7);
        let lease = lock.try_start(&key, Duration::from_secs(60)).map_err(|e| format!("try_start: {e}"))?;
        lease
            .ok_or("a key only this process uses was held")?
            .release()
            .map_err(|e| format!("release: {e}"))?;
    }
    Ok(indexes)
}

/// Forks `CHILDREN` children that each run `work` while the parent does too; what each process
/// returned (the parent's first), or the first failure.
fn in_forked_children(work: impl Fn(usize) -> Result<String, String>) -> Result<Vec<String>, String> {
    let mut children = Vec::new();
    for who in 1..=CHILDREN {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe() writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: this binary runs one scenario at a time on its main thread; the child only runs
        // `work`, writes to its pipe and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: fds[1] is this child's end of the pipe, owned here alone.
            let mut out = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let (text, code) = match work(who) {
                Ok(text) => (text, 0),
                Err(error) => (error, 1),
            };
            let _ = out.write_all(text.as_bytes());
            drop(out);
            // SAFETY: leaves the child at once, without the parent's atexit work.
            unsafe { libc::_exit(code) };
        }
        // SAFETY: fds[1] is the child's end; the parent keeps only fds[0].
        unsafe { libc::close(fds[1]) };
        // SAFETY: fds[0] is the parent's end of the pipe, owned here alone.
        children.push((pid, unsafe { std::fs::File::from_raw_fd(fds[0]) }));
    }
    let mut all = vec![work(0).map_err(|e| format!("parent: {e}"))?];
    let mut failures = Vec::new();
    for (pid, mut pipe) in children {
        let mut text = String::new();
        pipe.read_to_string(&mut text).expect("read the child's pipe");
        let mut status = 0;
        // SAFETY: `pid` is a child of this process; `status` is writable.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            all.push(text);
        } else {
            failures.push(format!("child {pid}: {text}"));
        }
    }
    if failures.is_empty() {
        Ok(all)
    } else {
        Err(failures.join("; "))
    }
}

/// Every index the parent and its forked children got from `store`, or the first failure.
fn forked(store: &SharedStore) -> Result<Vec<u64>, String> {
    let texts = in_forked_children(|who| {
        let indexes = work(store, who)?;
        Ok(indexes.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
    })?;
    Ok(texts.iter().flat_map(|text| text.split(',').map(|n| n.parse::<u64>().expect("an index"))).collect())
}

fn every_index_once(store: &SharedStore) {
    // The parent has used the store before it forks: its connections are open and pooled.
    let counter = Counter::new(store, "forked").expect("counter");
    let first = counter.next().expect("next");
    let mut indexes = forked(store).unwrap_or_else(|e| panic!("{e}"));
    indexes.push(first);
    indexes.sort_unstable();
    let expected: Vec<u64> = (0..((CHILDREN + 1) * CALLS + 1) as u64).collect();
    assert!(
        indexes == expected,
        "indexes are not each issued once: {} of {} distinct",
        {
            let mut distinct = indexes.clone();
            distinct.dedup();
            distinct.len()
        },
        expected.len()
    );
    assert_eq!(counter.next().expect("the parent's store still works"), expected.len() as u64);
}

fn redis_after_fork() {
    let server = RedisServer::start(&[]);
    every_index_once(&racefree::open(&server.fresh_url()).expect("open"));
}

fn sqlite_after_fork() {
    let path = common::scratch_path("forked.db");
    every_index_once(&racefree::open(&format!("sqlite://{}", path.display())).expect("open"));
}

fn postgres_after_fork() {
    let server = PostgresServer::start(&[]);
    every_index_once(&racefree::open(&server.url("pool_size=2")).expect("open"));
}

/// Execution ids made by a parent and its forked children at the same moments are all distinct
/// (a generator whose state a fork copies hands every child the parent's next ids).
fn execution_ids_after_fork() {
    const IDS: usize = 20_000;
    // The parent has made ids before it forks: whatever state that leaves is what children inherit.
    let before: Vec<String> = (0..100).map(|_| racefree::new_execution_id()).collect();
    let texts = in_forked_children(|_| {
        Ok((0..IDS).map(|_| racefree::new_execution_id()).collect::<Vec<_>>().join(","))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&str> = before.iter().map(String::as_str).collect();
    for text in &texts {
        let mine: Vec<&str> = text.split(',').collect();
        assert!(mine.windows(2).all(|pair| pair[0] < pair[1]), "one process's ids are not increasing");
        ids.extend(mine);
    }
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "{} of {total} execution ids were issued twice", total - ids.len());
}

fn main() {
    let scenarios: [(&str, fn()); 4] = [
        ("execution_ids_after_fork", execution_ids_after_fork),
        ("redis_after_fork", redis_after_fork),
        ("sqlite_after_fork", sqlite_after_fork),
        ("postgres_after_fork", postgres_after_fork),
    ];
    let mut failed = 0;
    for (name, scenario) in scenarios {
        let ok = std::panic::catch_unwind(scenario).is_ok();
        failed += usize::from(!ok);
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    }
    println!("fork: {} passed, {failed} failed", scenarios.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
