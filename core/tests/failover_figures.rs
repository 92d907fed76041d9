//! What a Redis failover costs, counted from the clients' own records, on a real Sentinel group
//! (a primary, two replicas, three sentinels) started by the test: 8 threads run `next` and hold
//! leases while the replicas are cut off (frozen by SIGSTOP, so that they cannot reconnect, and
//! their links closed by the primary, `CLIENT KILL TYPE replica`: what the primary acknowledges
//! from then on reaches no replica, as in a partition), then the primary is killed, the replicas
//! thawed, and the sentinels promote the one with the most data. Once without knobs, once with
//! `replicas=1`, once with `appendfsync always` on both servers. Prints a table (the README's) and asserts what each
//! promises: tokens never repeat; with `replicas=1`, no index is issued twice and no two holders
//! overlap; without knobs the run does lose acknowledged writes (so the scenario can fail).
//!
//! `RACEFREE_FAILOVER_SECONDS` (default 1) sets how long the clients run before, during and after
//! the lag.
#![cfg(feature = "redis")]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::redis_server::{RedisServer, SentinelGroup};
use racefree::{Counter, SharedStore, StartLock};

/// One lease a client held: its key, token, and when it started and ended on the test's clock.
struct Held {
    key: String,
    token: u64,
    from: Instant,
    to: Instant,
}

#[derive(Default)]
struct Records {
    indexes: Vec<u64>,
    held: Vec<Held>,
    refused: usize,
}

#[derive(Debug)]
struct Figures {
    acknowledged: usize,
    indexes_twice: usize,
    tokens_repeated: usize,
    overlapping_holders: usize,
    refused: usize,
    failover: Duration,
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill").success());
}

fn run(config: &[&str], options: &str) -> Figures {
    let phase = Duration::from_secs(
        std::env::var("RACEFREE_FAILOVER_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1),
    );
    let mut group = SentinelGroup::with_replicas(config, 2);
    let store: SharedStore =
        racefree::open(&group.url(&format!("namespace=figures&{options}"))).expect("open");
    let records = Mutex::new(Records::default());
    let stop = AtomicBool::new(false);
    let mut failover = Duration::ZERO;
    std::thread::scope(|scope| {
        // Stops the clients however this closure ends (a failed wait panics: the scope would
        // otherwise wait for them forever).
        let _stop_clients = StopOnDrop(&stop);
        for t in 0..8 {
            let (store, records, stop) = (&store, &records, &stop);
            scope.spawn(move || {
                let counter = Counter::new(store, "jobs").expect("counter");
                let lock = StartLock::new(store, "tasks").expect("lock");
                let key = format!("k{}", t % 2);
                while !stop.load(Ordering::Relaxed) {
                    if t < 4 {
                        match counter.next() {
                            Ok(index) => records.lock().unwrap().indexes.push(index),
                            Err(_) => {
                                records.lock().unwrap().refused += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                        continue;
                    }
                    // Lease holders: 4 threads on 2 keys, each holding what it gets for 2 s (longer
                    // than the failover takes, so a lost grant can overlap the next holder).
                    match lock.try_start(&key, Duration::from_secs(30)) {
                        Ok(Some(lease)) => {
                            let from = Instant::now();
                            std::thread::sleep(Duration::from_secs(2));
                            let token = lease.token();
                            // Held until the release is sent (its reply may come late).
                            let to = Instant::now();
                            let released = lease.release();
                            let mut records = records.lock().unwrap();
                            records.held.push(Held { key: key.clone(), token, from, to });
                            if released.is_err() {
                                records.refused += 1;
                            }
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                        Err(_) => {
                            records.lock().unwrap().refused += 1;
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            });
        }
        std::thread::sleep(phase);
        eprintln!("{options:?}: {} indexes; cutting the replicas off", records.lock().unwrap().indexes.len());
        let replica_pids: Vec<u32> = group.replicas().map(|r| r.pid().expect("replica running")).collect();
        for &pid in &replica_pids {
            signal(pid, "-STOP");
        }
        let cut = group.primary.command(&["CLIENT", "KILL", "TYPE", "replica"]);
        assert_eq!(cut.trim(), ":2", "both replicas' links closed");
        std::thread::sleep(phase.max(Duration::from_millis(1_500)));
        let killed = Instant::now();
        group.primary.kill();
        for &pid in &replica_pids {
            signal(pid, "-CONT");
        }
        // The sentinels promote the replica with the most data; the other follows it.
        let promoted = || {
            group
                .replicas()
                .find(|r| r.command(&["INFO", "replication"]).contains("role:master"))
                .map(|r| r.port)
        };
        group.wait_until(|| promoted().is_some());
        let port = promoted().expect("a promoted replica").to_string();
        eprintln!("{options:?}: 127.0.0.1:{port} is the primary after {:?}", killed.elapsed());
        let named = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelGroup::MASTER];
        group.wait_until(|| {
            group
                .sentinels
                .iter()
                .all(|sentinel| RedisServer::array_on(sentinel.port, &named).get(1) == Some(&port))
        });
        // Until a client's call succeeds on the new primary.
        let before = records.lock().unwrap().indexes.len();
        group.wait_until(|| records.lock().unwrap().indexes.len() > before);
        failover = killed.elapsed();
        eprintln!("{options:?}: a next answered {failover:?} after the kill");
        std::thread::sleep(phase.max(Duration::from_secs(1)));
        stop.store(true, Ordering::Relaxed);
    });
    let records = records.into_inner().unwrap();
    let distinct = |values: &[u64]| values.iter().collect::<HashSet<_>>().len();
    let tokens: Vec<u64> = records.held.iter().map(|h| h.token).collect();
    let mut by_key: HashMap<&str, Vec<&Held>> = HashMap::new();
    for held in &records.held {
        by_key.entry(&held.key).or_default().push(held);
    }
    let overlapping_holders = by_key
        .values_mut()
        .map(|held| {
            held.sort_by_key(|h| h.from);
            held.windows(2).filter(|pair| pair[1].from < pair[0].to).count()
        })
        .sum();
    Figures {
        acknowledged: records.indexes.len(),
        indexes_twice: records.indexes.len() - distinct(&records.indexes),
        tokens_repeated: tokens.len() - distinct(&tokens),
        overlapping_holders,
        refused: records.refused,
        failover,
    }
}

#[test]
fn a_failover_that_loses_writes_counted_without_and_with_the_knobs() {
    let variants = [
        ("no knobs", run(&[], "")),
        ("replicas=1", run(&[], "replicas=1&replicas_timeout_ms=300")),
        ("appendfsync always", run(&["--appendonly", "yes", "--appendfsync", "always"], "")),
    ];
    println!("| store | acknowledged next | indexes issued twice | tokens repeated | overlapping holders | calls refused | kill to first success |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, f) in &variants {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {:.1} s |",
            f.acknowledged,
            f.indexes_twice,
            f.tokens_repeated,
            f.overlapping_holders,
            f.refused,
            f.failover.as_secs_f64()
        );
    }
    for (name, f) in &variants {
        assert_eq!(f.tokens_repeated, 0, "{name}: {f:?}");
    }
    let (_, with_replicas) = &variants[1];
    assert_eq!((with_replicas.indexes_twice, with_replicas.overlapping_holders), (0, 0), "{with_replicas:?}");
    let (_, without) = &variants[0];
    assert!(without.indexes_twice > 0, "the failover lost no acknowledged write: {without:?}");
}
