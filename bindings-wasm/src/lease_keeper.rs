//! `KeeperOptions`, `LeaseKeeper` and `Acquisition`: the core's lease lifecycle for the
//! JavaScript layer, which sets timers, calls and aborts as they say. Instants are the page's or
//! process's monotonic `performance.now()`, in milliseconds.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen::prelude::*;

use crate::convert;
use crate::errors::IntoJs;
#[cfg(feature = "memory")]
use crate::start_lock::StartLock;

/// An instant of the driver's monotonic clock, in milliseconds.
fn instant(ms: f64) -> Result<Duration, JsValue> {
    convert::millis("a monotonic time", ms)
}

fn to_ms(at: Duration) -> f64 {
    at.as_secs_f64() * 1000.0
}

/// The core's keeper options from milliseconds: TTL, renewal period (default `ttlMs / 3`), max
/// hold (default: unbounded).
fn keeper_options(
    ttl_ms: f64,
    renew_every_ms: Option<f64>,
    max_hold_ms: Option<f64>,
) -> Result<racefree::KeeperOptions, JsValue> {
    let mut options = racefree::KeeperOptions::new(convert::millis("ttl", ttl_ms)?).js()?;
    if let Some(every) = renew_every_ms {
        options = options.with_renew_every(convert::millis("renewEvery", every)?).js()?;
    }
    if let Some(max) = max_hold_ms {
        options = options.with_max_hold(convert::millis("maxHold", max)?).js()?;
    }
    Ok(options)
}

/// How long after its grant was requested a lease first needs its keeper (its first renewal, or
/// its loss if that comes first), in milliseconds: a run that ends sooner never makes one.
#[cfg(feature = "memory")]
#[wasm_bindgen(js_name = firstWakeAfterMs)]
pub fn first_wake_after_ms(
    ttl_ms: f64,
    renew_every_ms: Option<f64>,
    max_hold_ms: Option<f64>,
) -> Result<f64, JsValue> {
    match keeper_options(ttl_ms, renew_every_ms, max_hold_ms)?
        .keep("", 0, Duration::ZERO)
        .poll(Duration::ZERO)
    {
        racefree::KeeperStep::WaitUntil(wake) => Ok(to_ms(wake)),
        racefree::KeeperStep::Renew | racefree::KeeperStep::Lost(_) => Ok(0.0),
    }
}

/// Throws `InvalidArgumentError` for a wait the core refuses: a bad `ttlMs` or `timeoutMs`.
#[cfg(feature = "memory")]
#[wasm_bindgen(js_name = checkWait)]
pub fn check_wait(ttl_ms: f64, timeout_ms: Option<f64>) -> Result<(), JsValue> {
    Acquisition::new(ttl_ms, timeout_ms, 0.0).map(drop)
}

/// One kept lease: `poll(nowMs)` says when to renew; `renew()` (or, on a hosted store,
/// `renewAsync()`) sends the renewal and `settle(nowMs)` hands its reply back.
#[wasm_bindgen]
pub struct LeaseKeeper {
    keeper: RefCell<racefree::LeaseKeeper>,
    lock: Renewer,
    reply: Rc<RefCell<Option<racefree::Result<u64>>>>,
}

/// What sends a keeper's renewals: the memory store's lock, or a hosted store's.
enum Renewer {
    #[cfg(feature = "memory")]
    Memory(racefree::StartLock),
    #[cfg(feature = "hosted")]
    Hosted(std::sync::Arc<racefree::aio::StartLock>),
}

#[wasm_bindgen]
impl LeaseKeeper {
    /// A keeper for the lease `token` of `lock` on `key`, requested at `requestedAtMs`, kept by
    /// the options of [`checkKeeperOptions`].
    #[cfg(feature = "memory")]
    #[wasm_bindgen(constructor)]
    pub fn new(
        lock: &StartLock,
        key: &str,
        token: f64,
        requested_at_ms: f64,
        ttl_ms: f64,
        renew_every_ms: Option<f64>,
        max_hold_ms: Option<f64>,
    ) -> Result<LeaseKeeper, JsValue> {
        let options = keeper_options(ttl_ms, renew_every_ms, max_hold_ms)?;
        let token = convert::unsigned_number("token", token)?;
        Ok(LeaseKeeper {
            keeper: RefCell::new(lock.core().keeper(&options, key, token, instant(requested_at_ms)?)),
            lock: Renewer::Memory(lock.core().clone()),
            reply: Rc::default(),
        })
    }

