//! `StartLock`. A lease is the JavaScript layer's own object holding its key, token and
//! deadline; it renews and releases through the lock by token, so no wasm object (and no
//! finalizer registration) is made per lease.

use js_sys::Float64Array;
use racefree::SharedClock;
use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::IntoJs;
use crate::fast_call::{grant_number, number_or_nan};
use crate::store::Store;

/// One winner per key, with TTL leases and fencing tokens.
#[wasm_bindgen]
pub struct StartLock {
    inner: racefree::StartLock,
    clock: SharedClock,
}

#[wasm_bindgen]
impl StartLock {
    /// The lock named `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, name: &str) -> Result<StartLock, JsValue> {
        Ok(StartLock {
            inner: racefree::StartLock::new(&store.inner, name).js()?,
            clock: store.inner.clock().clone(),
        })
    }

    /// The core lock (for the lease keeper).
    pub(crate) fn core(&self) -> &racefree::StartLock {
        &self.inner
    }

    /// The lock's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// A lease on `key` for `ttlMs` if nobody holds one, its deadline written to `reply` (a fast
    /// call: see `fast_call`).
    #[wasm_bindgen(js_name = tryGrant)]
    pub fn try_grant(&self, key: &str, ttl_ms: f64, reply: &Float64Array) -> f64 {
        number_or_nan(
            convert::millis("ttl", ttl_ms)
                .and_then(|ttl| grant_number(self.inner.try_grant(key, ttl).js()?, reply)),
        )
    }

    /// Extends `token`'s lease on `key` to `ttlMs` from now; returns the new deadline
    /// (`NotOwnerError` once released or expired; a fast call: see `fast_call`).
    #[wasm_bindgen(js_name = renewToken)]
    pub fn renew_token(&self, key: &str, token_value: f64, ttl_ms: f64) -> f64 {
        let renewed = convert::millis("ttl", ttl_ms).and_then(|ttl| {
            self.inner.renew_token(key, convert::unsigned_number("token", token_value)?, ttl).js()
        });
        number_or_nan(renewed.map(|deadline| deadline as f64))
    }

    /// Releases `token`'s lease on `key`; returns 0 (`NotOwnerError` once released or expired; a
    /// fast call: see `fast_call`).
    #[wasm_bindgen(js_name = releaseToken)]
    pub fn release_token(&self, key: &str, token_value: f64) -> f64 {
        number_or_nan(
            convert::unsigned_number("token", token_value)
                .and_then(|token| self.inner.release_token(key, token).js())
                .map(|()| 0.0),
        )
    }

    /// Milliseconds from now (store clock) until `deadlineMs`, zero once passed.
    #[wasm_bindgen(js_name = timeLeftMs)]
    pub fn time_left_ms(&self, deadline_ms: f64) -> f64 {
        (deadline_ms - self.clock.now_ms() as f64).max(0.0)
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
        crate::convert::lock_stats(&self.inner.stats())
    }
}
