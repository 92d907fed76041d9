//! racefree's primitives on the memory store against a naive `Mutex<HashMap>` baseline measured
//! in the same run. Run: `cargo bench -p racefree --bench primitives`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use racefree::{Counter, EventGuard, MemoryStore, Records, SharedStore, StartLock};
use serde_json::json;

/// The check-then-act people write by hand: one global lock around a map.
#[derive(Default)]
struct Naive {
    counters: Mutex<HashMap<String, u64>>,
}

impl Naive {
    fn next(&self, key: &str) -> u64 {
        let mut counters = self.counters.lock().expect("poisoned");
        if let Some(next) = counters.get_mut(key) {
            let index = *next;
            *next += 1;
            return index;
        }
        counters.insert(key.to_owned(), 1);
        0
    }
}

fn store() -> SharedStore {
    Arc::new(MemoryStore::new())
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("single_thread");
    let naive = Naive::default();
    group.bench_function("naive_mutex_hashmap_next", |b| b.iter(|| black_box(naive.next("task:1"))));

    let store = store();
    let counter = Counter::new(&store, "task:1").expect("counter");
    group.bench_function("counter_next", |b| b.iter(|| black_box(counter.next().expect("next"))));

    let ids: Vec<String> = (0..1_000).map(|i| format!("exec-{i}")).collect();
    let mut i = 0;
    group.bench_function("counter_claim", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            black_box(counter.claim(&ids[i]).expect("claim"))
        })
    });

    let lock = StartLock::new(&store, "tasks").expect("lock");
    group.bench_function("try_start_release", |b| {
        b.iter(|| {
            let lease = lock.try_start("task:1", Duration::from_secs(30)).expect("start").expect("free");
            lease.release().expect("release");
        })
    });

    let guard = EventGuard::new(&store, "streams", &["started", "ended"]).expect("guard");
    let streams: Vec<String> = (0..1_000).map(|i| format!("stream-{i}")).collect();
    for s in &streams {
        guard.mark(s, "started").expect("mark");
    }
    group.bench_function("guard_mark", |b| {
        b.iter(|| {
            i = (i + 1) % streams.len();
            black_box(guard.mark(&streams[i], "ended").expect("mark"))
        })
    });

    group.bench_function("guard_is_marked", |b| {
        b.iter(|| {
            i = (i + 1) % streams.len();
            black_box(guard.is_marked(&streams[i], "ended").expect("is_marked"))
        })
    });

    let records = Records::new(&store, "status").expect("records");
    group.bench_function("records_update", |b| {
        b.iter(|| {
            records
                .update(
                    "job",
                    |current| json!({ "count": current.and_then(|v| v["count"].as_u64()).unwrap_or(0) + 1 }),
                )
                .expect("update")
        })
    });
    group.finish();
}

/// Each of `threads` threads does `iters` operations on its own key; returns the wall time.
fn parallel(threads: usize, iters: u64, op: impl Fn(usize) -> Box<dyn FnMut() + Send> + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, op) = (&barrier, &op);
            scope.spawn(move || {
                let mut step = op(t);
                barrier.wait();
                for _ in 0..iters {
                    step();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("distinct_keys");
    let store = store();
    for threads in [1, 2] {
        // Reported time is per operation *per thread*: equal times mean perfect scaling.
        group.bench_function(format!("counter_next_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |t| {
                    let counter = Counter::new(&store, &format!("task:{t}")).expect("counter");
                    Box::new(move || {
                        black_box(counter.next().expect("next"));
                    })
                })
            })
        });
    }
    let naive = Arc::new(Naive::default());
    for threads in [1, 2] {
        group.bench_function(format!("naive_next_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |t| {
                    let (naive, key) = (Arc::clone(&naive), format!("task:{t}"));
                    Box::new(move || {
                        black_box(naive.next(&key));
                    })
                })
            })
        });
    }
    // The machine's own ceiling: each thread increments a private mutex-guarded integer.
    for threads in [1, 2] {
        group.bench_function(format!("private_mutex_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                parallel(threads, iters, |_| {
                    let own = Mutex::new(0u64);
                    Box::new(move || {
                        *own.lock().expect("poisoned") += 1;
                        black_box(&own);
                    })
                })
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = single_thread, scaling
}
criterion_main!(benches);
