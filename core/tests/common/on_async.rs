//! An async store seen as a blocking one, so that the blocking suites (conformance,
//! linearizability) run unchanged on `racefree::aio` stores: each call is spawned on one shared
//! multi-thread runtime and waited for on the calling thread (which may itself be a runtime's).

use std::future::Future;
use std::sync::{mpsc, Arc, OnceLock};

use racefree::aio;
use racefree::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};
use racefree::{Result, SharedClock, SharedStore, Store};
use serde_json::Value;

/// The runtime every async store of this test process lives on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
    })
}

/// Runs `work` on the shared runtime and waits for it here.
pub fn wait<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let (reply, answer) = mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = reply.send(work.await);
    });
    answer.recv().expect("the task ran")
}

/// Opens `url` with `racefree::aio::open_with_clock` on the shared runtime, as a blocking store.
pub fn open(url: &str, clock: SharedClock) -> SharedStore {
    let url = url.to_owned();
    let store = wait(async move { aio::open_with_clock(&url, clock).await }).expect("async store");
    Arc::new(OnAsync(store))
}

#[derive(Debug)]
pub struct OnAsync(pub aio::SharedStore);

macro_rules! blocking {
    ($self:ident, |$s:ident| $call:expr $(, owned $own:ident)*) => {{
        let $s = Arc::clone(&$self.0);
        $(let $own = $own.to_owned();)*
        wait(async move {
            $(let $own = &$own;)*
            $call.await
        })
    }};
}

impl Store for OnAsync {
    fn clock(&self) -> &SharedClock {
        self.0.clock()
    }
    fn namespace(&self) -> &str {
        self.0.namespace()
    }
    fn counter_next(&self, counter: &str) -> Result<u64> {
        blocking!(self, |s| s.counter_next(counter), owned counter)
    }
    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        blocking!(self, |s| s.counter_claim(counter, id), owned counter, owned id)
    }
    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        blocking!(self, |s| s.counter_index_of(counter, id), owned counter, owned id)
    }
    fn counter_peek(&self, counter: &str) -> Result<u64> {
        blocking!(self, |s| s.counter_peek(counter), owned counter)
    }
    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        blocking!(self, |s| s.counter_set(counter, next), owned counter)
    }
    fn counter_reset(&self, counter: &str) -> Result<()> {
        blocking!(self, |s| s.counter_reset(counter), owned counter)
    }
    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        blocking!(self, |s| s.guard_mark(guard, stream, position, retention_ms), owned guard, owned stream)
    }
    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        blocking!(self, |s| s.guard_marked(guard, stream), owned guard, owned stream)
    }
    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        blocking!(self, |s| s.guard_forget(guard, stream), owned guard, owned stream)
    }
    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        blocking!(self, |s| s.lease_try_grant(lock, key, ttl_ms), owned lock, owned key)
    }
    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        blocking!(self, |s| s.lease_renew(lock, key, token, ttl_ms), owned lock, owned key)
    }
    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        blocking!(self, |s| s.lease_release(lock, key, token), owned lock, owned key)
    }
    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        blocking!(self, |s| s.lease_holder(lock, key), owned lock, owned key)
    }
    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        blocking!(self, |s| s.record_get(space, key), owned space, owned key)
    }
    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        blocking!(
            self,
            |s| s.record_put(space, key, value, expected_version, fencing_token),
            owned space,
            owned key,
            owned value
        )
    }
    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        blocking!(self, |s| s.record_delete(space, key, expected_version), owned space, owned key)
    }
    fn sweep(&self) -> Result<u64> {
        blocking!(self, |s| s.sweep())
    }
    fn stats(&self) -> Result<StoreStats> {
        blocking!(self, |s| s.stats())
    }
    fn inspect(&self) -> Result<Inventory> {
        blocking!(self, |s| s.inspect())
    }
}
