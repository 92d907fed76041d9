//! The storage trait: one method per atomic step the primitives need.
//!
//! The trait deliberately speaks the primitives' language ("claim an index for this id", "grant
//! this lease if free", "mark this event if its predecessor is marked", "write this record if
//! its version is still N") instead of offering generic get/set: a generic key-value trait would
//! push check-then-act back into the primitives, which is the very bug racefree exists to end.
//!
//! Every method is **one atomic step** in its backend. Arguments arrive already validated by the
//! primitives (keys non-empty and at most [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES), TTLs at least
//! 1 ms).
//!
//! # Backends
//!
//! The one list of racefree's backends (a test checks that every other place that names them
//! names these four).
//!
//! | backend | feature | URL | one atomic step is | deadlines judged by | `inspect` is |
//! |---|---|---|---|---|---|
//! | memory | always | `memory://` | one critical section of one shard (a record create or delete also takes its space's floor, inside it) | the store's clock | one snapshot: every shard locked at once |
//! | SQLite | `sqlite` | `sqlite:///path` | one `BEGIN IMMEDIATE` transaction | the store's clock | one read transaction |
//! | Redis | `redis` | `redis://`, `rediss://`, `redis+sentinel://`, `rediss+sentinel://` | one command or one Lua script, on keys of one hash tag | the server's `TIME` (the store's clock if it is not the wall clock) | **not** one snapshot: `SCAN`, then one read per key |
//! | PostgreSQL | `postgres` | `postgres://`, `postgresql://` | one statement, or one server-side function, in one READ COMMITTED transaction | the server's `clock_timestamp()` (the store's clock if it is not the wall clock) | one `REPEATABLE READ` snapshot |
//!
//! Deadlines are always *reported* on the store's clock ([`Store::clock`]): a store judged by its
//! server turns the time left by the server's clock into a deadline on its own.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::clock::SharedClock;
use crate::error::{Error, Result};

#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
mod fork;
pub mod memory;
#[cfg(feature = "postgres-protocol")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-protocol")))]
pub mod postgres;
#[cfg(feature = "redis-protocol")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-protocol")))]
pub mod redis;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod tls;
mod url;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisOptions, RedisStore};
pub use memory::{MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore, PostgresTls};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{SqliteOptions, SqliteStore};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use url::open;
pub use url::{open_with_clock, StoreUrl};

/// A shared store handle: what every primitive holds.
pub type SharedStore = Arc<dyn Store>;

/// The result of [`Store::counter_claim`]: the index of an execution id and whether this call
/// assigned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The index of the execution id, stable for as long as the counter is not reset.
    pub index: u64,
    /// `true` for the one call that assigned the index, `false` for every later claim.
    pub is_new: bool,
}

/// What the store did with [`Store::guard_mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkOutcome {
    /// The event was recorded by this call.
    First,
    /// The event had already been recorded; nothing changed.
    Duplicate,
    /// The event's predecessor is not marked; nothing changed. `marked` events are marked.
    OutOfOrder {
        /// How many events of the stream are marked (a prefix of the declared order).
        marked: u32,
    },
}

/// A lease as the store knows it: its fencing token and deadline on the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseGrant {
    /// The fencing token: strictly larger than every token granted before by the same lock.
    pub token: u64,
    /// When the lease expires, in milliseconds on the store's clock.
    pub deadline_ms: u64,
}

/// A record's value with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The JSON value.
    pub value: Value,
    /// Grows by 1 on every write and never repeats for a key: a record starts at 1 in a space
    /// that has deleted none, and above every version its space has deleted otherwise.
    pub version: u64,
}

/// The store's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Entries held now: counters, claims, marked streams, leases and records each count one
    /// (expired entries that have not been swept yet included).
    pub entries: u64,
    /// Expired leases and marks removed so far, lazily, in amortized sweeps or by [`Store::sweep`].
    pub expired_swept: u64,
}

/// What a store holds in one namespace, for operators (`racefree inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inventory {
    /// Every counter, by name.
    pub counters: Vec<CounterEntry>,
    /// Every unexpired lease, by lock and key.
    pub leases: Vec<LeaseEntry>,
    /// Every unexpired marked stream, by guard and stream.
    pub streams: Vec<StreamEntry>,
    /// Every record, by space and key.
    pub records: Vec<RecordEntry>,
}

/// A counter in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CounterEntry {
    /// The counter's key.
    pub counter: String,
    /// The index its next `next` or new claim returns.
    pub next: u64,
    /// How many execution ids hold a claimed index.
    pub claims: u64,
}

