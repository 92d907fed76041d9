//! Linearizability of real concurrent histories, per backend: threads on the memory store,
//! processes on SQLite, clients on Redis — also while a process is SIGKILLed and while Redis
//! restarts. Each history holds at least 10,000 operations of every primitive on few keys; the
//! checker (tests/common/linearizability.rs) must find an order explaining every result, and must
//! reject the history of a store whose check-then-act takes two steps.
//!
//! `RACEFREE_LINEARIZABILITY_OPS=<per client>` makes every run longer.
// Without a backend feature only the thread and checker tests build; the process tests' imports
// go unused.
#![cfg_attr(not(any(feature = "sqlite", feature = "redis", feature = "postgres")), allow(unused_imports))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::linearizability::{check, now_us, Client, Event, Op, Report, Ret};
use racefree::{MemoryStore, SharedStore};

fn ops_per_client(default: usize) -> usize {
    std::env::var("RACEFREE_LINEARIZABILITY_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `clients` threads, each with the store `open` gives it, run their random mixes at once.
fn on_threads(
    clients: usize,
    ops: usize,
    ttls_ms: &[u64],
    open: impl Fn() -> SharedStore + Sync,
) -> Vec<Event> {
    common::on_threads(clients, |t| {
        let store = open();
        let mut client = Client::new(t as u64 + 1);
        client.ttls_ms = ttls_ms.to_vec();
        client.drive(store.as_ref(), ops, |event| {
            if event.ret == Ret::Unknown {
                std::thread::sleep(Duration::from_millis(20)); // the backend is away: don't spin
            }
        })
    })
    .into_iter()
    .flatten()
    .collect()
}

fn expect_linearizable(backend: &str, history: &[Event], at_least: usize) -> Report {
    assert!(history.len() >= at_least, "{backend}: only {} operations", history.len());
    match check(history) {
        Ok(report) => {
            eprintln!(
                "{backend}: {} operations ({} of unknown outcome) in {} partitions are linearizable ({} search steps)",
                report.operations, report.unknown, report.partitions, report.search_steps
            );
            report
        }
        Err(violation) => panic!("{backend}: {violation}"),
    }
}

// ---- the checker itself ----

fn event(op: Op, ret: Ret, invoked_us: u64, returned_us: u64) -> Event {
    Event { op, ret, invoked_us, returned_us: Some(returned_us) }
}

fn next() -> Op {
    Op::Next { counter: "c".into() }
}

#[test]
fn the_checker_accepts_overlap_and_rejects_what_no_order_explains() {
    // Overlapping calls may take effect in either order.
    let swapped = [event(next(), Ret::Index(1), 0, 10), event(next(), Ret::Index(0), 5, 15)];
    assert!(check(&swapped).is_ok());
    // One returned before the other began: the order is fixed.
    let reversed = [event(next(), Ret::Index(1), 0, 10), event(next(), Ret::Index(0), 11, 15)];
    assert!(check(&reversed).is_err());
    let duplicate = [event(next(), Ret::Index(0), 0, 10), event(next(), Ret::Index(0), 5, 15)];
    assert!(check(&duplicate).is_err());
    // A read after a completed write must see it.
    let put = Op::Put { space: "r".into(), key: "k".into(), value: 7, expected: None, token: None };
    let get = Op::Get { space: "r".into(), key: "k".into() };
    let stale = [event(put.clone(), Ret::Version(1), 0, 10), event(get.clone(), Ret::Record(None), 20, 30)];
    assert!(check(&stale).is_err());
    let concurrent = [event(put.clone(), Ret::Version(1), 0, 10), event(get, Ret::Record(None), 5, 30)];
    assert!(check(&concurrent).is_ok());
    // After a delete, a record starts above every version its space deleted (on any key): a
    // create answered with version 1 again, or a compare-and-swap on the deleted version, is ABA.
    let delete = |key: &str| Op::Delete { space: "r".into(), key: key.into(), expected: None };
    let put_on =
        |key: &str, expected| Op::Put { space: "r".into(), key: key.into(), value: 8, expected, token: None };
    let recreated = |version| {
        [
            event(put.clone(), Ret::Version(1), 0, 10),
            event(delete("k"), Ret::Deleted(true), 20, 30),
            event(put_on("other", None), Ret::Version(version), 40, 50),
        ]
    };
    assert!(check(&recreated(1)).is_err());
    assert!(check(&recreated(2)).is_ok());
    let aba = [
        event(put.clone(), Ret::Version(1), 0, 10),
        event(delete("k"), Ret::Deleted(true), 20, 30),
        event(put_on("k", None), Ret::Version(2), 40, 50),
        event(put_on("k", Some(1)), Ret::Version(3), 60, 70),
    ];
    assert!(check(&aba).is_err());
    // Two holders of one key at once, and a token that does not grow.
    let grant = |ttl_ms| Op::Grant { lock: "l".into(), key: "k".into(), ttl_ms };
    let two = [
        event(grant(60_000), Ret::Granted(Some(1)), 0, 1_000),
        event(grant(60_000), Ret::Granted(Some(2)), 2_000, 3_000),
    ];
    assert!(check(&two).is_err());
    let after_expiry = [
        event(grant(1), Ret::Granted(Some(1)), 0, 1_000),
        event(grant(60_000), Ret::Granted(Some(2)), 5_000, 6_000),
    ];
    assert!(check(&after_expiry).is_ok());
    let shrinking = [
        event(grant(1), Ret::Granted(Some(2)), 0, 1_000),
        event(grant(60_000), Ret::Granted(Some(1)), 5_000, 6_000),
    ];
    assert!(check(&shrinking).is_err());
    // An operation of unknown outcome may explain a gap, or be left out.
    let unknown = Event { op: next(), ret: Ret::Unknown, invoked_us: 0, returned_us: None };
    let gap = [unknown.clone(), event(next(), Ret::Index(1), 20, 30)];
    assert!(check(&gap).is_ok());
    let none = [unknown, event(next(), Ret::Index(0), 20, 30)];
    assert!(check(&none).is_ok());
}

/// Check-then-act in two steps is caught in every primitive: for each, some run of a workload of
/// only that primitive's operations must be rejected.
#[test]
fn the_racy_store_is_not_linearizable() {
    for primitive in ["counter", "guard", "lock", "record"] {
        let caught = (0..10).find_map(|_| {
            let racy: SharedStore = Arc::new(common::racy::RacyStore::new(Arc::new(racefree::SystemClock)));
            let history = common::on_threads(8, |t| {
                let mut client = Client::new(t as u64 + 1);
                client.only = Some(primitive);
                client.drive(racy.as_ref(), 1_000, |_| {})
            });
            check(&history.into_iter().flatten().collect::<Vec<_>>()).err()
        });
        let violation = caught.unwrap_or_else(|| panic!("10 racy {primitive} histories passed the checker"));
        eprintln!("racy {primitive}: {violation}");
    }
}

// ---- memory: threads ----

#[test]
fn memory_threads() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let mut history = on_threads(8, ops_per_client(1_500), &[2, 15, 60_000], || store.clone());
    expect_linearizable("memory, 8 threads", &history, 12_000);
    // The same real history with one result changed is rejected: the check is not vacuous.
    let at = history.iter().position(|e| matches!(e.ret, Ret::Index(_))).expect("a next");
    if let Ret::Index(index) = history[at].ret {
        history[at].ret = Ret::Index(index + 1);
    }
    assert!(check(&history).is_err(), "a shifted index passed");
}

// ---- processes (SQLite and Redis) ----

/// The child side: runs a client's mix on the store at RACEFREE_URL, printing each operation
/// before it starts (INVOKE) and after it returns (DONE), so a killed child's history is whole.
/// Run only by the process tests, as their children (with `--ignored`).
#[test]
#[ignore = "a child process of the process tests, which start it with --ignored"]
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
fn child() {
    let url = std::env::var("RACEFREE_HISTORY_URL").expect("run by the process tests");
    let seed: u64 = std::env::var("RACEFREE_SEED").expect("seed").parse().expect("number");
    let ops: usize = std::env::var("RACEFREE_OPS").expect("ops").parse().expect("number");
    let ttls: Vec<u64> =
        std::env::var("RACEFREE_TTLS").expect("ttls").split(',').map(|t| t.parse().expect("ttl")).collect();
    let start_at: u64 = std::env::var("RACEFREE_START_AT").expect("start").parse().expect("number");
    let store = racefree::open(&url).expect("open");
    let mut client = Client::new(seed);
    client.ttls_ms = ttls;
    while now_us() < start_at {
        std::thread::sleep(Duration::from_micros(200));
    }
    for _ in 0..ops {
        let op = client.next_op();
        let pending = Event { op: op.clone(), ret: Ret::Unknown, invoked_us: now_us(), returned_us: None };
        println!("\nINVOKE {}", serde_json::to_string(&pending).expect("json"));
        let done = common::linearizability::run(store.as_ref(), op);
        client.observe(&done);
        println!("\nDONE {}", serde_json::to_string(&done).expect("json"));
    }
}

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
struct Children {
    children: Vec<Child>,
    lines: Vec<Arc<Mutex<Vec<String>>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    done: Vec<Arc<AtomicUsize>>,
    /// Each child's stderr, a file: what it said if it failed.
    stderr: Vec<std::path::PathBuf>,
}

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
fn spawn_children(url: &str, processes: u64, ops: usize, ttls_ms: &str) -> Children {
    let start_at = now_us() + 500_000;
    let mut spawned = Children {
        children: Vec::new(),
        lines: Vec::new(),
        readers: Vec::new(),
        done: Vec::new(),
        stderr: Vec::new(),
    };
    for p in 0..processes {
        let stderr = common::scratch_path(&format!("child-{p}.stderr"));
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("RACEFREE_HISTORY_URL", url)
            .env("RACEFREE_SEED", (p + 1).to_string())
            .env("RACEFREE_OPS", ops.to_string())
            .env("RACEFREE_TTLS", ttls_ms)
            .env("RACEFREE_START_AT", start_at.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("child stderr"))
            .spawn()
            .expect("spawn child");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let (lines, done) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicUsize::new(0)));
        let (sink, count) = (lines.clone(), done.clone());
        // Read as the child writes, so a full pipe never stalls it.
        spawned.readers.push(std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if line.starts_with("DONE ") {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                sink.lock().unwrap().push(line);
            }
        }));
        spawned.children.push(child);
        spawned.lines.push(lines);
        spawned.done.push(done);
        spawned.stderr.push(stderr);
    }
    spawned
}

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
impl Children {
    /// Every child's history: an INVOKE without its DONE (a killed child) is of unknown outcome.
    fn history(self) -> Vec<Event> {
        for mut child in self.children {
            child.wait().expect("reap");
        }
        for reader in self.readers {
            reader.join().expect("reader");
        }
        let mut history = Vec::new();
        for lines in self.lines {
            let mut pending: Option<Event> = None;
            for line in lines.lock().unwrap().iter() {
                if let Some(json) = line.strip_prefix("INVOKE ") {
                    history.extend(pending.take());
                    pending = serde_json::from_str(json).ok();
                } else if let Some(json) = line.strip_prefix("DONE ") {
                    if let Ok(done) = serde_json::from_str::<Event>(json) {
                        pending = None;
                        history.push(done);
                    }
                }
            }
            history.extend(pending);
        }
        history
    }
}

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
fn processes(url: &str, backend: &str) {
    let ops = ops_per_client(2_500);
    drop(racefree::open(url).expect("open")); // the schema exists before the race
    let children = spawn_children(url, 4, ops, "2,15,60000");
    let history = children.history();
    expect_linearizable(backend, &history, 10_000);
}

