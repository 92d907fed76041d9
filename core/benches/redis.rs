//! The Redis store against `redis-benchmark` in the same run, on a server this benchmark starts
//! (127.0.0.1, free port, persistence off) and stops by its PID.
//!
//! `cargo bench -p racefree --features redis,tokio --bench redis [-- CLIENTS...]` prints, per client
//! count, `next` ops/s against `redis-benchmark -t incr` with as many clients, the round trips
//! of `try_start` and `release` counted by the server (`INFO commandstats`), and, with a replica
//! attached, what `replicas=1` costs per operation (each write waiting for the replica's `WAIT`)
//! against the same store without it, same run; and on a cluster of 3 primaries it starts,
//! `next` on counters spread over every slot against `redis-benchmark --cluster -t incr` with as
//! many clients (keys spread by `-r`), blocking and tokio stores.

// The tests' server helper: the same start on a free port, and the same stop by PID.
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::redis_server::{calls, RedisCluster, RedisServer};
use racefree::{Counter, SharedStore, StartLock};

const OPS: usize = 200_000;

/// `redis-benchmark -t incr` with `clients` connections (and `extra` arguments): requests per
/// second.
fn redis_benchmark(port: u16, clients: usize, extra: &[&str]) -> f64 {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "incr", "-n", &OPS.to_string(), "-c", &clients.to_string()])
        .args(extra)
        .args(["--csv"])
        .output()
        .expect("redis-benchmark (install it with scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps",...  then  "INCR","51867.53",...
    let line = text.lines().find(|l| l.starts_with("\"INCR\"")).expect("an INCR line");
    line.split(',').nth(1).expect("rps").trim_matches('"').parse().expect("a number")
}

