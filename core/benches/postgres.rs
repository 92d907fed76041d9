//! The PostgreSQL store, blocking and (with feature `tokio`) async, against raw tokio-postgres
//! running the same upsert as `next`, measured in the same run on one server.
//!
//! `cargo bench -p racefree --features postgres[,tokio] --bench postgres`: starts a server on
//! 127.0.0.1 and stops it by its PID; `RACEFREE_BENCH_URL=postgres://…` uses a running one instead
//! (to compare two builds on one server). `RACEFREE_BENCH_OPS` sets the operations per row.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use racefree::{Counter, StartLock};

fn ops() -> usize {
    std::env::var("RACEFREE_BENCH_OPS").ok().and_then(|n| n.parse().ok()).unwrap_or(20_000)
}

/// `clients` threads share the work of `ops()` calls of `call`: calls per second.
fn threads(clients: usize, call: impl Fn(usize) + Sync) -> f64 {
    let barrier = Barrier::new(clients + 1);
    let per_thread = ops() / clients;
    std::thread::scope(|scope| {
        for t in 0..clients {
            let (barrier, call) = (&barrier, &call);
            scope.spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    call(t * per_thread + i);
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
    let server = std::env::var("RACEFREE_BENCH_URL")
        .is_err()
        .then(|| common::postgres_server::PostgresServer::start(&[]));
    let base = match &server {
        Some(server) => server.url(""),
        None => std::env::var("RACEFREE_BENCH_URL").expect("a URL"),
    };
    let url = |namespace: &str| {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}namespace={namespace}-{}", std::process::id())
    };
    let store = racefree::open(&url("bench")).expect("open");
    let counter = Counter::new(&store, "c").expect("counter");
    let lock = StartLock::new(&store, "l").expect("lock");
    println!("PostgreSQL, {} operations per row", ops());
    println!("| clients | blocking next/s | blocking try_start + release pairs/s |");
    println!("|---:|---:|---:|");
    for clients in [1, 4, 8] {
        let next = threads(clients, |_| {
            counter.next().expect("next");
        });
        let pairs = threads(clients, |i| {
            lock.try_start(&format!("k{i}"), Duration::from_secs(30))
                .expect("start")
                .expect("free")
                .release()
                .expect("release");
        });
        println!("| {clients} | {next:.0} | {pairs:.0} |");
    }
    #[cfg(feature = "tokio")]
    asynchronous(&url("bench-async"));
}

/// The async store with as many tasks as the blocking rows had threads, against raw
/// tokio-postgres running `next`'s upsert on as many connections.
#[cfg(feature = "tokio")]
fn asynchronous(url: &str) {
    use std::sync::Arc;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    println!();
    println!("| tasks | raw tokio-postgres upsert/s | async next/s | time per op vs raw |");
    println!("|---:|---:|---:|---:|");
    runtime.block_on(async {
        let store = racefree::aio::open(url).await.expect("open");
        let counter = Arc::new(racefree::aio::Counter::new(&store, "c").expect("counter"));
        let server_url = url.split('?').next().expect("a URL").to_owned();
        for tasks in [1, 4, 8] {
            let per_task = ops() / tasks;
            let mut clients = Vec::new();
            for _ in 0..tasks {
                let (client, connection) =
                    tokio_postgres::connect(&server_url, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(connection);
                clients.push(Arc::new(client));
            }
            let started = Instant::now();
            let handles: Vec<_> = clients
                .into_iter()
                .map(|client| {
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            // One round trip, unnamed, as the store sends it.
                            client
                                .query_typed(
                                    "INSERT INTO racefree_counters AS c VALUES ('raw', 'c', 1) ON CONFLICT (ns, counter) \
                                     DO UPDATE SET next = c.next + 1 RETURNING c.next - 1",
                                    &[],
                                )
                                .await
                                .expect("upsert");
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("task");
            }
            let raw = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
            let started = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let counter = counter.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            counter.next().await.expect("next");
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("task");
            }
            let ours = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
            println!("| {tasks} | {raw:.0} | {ours:.0} | {:.2}× |", raw / ours);
        }
    });
}