/// One of four processes is SIGKILLed halfway; its leases expire and others take over.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
fn processes_with_a_kill(url: &str, backend: &str) {
    let ops = ops_per_client(3_500);
    drop(racefree::open(url).expect("open"));
    let mut children = spawn_children(url, 4, ops, "2,15,300");
    while children.done[0].load(Ordering::Relaxed) < ops / 2 {
        // A child that ends before half its operations would leave this loop waiting forever.
        if let Some(status) = children.children[0].try_wait().expect("wait") {
            let said = std::fs::read_to_string(&children.stderr[0]).unwrap_or_default();
            panic!("{backend}: child 0 exited ({status}) before half its operations:\n{said}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    children.children[0].kill().expect("SIGKILL");
    let history = children.history();
    let report = expect_linearizable(backend, &history, 10_000);
    assert!(report.operations < 4 * ops, "the killed process ran to its end");
}

/// 8 clients on the store at `url` while `outage` takes its server away and brings it back once
/// 4,000 operations are done; a client pauses `after_failure` after each failed call (each may or
/// may not have taken effect, so it overlaps every later one: a few dozen keep the check's search
/// small). Returns the history, and a `next` each client's store made after the outage.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn clients_through_an_outage(
    url: &str,
    after_failure: Duration,
    outage: impl FnOnce(),
) -> (Vec<Event>, Vec<racefree::Result<u64>>) {
    let progress = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            common::on_threads(8, |t| {
                let store = racefree::open(url).expect("open");
                let mut client = Client::new(t as u64 + 1);
                client.ttls_ms = vec![2, 15, 300];
                let history = client.drive(store.as_ref(), ops_per_client(1_250), |event| {
                    progress.fetch_add(1, Ordering::Relaxed);
                    if event.ret == Ret::Unknown {
                        std::thread::sleep(after_failure);
                    }
                });
                // The same store, after the outage: it works without being reopened.
                (history, store.counter_next("after-outage"))
            })
        });
        while progress.load(Ordering::Relaxed) < 4_000 {
            std::thread::sleep(Duration::from_millis(2));
        }
        outage();
        let results = run.join().expect("clients");
        let after = results.iter().map(|(_, after)| after.clone()).collect();
        (results.into_iter().flat_map(|(history, _)| history).collect(), after)
    })
}