/// An unexpired lease in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeaseEntry {
    /// The lock's name.
    pub lock: String,
    /// The key the lease is on.
    pub key: String,
    /// The lease's fencing token.
    pub token: u64,
    /// When the lease expires, on the store's clock (milliseconds).
    pub deadline_ms: u64,
}

/// A marked stream in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamEntry {
    /// The guard's name.
    pub guard: String,
    /// The stream's id.
    pub stream: String,
    /// How many of the guard's events are marked (in order).
    pub marked: u32,
    /// When the marks are forgotten, on the store's clock (milliseconds).
    pub expires_at_ms: u64,
}

/// A record in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordEntry {
    /// The record space's name.
    pub space: String,
    /// The record's key.
    pub key: String,
    /// The record's version.
    pub version: u64,
}

impl Inventory {
    /// Both inventories in one, sorted (the parts of one namespace on several servers).
    #[allow(dead_code)] // the Redis engines', which some builds leave out
    pub(crate) fn merge(mut self, other: Inventory) -> Inventory {
        self.counters.extend(other.counters);
        self.leases.extend(other.leases);
        self.streams.extend(other.streams);
        self.records.extend(other.records);
        self.sort();
        self
    }

    pub(crate) fn sort(&mut self) {
        self.counters.sort();
        self.leases.sort();
        self.streams.sort();
        self.records.sort();
    }
}

/// The atomic steps racefree's primitives are built from.
///
/// Implementations must make each method one atomic step (see the module docs) and must report
/// any backend failure as an [`Error`] — never guess a value. `name` is the name of the primitive
/// instance (a counter key, a guard, a lock, a record space); keys are scoped by it.
pub trait Store: Send + Sync + fmt::Debug {
    /// The clock that judges every deadline in this store.
    fn clock(&self) -> &SharedClock;

    /// The namespace that prefixes every key of this store ("" for none).
    fn namespace(&self) -> &str;

    /// The backend's name, for the metrics' `backend` label: `memory`, `sqlite`, `redis`,
    /// `postgres`; `custom` unless a store says.
    fn backend(&self) -> &'static str {
        "custom"
    }

    /// Whether every operation completes in this process, in bounded time, without I/O and
    /// without waiting for another process: a call never blocks its caller for longer than a
    /// short critical section. A host whose callers must not block (an event loop, a thread
    /// holding a runtime-wide lock) may call such a store inline and must move calls to any
    /// other store off to a thread where blocking is allowed. `false` unless a store says so.
    fn is_local(&self) -> bool {
        false
    }

    /// Returns the counter's next index and increments it; a new counter starts at 0.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] when creating the counter would pass the store's bound;
    /// [`Error::InvalidArgument`] when the counter is at `u64::MAX`.
    fn counter_next(&self, counter: &str) -> Result<u64>;

    /// Returns the index of `id`, assigning the counter's next index on the first claim.
    ///
    /// # Errors
    /// As [`Store::counter_next`].
    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim>;

    /// The index claimed by `id`, if any.
    ///
    /// # Errors
    /// Backend failures only.
    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>>;

    /// The index the next `next` or new claim would return.
    ///
    /// # Errors
    /// Backend failures only.
    fn counter_peek(&self, counter: &str) -> Result<u64>;

    /// Sets the index the next `next` or new claim returns; claims are kept.
    ///
    /// # Errors
    /// As [`Store::counter_next`].
    fn counter_set(&self, counter: &str, next: u64) -> Result<()>;

    /// Forgets the counter and all its claims: it starts again at 0.
    ///
    /// # Errors
    /// Backend failures only.
    fn counter_reset(&self, counter: &str) -> Result<()>;

    /// Marks the event at `position` (0-based in the guard's declared order) of `stream`, if the
    /// event at `position - 1` is marked. A `First` mark keeps the stream's marks for
    /// `retention_ms` from now.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] when a new stream would pass the store's bound.
    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome>;

    /// How many events of `stream` are marked (0 when none, or when they expired).
    ///
    /// # Errors
    /// Backend failures only.
    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32>;

    /// Forgets the marks of `stream`; returns whether there were any.
    ///
    /// # Errors
    /// Backend failures only.
    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool>;

    /// Grants a lease on `key` for `ttl_ms` if nobody holds an unexpired one.
    ///
    /// # Errors
    /// [`Error::CapacityExceeded`] when a new lease would pass the store's bound.
    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>>;

    /// Extends the lease holding `token` to `ttl_ms` from now and returns the new deadline.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when `token` is not the current, unexpired holder; nothing changes.
    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64>;

    /// Releases the lease holding `token`.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when `token` is not the current, unexpired holder; nothing changes.
    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()>;

    /// The unexpired lease on `key`, if any.
    ///
    /// # Errors
    /// Backend failures only.
    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>>;

    /// The record, if it exists.
    ///
    /// # Errors
    /// Backend failures only.
    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>>;

    /// Writes the record and returns its new version. `expected_version` `None` creates the
    /// record only if it does not exist; `Some(v)` writes only if the version is still `v`. A
    /// `fencing_token` older than the largest one the record has seen is rejected — also after
    /// the record was deleted. A new record's version is one above the largest version its space
    /// has deleted (1 when none), so a key's versions never repeat (see `RecordSlot`).
    ///
    /// # Errors
    /// [`Error::Conflict`] with the current version; [`Error::StaleToken`];
    /// [`Error::CapacityExceeded`] for a new record past the store's bound.
    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64>;

    /// Deletes the record if its version is `expected_version` (any version when `None`);
    /// returns whether a record was deleted. The space keeps the largest version it deleted,
    /// and a record that accepted a fencing token leaves a tombstone with its largest token.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the version differs.
    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool>;

    /// Removes every expired lease and mark now; returns how many were removed.
    ///
    /// # Errors
    /// Backend failures only.
    fn sweep(&self) -> Result<u64>;

    /// The store's own counters.
    ///
    /// # Errors
    /// Backend failures only.
    fn stats(&self) -> Result<StoreStats>;

    /// Everything the store holds in its namespace, sorted. One consistent snapshot in memory,
    /// SQLite and PostgreSQL; in Redis a scan, which may mix moments (see the module's table).
    ///
    /// # Errors
    /// Backend failures only.
    fn inspect(&self) -> Result<Inventory>;
}

