//! `KeeperOptions`, `LeaseKeeper` and `Acquisition`: the core's lease lifecycle for the asyncio
//! layer, which sleeps, calls and cancels as they say. Instants are the event loop's monotonic
//! `loop.time()`, in seconds.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::aio::{abort, spawn, Completions};
use crate::aio_primitives::{AsyncLease, AsyncStartLock};
use crate::convert;
use crate::errors::IntoPy;
use crate::start_lock::{Lease, StartLock};
use crate::store::call;

/// An instant of the driver's monotonic clock, in seconds.
fn instant(what: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        crate::errors::to_py(racefree::Error::InvalidArgument {
            reason: format!("{what} must be a finite, non-negative monotonic time in seconds, got {seconds}"),
        })
    })
}

/// How leases are kept: TTL, renewal period, optional max hold (validated here, before anything
/// is acquired).
#[pyclass(module = "racefree._native", frozen)]
pub struct KeeperOptions {
    inner: racefree::KeeperOptions,
}

#[pymethods]
impl KeeperOptions {
    #[new]
    #[pyo3(signature = (*, ttl, renew_every = None, max_hold = None))]
    fn new(
        ttl: &Bound<'_, PyAny>,
        renew_every: Option<&Bound<'_, PyAny>>,
        max_hold: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut inner = racefree::KeeperOptions::new(convert::duration("ttl", ttl)?).py()?;
        if let Some(every) = renew_every {
            inner = inner.with_renew_every(convert::duration("renew_every", every)?).py()?;
        }
        if let Some(max) = max_hold {
            inner = inner.with_max_hold(convert::duration("max_hold", max)?).py()?;
        }
        Ok(Self { inner })
    }

    /// The lease TTL, in seconds.
    #[getter]
    fn ttl(&self) -> f64 {
        self.inner.ttl().as_secs_f64()
    }

    /// Seconds between renewals.
    #[getter]
    fn renew_every(&self) -> f64 {
        self.inner.renew_every().as_secs_f64()
    }

    /// Seconds after which renewal stops and the lease is reported lost, or `None`.
    #[getter]
    fn max_hold(&self) -> Option<f64> {
        self.inner.max_hold().map(|d| d.as_secs_f64())
    }

    /// A keeper for `lease` of `lock`, whose grant was requested at `requested_at`.
    fn keep(&self, lock: &StartLock, lease: &Lease, requested_at: f64) -> PyResult<LeaseKeeper> {
        let requested_at = instant("requested_at", requested_at)?;
        let keeper = lock.inner.keeper(&self.inner, lease.inner.key(), lease.inner.token(), requested_at);
        Ok(LeaseKeeper {
            keeper: Mutex::new(keeper),
            lock: Renewer::Blocking { lock: lock.inner.clone(), local: lock.local },
            reply: Arc::new(Mutex::new(None)),
        })
    }

    /// A keeper for `lease` of an `AsyncStartLock`, renewed by `renew_async`.
    fn keep_async(
        &self,
        lock: &AsyncStartLock,
        lease: &AsyncLease,
        requested_at: f64,
    ) -> PyResult<LeaseKeeper> {
        let requested_at = instant("requested_at", requested_at)?;
        let keeper = lock.inner.keeper(&self.inner, lease.inner.key(), lease.inner.token(), requested_at);
        Ok(LeaseKeeper {
            keeper: Mutex::new(keeper),
            lock: Renewer::Async(lock.inner.clone()),
            reply: Arc::new(Mutex::new(None)),
        })
    }
}

/// What sends a keeper's renewals.
enum Renewer {
    Blocking { lock: Arc<racefree::StartLock>, local: bool },
    Async(Arc<racefree::aio::StartLock>),
}

/// One kept lease: `poll(now)` says when to renew; `renew()` sends the renewal, `settle(now)`
/// hands its reply back.
#[pyclass(module = "racefree._native", frozen)]
pub struct LeaseKeeper {
    keeper: Mutex<racefree::LeaseKeeper>,
    lock: Renewer,
    reply: Arc<Mutex<Option<racefree::Result<u64>>>>,
}

impl LeaseKeeper {
    fn renewal(&self) -> (String, u64, Duration) {
        let keeper = self.keeper.lock();
        (keeper.key().to_owned(), keeper.token(), keeper.options().ttl())
    }
}

