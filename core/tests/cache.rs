//! The single-flight TTL cache: one load per key, shared results, errors not cached.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use racefree::{Cache, Error, LoadError, ManualClock, SharedClock};

fn cache(max_entries: usize) -> (Arc<ManualClock>, Cache<String, String>) {
    let clock = Arc::new(ManualClock::new(0));
    let shared: SharedClock = clock.clone();
    (clock, Cache::with_max_entries(shared, max_entries))
}

#[test]
fn thirty_two_concurrent_callers_load_once() {
    let (_, cache) = cache(16);
    let loads = AtomicUsize::new(0);
    let values = common::on_threads(32, |_| {
        cache
            .get_or_load("engines", Duration::from_secs(2), || {
                loads.fetch_add(1, Ordering::SeqCst);
                // Ends once the 31 others wait on it: each was coalesced, none served by a hit.
                until(|| cache.stats().coalesced == 31);
                Ok("engine-a,engine-b".to_owned())
            })
            .expect("load")
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the loader ran more than once");
    assert!(values.iter().all(|v| v == "engine-a,engine-b"));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.coalesced, stats.hits), (1, 31, 0), "{stats:?}");
}

#[test]
fn value_is_cached_for_its_ttl_then_reloaded() {
    let (clock, cache) = cache(16);
    let loads = AtomicUsize::new(0);
    let load = || {
        let n = loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(format!("v{n}"))
    };
    assert_eq!(cache.get_or_load("k", Duration::from_secs(2), load).unwrap(), "v0");
    clock.advance(Duration::from_millis(1_999));
    assert_eq!(cache.get_or_load("k", Duration::from_secs(2), load).unwrap(), "v0");
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get_or_load("k", Duration::from_secs(2), load).unwrap(), "v1");
    assert!(cache.invalidate("k"));
    assert_eq!(cache.get_or_load("k", Duration::from_secs(2), load).unwrap(), "v2");
    assert_eq!(cache.stats().expired, 1);
}

#[test]
fn errors_reach_every_waiter_and_are_not_cached() {
    let (_, cache) = cache(16);
    let loads = AtomicUsize::new(0);
    let results = common::on_threads(8, |_| {
        cache.get_or_load("k", Duration::from_secs(2), || {
            loads.fetch_add(1, Ordering::SeqCst);
            // Fails once the seven other callers wait on it (a failure is not cached, so a late
            // caller would load again).
            until(|| cache.stats().coalesced == 7);
            Err("orchestrator down".to_owned())
        })
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(
        results.iter().all(|r| r == &Err(LoadError::Loader("orchestrator down".to_owned()))),
        "{results:?}"
    );
    assert!(cache.is_empty(), "a failed load left an entry");
    let next = cache.get_or_load("k", Duration::from_secs(2), || Ok::<_, String>("back".into()));
    assert_eq!(next.unwrap(), "back");
    assert_eq!(cache.stats().load_errors, 1);
}

#[test]
fn a_panicking_loader_hands_the_load_to_a_waiter() {
    let (_, cache) = cache(16);
    let barrier = Barrier::new(2);
    let outcome = thread::scope(|scope| {
        let cache = &cache;
        let barrier = &barrier;
        let panicking = scope.spawn(move || {
            cache.get_or_load("k", Duration::from_secs(2), || -> Result<String, String> {
                barrier.wait();
                // Panics once the other caller waits on this load: only the hand-off serves it.
                until(|| cache.stats().coalesced == 1);
                panic!("loader crashed");
            })
        });
        barrier.wait();
        let waiting = cache.get_or_load("k", Duration::from_secs(2), || Ok::<_, String>("second try".into()));
        assert!(panicking.join().is_err());
        waiting
    });
    assert_eq!(outcome.unwrap(), "second try", "the waiter did not take the load over");
    assert_eq!(cache.stats().loads, 2, "the panicking load and the waiter's");
}

/// Waits (a few ms at a time, ten seconds at most) until `condition` holds.
fn until(condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "the condition never held");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn bounded_and_validated() {
    let (clock, cache) = cache(2);
    for key in ["a", "b"] {
        cache.get_or_load(key, Duration::from_secs(1), || Ok::<_, String>(key.into())).unwrap();
    }
    let full = cache.get_or_load("c", Duration::from_secs(1), || Ok::<_, String>("c".into()));
    assert!(matches!(full, Err(LoadError::Cache(Error::CapacityExceeded { max_keys: 2 }))), "{full:?}");
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get_or_load("c", Duration::from_secs(1), || Ok::<_, String>("c".into())).unwrap(), "c");
    assert_eq!(cache.len(), 1, "expired entries were not removed to make room");
    let code = |r: Result<String, LoadError<String>>| match r {
        Err(LoadError::Cache(e)) => e.code(),
        other => panic!("{other:?}"),
    };
    assert_eq!(code(cache.get_or_load("", Duration::from_secs(1), || Ok("x".into()))), "invalid_key");
    assert_eq!(code(cache.get_or_load("k", Duration::ZERO, || Ok("x".into()))), "invalid_argument");
}

/// A minimal executor: polls on this thread, parks until woken.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

#[test]
fn async_callers_wait_without_loading() {
    let (_, cache) = cache(16);
    let loads = AtomicUsize::new(0);
    let values = common::on_threads(8, |_| {
        block_on(cache.get_or_load_async("k", Duration::from_secs(5), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            // Ends once the 7 others wait on it: each was coalesced, none served by a hit.
            until(|| cache.stats().coalesced == 7);
            Ok::<_, String>("async value".to_owned())
        }))
        .expect("load")
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|v| v == "async value"));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.coalesced, stats.hits), (1, 7, 0), "{stats:?}");
}

#[test]
fn waiter_callbacks_fire_once_the_load_ends() {
    let (_, cache) = cache(16);
    let racefree::Lookup::Load(loader) = cache.lookup("k", Duration::from_secs(1)).unwrap() else {
        panic!("first lookup must load")
    };
    let racefree::Lookup::Wait(waiter) = cache.lookup("k", Duration::from_secs(1)).unwrap() else {
        panic!("second lookup must wait")
    };
    let fired = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fired);
    waiter.on_finished(Box::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!((fired.load(Ordering::SeqCst), waiter.result()), (0, None));
    assert_eq!(loader.complete(Ok("v".into())), Ok("v".to_owned()));
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    assert_eq!(waiter.result(), Some(racefree::FlightResult::Done(Ok("v".into()))));
}
