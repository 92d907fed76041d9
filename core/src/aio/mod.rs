//! racefree for async hosts: every primitive's operations as futures, on stores that never block
//! a runtime worker. Feature `tokio` gives all of it on tokio; feature `aio` alone gives the
//! primitives and the [`Store`] trait to a host with an executor of its own (a JavaScript event
//! loop through wasm-bindgen), whose store says how to spawn ([`Store::spawner`]); waiting
//! (`acquire`, `update`'s backoff) and the coordinator are then the host's.
//!
//! The names follow redis-rs's `aio` convention: this module holds the same types as the crate
//! root, with the same names, methods and errors, where each operation that reaches a store is an
//! `async fn`: [`Counter`], [`EventGuard`], [`StartLock`] and its [`Lease`], [`Records`], the
//! [`Coordinator`] (each work a task, its lease kept by the core's
//! [`LeaseKeeper`](crate::LeaseKeeper)), and the [`Store`] trait they run on.
//!
//! The single-flight [`Cache`](crate::Cache) needs no store and no runtime of its own: its
//! [`get_or_load_async`](crate::Cache::get_or_load_async) works on tokio as on any executor.
//!
//! | store | how its calls run |
//! |---|---|
//! | memory | inline: one critical section, no I/O ([`from_blocking`]) |
//! | SQLite | on tokio's blocking pool ([`from_blocking`]) |
//! | Redis | [`RedisStore`]: one multiplexed redis-rs connection driving the core's protocol |
//! | PostgreSQL | [`PostgresStore`]: tokio-postgres on the caller's runtime, its own pool |
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> racefree::Result<()> {
//! use racefree::aio::{self, StartLock};
//! use std::time::Duration;
//!
//! let store = aio::open("memory://").await?;
//! let tasks = StartLock::new(&store, "tasks")?;
//! let lease = tasks.try_start("report:7", Duration::from_secs(30)).await?.expect("free");
//! assert!(tasks.try_start("report:7", Duration::from_secs(30)).await?.is_none());
//! lease.release().await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))] fn main() {} // the example needs tokio's runtime
//! ```
//!
//! # Cancel safety
//!
//! Dropping a future (a `select!` branch that lost, a `timeout`, an aborted task) stops waiting
//! for its reply, not its request: a request already sent may still apply, as one whose reply
//! was lost to a timeout may. What each operation does about it:
//! - a **grant** (`try_start`, `try_grant`, `acquire`) whose future is dropped is finished by a
//!   task of its own, and a lease granted to nobody is released at once, so the key is free
//!   again after one round trip (if the runtime shuts down first, within the lease's TTL);
//! - a dropped **`next`** may have taken an index that nobody sees (a gap); use `claim` with an
//!   execution id where an index must not be lost: claiming the id again returns it;
//! - a **mark** on a remote store runs in a task of its own too; one that lands `First` after
//!   its caller was dropped is kept by the guard handle, and the next mark of that event on the
//!   same handle is told `First`: a mark retried after a drop delivers its event exactly once;
//! - every other operation is a read, or a write whose outcome a later call reads back
//!   (`renew`, `release`, record writes and deletes, `set`, `reset`, `forget`).
//!
//! Nothing is retried blindly: a request whose reply was lost is reported (`timeout`,
//! `backend_unavailable`), never sent again by racefree.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::clock::SharedClock;
#[cfg(feature = "tokio")]
use crate::error::Error;
use crate::error::Result;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

#[cfg(feature = "tokio")]
mod coordinator;
mod counter;
mod event_guard;
#[cfg(feature = "tokio")]
mod from_blocking;
#[cfg(feature = "tokio")]
mod open;
mod records;
mod start_lock;

#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use coordinator::{Coordinator, Finished, Holding, Running};
pub use counter::Counter;
pub use event_guard::{EventGuard, ToDeliver};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use from_blocking::from_blocking;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use open::{open, open_with_clock};
pub use records::Records;
pub use start_lock::{Lease, StartLock};

#[cfg(all(feature = "postgres", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "postgres", feature = "tokio"))))]
pub use crate::store::postgres::AsyncPostgresStore as PostgresStore;
#[cfg(all(feature = "redis", feature = "tokio"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "redis", feature = "tokio"))))]
pub use crate::store::redis::AsyncRedisStore as RedisStore;

/// A boxed future, as every [`Store`] method returns (the trait is used as `dyn Store`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A shared async store handle: what every async primitive holds.
pub type SharedStore = Arc<dyn Store>;

/// Starts a future as a task of its own on the host's executor, to run to its end whether or not
/// whoever started it is still waiting (see [`Store::spawner`]).
pub type Spawner = Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>;

/// The atomic steps of [`crate::Store`], as futures: the same methods, arguments, outcomes and
/// errors. Each is one atomic step in its backend, as there.
///
/// A future that is dropped before it completes may or may not have applied its step (see the
/// module's "Cancel safety"); it never applies it twice.
#[allow(missing_docs)] // Each method is documented on `crate::Store`, under the same name.
pub trait Store: Send + Sync + fmt::Debug {
    /// The clock that judges every deadline in this store.
    fn clock(&self) -> &SharedClock;

    /// The namespace that prefixes every key of this store ("" for none).
    fn namespace(&self) -> &str;

    /// The backend's name (see [`crate::Store::backend`]).
    fn backend(&self) -> &'static str {
        "custom"
    }

    /// Whether every call completes when first polled, without I/O (see
    /// [`crate::Store::is_local`]): such a future cannot be dropped half-way.
    fn is_local(&self) -> bool {
        false
    }

    /// Whether the host runs every primitive's future on this store to its end — a JavaScript
    /// event loop, whose promises cannot be cancelled — or every call completes when first polled
    /// ([`is_local`](Store::is_local)). Then no future is dropped half-way, and a grant or a mark
    /// needs no task of its own to outlive its caller (a task and a channel per call saved).
    fn runs_to_completion(&self) -> bool {
        self.is_local()
    }

    /// How this store's primitives start a task of their own (a grant or a mark that must finish,
    /// and be given back, when its caller is dropped), called where the primitive runs: on tokio
    /// (the default with feature `tokio`), the current runtime's `spawn`; a host without tokio
    /// provides its executor's (a JavaScript event loop's `spawn_local`).
    #[cfg(feature = "tokio")]
    fn spawner(&self) -> Spawner {
        let runtime = tokio::runtime::Handle::current();
        Arc::new(move |task| drop(runtime.spawn(task)))
    }

    /// How this store's primitives start a task of their own: see the `tokio` feature's default.
    #[cfg(not(feature = "tokio"))]
    fn spawner(&self) -> Spawner;

    fn counter_next<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>>;
    fn counter_claim<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Claim>>;
    fn counter_index_of<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<u64>>>;
    fn counter_peek<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>>;
    fn counter_set<'a>(&'a self, counter: &'a str, next: u64) -> BoxFuture<'a, Result<()>>;
    fn counter_reset<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<()>>;
    fn guard_mark<'a>(
        &'a self,
        guard: &'a str,
        stream: &'a str,
        position: u32,
        retention_ms: u64,
    ) -> BoxFuture<'a, Result<MarkOutcome>>;
    fn guard_marked<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<u32>>;
    fn guard_forget<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn lease_try_grant<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<LeaseGrant>>>;
    fn lease_renew<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        token: u64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<u64>>;
    fn lease_release<'a>(&'a self, lock: &'a str, key: &'a str, token: u64) -> BoxFuture<'a, Result<()>>;
    fn lease_holder<'a>(&'a self, lock: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>>;
    fn record_get<'a>(&'a self, space: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>>;
    fn record_put<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: &'a Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> BoxFuture<'a, Result<u64>>;
    fn record_delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool>>;
    fn sweep(&self) -> BoxFuture<'_, Result<u64>>;
    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>>;
    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>>;
}

/// A task's panic or cancellation by a runtime shutting down, as a racefree error.
#[cfg(feature = "tokio")]
fn lost_task(what: &str, err: &tokio::task::JoinError) -> Error {
    Error::unavailable(format!("{what}: the task running the call ended without a result: {err}"))
}
