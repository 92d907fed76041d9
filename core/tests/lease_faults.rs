//! A key never runs twice at once, under real faults: two real processes run the same key through
//! a `Coordinator` while the store stalls past the lease's TTL — a Redis server frozen with
//! SIGSTOP, a SQLite file whose write lock a third process holds. Each run prints its own start,
//! heartbeats and end on the machine's wall clock, and the runs must not overlap.
//!
//! `harness = false`: this binary re-runs itself as the children (`RACEFREE_CHILD` names the
//! role), and otherwise runs the scenarios and prints `N passed, N failed`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::redis_server::RedisServer;
use racefree::{Coordinator, Error, Holding, KeeperOptions};

const TTL_MS: u64 = 1_000;
const STALL_MS: u64 = 2_500;

fn micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_micros()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

// ---- children ----

/// A run of key "k": start, a heartbeat every 20 ms while the lease holds, end; `RUN_MS` at most.
fn run_recorded(who: &str, run_for: Duration) -> impl FnOnce(&Holding) -> Option<Error> + Send + 'static {
    let who = who.to_owned();
    move |holding| {
        say(&format!("RUN {who} start {} token={}", micros(), holding.token()));
        let started = Instant::now();
        let lost = loop {
            if let Some(lost) = holding.lost() {
                break Some(lost);
            }
            if started.elapsed() >= run_for {
                break None;
            }
            say(&format!("RUN {who} beat {}", micros()));
            std::thread::sleep(Duration::from_millis(20));
        };
        say(&format!("RUN {who} end {}", micros()));
        lost
    }
}

fn child(role: &str) {
    let url = env("RACEFREE_URL");
    if role == "sqlite-locker" {
        let path = url.trim_start_matches("sqlite://").split('?').next().expect("path").to_owned();
        let db = rusqlite::Connection::open(path).expect("open");
        db.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        say("LOCKED");
        std::thread::sleep(Duration::from_millis(STALL_MS));
        db.execute_batch("COMMIT").expect("commit");
        say("UNLOCKED");
        return;
    }
    let store = racefree::open(&url).expect("open");
    say("READY"); // the store is open: the parent may stall it from now on
    let tasks =
        Coordinator::new(&store, "tasks", KeeperOptions::new(Duration::from_millis(TTL_MS)).expect("ttl"))
            .expect("coordinator");
    let run_for = Duration::from_millis(env("RACEFREE_RUN_MS").parse().expect("ms"));
    let give_up = Instant::now() + Duration::from_secs(20);
    // The holder starts once; the starter keeps trying (through the stall's errors) until it runs.
    loop {
        match tasks.start("k", run_recorded(role, run_for)) {
            Ok(Some(run)) => {
                let finished = run.join();
                if let Some(Error::LeaseLost { reason, .. }) = finished.value.or(finished.lost) {
                    say(&format!("LOST {}", reason.code()));
                }
                return;
            }
            Ok(None) | Err(_) if Instant::now() < give_up => std::thread::sleep(Duration::from_millis(5)),
            other => panic!("{role} never started: {other:?}"),
        }
    }
}

// ---- the parent ----

/// A child whose stdout lines arrive on a channel as it prints them.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

fn spawn(role: &str, url: &str, run_ms: u64) -> Proc {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .env("RACEFREE_CHILD", role)
        .env("RACEFREE_URL", url)
        .env("RACEFREE_RUN_MS", run_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    Proc { child, lines, seen: Vec::new() }
}

impl Proc {
    /// Waits for a line starting with `prefix`.
    fn wait_for(&mut self, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                let found = line.starts_with(prefix);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!("no line {prefix:?}; saw {:?}", self.seen);
    }

    /// Waits for the child to exit; every line it printed.
    fn finish(mut self) -> Vec<String> {
        let status = self.child.wait().expect("wait");
        self.seen.extend(self.lines.iter());
        assert!(status.success(), "child failed: {:?}", self.seen);
        self.seen
    }
}

/// `(start, end)` of each run in `lines`, by who ran it.
fn runs(lines: &[String]) -> Vec<(String, u128, u128)> {
    let stamp = |who: &str, what: &str| -> Option<u128> {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("RUN {who} {what} "))?.split(' ').next()?.parse().ok())
    };
    ["holder", "starter"]
        .iter()
        .filter_map(|who| Some(((*who).to_owned(), stamp(who, "start")?, stamp(who, "end")?)))
        .collect()
}

/// The holder runs, the store stalls past the TTL under `stall`, the starter keeps trying: the
/// holder must be told to stop before the starter starts, and the starter must then run.
fn no_overlap_through(url: &str, stall: impl FnOnce()) {
    let mut holder = spawn("holder", url, 6_000);
    holder.wait_for("RUN holder start");
    let mut starter = spawn("starter", url, 300);
    starter.wait_for("READY"); // its own open must not meet the stall
    std::thread::sleep(Duration::from_millis(300));
    stall();
    let mut lines = holder.finish();
    lines.extend(starter.finish());
    let runs = runs(&lines);
    assert_eq!(runs.len(), 2, "both must run: {lines:?}");
    let (holder_run, starter_run) = (&runs[0], &runs[1]);
    assert!(
        holder_run.2 < starter_run.1,
        "the runs overlap by {} ms: holder {holder_run:?}, starter {starter_run:?}",
        (holder_run.2 - starter_run.1) / 1000
    );
    assert!(lines.iter().any(|l| l == "LOST renewals_failed"), "the holder was not told: {lines:?}");
    say(&format!(
        "  holder ran {} ms and stopped {} ms before the starter began",
        (holder_run.2 - holder_run.1) / 1000,
        (starter_run.1 - holder_run.2) / 1000
    ));
}

fn redis_frozen_longer_than_the_ttl() {
    let server = RedisServer::start(&[]);
    let url = format!("{}&timeout_ms=300", server.fresh_url());
    let pid = server.pid().expect("running").to_string();
    no_overlap_through(&url, || {
        let signal =
            |sig: &str| assert!(Command::new("kill").args([sig, &pid]).status().expect("kill").success());
        signal("-STOP");
        std::thread::sleep(Duration::from_millis(STALL_MS));
        signal("-CONT");
    });
}

fn sqlite_write_locked_longer_than_the_ttl() {
    let path = common::scratch_path("locked.db");
    let url = format!("sqlite://{}?busy_timeout_ms=300", path.display());
    racefree::open(&url).expect("create the file"); // the schema exists before the locker runs
    no_overlap_through(&url, || {
        let mut locker = spawn("sqlite-locker", &url, 0);
        locker.wait_for("LOCKED");
        locker.finish();
    });
}

fn main() {
    if let Ok(role) = std::env::var("RACEFREE_CHILD") {
        child(&role);
        return;
    }
    let scenarios: [(&str, fn()); 2] = [
        ("redis_frozen_longer_than_the_ttl", redis_frozen_longer_than_the_ttl),
        ("sqlite_write_locked_longer_than_the_ttl", sqlite_write_locked_longer_than_the_ttl),
    ];
    let mut failed = 0;
    for (name, scenario) in scenarios {
        say(&format!("test {name} ..."));
        let ok = std::panic::catch_unwind(scenario).is_ok();
        failed += usize::from(!ok);
        say(&format!("test {name} ... {}", if ok { "ok" } else { "FAILED" }));
    }
    say(&format!("lease faults: {} passed, {failed} failed", scenarios.len() - failed));
    if failed > 0 {
        std::process::exit(1);
    }
}