/// Every store opened afresh after the outage answers, and they share one counter.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn recovered(after: Vec<racefree::Result<u64>>) {
    let mut indexes: Vec<u64> = after.into_iter().map(|r| r.expect("a call after the outage")).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..8).collect::<Vec<_>>(), "the stores did not recover");
}

/// The linearizability runs every shared backend gets, in a module of its own: 8 clients on
/// threads, 4 processes, and 4 processes with one SIGKILLed halfway, each on a fresh store from
/// `$url`; then the backend's own tests (`$extra`). Adding a backend is one call.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
macro_rules! linearizable {
    ($backend:ident, $url:expr $(, $extra:item)* $(,)?) => {
        mod $backend {
            use super::*;

            fn url() -> String {
                let make: fn() -> String = $url;
                make()
            }

            fn label(what: &str) -> String {
                format!("{}, {what}", stringify!($backend))
            }

            #[test]
            fn clients() {
                let url = url();
                let history =
                    on_threads(8, ops_per_client(1_250), &[2, 15, 60_000], || racefree::open(&url).expect("open"));
                expect_linearizable(&label("8 clients"), &history, 10_000);
            }

            #[test]
            fn processes() {
                super::processes(&url(), &label("4 processes"));
            }

            #[test]
            fn processes_with_a_sigkill() {
                processes_with_a_kill(&url(), &label("4 processes, one SIGKILLed"));
            }

            $($extra)*
        }
    };
}

