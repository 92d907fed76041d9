//! Replays each seed failure racefree ends, on the in-memory store, and prints what happened.
//! Run: `cargo run --release -p racefree --example demo`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use racefree::{
    new_execution_id, Cache, Counter, Error, EventGuard, Mark, Records, SharedStore, StartLock, SystemClock,
};
use serde_json::json;

/// Runs `work(i)` on `n` threads released together; collects the results.
fn race<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    work(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    })
}

fn duplicate_task_starts(store: &SharedStore) -> Result<(), Error> {
    println!("\n1. Duplicate task starts (asyncio coordinator: `if key not in tasks: create_task(...)`)");
    // The hand-rolled check-then-act, with the await that opens its window.
    let tasks: Mutex<HashMap<&str, ()>> = Mutex::default();
    let naive = race(100, |_| {
        let running = tasks.lock().expect("lock").contains_key("tests.ExampleTask:1");
        thread::sleep(Duration::from_millis(1));
        if running {
            return false;
        }
        tasks.lock().expect("lock").insert("tests.ExampleTask:1", ());
        true
    });
    let naive_started = naive.iter().filter(|s| **s).count();
    println!("   hand-rolled: 100 concurrent starts → {naive_started} started");

    let lock = StartLock::new(store, "tasks")?;
    let leases = race(100, |_| lock.try_start("tests.ExampleTask:1", Duration::from_secs(30)));
    let leases: Vec<_> = leases.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    println!(
        "   racefree:    100 concurrent starts → {} started, {} already running",
        leases.len(),
        100 - leases.len()
    );
    let first = &leases[0];
    first.release()?;
    let again = lock.try_start("tests.ExampleTask:1", Duration::from_secs(30))?.expect("free after release");
    println!(
        "   after completion the key starts again (token {} → {}); the old holder's release is {:?}",
        first.token(),
        again.token(),
        first.release().map_err(|e| e.code()).err().unwrap_or("accepted?!")
    );
    again.release()
}

fn execution_indexes(store: &SharedStore) -> Result<(), Error> {
    println!("\n2. Duplicate and unstable execution indexes (task engine)");
    let counter = Counter::new(store, "task:42")?;
    let executions = 1_000;
    // Half are non-blocking: the trigger claims an index and returns at once; completion claims
    // again later. The other half are blocking: one claim at start.
    let results = race(8, |t| {
        (0..executions / 8)
            .map(|i| {
                let id = new_execution_id();
                let trigger = counter.claim(&id)?;
                if (t + i) % 2 == 0 {
                    thread::yield_now(); // the execution runs…
                    let completion = counter.claim(&id)?;
                    return Ok((trigger.index, completion.index));
                }
                Ok((trigger.index, trigger.index))
            })
            .collect::<Result<Vec<_>, Error>>()
    });
    let pairs: Vec<(u64, u64)> =
        results.into_iter().collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
    let stable = pairs.iter().filter(|(a, b)| a == b).count();
    let distinct: BTreeSet<u64> = pairs.iter().map(|(a, _)| *a).collect();
    let exact = distinct == (0..executions as u64).collect();
    println!(
        "   {executions} mixed blocking/non-blocking executions on 8 threads → indexes 0…{}: {}, {stable} of {executions} stable from trigger to completion",
        executions - 1,
        if exact { "each exactly once" } else { "NOT exact" }
    );
    counter.reset()
}

fn stream_events(store: &SharedStore) -> Result<(), Error> {
    println!("\n3. Duplicate and out-of-order lifecycle events (stream proxy)");
    let guard = EventGuard::new(store, "streams", &["started", "ended"])?;
    let delivered = Mutex::new(Vec::new());
    let rejected_early = AtomicUsize::new(0);
    race(11, |path| {
        if path == 10 {
            thread::sleep(Duration::from_millis(5)); // `started` is sent asynchronously and arrives late
            if guard.mark("stream-1", "started").expect("mark") == Mark::First {
                delivered.lock().expect("lock").push("started");
            }
            return;
        }
        loop {
            match guard.mark("stream-1", "ended") {
                Ok(Mark::First) => return delivered.lock().expect("lock").push("ended"),
                Ok(Mark::Duplicate) => return,
                Err(Error::OutOfOrder { .. }) => {
                    rejected_early.fetch_add(1, Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(1));
                }
                Err(other) => panic!("{other}"),
            }
        }
    });
    let delivered = delivered.into_inner().expect("lock");
    println!(
        "   `ended` emitted from 10 paths → delivered {} time(s), order {:?}; {} early attempts refused as out_of_order, {} duplicates suppressed",
        delivered.iter().filter(|e| **e == "ended").count(),
        delivered,
        rejected_early.load(Ordering::Relaxed),
        guard.stats().duplicates_suppressed
    );
    guard.forget("stream-1").map(drop)
}

fn status_writes(store: &SharedStore) -> Result<(), Error> {
    println!("\n4. Lost updates and conflict storms (controller status writes)");
    let records = Records::new(store, "pods")?;
    race(8, |_| {
        for _ in 0..1_000 {
            records
                .update("web-1", |current| {
                    let n = current.and_then(|v| v["restarts"].as_u64()).unwrap_or(0);
                    json!({ "restarts": n + 1, "phase": "Running" }) // two fields, one write
                })
                .expect("update");
        }
    });
    let stored = records.get("web-1")?.expect("record");
    let stats = records.stats();
    println!(
        "   8 writers × 1,000 updates → {}, no lost update ({} conflicts retried)",
        stored.value["restarts"], stats.retries
    );
    let lock = StartLock::new(store, "controller")?;
    let old = lock.try_start("leader", Duration::from_millis(20))?.expect("leader");
    thread::sleep(Duration::from_millis(25)); // the old leader pauses past its lease
    let new = lock.try_start("leader", Duration::from_secs(10))?.expect("new leader");
    records.put_fenced(
        "web-1",
        &json!({"phase": "Running", "by": "new"}),
        Some(stored.version),
        new.token(),
    )?;
    let late = records.put_fenced(
        "web-1",
        &json!({"phase": "Failed", "by": "old"}),
        Some(stored.version + 1),
        old.token(),
    );
    println!(
        "   a paused former leader's write (token {} < {}) → {}",
        old.token(),
        new.token(),
        late.map_err(|e| e.code()).err().unwrap_or("accepted?!")
    );
    Ok(())
}

fn request_storm() -> Result<(), Error> {
    println!("\n5. Request storms on a shared lookup (orchestrator /engines)");
    let cache: Cache<Vec<String>, String> = Cache::new(Arc::new(SystemClock));
    let loads = AtomicUsize::new(0);
    race(32, |_| {
        cache
            .get_or_load("engines", Duration::from_secs(2), || {
                loads.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(50)); // the slow HTTP call
                Ok(vec!["engine-a".to_owned(), "engine-b".to_owned()])
            })
            .expect("load")
    });
    println!("   32 concurrent callers → {} load, the rest waited for it", loads.load(Ordering::SeqCst));
    Ok(())
}

fn main() -> Result<(), Error> {
    let store = racefree::open("memory://")?;
    println!("racefree demo — each seed failure replayed on the in-memory store");
    duplicate_task_starts(&store)?;
    execution_indexes(&store)?;
    stream_events(&store)?;
    status_writes(&store)?;
    request_storm()?;
    let stats = store.stats()?;
    println!("\nstore: {} entries left, {} expired entries swept", stats.entries, stats.expired_swept);
    Ok(())
}
