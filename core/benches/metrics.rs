//! What the `metrics` feature costs on the hottest path, `Counter::next` on the memory store
//! (prints a table, same run): the store's own `counter_next` (what `next` is without the
//! feature), `next` from a handle made with no recorder installed, and `next` from a handle made
//! with one (metrics-util's debugging recorder: an atomic per counter, as exporters keep).
//!
//! `cargo bench -p racefree --features metrics --bench metrics`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use metrics_util::debugging::DebuggingRecorder;
use racefree::{Counter, MemoryStore, SharedStore};

const OPS: u32 = 2_000_000;

/// Nanoseconds per call of `work`, the best of 5 runs of `OPS` calls.
fn per_call(mut work: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..OPS {
                work();
            }
            started.elapsed().as_nanos() as f64 / f64::from(OPS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let store: SharedStore = Arc::new(MemoryStore::new());
    let bare = per_call(|| {
        black_box(store.counter_next(black_box("bare")).expect("next"));
    });
    let without = Counter::new(&store, "without").expect("counter");
    let no_recorder = per_call(|| {
        black_box(without.next().expect("next"));
    });
    let recorder = DebuggingRecorder::new();
    let with = metrics::with_local_recorder(&recorder, || Counter::new(&store, "with").expect("counter"));
    let recorded = per_call(|| {
        black_box(with.next().expect("next"));
    });
    println!("Counter::next on the memory store, ns per call (best of 5 x {OPS}):");
    println!("| form | ns | vs the store's own call |");
    println!("|---|---:|---:|");
    println!("| store.counter_next (next without the feature) | {bare:.1} | 1.00x |");
    println!("| next, feature on, no recorder | {no_recorder:.1} | {:.2}x |", no_recorder / bare);
    println!("| next, feature on, a recorder installed | {recorded:.1} | {:.2}x |", recorded / bare);
}
