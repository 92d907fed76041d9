//! Per-key sequential index counters, idempotent per execution id.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
#[cfg(feature = "metrics")]
use crate::metrics::MetricOnly;
use crate::metrics::{names, Labels, Tally};
use crate::store::{Claim, SharedStore};
use crate::validate;

/// A per-key sequential index counter: 0, 1, 2, … unique and gap-free under any concurrency.
///
/// It ends duplicate and unstable execution indexes: [`claim`](Counter::claim) assigns an
/// execution its index once — at a non-blocking trigger, say — and every later claim of the same
/// id returns that same index, up to completion and beyond.
///
/// ```
/// use racefree::{Counter, MemoryStore, SharedStore};
/// use std::sync::Arc;
///
/// let store: SharedStore = Arc::new(MemoryStore::new());
/// let executions = Counter::new(&store, "task:42")?;
/// let trigger = executions.claim("exec-a")?;      // non-blocking trigger
/// assert_eq!((trigger.index, trigger.is_new), (0, true));
/// assert_eq!(executions.next()?, 1);               // a blocking execution
/// let completion = executions.claim("exec-a")?;   // completion: the same index
/// assert_eq!((completion.index, completion.is_new), (0, false));
/// # Ok::<(), racefree::Error>(())
/// ```
pub struct Counter {
    store: SharedStore,
    key: String,
    stats: Arc<CounterStatsInner>,
}

#[derive(Debug)]
pub(crate) struct CounterStatsInner {
    labels: Labels,
    #[cfg(feature = "metrics")]
    next: MetricOnly,
    new_claims: Tally,
    repeated_claims: Tally,
}

impl CounterStatsInner {
    /// A counter's counts on `backend` (labelled without its key: one counter per task would
    /// make the metrics' label set unbounded).
    pub(crate) fn new(backend: &'static str) -> Self {
        let labels = Labels::new("counter", None, backend);
        Self {
            #[cfg(feature = "metrics")]
            next: MetricOnly::new(&labels, names::INDEXES, "next"),
            new_claims: Tally::new(&labels, names::INDEXES, Some("new_claim")),
            repeated_claims: Tally::new(&labels, names::INDEXES, Some("repeated_claim")),
            labels,
        }
    }

    /// Counts a `next` (by reference: moving the result through costs more than the count).
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn count_next(&self, next: &Result<u64>) {
        match next {
            Ok(_) => self.next.add(),
            Err(err) => self.labels.error(err),
        }
    }

    pub(crate) fn count(&self, claim: Result<Claim>) -> Result<Claim> {
        if let Ok(claim) = &claim {
            let stat = if claim.is_new { &self.new_claims } else { &self.repeated_claims };
            stat.add(1);
        }
        self.labels.errors(claim)
    }

    pub(crate) fn snapshot(&self) -> CounterStats {
        CounterStats { new_claims: self.new_claims.get(), repeated_claims: self.repeated_claims.get() }
    }
}

