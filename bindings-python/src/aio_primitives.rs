//! `AsyncCounter`, `AsyncEventGuard`, `AsyncStartLock`, `AsyncLease`, `AsyncRecords`: the core's
//! async primitives for `racefree.asyncio` on stores that wait (SQLite, Redis, PostgreSQL). Each
//! call takes its event loop's `Completions` and returns a future of that loop; arguments are
//! checked before anything is sent, as the blocking classes check them.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use racefree::aio;

use crate::aio::{abort, spawn, Completions, OnCancel};
use crate::convert;
use crate::errors::IntoPy;
use crate::store::Store;

/// Any result that converts to a Python object.
fn plain<T: for<'py> IntoPyObject<'py> + Send + 'static>(py: Python<'_>, value: T) -> PyResult<Py<PyAny>> {
    value.into_py_any(py)
}

/// `Counter` whose calls are awaitables.
#[pyclass(module = "racefree._native", frozen)]
pub struct AsyncCounter {
    inner: Arc<aio::Counter>,
}

#[pymethods]
impl AsyncCounter {
    #[new]
    fn new(store: &Bound<'_, Store>, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = convert::key("counter key", key)?;
        Ok(Self { inner: Arc::new(aio::Counter::new(&store.get().aio, key).py()?) })
    }

    /// The counter's key.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// A future of the next index; increments the counter.
    fn next(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let counter = Arc::clone(&self.inner);
        spawn(py, completions, async move { counter.next().await }, plain, abort())
    }

    /// A future of the `Claim` of `execution_id`.
    fn claim(
        &self,
        py: Python<'_>,
        completions: &Completions,
        execution_id: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (counter, id) = (Arc::clone(&self.inner), convert::key("execution id", execution_id)?.to_owned());
        let convert = |py: Python<'_>, claim| Ok(crate::counter::Claim::shared(py, claim)?.into_any());
        spawn(py, completions, async move { counter.claim(&id).await }, convert, abort())
    }

    /// A future of the index `execution_id` claimed, or `None`.
    fn index_of(
        &self,
        py: Python<'_>,
        completions: &Completions,
        execution_id: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (counter, id) = (Arc::clone(&self.inner), convert::key("execution id", execution_id)?.to_owned());
        spawn(py, completions, async move { counter.index_of(&id).await }, plain, abort())
    }

    /// A future of the index the next `next` or new claim returns.
    fn peek(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let counter = Arc::clone(&self.inner);
        spawn(py, completions, async move { counter.peek().await }, plain, abort())
    }

    /// A future done once the next index is set to `next`.
    fn set(&self, py: Python<'_>, completions: &Completions, next: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (counter, next) = (Arc::clone(&self.inner), convert::unsigned("next", next)?);
        spawn(py, completions, async move { counter.set(next).await }, plain, abort())
    }

    /// A future done once the counter and its claims are forgotten.
    fn reset(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let counter = Arc::clone(&self.inner);
        spawn(py, completions, async move { counter.reset().await }, plain, abort())
    }

    /// This handle's counts: `new_claims`, `repeated_claims`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        HashMap::from([("new_claims", s.new_claims), ("repeated_claims", s.repeated_claims)])
    }
}

/// `EventGuard` whose calls are awaitables.
#[pyclass(module = "racefree._native", frozen)]
pub struct AsyncEventGuard {
    inner: Arc<aio::EventGuard>,
}

#[pymethods]
impl AsyncEventGuard {
    #[new]
    #[pyo3(signature = (store, name, events, *, retention = None))]
    fn new(
        store: &Bound<'_, Store>,
        name: &Bound<'_, PyAny>,
        events: &Bound<'_, PyAny>,
        retention: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (name, events, options) = crate::event_guard::arguments(name, events, retention)?;
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let inner = Arc::new(aio::EventGuard::with_options(&store.get().aio, name, &events, options).py()?);
        Ok(Self { inner })
    }

    /// The declared events, in order.
    #[getter]
    fn events(&self) -> Vec<String> {
        self.inner.events().to_vec()
    }

