//! # racefree
//!
//! Coordination primitives that are race-free by construction: every operation is **one atomic
//! step** in its backend — one critical section in memory, one transaction in SQLite, one command
//! or Lua script in Redis, one statement or server-side function in PostgreSQL — never a read in
//! one call and a write in another (the [backends](store#backends)).
//!
//! | primitive | ends |
//! |---|---|
//! | [`Counter`] | duplicate and unstable execution indexes (`[0, 0, 1]`) |
//! | [`EventGuard`] | duplicate lifecycle events, `ended` before `started` |
//! | [`StartLock`] / [`Lease`] | the same task started twice; stale holders (fencing tokens) |
//! | [`Coordinator`] / [`LeaseKeeper`] | work that outlives its lease: renewed while it runs, told to stop when lost |
//! | [`Records`] | lost updates and conflict storms (compare-and-swap, batched update) |
//! | [`Cache`] | request storms on a shared lookup (single flight) |
//!
//! All store-backed primitives sit on the [`Store`] trait, whose methods are the atomic steps
//! themselves; [`MemoryStore`] is the default backend and runs everywhere, wasm included.
//!
//! ```
//! use std::time::Duration;
//!
//! let store = racefree::open("memory://")?;
//! let executions = racefree::Counter::new(&store, "task:1")?;
//! let id = racefree::new_execution_id();
//! let index = executions.claim(&id)?.index;            // assigned once…
//! assert_eq!(executions.claim(&id)?.index, index);     // …and stable to completion
//!
//! let tasks = racefree::StartLock::new(&store, "tasks")?;
//! let lease = tasks.try_start("task:1", Duration::from_secs(30))?;
//! assert!(lease.is_some());
//! assert!(tasks.try_start("task:1", Duration::from_secs(30))?.is_none());
//! # Ok::<(), racefree::Error>(())
//! ```
//!
//! Every public type is `Send + Sync` (the cache when its values and errors are).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acquisition;
#[cfg(feature = "aio")]
#[cfg_attr(docsrs, doc(cfg(feature = "aio")))]
pub mod aio;
mod backoff;
mod cache;
mod clock;
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
mod coordinator;
mod counter;
mod error;
mod event_guard;
mod lease_keeper;
pub mod metrics;
mod records;
mod short_key;
mod start_lock;
pub mod store;
mod sync;
mod validate;

pub use acquisition::Acquisition;
pub use backoff::Backoff;
pub use cache::{Cache, CacheStats, FlightResult, LoadError, Loader, Lookup, Waiter, DEFAULT_MAX_ENTRIES};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock, SharedClock, LAG_BOUND_MS};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use coordinator::{Coordinator, Finished, Holding, Running};
pub use counter::{new_execution_id, Counter, CounterStats};
pub use error::{Cause, Error, LossReason, Result};
pub use event_guard::{EventGuard, GuardOptions, GuardStats, Mark, DEFAULT_RETENTION, MAX_EVENTS};
pub use lease_keeper::{safety_margin, KeeperOptions, KeeperStep, LeaseKeeper};
pub use records::{RecordStats, Records, UpdateOptions};
pub use start_lock::{Lease, LockStats, StartLock};
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub use store::open;
pub use store::{
    open_with_clock, Claim, CounterEntry, Inventory, LeaseEntry, LeaseGrant, MarkOutcome, MemoryStore,
    MemoryStoreBuilder, RecordEntry, SharedStore, Store, StoreStats, StreamEntry, Versioned,
};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use store::{PostgresOptions, PostgresStore, PostgresTls};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::{RedisOptions, RedisStore};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::{SqliteOptions, SqliteStore};
pub use validate::{MAX_KEY_BYTES, MAX_TTL};

/// Waits between retries: a thread sleep, or nothing where threads cannot sleep (wasm, where a
/// synchronous retry cannot meet a concurrent writer anyway).
pub(crate) fn pause(duration: std::time::Duration) {
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    std::thread::sleep(duration);
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    let _ = duration;
}

/// Compile-time proof that the public types are `Send + Sync`.
mod send_sync {
    use super::*;

    const fn assert_send_sync<T: Send + Sync>() {}

    // Compile-time: a type that loses Send or Sync fails the build, not a test run.
    const _: () = {
        assert_send_sync::<Counter>();
        assert_send_sync::<EventGuard>();
        assert_send_sync::<StartLock>();
        assert_send_sync::<Lease>();
        assert_send_sync::<LeaseKeeper>();
        assert_send_sync::<Acquisition>();
        assert_send_sync::<Records>();
        assert_send_sync::<Cache<String, String>>();
        assert_send_sync::<Loader<String, String>>();
        assert_send_sync::<Waiter<String, String>>();
        assert_send_sync::<MemoryStore>();
        assert_send_sync::<SharedStore>();
        assert_send_sync::<ManualClock>();
        assert_send_sync::<Error>();
    };

    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    const _: () = {
        assert_send_sync::<Coordinator>();
        assert_send_sync::<Holding>();
        assert_send_sync::<Running<String>>();
    };
}

/// The crate README's example (the project README's Rust example, which check-packages.sh keeps
/// identical), compiled and run as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