/// What a [`Counter`] handle has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterStats {
    /// Claims that assigned a new index.
    pub new_claims: u64,
    /// Claims that found their id already claimed and returned its index again.
    pub repeated_claims: u64,
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Counter {
    /// The counter named `key` in `store`. Handles with the same key share one sequence.
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for an empty or oversized key.
    pub fn new(store: &SharedStore, key: &str) -> Result<Self> {
        validate::key("counter key", key)?;
        let stats = Arc::new(CounterStatsInner::new(store.backend()));
        Ok(Self { store: Arc::clone(store), key: key.to_owned(), stats })
    }

    /// The counter's key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Returns the next index and advances the counter.
    ///
    /// ```
    /// # let store: racefree::SharedStore = std::sync::Arc::new(racefree::MemoryStore::new());
    /// let c = racefree::Counter::new(&store, "jobs")?;
    /// assert_eq!((c.next()?, c.next()?), (0, 1));
    /// # Ok::<(), racefree::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`](crate::Error::CapacityExceeded) when a new counter would pass
    /// the store's bound; backend failures.
    ///
    /// # Atomicity
    /// Memory: one shard critical section. SQLite: one `BEGIN IMMEDIATE` transaction. Redis: one
    /// `INCR`. PostgreSQL: one upsert statement.
    pub fn next(&self) -> Result<u64> {
        // No stat of the handle's own here: `next` is the hot path, and an atomic add would cost
        // a quarter of it. (With the `metrics` feature, its counter.)
        let next = self.store.counter_next(&self.key);
        #[cfg(feature = "metrics")]
        self.stats.count_next(&next);
        next
    }

    /// Returns the index of `execution_id`, assigning the next one on its first claim.
    ///
    /// ```
    /// # let store: racefree::SharedStore = std::sync::Arc::new(racefree::MemoryStore::new());
    /// let c = racefree::Counter::new(&store, "jobs")?;
    /// assert!(c.claim("a")?.is_new);
    /// assert_eq!(c.claim("b")?.index, 1);
    /// assert!(!c.claim("a")?.is_new);
    /// # Ok::<(), racefree::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for a bad id (nothing is recorded);
    /// as [`next`](Counter::next).
    ///
    /// # Atomicity
    /// The lookup of the id and the assignment are one step: memory, one critical section; SQLite,
    /// one transaction; Redis, one Lua script; PostgreSQL, one server-side function.
    pub fn claim(&self, execution_id: &str) -> Result<Claim> {
        validate::key("execution id", execution_id)?;
        self.stats.count(self.store.counter_claim(&self.key, execution_id))
    }

    /// The index `execution_id` claimed, if it did.
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for a bad id; backend failures.
    ///
    /// # Atomicity
    /// One read.
    pub fn index_of(&self, execution_id: &str) -> Result<Option<u64>> {
        validate::key("execution id", execution_id)?;
        self.store.counter_index_of(&self.key, execution_id)
    }

    /// The index the next `next()` or new claim will return, without taking it.
    ///
    /// # Errors
    /// Backend failures.
    ///
    /// # Atomicity
    /// One read; another caller may take the index right after.
    pub fn peek(&self) -> Result<u64> {
        self.store.counter_peek(&self.key)
    }

    /// Sets the index the next `next()` or new claim returns; existing claims are kept.
    ///
    /// This is an administrative override (restoring a counter, skipping a range): setting it
    /// below an index already issued issues that index again.
    ///
    /// # Errors
    /// As [`next`](Counter::next).
    ///
    /// # Atomicity
    /// One write.
    pub fn set(&self, next: u64) -> Result<()> {
        self.store.counter_set(&self.key, next)
    }

    /// Forgets the counter and its claims: it starts again at 0 (task deletion).
    ///
    /// # Errors
    /// Backend failures.
    ///
    /// # Atomicity
    /// One step removes the counter and every claim.
    pub fn reset(&self) -> Result<()> {
        self.store.counter_reset(&self.key)
    }

    /// What this handle has done.
    #[must_use]
    pub fn stats(&self) -> CounterStats {
        self.stats.snapshot()
    }
}

/// A new execution id: a ULID, lexicographically sortable and monotonic within the process.
///
/// Ids are unique across processes too, forked ones included: a child's first id, and each id
/// in a new millisecond, draws 80 fresh bits from the operating system, never from state in
/// memory that a fork copies.
///
/// ```
/// let a = racefree::new_execution_id();
/// let b = racefree::new_execution_id();
/// assert_eq!(a.len(), 26);
/// assert!(a < b);
/// ```
///
/// # Panics
/// If the operating system has no randomness to give (`getrandom` fails), which no supported
/// platform does once booted.
#[must_use]
pub fn new_execution_id() -> String {
    use parking_lot::Mutex;
    /// The last id this process issued; `pid` tells a forked child that it is not its own.
    struct Last {
        pid: u32,
        id: ulid::Ulid,
    }
    // One state per process makes ids strictly increasing even within one millisecond.
    static LAST: Mutex<Option<Last>> = Mutex::new(None);
    let pid = process_id();
    let now_ms = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let mut last = LAST.lock();
    let id = match &*last {
        // Within this process's millisecond (or a clock that stepped back): the next id after the
        // last, unless the random part is used up.
        Some(last) if last.pid == pid && last.id.timestamp_ms() >= now_ms => match last.id.increment() {
            Ok(next) => next,
            Err(_) => ulid::Ulid::from_parts(last.id.timestamp_ms() + 1, fresh_random()),
        },
        _ => ulid::Ulid::from_parts(now_ms, fresh_random()),
    };
    *last = Some(Last { pid, id });
    let mut text = [0u8; ulid::ULID_LEN];
    id.array_to_str(&mut text).to_owned()
}

/// 80 bits from the operating system's randomness: what a ULID's random part holds.
fn fresh_random() -> u128 {
    let mut bytes = [0u8; 16];
    #[allow(clippy::expect_used)] // documented under "Panics" of `new_execution_id`
    getrandom::fill(&mut bytes[6..]).expect("the operating system gave no randomness for an execution id");
    u128::from_be_bytes(bytes)
}

/// This process's id: what tells a forked child from its parent (no fork on wasm32).
fn process_id() -> u32 {
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    return std::process::id();
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    return 0;
}
