//! `StartLock` and `Lease`.

use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::IntoJs;
use crate::store::Store;

/// One winner per key, with TTL leases and fencing tokens.
#[wasm_bindgen]
pub struct StartLock {
    inner: racefree::StartLock,
}

/// A granted lease.
#[wasm_bindgen]
pub struct Lease {
    inner: racefree::Lease,
}

#[wasm_bindgen]
impl StartLock {
    /// The lock named `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, name: &str) -> Result<StartLock, JsValue> {
        Ok(StartLock { inner: racefree::StartLock::new(&store.inner, name).js()? })
    }

    /// The lock's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// A lease on `key` for `ttlMs` if nobody holds one, else `undefined`.
    #[wasm_bindgen(js_name = tryStart)]
    pub fn try_start(&self, key: &str, ttl_ms: f64) -> Result<Option<Lease>, JsValue> {
        let ttl = convert::millis("ttl", ttl_ms)?;
        Ok(self.inner.try_start(key, ttl).js()?.map(|inner| Lease { inner }))
    }

    /// Whether somebody holds an unexpired lease on `key`.
    #[wasm_bindgen(js_name = isHeld)]
    pub fn is_held(&self, key: &str) -> Result<bool, JsValue> {
        self.inner.is_held(key).js()
    }

    /// `[token, deadlineMs]` of the unexpired lease on `key`, or `undefined`.
    #[wasm_bindgen(js_name = holderRaw)]
    pub fn holder_raw(&self, key: &str) -> Result<Option<Vec<f64>>, JsValue> {
        let holder = self.inner.holder(key).js()?;
        holder.map(|g| Ok(vec![to_number("token", g.token)?, g.deadline_ms as f64])).transpose()
    }

    /// `[granted, contended, renewed, released, rejectedNotOwner]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        [s.granted, s.contended, s.renewed, s.released, s.rejected_not_owner]
            .iter()
            .map(|&n| n as f64)
            .collect()
    }
}

#[wasm_bindgen]
impl Lease {
    /// The leased key.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        self.inner.key().to_owned()
    }

    /// The fencing token.
    #[wasm_bindgen(getter)]
    pub fn token(&self) -> Result<f64, JsValue> {
        to_number("token", self.inner.token())
    }

    /// The deadline on the store's clock, in milliseconds.
    #[wasm_bindgen(getter, js_name = deadlineMs)]
    pub fn deadline_ms(&self) -> f64 {
        self.inner.deadline_ms() as f64
    }

    /// Milliseconds left until the deadline.
    #[wasm_bindgen(getter, js_name = timeLeftMs)]
    pub fn time_left_ms(&self) -> f64 {
        self.inner.time_left().as_secs_f64() * 1000.0
    }

    /// Extends the lease to `ttlMs` from now.
    pub fn renew(&self, ttl_ms: f64) -> Result<(), JsValue> {
        self.inner.renew(convert::millis("ttl", ttl_ms)?).js()
    }

    /// Releases the lease.
    pub fn release(&self) -> Result<(), JsValue> {
        self.inner.release().js()
    }
}

/// The retry delays `acquire` waits by, in milliseconds: the same schedule in every language.
#[wasm_bindgen]
pub struct Backoff {
    inner: racefree::Backoff,
}

#[wasm_bindgen]
impl Backoff {
    /// The schedule of `acquire`.
    #[wasm_bindgen(js_name = forAcquire)]
    pub fn for_acquire() -> Backoff {
        Backoff { inner: racefree::Backoff::for_acquire() }
    }

    /// The next delay in milliseconds.
    #[wasm_bindgen(js_name = nextMs)]
    pub fn next_ms(&mut self) -> f64 {
        self.inner.next().map_or(50.0, |d| d.as_secs_f64() * 1000.0)
    }
}
