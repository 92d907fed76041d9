//! Single-flight TTL cache: one load per key at a time, its result shared with every waiter.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::metrics::{names, Labels, Tally};
use crate::validate;

/// The default bound on cached keys.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// A single-flight TTL cache for values loaded from somewhere slow.
///
/// It ends request storms on a shared lookup: within `ttl` of a successful load the cached value
/// is returned; otherwise exactly one caller runs the loader while every concurrent caller for the
/// same key waits for its result. A loader error is passed to the waiters and not cached. If the
/// loader panics or its future is dropped, one of the waiters loads instead.
///
/// The cache lives in the process (its values are the caller's own objects, not serialized), so
/// it needs no store; it reads time from the injected clock like the stores do.
///
/// ```
/// use racefree::{Cache, SystemClock};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let engines: Cache<Vec<String>, String> = Cache::new(Arc::new(SystemClock));
/// let list = engines.get_or_load("engines", Duration::from_secs(2), || {
///     Ok::<_, String>(vec!["engine-a".to_owned()])          // the slow lookup, once
/// })?;
/// assert_eq!(list, ["engine-a"]);
/// # Ok::<(), racefree::LoadError<String>>(())
/// ```
pub struct Cache<V, E> {
    inner: Arc<CacheInner<V, E>>,
}

impl<V, E> Clone for Cache<V, E> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

struct CacheInner<V, E> {
    clock: SharedClock,
    max_entries: usize,
    slots: Mutex<HashMap<String, Slot<V, E>>>,
    stats: CacheStatsInner,
}

#[derive(Debug)]
struct CacheStatsInner {
    hits: Tally,
    loads: Tally,
    coalesced: Tally,
    load_errors: Tally,
    expired: Tally,
}

impl CacheStatsInner {
    /// A cache's counts (labelled `primitive="cache"`, backend `local`: it lives in this process).
    fn new() -> Self {
        let labels = Labels::new("cache", None, "local");
        Self {
            hits: Tally::new(&labels, names::CACHE_LOOKUPS, Some("hit")),
            loads: Tally::new(&labels, names::CACHE_LOOKUPS, Some("miss")),
            coalesced: Tally::new(&labels, names::CACHE_LOOKUPS, Some("coalesced")),
            load_errors: Tally::new(&labels, names::CACHE_LOAD_ERRORS, None),
            expired: Tally::new(&labels, names::CACHE_EXPIRED, None),
        }
    }
}

/// What a [`Cache`] has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Loader runs (misses).
    pub loads: u64,
    /// Callers that waited for another caller's load instead of loading themselves.
    pub coalesced: u64,
    /// Loads that failed (not cached).
    pub load_errors: u64,
    /// Expired values removed.
    pub expired: u64,
}

enum Slot<V, E> {
    Ready { value: V, expires_at: u64 },
    Loading(Arc<Flight<V, E>>),
}

/// One load in progress and whoever waits for it.
struct Flight<V, E> {
    state: Mutex<FlightState<V, E>>,
    finished: Condvar,
}

enum FlightState<V, E> {
    Pending { wakers: Vec<Waker>, callbacks: Vec<Box<dyn FnOnce() + Send>> },
    Finished(FlightResult<V, E>),
}

/// How a load that a [`Waiter`] waited for ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlightResult<V, E> {
    /// The loader returned this.
    Done(Result<V, E>),
    /// The loader was dropped (panicked or cancelled) before it returned: look up again.
    Abandoned,
}

/// What [`Cache::lookup`] found for a key.
pub enum Lookup<V, E> {
    /// A fresh cached value.
    Hit(V),
    /// Nobody is loading: the caller must load and hand the result to [`Loader::complete`].
    Load(Loader<V, E>),
    /// Another caller is loading: wait for its result.
    Wait(Waiter<V, E>),
}

/// The one caller's duty to load a key. Dropping it unfinished lets a waiter load instead.
#[must_use = "complete the load, or the waiters retry"]
pub struct Loader<V, E> {
    cache: Arc<CacheInner<V, E>>,
    key: String,
    ttl_ms: u64,
    flight: Arc<Flight<V, E>>,
    done: bool,
}

/// A wait for another caller's load: blocking ([`Waiter::wait`]), as a [`Future`], or by callback.
pub struct Waiter<V, E> {
    flight: Arc<Flight<V, E>>,
}

/// Why [`Cache::get_or_load`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError<E> {
    /// The cache refused the call (bad key or TTL, cache full).
    #[error(transparent)]
    Cache(#[from] Error),
    /// The loader — this caller's or the one it waited for — failed with this error.
    #[error("loader failed: {0}")]
    Loader(E),
}

impl<V, E> fmt::Debug for Cache<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("max_entries", &self.inner.max_entries).finish_non_exhaustive()
    }
}