    /// [`LeaseKeeper::new`] for a lease of a hosted store's lock, renewed by `renewAsync`.
    #[cfg(feature = "hosted")]
    #[allow(clippy::too_many_arguments)] // the constructor's, with the hosted lock
    pub fn hosted(
        lock: &crate::hosted::AsyncStartLock,
        key: &str,
        token: f64,
        requested_at_ms: f64,
        ttl_ms: f64,
        renew_every_ms: Option<f64>,
        max_hold_ms: Option<f64>,
    ) -> Result<LeaseKeeper, JsValue> {
        let options = keeper_options(ttl_ms, renew_every_ms, max_hold_ms)?;
        let token = convert::unsigned_number("token", token)?;
        Ok(LeaseKeeper {
            keeper: RefCell::new(lock.core().keeper(&options, key, token, instant(requested_at_ms)?)),
            lock: Renewer::Hosted(std::sync::Arc::clone(lock.core())),
            reply: Rc::default(),
        })
    }

    /// Sends the renewal `poll` asked for on a hosted store; the promise resolves once its reply
    /// is kept for `settle` (it never rejects: the reply may be an error).
    #[cfg(feature = "hosted")]
    #[wasm_bindgen(js_name = renewAsync)]
    pub fn renew_async(&self) -> Result<js_sys::Promise, JsValue> {
        #[cfg_attr(not(feature = "memory"), allow(clippy::infallible_destructuring_match))]
        let lock = match &self.lock {
            Renewer::Hosted(lock) => lock,
            #[cfg(feature = "memory")]
            Renewer::Memory(_) => {
                return Err(crate::convert::invalid("this keeper's lease is renewed by renew()".to_owned()))
            }
        };
        let (lock, kept) = (std::sync::Arc::clone(lock), Rc::clone(&self.reply));
        let (key, token, ttl) = {
            let keeper = self.keeper.borrow();
            (keeper.key().to_owned(), keeper.token(), keeper.options().ttl())
        };
        Ok(crate::host_tasks::promise(async move {
            let reply = lock.renew_token(&key, token, ttl).await;
            *kept.borrow_mut() = Some(reply);
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// `undefined`: send a renewal now. A number: nothing to do until that instant. Throws
    /// `LeaseLostError` once the lease is lost.
    pub fn poll(&self, now_ms: f64) -> Result<Option<f64>, JsValue> {
        match self.keeper.borrow_mut().poll(instant(now_ms)?) {
            racefree::KeeperStep::Renew => Ok(None),
            racefree::KeeperStep::WaitUntil(at) => Ok(Some(to_ms(at))),
            racefree::KeeperStep::Lost(error) => Err(error).js(),
        }
    }

    /// Sends the renewal `poll` asked for and keeps its reply for `settle` (never throws).
    #[cfg(feature = "memory")]
    pub fn renew(&self) -> Result<(), JsValue> {
        #[cfg_attr(not(feature = "hosted"), allow(clippy::infallible_destructuring_match))]
        let lock = match &self.lock {
            Renewer::Memory(lock) => lock,
            #[cfg(feature = "hosted")]
            Renewer::Hosted(_) => {
                return Err(crate::convert::invalid(
                    "this keeper's lease is renewed by renewAsync()".to_owned(),
                ))
            }
        };
        let reply = {
            let keeper = self.keeper.borrow();
            lock.renew_token(keeper.key(), keeper.token(), keeper.options().ttl())
        };
        *self.reply.borrow_mut() = Some(reply);
        Ok(())
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
#[cfg(feature = "memory")]
#[wasm_bindgen]
pub struct Acquisition {
    inner: racefree::Acquisition,
}

#[cfg(feature = "memory")]
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
