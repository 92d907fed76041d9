//! The SQLite and Redis stores shared by real OS processes: this test binary re-runs itself as the
//! children (the ignored `child` test, started with `--ignored`, plays the role `RACEFREE_CHILD`
//! names). Each scenario runs once per backend, on a store URL.
#![cfg(all(feature = "sqlite", feature = "redis"))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use racefree::{
    Counter, EventGuard, Records, SharedStore, SqliteOptions, SqliteStore, StartLock, SystemClock,
};
use serde_json::json;

fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}", common::scratch_path(name).display())
}

fn redis_url() -> String {
    RedisServer::shared().fresh_url()
}

fn open(url: &str) -> SharedStore {
    racefree::open(url).expect("open")
}

/// The SQLite store of the file at `db`, with default options and the wall clock.
fn open_file(db: &std::path::Path) -> SharedStore {
    Arc::new(SqliteStore::open(db, Arc::new(SystemClock), SqliteOptions::default()).expect("open"))
}

fn spawn(role: &str, url: &str, start_at_ms: u64) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RACEFREE_CHILD", role)
        .env("RACEFREE_URL", url)
        .env("RACEFREE_START_AT", start_at_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// The lines a child printed with the given prefix (the test harness prints its own lines too).
fn lines(child: Child, prefix: &str) -> Vec<String> {
    let output = child.wait_with_output().expect("child output");
    assert!(output.status.success(), "child failed: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.find(prefix).map(|at| l[at + prefix.len()..].to_owned()))
        .collect()
}

fn now_ms() -> u64 {
    use racefree::Clock;
    SystemClock.now_ms()
}

/// Children start their work at the same wall-clock moment, like threads on a barrier.
fn wait_until(start_at_ms: u64) {
    while now_ms() < start_at_ms {
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
#[ignore = "a child process of the other tests, which start it with --ignored"]
fn child() {
    let role = std::env::var("RACEFREE_CHILD").expect("run by the other tests");
    let url = std::env::var("RACEFREE_URL").expect("RACEFREE_URL");
    let start_at: u64 = std::env::var("RACEFREE_START_AT").expect("start").parse().expect("number");
    let store = open(&url);
    wait_until(start_at);
    match role.as_str() {
        "next" => {
            let counter = Counter::new(&store, "task:1").expect("counter");
            let indexes: Vec<String> =
                (0..5_000).map(|_| counter.next().expect("next").to_string()).collect();
            println!("\nINDEXES {}", indexes.join(","));
        }
        "start" => {
            let lock = StartLock::new(&store, "tasks").expect("lock");
            match lock.try_start("tests.ExampleTask:1", Duration::from_secs(60)).expect("try_start") {
                Some(lease) => println!("\nOUTCOME WON {}", lease.token()),
                None => println!("\nOUTCOME LOST"),
            }
        }
        "hold" => {
            let lock = StartLock::new(&store, "tasks").expect("lock");
            let lease = lock.try_start("crashy", HOLD_TTL).expect("start").expect("free");
            println!("\nHELD {}", lease.token());
            std::thread::sleep(Duration::from_secs(60)); // killed long before this ends
        }
        "write" => {
            let counter = Counter::new(&store, "task:persist").expect("counter");
            counter.next().expect("next");
            counter.claim("exec-a").expect("claim");
            let guard = EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard");
            guard.mark("s1", "started").expect("mark");
            let lock = StartLock::new(&store, "tasks").expect("lock");
            let lease = lock.try_start("long", Duration::from_secs(3_600)).expect("start").expect("free");
            Records::new(&store, "pods")
                .expect("records")
                .put("web-1", &json!({"phase": "Running"}), None)
                .expect("put");
            println!("\nWROTE {}", lease.token());
        }
        "read" => {
            let counter = Counter::new(&store, "task:persist").expect("counter");
            let guard = EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard");
            let lock = StartLock::new(&store, "tasks").expect("lock");
            let record = Records::new(&store, "pods").expect("records").get("web-1").expect("get");
            println!(
                "\nREAD peek={} claim={:?} started={} held={:?} record={}",
                counter.peek().expect("peek"),
                counter.index_of("exec-a").expect("index_of"),
                guard.is_marked("s1", "started").expect("marked"),
                lock.holder("long").expect("holder").map(|g| g.token),
                record.map(|r| r.value.to_string()).unwrap_or_default(),
            );
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn sqlite_four_processes_next_is_gap_free() {
    four_processes_next_is_gap_free(&sqlite_url("processes-next.db"));
}

#[test]
fn redis_four_processes_next_is_gap_free() {
    four_processes_next_is_gap_free(&redis_url());
}

fn four_processes_next_is_gap_free(url: &str) {
    drop(open(url)); // create the schema before the race
    let start = now_ms() + 500;
    let children: Vec<Child> = (0..4).map(|_| spawn("next", url, start)).collect();
    let mut all: Vec<u64> = children
        .into_iter()
        .flat_map(|c| lines(c, "INDEXES "))
        .flat_map(|line| line.split(',').map(|i| i.parse::<u64>().expect("index")).collect::<Vec<_>>())
        .collect();
    all.sort_unstable();
    assert_eq!(all.len(), 20_000, "children reported {} indexes", all.len());
    assert!(all.iter().copied().eq(0..20_000), "4 processes × 5,000 next() did not give exactly 0..20000");
}

#[test]
fn sqlite_eight_processes_one_starter() {
    eight_processes_one_starter(&sqlite_url("processes-start.db"));
}

#[test]
fn redis_eight_processes_one_starter() {
    eight_processes_one_starter(&redis_url());
}

fn eight_processes_one_starter(url: &str) {
    drop(open(url));
    let start = now_ms() + 500;
    let children: Vec<Child> = (0..8).map(|_| spawn("start", url, start)).collect();
    let outcomes: Vec<String> = children.into_iter().flat_map(|c| lines(c, "OUTCOME ")).collect();
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| o.starts_with("WON")).count(), 1, "{outcomes:?}");
}

#[test]
fn sqlite_a_killed_holder_loses_its_lease_after_the_ttl() {
    a_killed_holder_loses_its_lease_after_the_ttl(&sqlite_url("processes-kill.db"));
}

#[test]
fn redis_a_killed_holder_loses_its_lease_after_the_ttl() {
    a_killed_holder_loses_its_lease_after_the_ttl(&redis_url());
}

/// The dead holder's TTL: between its grant and the parent's check that it is still held come a
/// line on a pipe, a SIGKILL, a reap and an open, which a loaded 2-core machine can stretch past a
/// second; 5 s leaves that room and still ends the test in seconds.
const HOLD_TTL: Duration = Duration::from_secs(5);

fn a_killed_holder_loses_its_lease_after_the_ttl(url: &str) {
    drop(open(url));
    // Taken before the child exists, so the grant is later still: winning must come after the TTL.
    let spawned = Instant::now();
    let mut holder = spawn("hold", url, 0);
    let mut out = BufReader::new(holder.stdout.take().expect("stdout"));
    let mut line = String::new();
    let token = loop {
        line.clear();
        assert!(out.read_line(&mut line).expect("read") > 0, "holder exited without a lease");
        if let Some(at) = line.find("HELD ") {
            break line[at + 5..].trim().parse::<u64>().expect("token");
        }
    };
    holder.kill().expect("SIGKILL"); // no chance to release
    holder.wait().expect("reap");
    let store = open(url);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    assert!(lock.is_held("crashy").expect("is_held"), "the lease vanished with its process");
    let lease = loop {
        if let Some(lease) = lock.try_start("crashy", Duration::from_secs(10)).expect("try_start") {
            break lease;
        }
        assert!(spawned.elapsed() < Duration::from_secs(20), "the dead holder's lease never expired");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(spawned.elapsed() >= HOLD_TTL, "won before the TTL passed");
    assert!(lease.token() > token, "token {} after the dead holder's {token}", lease.token());
}

#[test]
fn sqlite_state_survives_the_processes_that_wrote_it() {
    state_survives_the_processes_that_wrote_it(&sqlite_url("processes-persist.db"));
}

#[test]
fn redis_state_survives_the_processes_that_wrote_it() {
    state_survives_the_processes_that_wrote_it(&redis_url());
}

fn state_survives_the_processes_that_wrote_it(url: &str) {
    let token = lines(spawn("write", url, 0), "WROTE ").pop().expect("writer output");
    let read = lines(spawn("read", url, 0), "READ ").pop().expect("reader output");
    assert_eq!(
        read,
        format!("peek=2 claim=Some(1) started=true held=Some({token}) record={{\"phase\":\"Running\"}}")
    );
}

#[test]
fn a_locked_file_is_a_prompt_timeout_and_records_nothing() {
    let db = common::scratch_path("locked.db");
    let options = SqliteOptions::default().with_busy_timeout(Duration::from_millis(200));
    let store: SharedStore = Arc::new(SqliteStore::open(&db, Arc::new(SystemClock), options).expect("open"));
    let counter = Counter::new(&store, "task:1").expect("counter");
    assert_eq!(counter.next(), Ok(0));
    let blocker = rusqlite::Connection::open(&db).expect("second connection");
    blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock the file");
    let started = Instant::now();
    let err = counter.next().expect_err("the file is locked");
    assert_eq!(err.code(), "timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    blocker.execute_batch("COMMIT").expect("unlock");
    assert_eq!(counter.next(), Ok(1), "the failed call recorded something, or the store did not recover");
}

/// New files get 1 KiB pages (each commit appends whole pages to the WAL); a file made with
/// SQLite's default 4 KiB pages keeps them and works as before.
#[test]
fn new_files_get_small_pages_and_existing_files_keep_theirs() {
    let page_size = |db: &std::path::Path| -> i64 {
        let conn = rusqlite::Connection::open(db).expect("open");
        conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page_size")
    };
    let fresh = common::scratch_path("fresh.db");
    let store = open_file(&fresh);
    assert_eq!(Counter::new(&store, "task:1").expect("counter").next(), Ok(0));
    assert_eq!(page_size(&fresh), 1024);

    let existing = common::scratch_path("existing.db");
    rusqlite::Connection::open(&existing)
        .expect("create")
        .execute_batch("CREATE TABLE other (x)")
        .expect("table");
    assert_eq!(page_size(&existing), 4096);
    let store = open_file(&existing);
    let counter = Counter::new(&store, "task:1").expect("counter");
    assert_eq!((counter.next(), counter.next()), (Ok(0), Ok(1)));
    assert_eq!(page_size(&existing), 4096);
}

/// At the end of its range (SQLite integers are i64) a counter refuses to issue another index,
/// records nothing, and still answers repeated claims; lock tokens keep growing, and a lock at
/// its largest token refuses to grant rather than repeat one.
#[test]
fn a_counter_at_the_end_of_its_range_refuses_and_records_nothing() {
    let db = common::scratch_path("range.db");
    let store = open_file(&db);
    let counter = Counter::new(&store, "task:1").expect("counter");
    let last = i64::MAX as u64;
    assert_eq!(counter.claim("early").map(|c| c.index), Ok(0));
    counter.set(last - 1).expect("set");
    assert_eq!(counter.next(), Ok(last - 1));
    assert_eq!(counter.next().map_err(|e| e.code()), Err("invalid_argument"));
    assert_eq!(counter.claim("late").map_err(|e| e.code()), Err("invalid_argument"));
    assert_eq!(counter.peek(), Ok(last), "a refused call moved the counter");
    assert_eq!(counter.index_of("late"), Ok(None), "a refused claim was recorded");
    assert_eq!(counter.claim("early").map(|c| (c.index, c.is_new)), Ok((0, false)));
    assert_eq!(counter.set(last + 1).map_err(|e| e.code()), Err("invalid_argument"));

    let lock = StartLock::new(&store, "tasks").expect("lock");
    let mut last_token = 0;
    for _ in 0..3 {
        let lease = lock.try_start("k", Duration::from_secs(5)).expect("start").expect("free");
        assert!(lease.token() > last_token);
        last_token = lease.token();
        lease.release().expect("release");
    }
    rusqlite::Connection::open(&db)
        .expect("second connection")
        .execute_batch("UPDATE lock_tokens SET last = 9223372036854775807")
        .expect("tokens at their end");
    let refused = lock.try_start("k", Duration::from_secs(5)).map(|lease| lease.map(|l| l.token()));
    assert_eq!(refused.map_err(|e| e.code()), Err("invalid_argument"));
    assert_eq!(lock.holder("k"), Ok(None), "a refused grant was recorded");
}

#[test]
fn an_unopenable_file_is_backend_unavailable() {
    let err = racefree::open("sqlite:///nonexistent-dir/for/racefree/x.db").expect_err("no such directory");
    assert_eq!(err.code(), "backend_unavailable", "{err}");
}

#[test]
fn a_call_that_waited_for_the_file_takes_effect_after_the_wait() {
    let db = common::scratch_path("waited.db");
    let store = open_file(&db);
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let blocker = rusqlite::Connection::open(&db).expect("second connection");
    blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock the file");
    let called = now_ms();
    let lease = std::thread::scope(|scope| {
        scope.spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            blocker.execute_batch("COMMIT").expect("unlock");
        });
        lock.try_start("k", Duration::from_millis(1_000)).expect("start").expect("free")
    });
    // The deadline counts from when the grant took effect, not from when the call began.
    let waited = lease.deadline_ms().saturating_sub(called + 1_000);
    assert!(
        waited >= 350,
        "the deadline counts from before a 400 ms wait for the file (only {waited} ms later)"
    );
}