    /// A future of `Mark.FIRST` or `Mark.DUPLICATE`.
    fn mark(
        &self,
        py: Python<'_>,
        completions: &Completions,
        stream: &Bound<'_, PyAny>,
        event: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let guard = Arc::clone(&self.inner);
        let (stream, event) =
            (convert::key("stream id", stream)?.to_owned(), convert::key("event name", event)?.to_owned());
        // Delivered when its future takes it; dropped (the future was cancelled), a First is
        // kept by the core for this handle's next mark of the event, which waits for it.
        let convert = |py: Python<'_>, mark: aio::ToDeliver| {
            Ok(crate::event_guard::member(py, mark.deliver())?.unbind())
        };
        spawn(py, completions, async move { guard.mark_to_deliver(&stream, &event).await }, convert, abort())
    }

    /// Keeps a `FIRST` whose caller was cancelled before it saw it: the next mark of `event` of
    /// `stream` on this handle is told `FIRST`.
    fn keep_undelivered(&self, stream: &Bound<'_, PyAny>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        let (stream, event) = (convert::key("stream id", stream)?, convert::key("event name", event)?);
        self.inner.keep_undelivered(stream, event).py()
    }

    /// A future of whether `event` of `stream` is marked.
    fn is_marked(
        &self,
        py: Python<'_>,
        completions: &Completions,
        stream: &Bound<'_, PyAny>,
        event: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let guard = Arc::clone(&self.inner);
        let (stream, event) =
            (convert::key("stream id", stream)?.to_owned(), convert::key("event name", event)?.to_owned());
        spawn(py, completions, async move { guard.is_marked(&stream, &event).await }, plain, abort())
    }

    /// A future of the latest event marked for `stream`, or `None`.
    fn last_marked(
        &self,
        py: Python<'_>,
        completions: &Completions,
        stream: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (guard, stream) = (Arc::clone(&self.inner), convert::key("stream id", stream)?.to_owned());
        let call = async move { guard.last_marked(&stream).await.map(|e| e.map(str::to_owned)) };
        spawn(py, completions, call, plain, abort())
    }

    /// A future of whether `stream` had marks, which are forgotten.
    fn forget(
        &self,
        py: Python<'_>,
        completions: &Completions,
        stream: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (guard, stream) = (Arc::clone(&self.inner), convert::key("stream id", stream)?.to_owned());
        spawn(py, completions, async move { guard.forget(&stream).await }, plain, abort())
    }

    /// This handle's counts: `delivered`, `duplicates_suppressed`, `out_of_order`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        HashMap::from([
            ("delivered", s.delivered),
            ("duplicates_suppressed", s.duplicates_suppressed),
            ("out_of_order", s.out_of_order),
        ])
    }
}

/// `StartLock` whose calls are awaitables. `acquire` and `hold` are written in Python on
/// `try_start` (they sleep on the event loop between attempts).
#[pyclass(module = "racefree._native", frozen)]
pub struct AsyncStartLock {
    pub(crate) inner: Arc<aio::StartLock>,
}

/// A lease granted after its caller was cancelled: nobody will hold it, so the key is freed now
/// instead of at its TTL.
fn release_unwanted(lease: Option<aio::Lease>, runtime: &tokio::runtime::Handle) {
    if let Some(lease) = lease {
        runtime.spawn(async move {
            let _ = lease.release().await;
        });
    }
}

#[pymethods]
impl AsyncStartLock {
    #[new]
    fn new(store: &Bound<'_, Store>, name: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = convert::key("lock name", name)?;
        Ok(Self { inner: Arc::new(aio::StartLock::new(&store.get().aio, name).py()?) })
    }

    /// The lock's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// An `AsyncLease` on `key` if nobody holds one, else `None`.
    #[pyo3(signature = (completions, key, *, ttl))]
    fn try_start(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
        ttl: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let lock = Arc::clone(&self.inner);
        let (key, ttl) = (convert::key("lease key", key)?.to_owned(), convert::duration("ttl", ttl)?);
        let convert = |py: Python<'_>, lease: Option<aio::Lease>| match lease {
            Some(lease) => Ok(Py::new(py, AsyncLease { inner: Arc::new(lease) })?.into_any()),
            None => Ok(py.None()),
        };
        let give_back = OnCancel::Abort { give_back: Some(Box::new(release_unwanted)) };
        spawn(py, completions, async move { lock.try_start(&key, ttl).await }, convert, give_back)
    }

    /// Releases the lease `token` holds on `key`; finishes even when its future is cancelled.
    fn release_token(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
        token: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let lock = Arc::clone(&self.inner);
        let (key, token) = (convert::key("lease key", key)?.to_owned(), convert::unsigned("token", token)?);
        spawn(py, completions, async move { lock.release_token(&key, token).await }, plain, OnCancel::Finish)
    }

    /// A future of whether somebody holds an unexpired lease on `key`.
    fn is_held(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (lock, key) = (Arc::clone(&self.inner), convert::key("lease key", key)?.to_owned());
        spawn(py, completions, async move { lock.is_held(&key).await }, plain, abort())
    }

    /// `(token, deadline_ms)` of the unexpired lease on `key`, or `None`.
    fn holder(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (lock, key) = (Arc::clone(&self.inner), convert::key("lease key", key)?.to_owned());
        let call = async move { lock.holder(&key).await.map(|g| g.map(|g| (g.token, g.deadline_ms))) };
        spawn(py, completions, call, plain, abort())
    }

    /// This handle's counts: `granted`, `contended`, `renewed`, `released`, `rejected_not_owner`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        crate::start_lock::lock_stats(&self.inner.stats())
    }
}

