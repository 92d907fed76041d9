//! A store that passes every call to a real one, except the lease renewals it is told to fail
//! or slow down: the faults a keeper must live through (timeouts, outages, slow replies).

use std::time::Duration;

use parking_lot::Mutex;
use racefree::{
    Claim, Error, Inventory, LeaseGrant, MarkOutcome, Result, SharedClock, SharedStore, Store, StoreStats,
    Versioned,
};
use serde_json::Value;

#[derive(Debug)]
pub struct FaultyStore {
    inner: SharedStore,
    renew_fault: Mutex<Option<Error>>,
    renew_delay: Mutex<Duration>,
}

impl FaultyStore {
    pub fn new(inner: SharedStore) -> Self {
        Self { inner, renew_fault: Mutex::new(None), renew_delay: Mutex::new(Duration::ZERO) }
    }

    /// Every renewal from now on fails with `error` (without reaching the store); `None` heals.
    pub fn fail_renewals(&self, error: Option<Error>) {
        *self.renew_fault.lock() = error;
    }

    /// Every renewal from now on waits `delay` before it reaches the store.
    pub fn slow_renewals(&self, delay: Duration) {
        *self.renew_delay.lock() = delay;
    }
}

impl Store for FaultyStore {
    fn clock(&self) -> &SharedClock {
        self.inner.clock()
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn counter_next(&self, counter: &str) -> Result<u64> {
        self.inner.counter_next(counter)
    }
    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        self.inner.counter_claim(counter, id)
    }
    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        self.inner.counter_index_of(counter, id)
    }
    fn counter_peek(&self, counter: &str) -> Result<u64> {
        self.inner.counter_peek(counter)
    }
    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        self.inner.counter_set(counter, next)
    }
    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.inner.counter_reset(counter)
    }
    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        self.inner.guard_mark(guard, stream, position, retention_ms)
    }
    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        self.inner.guard_marked(guard, stream)
    }
    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        self.inner.guard_forget(guard, stream)
    }
    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        self.inner.lease_try_grant(lock, key, ttl_ms)
    }
    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        let delay = *self.renew_delay.lock();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if let Some(error) = self.renew_fault.lock().clone() {
            return Err(error);
        }
        self.inner.lease_renew(lock, key, token, ttl_ms)
    }
    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        self.inner.lease_release(lock, key, token)
    }
    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        self.inner.lease_holder(lock, key)
    }
    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        self.inner.record_get(space, key)
    }
    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        self.inner.record_put(space, key, value, expected_version, fencing_token)
    }
    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        self.inner.record_delete(space, key, expected_version)
    }
    fn sweep(&self) -> Result<u64> {
        self.inner.sweep()
    }
    fn stats(&self) -> Result<StoreStats> {
        self.inner.stats()
    }
    fn inspect(&self) -> Result<Inventory> {
        self.inner.inspect()
    }
}