#[cfg(feature = "sqlite")]
linearizable!(sqlite, || format!("sqlite://{}", common::scratch_path("lin.db").display()));

#[cfg(feature = "redis")]
linearizable!(
    redis,
    || common::redis_server::RedisServer::shared().fresh_url(),
    /// The server is killed (SIGKILL) and restarted under 8 clients; with `appendfsync always`
    /// the history stays linearizable (calls that failed meanwhile are of unknown outcome).
    #[test]
    fn clients_through_a_crash_and_restart() {
        let mut server =
            common::redis_server::RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
        let url = format!("redis://127.0.0.1:{}/0?require_fsync=true&timeout_ms=2000", server.port);
        let (history, after) = clients_through_an_outage(&url, Duration::from_millis(20), || {
            server.kill();
            std::thread::sleep(Duration::from_millis(100));
            server.start_again();
        });
        let report = expect_linearizable(&label("8 clients, server killed and restarted"), &history, 10_000);
        assert!(report.unknown > 0, "no call failed: the restart happened outside the run");
        recovered(after);
    }
);

// A Redis Cluster of 3 primaries (each request routed to its slot's primary).
#[cfg(feature = "redis")]
linearizable!(
    redis_cluster,
    || common::redis_server::RedisCluster::shared().fresh_url(),
    /// Every slot that holds the run's keys moves to another primary, key by key (`ASK`,
    /// `TRYAGAIN`, then `MOVED`), under 8 clients: the history stays linearizable.
    #[test]
    fn clients_through_slot_migrations() {
        let cluster = common::redis_server::RedisCluster::start(3, 0);
        let namespace = common::test_server::fresh_namespace("lin-migrating");
        let url = cluster.url(&format!("namespace={namespace}&timeout_ms=2000"));
        let pattern = racefree::store::redis::protocol::Layout::new(&namespace).scan_pattern();
        let (history, after) = clients_through_an_outage(&url, Duration::from_millis(20), || {
            assert!(cluster.migrate_matching(&pattern) > 0, "no slot held the run's keys");
        });
        expect_linearizable(&label("8 clients, every slot of the run migrated"), &history, 10_000);
        recovered(after);
    }
);