/// A lease of an `AsyncStartLock`.
#[pyclass(module = "racefree._native", frozen)]
pub struct AsyncLease {
    pub(crate) inner: Arc<aio::Lease>,
}

#[pymethods]
impl AsyncLease {
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

    /// A future done once the lease is extended to `ttl` from now; `NotOwner` once it was released or expired.
    #[pyo3(signature = (completions, *, ttl))]
    fn renew(
        &self,
        py: Python<'_>,
        completions: &Completions,
        ttl: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (lease, ttl) = (Arc::clone(&self.inner), convert::duration("ttl", ttl)?);
        spawn(py, completions, async move { lease.renew(ttl).await }, plain, abort())
    }

    /// Releases the lease; finishes even when its future is cancelled.
    fn release(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let lease = Arc::clone(&self.inner);
        spawn(py, completions, async move { lease.release().await }, plain, OnCancel::Finish)
    }

    fn __repr__(&self) -> String {
        format!("<racefree.asyncio.Lease key={:?} token={}>", self.inner.key(), self.inner.token())
    }
}

/// `Records` whose calls are awaitables. `update` is written in Python on `get` and `put` (its
/// change function may be a coroutine function, which only the event loop can run).
#[pyclass(module = "racefree._native", frozen)]
pub struct AsyncRecords {
    inner: Arc<aio::Records>,
}

#[pymethods]
impl AsyncRecords {
    #[new]
    fn new(store: &Bound<'_, Store>, name: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = convert::key("record space name", name)?;
        Ok(Self { inner: Arc::new(aio::Records::new(&store.get().aio, name).py()?) })
    }

    /// A future of the record's `Versioned`, or `None`.
    fn get(&self, py: Python<'_>, completions: &Completions, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (records, key) = (Arc::clone(&self.inner), convert::key("record key", key)?.to_owned());
        let convert = |py: Python<'_>, found: Option<racefree::Versioned>| match found {
            Some(found) => Ok(Py::new(py, crate::records::versioned(py, found)?)?.into_any()),
            None => Ok(py.None()),
        };
        spawn(py, completions, async move { records.get(&key).await }, convert, abort())
    }

    /// A future of the new version of the record `value` was written to (as `Records.put`).
    #[pyo3(signature = (completions, key, value, *, expected_version = None, fencing_token = None))]
    fn put(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
        fencing_token: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let records = Arc::clone(&self.inner);
        let key = convert::key("record key", key)?.to_owned();
        let value = convert::to_json(value)?;
        let expected = crate::records::optional("expected_version", expected_version)?;
        let token = crate::records::optional("fencing_token", fencing_token)?;
        let call = async move {
            match token {
                Some(token) => records.put_fenced(&key, &value, expected, token).await,
                None => records.put(&key, &value, expected).await,
            }
        };
        spawn(py, completions, call, plain, abort())
    }

    /// A future of whether the record was deleted (as `Records.delete`).
    #[pyo3(signature = (completions, key, *, expected_version = None))]
    fn delete(
        &self,
        py: Python<'_>,
        completions: &Completions,
        key: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (records, key) = (Arc::clone(&self.inner), convert::key("record key", key)?.to_owned());
        let expected = crate::records::optional("expected_version", expected_version)?;
        spawn(py, completions, async move { records.delete(&key, expected).await }, plain, abort())
    }

    /// The seconds to sleep between `update`'s attempts on `key` (`max_attempts - 1` of them),
    /// drawn one at a time. Checks `key` and `max_attempts` as the blocking `update` does.
    #[staticmethod]
    fn retry_delays(key: &Bound<'_, PyAny>, max_attempts: u32) -> PyResult<UpdateDelays> {
        convert::key("record key", key)?;
        let options = racefree::UpdateOptions::default().with_max_attempts(max_attempts);
        Ok(UpdateDelays { inner: options.retry_delays().py()? })
    }

    /// This handle's counts: `writes`, `conflicts`, `retries`, `stale_tokens`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        crate::records::record_stats(&self.inner.stats())
    }
}

/// The sleeps between an update's attempts, in seconds, drawn one at a time (any `max_attempts`
/// costs nothing up front); an iterator.
#[pyclass(module = "racefree._native")]
pub struct UpdateDelays {
    inner: std::iter::Take<racefree::Backoff>,
}

#[pymethods]
impl UpdateDelays {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> Option<f64> {
        self.inner.next().map(|delay| delay.as_secs_f64())
    }
}
