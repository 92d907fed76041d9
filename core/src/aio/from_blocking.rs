//! A blocking store as an async one: called inline when it is local (memory), on tokio's
//! blocking pool otherwise (SQLite, or any other [`crate::Store`]).

use std::future::ready;
use std::sync::Arc;

use serde_json::Value;

use super::{lost_task, BoxFuture, Store};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

/// `store` as an async store. A local store ([`crate::Store::is_local`]: memory) is called
/// inline, each future ready when first polled, with no task and no thread hop; any other runs
/// each call on tokio's blocking pool ([`tokio::task::spawn_blocking`]), so no runtime worker
/// waits on its I/O or locks.
///
/// On the blocking pool a call whose future is dropped still runs to its end (see the module's
/// "Cancel safety").
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// use std::sync::Arc;
/// let store = racefree::aio::from_blocking(Arc::new(racefree::MemoryStore::new()));
/// let counter = racefree::aio::Counter::new(&store, "jobs")?;
/// assert_eq!(counter.next().await?, 0);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub fn from_blocking(store: crate::SharedStore) -> super::SharedStore {
    Arc::new(FromBlocking { inline: store.is_local(), store })
}

#[derive(Debug)]
struct FromBlocking {
    store: crate::SharedStore,
    inline: bool,
}

impl FromBlocking {
    fn on_pool<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn crate::Store) -> Result<T> + Send + 'static,
    ) -> BoxFuture<'static, Result<T>> {
        let store = Arc::clone(&self.store);
        // Spawned when first polled, so a future made outside a runtime is no panic until used.
        Box::pin(async move {
            tokio::task::spawn_blocking(move || call(&*store))
                .await
                .unwrap_or_else(|err| Err(lost_task("a blocking store", &err)))
        })
    }
}

/// One method: inline on a local store; otherwise its borrowed arguments are copied
/// (`owned`) and the call runs on the blocking pool.
macro_rules! call {
    ($self:ident, |$store:ident| $call:expr $(, owned $own:ident)*) => {
        if $self.inline {
            let $store: &dyn crate::Store = &*$self.store;
            Box::pin(ready($call))
        } else {
            $(let $own = $own.to_owned();)*
            $self.on_pool(move |$store| {
                $(let $own = &$own;)*
                $call
            })
        }
    };
}

impl Store for FromBlocking {
    fn clock(&self) -> &SharedClock {
        self.store.clock()
    }

    fn namespace(&self) -> &str {
        self.store.namespace()
    }

    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    fn is_local(&self) -> bool {
        self.inline
    }

    fn counter_next<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        call!(self, |s| s.counter_next(counter), owned counter)
    }

    fn counter_claim<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Claim>> {
        call!(self, |s| s.counter_claim(counter, id), owned counter, owned id)
    }

    fn counter_index_of<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        call!(self, |s| s.counter_index_of(counter, id), owned counter, owned id)
    }

    fn counter_peek<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        call!(self, |s| s.counter_peek(counter), owned counter)
    }

    fn counter_set<'a>(&'a self, counter: &'a str, next: u64) -> BoxFuture<'a, Result<()>> {
        call!(self, |s| s.counter_set(counter, next), owned counter)
    }

    fn counter_reset<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<()>> {
        call!(self, |s| s.counter_reset(counter), owned counter)
    }

    fn guard_mark<'a>(
        &'a self,
        guard: &'a str,
        stream: &'a str,
        position: u32,
        retention_ms: u64,
    ) -> BoxFuture<'a, Result<MarkOutcome>> {
        call!(self, |s| s.guard_mark(guard, stream, position, retention_ms), owned guard, owned stream)
    }

    fn guard_marked<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<u32>> {
        call!(self, |s| s.guard_marked(guard, stream), owned guard, owned stream)
    }

    fn guard_forget<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<bool>> {
        call!(self, |s| s.guard_forget(guard, stream), owned guard, owned stream)
    }

    fn lease_try_grant<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        call!(self, |s| s.lease_try_grant(lock, key, ttl_ms), owned lock, owned key)
    }

    fn lease_renew<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        token: u64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        call!(self, |s| s.lease_renew(lock, key, token, ttl_ms), owned lock, owned key)
    }

    fn lease_release<'a>(&'a self, lock: &'a str, key: &'a str, token: u64) -> BoxFuture<'a, Result<()>> {
        call!(self, |s| s.lease_release(lock, key, token), owned lock, owned key)
    }

    fn lease_holder<'a>(&'a self, lock: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        call!(self, |s| s.lease_holder(lock, key), owned lock, owned key)
    }

    fn record_get<'a>(&'a self, space: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        call!(self, |s| s.record_get(space, key), owned space, owned key)
    }

    fn record_put<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: &'a Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> BoxFuture<'a, Result<u64>> {
        call!(
            self,
            |s| s.record_put(space, key, value, expected_version, fencing_token),
            owned space,
            owned key,
            owned value
        )
    }

    fn record_delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool>> {
        call!(self, |s| s.record_delete(space, key, expected_version), owned space, owned key)
    }

    fn sweep(&self) -> BoxFuture<'_, Result<u64>> {
        call!(self, |s| s.sweep())
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        call!(self, |s| s.stats())
    }

    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>> {
        call!(self, |s| s.inspect())
    }
}