impl<V: Clone, E: Clone> Cache<V, E> {
    /// An empty cache of at most [`DEFAULT_MAX_ENTRIES`] keys, judging TTLs by `clock`.
    #[must_use]
    pub fn new(clock: SharedClock) -> Self {
        Self::with_max_entries(clock, DEFAULT_MAX_ENTRIES)
    }

    /// An empty cache of at most `max_entries` keys (values and loads in flight).
    #[must_use]
    pub fn with_max_entries(clock: SharedClock, max_entries: usize) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                clock,
                max_entries: max_entries.max(1),
                slots: Mutex::new(HashMap::new()),
                stats: CacheStatsInner::new(),
            }),
        }
    }

    /// Finds `key`: a fresh value, the duty to load it, or a load to wait for. `ttl` is how long
    /// a value loaded through the returned [`Loader`] stays fresh.
    ///
    /// This is the building block of [`get_or_load`](Cache::get_or_load) for callers that load in
    /// their own way (the bindings' async loaders).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::InvalidArgument`] for a bad TTL;
    /// [`Error::CapacityExceeded`] when a new key would pass `max_entries`.
    ///
    /// # Atomicity
    /// One critical section decides hit, load or wait, so exactly one caller per key loads.
    pub fn lookup(&self, key: &str, ttl: Duration) -> Result<Lookup<V, E>> {
        validate::key("cache key", key)?;
        let ttl_ms = validate::ttl_ms("ttl", ttl)?;
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut slots = inner.slots.lock();
        match slots.get(key) {
            Some(Slot::Ready { value, expires_at }) if *expires_at > now => {
                inner.stats.hits.add(1);
                return Ok(Lookup::Hit(value.clone()));
            }
            Some(Slot::Loading(flight)) => {
                inner.stats.coalesced.add(1);
                return Ok(Lookup::Wait(Waiter { flight: Arc::clone(flight) }));
            }
            Some(Slot::Ready { .. }) => {
                inner.stats.expired.add(1);
            }
            None => {
                if slots.len() >= inner.max_entries {
                    let removed = remove_expired(&mut slots, now);
                    inner.stats.expired.add(removed);
                    if slots.len() >= inner.max_entries {
                        return Err(Error::CapacityExceeded { max_keys: inner.max_entries });
                    }
                }
            }
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(FlightState::Pending { wakers: Vec::new(), callbacks: Vec::new() }),
            finished: Condvar::new(),
        });
        slots.insert(key.to_owned(), Slot::Loading(Arc::clone(&flight)));
        inner.stats.loads.add(1);
        Ok(Lookup::Load(Loader {
            cache: Arc::clone(inner),
            key: key.to_owned(),
            ttl_ms,
            flight,
            done: false,
        }))
    }

    /// Returns the cached value of `key`, or runs `loader` — in exactly one of the concurrent
    /// callers — and caches its `Ok` value for `ttl`.
    ///
    /// # Errors
    /// [`LoadError::Loader`] with the loader's error (this caller's or the one it waited for);
    /// [`LoadError::Cache`] as [`lookup`](Cache::lookup).
    ///
    /// # Atomicity
    /// As [`lookup`](Cache::lookup); waiting callers block their thread until the load ends.
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn get_or_load<F>(&self, key: &str, ttl: Duration, loader: F) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Result<V, E>,
    {
        let mut loader = Some(loader);
        loop {
            match self.lookup(key, ttl)? {
                Lookup::Hit(value) => return Ok(value),
                Lookup::Load(duty) => {
                    let load = loader.take().unwrap_or_else(|| unreachable!("a caller loads at most once"));
                    return duty.complete(load()).map_err(LoadError::Loader);
                }
                Lookup::Wait(waiter) => match waiter.wait() {
                    FlightResult::Done(result) => return result.map_err(LoadError::Loader),
                    FlightResult::Abandoned => continue,
                },
            }
        }
    }

    /// [`get_or_load`](Cache::get_or_load) with an async loader; waiting callers await instead
    /// of blocking. Works on any executor.
    ///
    /// # Errors
    /// As [`get_or_load`](Cache::get_or_load).
    ///
    /// # Atomicity
    /// As [`lookup`](Cache::lookup).
    ///
    /// # Cancel safety
    /// Cancel-safe: a loader dropped before it completes abandons its load (its waiters look up
    /// again, and one of them loads); a dropped waiter only stops waiting.
    pub async fn get_or_load_async<F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        loader: F,
    ) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut loader = Some(loader);
        loop {
            match self.lookup(key, ttl)? {
                Lookup::Hit(value) => return Ok(value),
                Lookup::Load(duty) => {
                    let load = loader.take().unwrap_or_else(|| unreachable!("a caller loads at most once"));
                    return duty.complete(load().await).map_err(LoadError::Loader);
                }
                Lookup::Wait(waiter) => match waiter.await {
                    FlightResult::Done(result) => return result.map_err(LoadError::Loader),
                    FlightResult::Abandoned => continue,
                },
            }
        }
    }

    /// Drops the cached value of `key` (a load in flight finishes undisturbed); returns whether
    /// a value was cached.
    pub fn invalidate(&self, key: &str) -> bool {
        let mut slots = self.inner.slots.lock();
        if matches!(slots.get(key), Some(Slot::Ready { .. })) {
            slots.remove(key);
            return true;
        }
        false
    }

    /// Removes every expired value now; returns how many.
    pub fn sweep(&self) -> u64 {
        let now = self.inner.clock.now_ms();
        let removed = remove_expired(&mut self.inner.slots.lock(), now);
        self.inner.stats.expired.add(removed);
        removed
    }

    /// Keys held now: cached values (expired ones not yet swept included) and loads in flight.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.slots.lock().len()
    }

    /// Whether the cache holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the cache has done.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let s = &self.inner.stats;
        CacheStats {
            hits: s.hits.get(),
            loads: s.loads.get(),
            coalesced: s.coalesced.get(),
            load_errors: s.load_errors.get(),
            expired: s.expired.get(),
        }
    }
}

