//! The async forms (`racefree::aio`) against their baselines, measured in the same run:
//!
//! 1. memory: async `try_start` + `release` against the blocking call and against a
//!    `tokio::sync::Mutex` lock and unlock (one task, a current-thread runtime);
//! 2. Redis: async `next` with 1, 64 and 512 concurrent tasks against raw `INCR` on the same kind
//!    of redis-rs multiplexed connection, and against `redis-benchmark` with as many clients;
//! 3. Redis: 64 tasks contending for one key against the blocking API on 64 threads.
//!
//! `cargo bench -p racefree --features tokio,redis --bench aio` (a Redis server is started on
//! 127.0.0.1 and stopped by its PID). `RACEFREE_BENCH_OPS` sets the operations per row.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use racefree::{aio, MemoryStore, SharedStore, StartLock};

fn ops() -> usize {
    std::env::var("RACEFREE_BENCH_OPS").ok().and_then(|n| n.parse().ok()).unwrap_or(200_000)
}

fn per_second(count: usize, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

/// The best of three runs of `run` (operations per second): the machines are shared and noisy.
fn best(mut run: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| run()).fold(0.0, f64::max)
}

fn memory(runtime: &tokio::runtime::Runtime) {
    let n = ops();
    let ttl = Duration::from_secs(30);
    let blocking_store: SharedStore = Arc::new(MemoryStore::new());
    let blocking = StartLock::new(&blocking_store, "bench").unwrap();
    let sync_rate = best(|| {
        let started = Instant::now();
        for i in 0..n {
            blocking.try_start(&format!("k{}", i % 1024), ttl).unwrap().unwrap().release().unwrap();
        }
        per_second(n, started)
    });
    let store = aio::from_blocking(Arc::new(MemoryStore::new()));
    let lock = aio::StartLock::new(&store, "bench").unwrap();
    let async_rate = best(|| {
        runtime.block_on(async {
            let started = Instant::now();
            for i in 0..n {
                lock.try_start(&format!("k{}", i % 1024), ttl)
                    .await
                    .unwrap()
                    .unwrap()
                    .release()
                    .await
                    .unwrap();
            }
            per_second(n, started)
        })
    });
    let mutex = tokio::sync::Mutex::new(0u64);
    let mutex_rate = best(|| {
        runtime.block_on(async {
            let started = Instant::now();
            for _ in 0..n {
                *mutex.lock().await += 1;
            }
            per_second(n, started)
        })
    });
    println!("memory, one task, {n} pairs per row (best of 3)");
    println!("| operation | pairs/s | time per pair vs blocking |");
    println!("|---|---:|---:|");
    println!("| blocking try_start + release | {sync_rate:.0} | 1.00× |");
    println!("| async try_start + release | {async_rate:.0} | {:.2}× |", sync_rate / async_rate);
    println!("| tokio::sync::Mutex lock + unlock | {mutex_rate:.0} | {:.2}× |", sync_rate / mutex_rate);
}

/// `redis-benchmark -t incr` with `clients` connections: requests per second.
fn redis_benchmark(port: u16, clients: usize) -> f64 {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "incr",
            "-n",
            &ops().to_string(),
            "-c",
            &clients.to_string(),
            "--csv",
        ])
        .output()
        .expect("redis-benchmark (install it with scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("\"INCR\"")).expect("an INCR line");
    line.split(',').nth(1).expect("rps").trim_matches('"').parse().expect("a number")
}

/// `tasks` tasks share the work of `ops()` calls of `call`: calls per second.
async fn concurrently<F, Fut>(tasks: usize, call: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per_task = ops() / tasks;
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    call().await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    per_second(per_task * tasks, started)
}

fn redis(runtime: &tokio::runtime::Runtime, server: &RedisServer) {
    let url = format!("redis://127.0.0.1:{}/0", server.port);
    let (store, raw) = runtime.block_on(async {
        let store = aio::open(&format!("{url}?namespace=bench")).await.unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        (store, client.get_multiplexed_async_connection().await.unwrap())
    });
    println!();
    println!("redis-server 127.0.0.1:{}, {} operations per row (best of 3)", server.port, ops());
    println!("| tasks | raw INCR on a multiplexed connection | async next | time per op vs raw | redis-benchmark -c N |");
    println!("|---:|---:|---:|---:|---:|");
    for tasks in [1, 64, 512] {
        let incr = best(|| {
            let raw = raw.clone();
            runtime.block_on(concurrently(tasks, move || {
                let mut raw = raw.clone();
                async move {
                    let _: i64 = redis::cmd("INCR").arg("bench-raw").query_async(&mut raw).await.unwrap();
                }
            }))
        });
        let counter = Arc::new(aio::Counter::new(&store, "bench").unwrap());
        let next = best(|| {
            let counter = counter.clone();
            runtime.block_on(concurrently(tasks, move || {
                let counter = counter.clone();
                async move {
                    counter.next().await.unwrap();
                }
            }))
        });
        let benchmark = redis_benchmark(server.port, tasks);
        println!("| {tasks} | {incr:.0} | {next:.0} | {:.2}× | {benchmark:.0} |", incr / next);
    }

    // 64 contenders for one key: async tasks against blocking threads.
    let contenders = 64;
    let attempts = ops() / 10 / contenders;
    let ttl = Duration::from_secs(30);
    let lock = aio::StartLock::new(&store, "contended").unwrap();
    let granted = Arc::new(AtomicUsize::new(0));
    let async_rate = runtime.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..contenders)
            .map(|_| {
                let (lock, granted) = (lock.clone(), granted.clone());
                tokio::spawn(async move {
                    for _ in 0..attempts {
                        if let Some(lease) = lock.try_start("one", ttl).await.unwrap() {
                            granted.fetch_add(1, Ordering::Relaxed);
                            lease.release().await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        per_second(attempts * contenders, started)
    });
    let async_granted = granted.swap(0, Ordering::Relaxed);
    let blocking_store = racefree::open(&format!("{url}?namespace=bench-blocking")).unwrap();
    let blocking = StartLock::new(&blocking_store, "contended").unwrap();
    let barrier = Barrier::new(contenders + 1);
    let sync_rate = std::thread::scope(|scope| {
        for _ in 0..contenders {
            let (blocking, barrier, granted) = (&blocking, &barrier, &granted);
            scope.spawn(move || {
                barrier.wait();
                for _ in 0..attempts {
                    if let Some(lease) = blocking.try_start("one", ttl).unwrap() {
                        granted.fetch_add(1, Ordering::Relaxed);
                        lease.release().unwrap();
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let started = Instant::now();
        barrier.wait();
        per_second(attempts * contenders, started)
    });
    let sync_granted = granted.load(Ordering::Relaxed);
    println!();
    println!("{contenders} contenders for one key, {attempts} attempts each");
    println!("| form | attempts/s | grants |");
    println!("|---|---:|---:|");
    println!("| blocking, {contenders} threads | {sync_rate:.0} | {sync_granted} |");
    println!("| async, {contenders} tasks | {async_rate:.0} | {async_granted} |");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    memory(&tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
    let server = RedisServer::start(&[]);
    redis(&runtime, &server);
}
