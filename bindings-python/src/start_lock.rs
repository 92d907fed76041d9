//! `StartLock` and `Lease`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::convert;
use crate::errors::IntoPy;
use crate::store::{call, Store};

/// One winner per key, with TTL leases and fencing tokens.
#[pyclass(module = "racefree._native", frozen)]
pub struct StartLock {
    pub(crate) inner: Arc<racefree::StartLock>,
    pub(crate) local: bool,
}

/// A granted lease. A context manager: leaving the `with` block releases it.
#[pyclass(module = "racefree._native", frozen)]
pub struct Lease {
    pub(crate) inner: racefree::Lease,
    local: bool,
}

#[pymethods]
impl StartLock {
    #[new]
    fn new(store: &Bound<'_, Store>, name: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = convert::key("lock name", name)?;
        let store = &store.get().inner;
        Ok(Self { inner: Arc::new(racefree::StartLock::new(store, name).py()?), local: store.is_local() })
    }

    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// A lease on `key` for `ttl` if nobody holds one, else `None`.
    #[pyo3(signature = (key, *, ttl))]
    fn try_start(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Lease>> {
        let (key, ttl) = (convert::key("lease key", key)?, convert::duration("ttl", ttl)?);
        let granted = call(py, self.local, || self.inner.try_start(key, ttl)).py()?;
        Ok(granted.map(|inner| Lease { inner, local: self.local }))
    }

    /// Waits up to `timeout` (forever when `None`) for the lease, with the GIL released while
    /// waiting.
    #[pyo3(signature = (key, *, ttl, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Lease> {
        let (key, ttl) = (convert::key("lease key", key)?, convert::duration("ttl", ttl)?);
        let timeout = timeout.map_or(Ok(Duration::MAX), |t| convert::duration("timeout", t))?;
        let lock = Arc::clone(&self.inner);
        let inner = py.detach(move || lock.acquire(key, ttl, timeout)).py()?;
        Ok(Lease { inner, local: self.local })
    }

    /// `acquire` for `with lock.hold(key, ttl=30) as lease:` (the lease releases on exit).
    #[pyo3(signature = (key, *, ttl, timeout = None))]
    fn hold(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Lease> {
        self.acquire(py, key, ttl, timeout)
    }

    /// Releases the lease holding `token` on `key` (an operator freeing a stuck key, a process
    /// that kept the token); raises `NotOwner` when `token` no longer holds it.
    fn release_token(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (key, token) = (convert::key("lease key", key)?, convert::unsigned("token", token)?);
        call(py, self.local, || self.inner.release_token(key, token)).py()
    }

    /// Whether somebody holds an unexpired lease on `key`.
    fn is_held(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = convert::key("lease key", key)?;
        call(py, self.local, || self.inner.is_held(key)).py()
    }

    /// `(token, deadline_ms)` of the unexpired lease on `key`, or `None`.
    fn holder(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<(u64, u64)>> {
        let key = convert::key("lease key", key)?;
        Ok(call(py, self.local, || self.inner.holder(key)).py()?.map(|g| (g.token, g.deadline_ms)))
    }

    /// This handle's counts: `granted`, `contended`, `renewed`, `released`, `rejected_not_owner`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        lock_stats(&self.inner.stats())
    }
}

/// A lock handle's counts, as Python sees them.
pub(crate) fn lock_stats(s: &racefree::LockStats) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("granted", s.granted),
        ("contended", s.contended),
        ("renewed", s.renewed),
        ("released", s.released),
        ("rejected_not_owner", s.rejected_not_owner),
        ("lost_not_owner", s.lost_not_owner),
        ("lost_renewals_failed", s.lost_renewals_failed),
        ("lost_max_hold", s.lost_max_hold),
    ])
}

#[pymethods]
impl Lease {
    /// The key the lease is on.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// The fencing token: larger than every token the lock granted before.
    #[getter]
    fn token(&self) -> u64 {
        self.inner.token()
    }

    /// The lease's deadline on the store's clock, in milliseconds.
    #[getter]
    fn deadline_ms(&self) -> u64 {
        self.inner.deadline_ms()
    }

    /// Seconds left until the deadline by the store's clock.
    #[getter]
    fn time_left(&self) -> f64 {
        self.inner.time_left().as_secs_f64()
    }

    /// Extends the lease to `ttl` from now; raises `NotOwner` once it was released or has expired.
    #[pyo3(signature = (*, ttl))]
    fn renew(&self, py: Python<'_>, ttl: &Bound<'_, PyAny>) -> PyResult<()> {
        let ttl = convert::duration("ttl", ttl)?;
        call(py, self.local, || self.inner.renew(ttl)).py()
    }

    /// Releases the lease; raises `NotOwner` once it was released or has expired.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        call(py, self.local, || self.inner.release()).py()
    }

    /// Returns the lease itself.
    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Releases the lease; an exception inside the `with` block is never suppressed.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // A lease lost inside the block (expired) is reported, like redis-py's LockNotOwnedError.
        self.release(py)
    }

    fn __repr__(&self) -> String {
        format!("<racefree.Lease key={:?} token={}>", self.inner.key(), self.inner.token())
    }
}