#[pymethods]
impl LeaseKeeper {
    /// The key of the kept lease.
    #[getter]
    fn key(&self) -> String {
        self.keeper.lock().key().to_owned()
    }

    /// The fencing token of the kept lease.
    #[getter]
    fn token(&self) -> u64 {
        self.keeper.lock().token()
    }

    /// The instant the lease is lost unless a renewal is confirmed first (safe deadline or max hold).
    #[getter]
    fn lost_at(&self) -> f64 {
        self.keeper.lock().lost_at().as_secs_f64()
    }

    /// `None`: send a renewal now. A number: nothing to do until that instant. Raises
    /// `LeaseLost` once the lease is lost.
    fn poll(&self, now: f64) -> PyResult<Option<f64>> {
        match self.keeper.lock().poll(instant("now", now)?) {
            racefree::KeeperStep::Renew => Ok(None),
            racefree::KeeperStep::WaitUntil(at) => Ok(Some(at.as_secs_f64())),
            racefree::KeeperStep::Lost(error) => Err(error).py(),
        }
    }

    /// Sends the renewal `poll` asked for and keeps its reply for `settle` (never raises; on
    /// stores that wait, without the GIL).
    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let Renewer::Blocking { lock, local } = &self.lock else {
            return Err(crate::errors::internal("this keeper's lease is renewed by renew_async"));
        };
        let (key, token, ttl) = self.renewal();
        let reply = call(py, *local, || lock.renew_token(&key, token, ttl));
        *self.reply.lock() = Some(reply);
        Ok(())
    }

    /// `renew` as a future of `completions`' loop, done (with `None`) once the reply is kept
    /// for `settle`. Cancelled, the renewal is dropped and `settle` finds no reply.
    fn renew_async(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let Renewer::Async(lock) = &self.lock else {
            return Err(crate::errors::internal("this keeper's lease is renewed by renew"));
        };
        let (lock, kept) = (Arc::clone(lock), Arc::clone(&self.reply));
        let (key, token, ttl) = self.renewal();
        let call = async move {
            let reply = lock.renew_token(&key, token, ttl).await;
            *kept.lock() = Some(reply);
            Ok(())
        };
        spawn(py, completions, call, |py, ()| Ok(py.None()), abort())
    }

    /// Hands the kept reply of `renew` to the keeper, as received at `now`.
    fn settle(&self, now: f64) -> PyResult<()> {
        let now = instant("now", now)?;
        if let Some(reply) = self.reply.lock().take() {
            self.keeper.lock().on_reply(reply, now);
        }
        Ok(())
    }
}

/// One wait for a lease: `retry_after(now)` says how long to sleep, or raises `Timeout`.
#[pyclass(module = "racefree._native", frozen)]
pub struct Acquisition {
    inner: Mutex<racefree::Acquisition>,
}

#[pymethods]
impl Acquisition {
    /// Validates `ttl` and `timeout` (seconds; `None` waits forever) before anything is tried.
    /// With `lock` (a `StartLock` or an `AsyncStartLock`), the lock's metrics time the wait.
    #[new]
    #[pyo3(signature = (*, ttl, timeout, now, lock = None))]
    fn new(
        ttl: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
        now: f64,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let ttl = convert::duration("ttl", ttl)?;
        let timeout = timeout.map(|t| convert::duration("timeout", t)).transpose()?;
        let now = instant("now", now)?;
        let inner = match lock {
            None => racefree::Acquisition::new(ttl, timeout, now),
            Some(lock) => {
                if let Ok(lock) = lock.cast::<StartLock>() {
                    lock.get().inner.acquisition(ttl, timeout, now)
                } else if let Ok(lock) = lock.cast::<AsyncStartLock>() {
                    lock.get().inner.acquisition(ttl, timeout, now)
                } else {
                    return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                        "lock must be a StartLock or an AsyncStartLock, got {}",
                        lock.get_type().name()?
                    )));
                }
            }
        }
        .py()?;
        Ok(Self { inner: Mutex::new(inner) })
    }

    /// The attempt made at `now` was granted: the wait is over (its time is recorded).
    fn granted(&self, now: f64) -> PyResult<()> {
        self.inner.lock().granted(instant("now", now)?);
        Ok(())
    }

    /// Seconds to sleep before the next attempt; raises `Timeout` once the wait is over.
    fn retry_after(&self, now: f64) -> PyResult<f64> {
        Ok(self.inner.lock().retry_after(instant("now", now)?).py()?.as_secs_f64())
    }
}