fn remove_expired<V, E>(slots: &mut HashMap<String, Slot<V, E>>, now: u64) -> u64 {
    let before = slots.len();
    slots.retain(|_, slot| !matches!(slot, Slot::Ready { expires_at, .. } if *expires_at <= now));
    (before - slots.len()) as u64
}

impl<V: Clone, E: Clone> Loader<V, E> {
    /// Hands the load's result to the cache (an `Ok` value is cached for the TTL) and to every
    /// waiter, and returns it.
    pub fn complete(mut self, result: Result<V, E>) -> Result<V, E> {
        self.done = true;
        {
            let mut slots = self.cache.slots.lock();
            if let Some(Slot::Loading(flight)) = slots.get(&self.key) {
                if Arc::ptr_eq(flight, &self.flight) {
                    match &result {
                        Ok(value) => {
                            let expires_at = self.cache.clock.now_ms().saturating_add(self.ttl_ms);
                            slots.insert(self.key.clone(), Slot::Ready { value: value.clone(), expires_at });
                        }
                        Err(_) => {
                            slots.remove(&self.key);
                        }
                    }
                }
            }
        }
        if result.is_err() {
            self.cache.stats.load_errors.add(1);
        }
        self.flight.finish(FlightResult::Done(result.clone()));
        result
    }
}

impl<V, E> Drop for Loader<V, E> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        {
            let mut slots = self.cache.slots.lock();
            if matches!(slots.get(&self.key), Some(Slot::Loading(f)) if Arc::ptr_eq(f, &self.flight)) {
                slots.remove(&self.key);
            }
        }
        self.flight.finish(FlightResult::Abandoned);
    }
}

impl<V, E> Flight<V, E> {
    fn finish(&self, result: FlightResult<V, E>) {
        let previous = std::mem::replace(&mut *self.state.lock(), FlightState::Finished(result));
        self.finished.notify_all();
        if let FlightState::Pending { wakers, callbacks } = previous {
            wakers.into_iter().for_each(Waker::wake);
            callbacks.into_iter().for_each(|callback| callback());
        }
    }
}

impl<V: Clone, E: Clone> Waiter<V, E> {
    /// The load's result if it has ended.
    #[must_use]
    pub fn result(&self) -> Option<FlightResult<V, E>> {
        match &*self.flight.state.lock() {
            FlightState::Finished(result) => Some(result.clone()),
            FlightState::Pending { .. } => None,
        }
    }

    /// Blocks the thread until the load ends.
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    #[must_use]
    pub fn wait(self) -> FlightResult<V, E> {
        let mut state = self.flight.state.lock();
        loop {
            if let FlightState::Finished(result) = &*state {
                return result.clone();
            }
            self.flight.finished.wait(&mut state);
        }
    }

    /// Calls `callback` once the load has ended (at once if it already has), from the thread
    /// that ends it; read the outcome with [`result`](Waiter::result).
    pub fn on_finished(&self, callback: Box<dyn FnOnce() + Send>) {
        let mut state = self.flight.state.lock();
        match &mut *state {
            FlightState::Pending { callbacks, .. } => callbacks.push(callback),
            FlightState::Finished(_) => {
                drop(state);
                callback();
            }
        }
    }
}

impl<V: Clone, E: Clone> Future for Waiter<V, E> {
    type Output = FlightResult<V, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.flight.state.lock();
        match &mut *state {
            FlightState::Finished(result) => Poll::Ready(result.clone()),
            FlightState::Pending { wakers, .. } => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}