/// `clients` threads share one store (one pooled connection each) and call `work` `OPS` times in
/// all: operations per second.
fn threads(clients: usize, store: &SharedStore, work: impl Fn(&SharedStore, usize) + Sync) -> f64 {
    let barrier = Barrier::new(clients + 1);
    let per_thread = OPS / clients;
    std::thread::scope(|scope| {
        for t in 0..clients {
            let (barrier, work) = (&barrier, &work);
            scope.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    work(store, t * per_thread + i);
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let started = Instant::now();
        barrier.wait();
        (per_thread * clients) as f64 / started.elapsed().as_secs_f64()
    })
}

fn main() {
    let clients: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clients = if clients.is_empty() { vec![1, 8, 32] } else { clients };
    let server = RedisServer::start(&[]);
    let url = format!("redis://127.0.0.1:{}/0?namespace=bench", server.port);
    let store = racefree::open(&url).expect("open");

    println!("redis-server 127.0.0.1:{}, {OPS} operations per row", server.port);
    println!("| clients | redis-benchmark INCR ops/s | racefree next ops/s | ratio |");
    println!("|---:|---:|---:|---:|");
    for &n in &clients {
        let baseline = redis_benchmark(server.port, n, &[]);
        let counter = Counter::new(&store, "task:1").expect("counter");
        let ours = threads(n, &store, |_, _| {
            counter.next().expect("next");
        });
        println!("| {n} | {baseline:.0} | {ours:.0} | {:.2} |", ours / baseline);
    }

    let lock = StartLock::new(&store, "tasks").expect("lock");
    // Loads both scripts into the server first, so the count below is the steady state.
    lock.try_start("warm-up", Duration::from_secs(30))
        .expect("start")
        .expect("free")
        .release()
        .expect("release");
    let stats = server.command(&["INFO", "commandstats"]);
    let before = (calls(&stats, "evalsha"), calls(&stats, "eval"));
    let n = 8;
    let pairs = threads(n, &store, |_, i| {
        let lease = lock.try_start(&format!("k{i}"), Duration::from_secs(30)).expect("start").expect("free");
        lease.release().expect("release");
    });
    let stats = server.command(&["INFO", "commandstats"]);
    let after = (calls(&stats, "evalsha"), calls(&stats, "eval"));
    let done = (OPS / n * n) as u64;
    println!();
    println!(
        "try_start + release, {n} clients: {pairs:.0} pairs/s; the server ran {} EVALSHA and {} EVAL for {done} \
         pairs = {:.2} round trips per operation",
        after.0 - before.0,
        after.1 - before.1,
        (after.0 - before.0 + after.1 - before.1) as f64 / (2 * done) as f64
    );

    replicas_cost(&server, &clients);
    cluster_throughput(&clients);
}

/// `next` on 1,000 counters (spread over the slots, so over the 3 primaries) against
/// `redis-benchmark --cluster -t incr -r 1000` (as many keys, spread alike), same cluster, same
/// clients.
fn cluster_throughput(clients: &[usize]) {
    let cluster = RedisCluster::start(3, 0);
    let url = cluster.url("namespace=bench");
    let blocking = racefree::open(&url).expect("open the cluster");
    let on_tokio = common::on_async::open(&url, std::sync::Arc::new(racefree::SystemClock));
    let counters: Vec<Counter> =
        (0..1_000).map(|i| Counter::new(&blocking, &format!("task:{i}")).expect("counter")).collect();
    let tokio_counters: Vec<Counter> =
        (0..1_000).map(|i| Counter::new(&on_tokio, &format!("task:{i}")).expect("counter")).collect();
    println!();
    println!("a cluster of 3 primaries (ports {:?}), {OPS} operations per row:", cluster.primaries());
    println!("| clients | redis-benchmark --cluster INCR ops/s | racefree next ops/s | ratio | racefree next on tokio ops/s | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in clients {
        let baseline = redis_benchmark(cluster.nodes[0].port, n, &["--cluster", "-r", "1000"]);
        let ours = threads(n, &blocking, |_, i| {
            counters[i % counters.len()].next().expect("next");
        });
        let async_ours = threads(n, &on_tokio, |_, i| {
            tokio_counters[i % tokio_counters.len()].next().expect("next");
        });
        println!(
            "| {n} | {baseline:.0} | {ours:.0} | {:.2} | {async_ours:.0} | {:.2} |",
            ours / baseline,
            async_ours / baseline
        );
    }
}

/// `next` and a lease cycle with `replicas=1` against the same operations without it, on the
/// benchmark's server with one replica attached (so both pay for replication on the primary).
fn replicas_cost(server: &RedisServer, clients: &[usize]) {
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &server.port.to_string()]);
    while !replica.command(&["INFO", "replication"]).contains("master_link_status:up") {
        std::thread::sleep(Duration::from_millis(20));
    }
    let open = |options: &str| {
        racefree::open(&format!("redis://127.0.0.1:{}/0?namespace=replicas&{options}", server.port))
            .expect("open")
    };
    let (plain, waiting) = (open(""), open("replicas=1&replicas_timeout_ms=1000"));
    println!();
    println!("with one replica attached, {OPS} operations per row:");
    println!("| clients | operation | replicas=0 ops/s | replicas=1 ops/s | time per op, ratio |");
    println!("|---:|---|---:|---:|---:|");
    let next = |store: &SharedStore, _: usize| {
        Counter::new(store, "replicated").expect("counter").next().expect("next");
    };
    let lease_cycle = |store: &SharedStore, i: usize| {
        let lock = StartLock::new(store, "replicated").expect("lock");
        lock.try_start(&format!("k{i}"), Duration::from_secs(30))
            .expect("start")
            .expect("free")
            .release()
            .expect("release");
    };
    for &n in clients {
        for (name, work) in
            [("next", &next as &(dyn Fn(&SharedStore, usize) + Sync)), ("lease cycle", &lease_cycle)]
        {
            let without = threads(n, &plain, work);
            let with = threads(n, &waiting, work);
            println!("| {n} | {name} | {without:.0} | {with:.0} | {:.2} |", without / with);
        }
    }
}