// The primary of a Sentinel group, found through its sentinels.
#[cfg(feature = "redis")]
linearizable!(redis_sentinel, || common::redis_server::SharedSentinelGroup::get().fresh_url());

// A primary and its streaming standby, the URL naming both (the standby first).
#[cfg(feature = "postgres")]
linearizable!(postgres_with_standby, common::postgres_server::PostgresServer::fresh_pair_url);

#[cfg(feature = "postgres")]
linearizable!(
    postgres,
    || common::postgres_server::PostgresServer::shared().fresh_url(),
    /// The server is stopped (fast shutdown: every session is ended) and started again under 8
    /// clients; the history stays linearizable (calls that failed meanwhile are of unknown
    /// outcome), and the same stores work again once it is back.
    #[test]
    fn clients_through_a_stop_and_start() {
        let mut server = common::postgres_server::PostgresServer::start(&[]);
        let url = server.url("timeout_ms=2000");
        drop(racefree::open(&url).expect("open")); // the schema exists before the race
        let (history, after) = clients_through_an_outage(&url, Duration::from_millis(250), || {
            server.stop();
            server.start_again();
        });
        let report = expect_linearizable(&label("8 clients, server stopped and started"), &history, 10_000);
        assert!(report.unknown > 0, "no call failed: the restart happened outside the run");
        recovered(after);
    }
);

/// The async stores (`racefree::aio`): 8 clients whose every call is a future on one shared
/// runtime (on Redis, all of them pipelined on one multiplexed connection).
#[allow(unused_macros)] // Without an async backend in the build.
macro_rules! linearizable_async {
    ($backend:ident, $url:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn clients() {
                let make: fn() -> String = $url;
                let url = make();
                let history = on_threads(8, ops_per_client(1_250), &[2, 15, 60_000], || {
                    common::on_async::open(&url, std::sync::Arc::new(racefree::SystemClock))
                });
                expect_linearizable(concat!(stringify!($backend), ", 8 clients"), &history, 10_000);
            }
        }
    };
}

#[cfg(all(feature = "tokio", feature = "sqlite"))]
linearizable_async!(sqlite_async, || format!("sqlite://{}", common::scratch_path("lin-async.db").display()));

#[cfg(all(feature = "tokio", feature = "redis"))]
linearizable_async!(redis_async, || common::redis_server::RedisServer::shared().fresh_url());

#[cfg(all(feature = "tokio", feature = "redis"))]
linearizable_async!(redis_cluster_async, || common::redis_server::RedisCluster::shared().fresh_url());

#[cfg(all(feature = "tokio", feature = "postgres"))]
linearizable_async!(postgres_async, || common::postgres_server::PostgresServer::shared().fresh_url());
