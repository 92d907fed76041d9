//! `Cache`: the single-flight TTL cache, with a blocking form and the pieces of an async one.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use racefree::{FlightResult, LoadError, Lookup, SharedClock};

use crate::convert;
use crate::errors::{internal, IntoPy};
use crate::store::ManualClock;

type Value = Arc<Py<PyAny>>;
type Failure = Arc<PyErr>;
type CoreCache = racefree::Cache<Value, Failure>;

/// A single-flight TTL cache of Python objects.
#[pyclass(module = "racefree._native", frozen)]
pub struct Cache {
    inner: CoreCache,
}

/// The duty to load a key, handed to exactly one caller.
#[pyclass(module = "racefree._native", frozen)]
pub struct LoadDuty {
    inner: Mutex<Option<racefree::Loader<Value, Failure>>>,
}

/// A wait for another caller's load.
#[pyclass(module = "racefree._native", frozen)]
pub struct LoadWait {
    inner: racefree::Waiter<Value, Failure>,
}

/// A value `Cache.lookup` found cached.
#[pyclass(module = "racefree._native", frozen)]
pub struct CacheHit {
    /// The cached value.
    #[pyo3(get)]
    value: Py<PyAny>,
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(signature = (*, max_entries = racefree::DEFAULT_MAX_ENTRIES, clock = None))]
    fn new(max_entries: usize, clock: Option<&Bound<'_, ManualClock>>) -> Self {
        let clock: SharedClock = match clock {
            Some(clock) => clock.get().inner.clone(),
            None => Arc::new(racefree::SystemClock),
        };
        Self { inner: racefree::Cache::with_max_entries(clock, max_entries) }
    }

    /// The cached value, or `loader()` run by exactly one of the concurrent callers. Waiting
    /// threads release the GIL.
    fn get_or_load(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        ttl: &Bound<'_, PyAny>,
        loader: Py<PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (key, ttl) = (convert::key("cache key", key)?, convert::duration("ttl", ttl)?);
        let cache = &self.inner;
        let outcome = py.detach(|| {
            cache.get_or_load(key, ttl, || {
                Python::attach(|py| loader.call0(py)).map(Arc::new).map_err(Arc::new)
            })
        });
        match outcome {
            Ok(value) => Ok(value.clone_ref(py)),
            Err(LoadError::Cache(err)) => Err(crate::errors::to_py(err)),
            Err(LoadError::Loader(err)) => Err(err.clone_ref(py)),
        }
    }

    /// A `CacheHit`, the `LoadDuty` of the one caller that loads, or a `LoadWait` on its load:
    /// the building block of the asyncio form.
    fn lookup(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (key, ttl) = (convert::key("cache key", key)?, convert::duration("ttl", ttl)?);
        Ok(match self.inner.lookup(key, ttl).py()? {
            Lookup::Hit(value) => Py::new(py, CacheHit { value: value.clone_ref(py) })?.into_any(),
            Lookup::Load(loader) => Py::new(py, LoadDuty { inner: Mutex::new(Some(loader)) })?.into_any(),
            Lookup::Wait(waiter) => Py::new(py, LoadWait { inner: waiter })?.into_any(),
        })
    }

    /// Drops the cached value of `key`; returns whether one was cached.
    fn invalidate(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.inner.invalidate(convert::key("cache key", key)?))
    }

    /// Removes expired values; returns how many.
    fn sweep(&self) -> u64 {
        self.inner.sweep()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Counts: `hits`, `loads`, `coalesced`, `load_errors`, `expired`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        HashMap::from([
            ("hits", s.hits),
            ("loads", s.loads),
            ("coalesced", s.coalesced),
            ("load_errors", s.load_errors),
            ("expired", s.expired),
        ])
    }
}

impl LoadDuty {
    fn take(&self) -> PyResult<racefree::Loader<Value, Failure>> {
        self.inner.lock().take().ok_or_else(|| internal("this load was already completed"))
    }
}

#[pymethods]
impl LoadDuty {
    /// Caches `value` and hands it to every waiter.
    fn complete(&self, value: Py<PyAny>) -> PyResult<()> {
        let _ = self.take()?.complete(Ok(Arc::new(value)));
        Ok(())
    }

    /// Hands `error` to every waiter; nothing is cached.
    fn fail(&self, error: &Bound<'_, pyo3::exceptions::PyBaseException>) -> PyResult<()> {
        let _ = self.take()?.complete(Err(Arc::new(PyErr::from_value(error.clone().into_any()))));
        Ok(())
    }

    /// Gives the load up (cancelled): one of the waiters loads instead.
    fn abandon(&self) {
        drop(self.inner.lock().take());
    }
}

#[pymethods]
impl LoadWait {
    /// Calls `callback()` (from the thread that ends the load) once the load has ended.
    fn on_finished(&self, callback: Py<PyAny>) {
        self.inner.on_finished(Box::new(move || {
            Python::attach(|py| {
                if let Err(err) = callback.call0(py) {
                    err.write_unraisable(py, None);
                }
            });
        }));
    }

    /// Whether the load has ended (loaded, failed or abandoned).
    fn done(&self) -> bool {
        self.inner.result().is_some()
    }

    /// Whether the load was given up (its loader cancelled): look the key up again.
    fn abandoned(&self) -> bool {
        matches!(self.inner.result(), Some(FlightResult::Abandoned))
    }

    /// The loaded value, or the loader's exception raised; `RuntimeError` while the load runs
    /// or once it was abandoned.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.inner.result() {
            Some(FlightResult::Done(Ok(value))) => Ok(value.clone_ref(py)),
            Some(FlightResult::Done(Err(err))) => Err(err.clone_ref(py)),
            Some(FlightResult::Abandoned) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the load was abandoned: look the key up again",
            )),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err("the load is still running")),
        }
    }
}
