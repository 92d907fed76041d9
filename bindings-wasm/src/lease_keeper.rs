//! `KeeperOptions`, `LeaseKeeper` and `Acquisition`: the core's lease lifecycle for the
//! JavaScript layer, which sets timers, calls and aborts as they say. Instants are the page's or
//! process's monotonic `performance.now()`, in milliseconds.

use std::cell::RefCell;
use std::time::Duration;

use wasm_bindgen::prelude::*;

use crate::convert;
use crate::errors::IntoJs;
use crate::lock::StartLock;

/// An instant of the driver's monotonic clock, in milliseconds.
fn instant(ms: f64) -> Result<Duration, JsValue> {
    convert::millis("a monotonic time", ms)
}

fn to_ms(at: Duration) -> f64 {
    at.as_secs_f64() * 1000.0
}

/// How leases are kept: TTL, renewal period, optional max hold (validated on construction).
#[wasm_bindgen]
pub struct KeeperOptions {
    inner: racefree::KeeperOptions,
}

#[wasm_bindgen]
impl KeeperOptions {
    /// Leases of `ttlMs`, renewed every `renewEveryMs` (default `ttlMs / 3`), for at most
    /// `maxHoldMs` (default: as long as the work runs).
    #[wasm_bindgen(constructor)]
    pub fn new(
        ttl_ms: f64,
        renew_every_ms: Option<f64>,
        max_hold_ms: Option<f64>,
    ) -> Result<KeeperOptions, JsValue> {
        let mut inner = racefree::KeeperOptions::new(convert::millis("ttl", ttl_ms)?).js()?;
        if let Some(every) = renew_every_ms {
            inner = inner.with_renew_every(convert::millis("renewEvery", every)?).js()?;
        }
        if let Some(max) = max_hold_ms {
            inner = inner.with_max_hold(convert::millis("maxHold", max)?).js()?;
        }
        Ok(KeeperOptions { inner })
    }

    /// The TTL of the grant and of each renewal, in milliseconds.
    #[wasm_bindgen(getter, js_name = ttlMs)]
    pub fn ttl_ms(&self) -> f64 {
        to_ms(self.inner.ttl())
    }

    /// A keeper for the lease `token` of `lock` on `key`, requested at `requestedAtMs`.
    pub fn keep(
        &self,
        lock: &StartLock,
        key: &str,
        token: f64,
        requested_at_ms: f64,
    ) -> Result<LeaseKeeper, JsValue> {
        let token = convert::unsigned_number("token", token)?;
        Ok(LeaseKeeper {
            keeper: RefCell::new(self.inner.keep(key, token, instant(requested_at_ms)?)),
            lock: lock.core().clone(),
            reply: RefCell::new(None),
        })
    }
}

/// One kept lease: `poll(nowMs)` says when to renew; `renew()` sends the renewal and
/// `settle(nowMs)` hands its reply back.
#[wasm_bindgen]
pub struct LeaseKeeper {
    keeper: RefCell<racefree::LeaseKeeper>,
    lock: racefree::StartLock,
    reply: RefCell<Option<racefree::Result<u64>>>,
}

#[wasm_bindgen]
impl LeaseKeeper {
    /// `undefined`: send a renewal now. A number: nothing to do until that instant. Throws
    /// `LeaseLostError` once the lease is lost.
    pub fn poll(&self, now_ms: f64) -> Result<Option<f64>, JsValue> {
        match self.keeper.borrow_mut().poll(instant(now_ms)?) {
            racefree::KeeperStep::Renew => Ok(None),
            racefree::KeeperStep::WaitUntil(at) => Ok(Some(to_ms(at))),
            racefree::KeeperStep::Lost(error) => Err(error).js(),
        }
    }

    /// Throws `LeaseLostError` if the lease is lost at `nowMs` (never asks for a renewal).
    pub fn check(&self, now_ms: f64) -> Result<(), JsValue> {
        self.keeper.borrow_mut().check(instant(now_ms)?).map_or(Ok(()), |error| Err(error).js())
    }

    /// Sends the renewal `poll` asked for and keeps its reply for `settle` (never throws).
    pub fn renew(&self) {
        let reply = {
            let keeper = self.keeper.borrow();
            self.lock.renew_token(keeper.key(), keeper.token(), keeper.options().ttl())
        };
        *self.reply.borrow_mut() = Some(reply);
    }

    /// Hands the kept reply of `renew` to the keeper, as received at `nowMs`.
    pub fn settle(&self, now_ms: f64) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        if let Some(reply) = self.reply.borrow_mut().take() {
            self.keeper.borrow_mut().on_reply(reply, now);
        }
        Ok(())
    }
}

/// One wait for a lease: `retryAfterMs(nowMs)` says how long to sleep, or throws `TimeoutError`.
#[wasm_bindgen]
pub struct Acquisition {
    inner: racefree::Acquisition,
}

#[wasm_bindgen]
impl Acquisition {
    /// Validates `ttlMs` and `timeoutMs` (`undefined` waits forever) before anything is tried.
    #[wasm_bindgen(constructor)]
    pub fn new(ttl_ms: f64, timeout_ms: Option<f64>, now_ms: f64) -> Result<Acquisition, JsValue> {
        let ttl = convert::millis("ttl", ttl_ms)?;
        let timeout = timeout_ms.map(|t| convert::millis("timeout", t)).transpose()?;
        Ok(Acquisition { inner: racefree::Acquisition::new(ttl, timeout, instant(now_ms)?).js()? })
    }

    /// Milliseconds to sleep before the next attempt; throws `TimeoutError` once the wait is over.
    #[wasm_bindgen(js_name = retryAfterMs)]
    pub fn retry_after_ms(&mut self, now_ms: f64) -> Result<f64, JsValue> {
        Ok(to_ms(self.inner.retry_after(instant(now_ms)?).js()?))
    }
}