/// A record as a write or delete finds it.
///
/// Versions never repeat for a key: a space remembers the largest version it ever deleted (its
/// *floor*), and a new record starts above it, so a compare-and-swap computed from a deleted
/// record can never match the record created after it (ABA). A deleted record that accepted
/// fenced writes leaves its largest token behind (a *tombstone*, no value), so an older token
/// cannot create it again. Neither is ever removed: the floor is one integer per space, and a
/// tombstone is taken over by the next write of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordSlot {
    /// The record exists.
    Live {
        /// Its version.
        version: u64,
        /// The largest fencing token it has accepted (0 for none).
        fence: u64,
    },
    /// No record.
    Absent {
        /// The largest version its space has deleted (0 for none).
        floor: u64,
        /// Its tombstone's token: the largest one it accepted before it was deleted (0 for none).
        fence: u64,
    },
}

/// The rules of a record write, kept in one place so that every backend decides alike.
///
/// Returns the record's new `(version, fence)`; a stale token is reported before a version
/// mismatch, so a paused former holder learns that it lost its lease rather than that it should
/// retry.
pub(crate) fn decide_record_write(
    key: &str,
    slot: RecordSlot,
    expected_version: Option<u64>,
    fencing_token: Option<u64>,
) -> Result<(u64, u64)> {
    let (fence, current) = match slot {
        RecordSlot::Live { version, fence } => (fence, Some(version)),
        RecordSlot::Absent { fence, .. } => (fence, None),
    };
    if let Some(token) = fencing_token.filter(|&token| token < fence) {
        return Err(Error::StaleToken { key: key.to_owned(), token, latest: fence });
    }
    if expected_version != current {
        return Err(Error::Conflict { key: key.to_owned(), current_version: current });
    }
    let after = match slot {
        RecordSlot::Live { version, .. } => version,
        RecordSlot::Absent { floor, .. } => floor,
    };
    let version = after
        .checked_add(1)
        .ok_or_else(|| Error::invalid_argument(format!("record {key:?} has reached the largest version")))?;
    Ok((version, fence.max(fencing_token.unwrap_or(0))))
}

/// The rules of a record delete: whether there is a record to delete, or a `Conflict`.
/// `current_version` is `None` when there is no record (a tombstone is none).
pub(crate) fn decide_record_delete(
    key: &str,
    current_version: Option<u64>,
    expected: Option<u64>,
) -> Result<bool> {
    match (current_version, expected) {
        (None, None) => Ok(false),
        (current, Some(expected)) if current != Some(expected) => {
            Err(Error::Conflict { key: key.to_owned(), current_version: current })
        }
        _ => Ok(true),
    }
}

/// A value for `counter_set` on a backend whose integers are i64 (SQLite, Redis): larger ones
/// are refused, never clamped.
#[cfg(any(feature = "sqlite", feature = "redis-protocol", feature = "postgres-protocol"))]
pub(crate) fn counter_value_i64(backend: &str, next: u64) -> Result<i64> {
    i64::try_from(next).map_err(|_| {
        Error::invalid_argument(format!("a {backend} counter holds at most {}, got {next}", i64::MAX))
    })
}

/// A stored or replied integer as the unsigned number it must be (an index, token, version,
/// time, count); a negative or out-of-range one is `corrupt_data`, never clamped.
#[cfg(any(feature = "redis-protocol", feature = "postgres-protocol"))]
pub(crate) fn decoded<T: TryFrom<i64>>(backend: &str, what: &str, value: i64) -> Result<T> {
    T::try_from(value).map_err(|_| Error::corrupt(format!("{backend}: {what} {value} is out of range")))
}

/// A conflict's current version as a script or server-side function answers it: -1 for no
/// record, anything else range-checked.
#[cfg(any(feature = "redis-protocol", feature = "postgres-protocol"))]
pub(crate) fn current_version(backend: &str, number: i64) -> Result<Option<u64>> {
    match number {
        -1 => Ok(None),
        n => decoded(backend, "record version", n).map(Some),
    }
}

/// A new request id for a replay-safe grant or mark (see the Redis protocol's "Replays"): 128
/// bits from the operating system, so that no two processes send the same one — not even a
/// parent and the children it forked, which would share a process-wide generator's state.
#[cfg(any(
    feature = "redis",
    feature = "postgres",
    all(any(feature = "redis-protocol", feature = "postgres-protocol"), feature = "aio")
))]
pub(crate) fn request_id() -> Result<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)
        .map_err(|e| Error::unavailable(format!("no randomness for a request id: {e}")))?;
    let mut id = String::with_capacity(32);
    for byte in bytes {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    Ok(id)
}

/// Fills `out` from the operating system's randomness.
#[cfg(all(
    any(
        feature = "redis",
        feature = "postgres",
        all(any(feature = "redis-protocol", feature = "postgres-protocol"), feature = "aio")
    ),
    not(all(target_arch = "wasm32", target_os = "unknown"))
))]
fn random_bytes(out: &mut [u8; 16]) -> std::result::Result<(), getrandom::Error> {
    getrandom::fill(out)
}

/// On wasm32 the bytes come from a block of the host's randomness fetched at once: each fetch
/// is a call out to `crypto.getRandomValues`, which was 7.6% of a Node process's time marking
/// from 64 callers, one call per request id. A wasm instance has one thread and is never forked
/// (a Node child process or worker is an instance of its own), so no two processes share a block.
#[cfg(all(
    any(feature = "redis-protocol", feature = "postgres-protocol"),
    feature = "aio",
    target_arch = "wasm32",
    target_os = "unknown"
))]
fn random_bytes(out: &mut [u8; 16]) -> std::result::Result<(), getrandom::Error> {
    const BLOCK: usize = 4096;
    thread_local! {
        static POOL: std::cell::RefCell<([u8; BLOCK], usize)> = const { std::cell::RefCell::new(([0; BLOCK], BLOCK)) };
    }
    POOL.with(|pool| {
        let (block, used) = &mut *pool.borrow_mut();
        if *used == BLOCK {
            getrandom::fill(block)?;
            *used = 0;
        }
        out.copy_from_slice(&block[*used..*used + 16]);
        // What was handed out is not kept.
        block[*used..*used + 16].fill(0);
        *used += 16;
        Ok(())
    })
}

/// The error of a counter that cannot issue another index (its backend's largest integer).
pub(crate) fn counter_overflow(counter: &str) -> Error {
    Error::invalid_argument(format!(
        "counter {counter:?} is at its largest value and cannot issue another index"
    ))
}

/// The rules of marking event `position` when the first `marked` events are marked.
pub(crate) fn decide_mark(marked: u32, position: u32) -> MarkOutcome {
    match position.cmp(&marked) {
        std::cmp::Ordering::Less => MarkOutcome::Duplicate,
        std::cmp::Ordering::Equal => MarkOutcome::First,
        std::cmp::Ordering::Greater => MarkOutcome::OutOfOrder { marked },
    }
}

#[cfg(all(
    test,
    any(feature = "redis", feature = "postgres", all(feature = "redis-protocol", feature = "aio"))
))]
mod tests {
    #[test]
    fn request_ids_are_128_random_bits_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..1_000).map(|_| super::request_id().expect("an id")).collect();
        assert_eq!(ids.len(), 1_000);
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
