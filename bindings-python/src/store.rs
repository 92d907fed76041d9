//! `racefree.open`, `Store`, `ManualClock`.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use racefree::{SharedClock, SharedStore};

use crate::aio::{abort, spawn, Completions};
use crate::convert;
use crate::errors::IntoPy;
use pyo3::IntoPyObjectExt;

/// A clock that moves only when told to (tests, deterministic scenarios).
#[pyclass(module = "racefree._native", frozen)]
pub struct ManualClock {
    pub(crate) inner: Arc<racefree::ManualClock>,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start_ms = 0))]
    fn new(start_ms: u64) -> Self {
        Self { inner: Arc::new(racefree::ManualClock::new(start_ms)) }
    }

    /// Moves the clock forward by `by` (seconds or a `timedelta`).
    fn advance(&self, by: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.advance(convert::duration("by", by)?);
        Ok(())
    }

    /// Sets the clock to `now_ms` milliseconds.
    fn set_ms(&self, now_ms: u64) {
        self.inner.set(now_ms);
    }

    /// The clock's time, in milliseconds.
    fn now_ms(&self) -> u64 {
        use racefree::Clock;
        self.inner.now_ms()
    }
}

/// An open store; every primitive is created on one.
#[pyclass(module = "racefree._native", frozen)]
pub struct Store {
    pub(crate) inner: SharedStore,
    /// The same store for `racefree.asyncio` (see `aio::async_store`).
    pub(crate) aio: racefree::aio::SharedStore,
}

#[pymethods]
impl Store {
    /// The namespace that prefixes every key of this store ("" for none).
    #[getter]
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    /// Whether every operation is in-process (nothing to wait for: no disk, network or other process).
    #[getter]
    fn is_local(&self) -> bool {
        self.inner.is_local()
    }

    /// Removes every expired lease and mark now; returns how many.
    fn sweep(&self, py: Python<'_>) -> PyResult<u64> {
        call(py, self.inner.is_local(), || self.inner.sweep()).py()
    }

    /// The store's counts: `entries` (held now), `expired_swept` (removed so far).
    fn stats(&self, py: Python<'_>) -> PyResult<HashMap<&'static str, u64>> {
        let s = call(py, self.inner.is_local(), || self.inner.stats()).py()?;
        Ok(HashMap::from([("entries", s.entries), ("expired_swept", s.expired_swept)]))
    }

    /// The store's time (its clock's), in milliseconds: the clock lease deadlines are on.
    fn now_ms(&self) -> u64 {
        self.inner.clock().now_ms()
    }

    /// What the namespace holds, for operators: `{"counters": [...], "leases": [...], "streams":
    /// [...], "records": [...]}`, each entry a dict.
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inventory = call(py, self.inner.is_local(), || self.inner.inspect()).py()?;
        inventory_dict(py, &inventory)
    }

    /// `sweep` as a future of the running loop (`racefree.asyncio.Store`).
    fn sweep_async(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let store = Arc::clone(&self.aio);
        spawn(py, completions, async move { store.sweep().await }, |py, n: u64| n.into_py_any(py), abort())
    }

    /// `stats` as a future of the running loop (`racefree.asyncio.Store`).
    fn stats_async(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let store = Arc::clone(&self.aio);
        let convert = |py: Python<'_>, s: racefree::StoreStats| {
            HashMap::from([("entries", s.entries), ("expired_swept", s.expired_swept)]).into_py_any(py)
        };
        spawn(py, completions, async move { store.stats().await }, convert, abort())
    }

    /// `inspect` as a future of the running loop (`racefree.asyncio.Store`).
    fn inspect_async(&self, py: Python<'_>, completions: &Completions) -> PyResult<Py<PyAny>> {
        let store = Arc::clone(&self.aio);
        let convert = |py: Python<'_>, inventory: racefree::Inventory| {
            Ok(inventory_dict(py, &inventory)?.into_any().unbind())
        };
        spawn(py, completions, async move { store.inspect().await }, convert, abort())
    }

    fn __repr__(&self) -> String {
        format!("<racefree.Store namespace={:?}>", self.inner.namespace())
    }
}

/// An inventory as Python sees it: a dict of lists of dicts.
fn inventory_dict<'py>(py: Python<'py>, inventory: &racefree::Inventory) -> PyResult<Bound<'py, PyDict>> {
    let (counters, leases, streams, records) =
        (PyList::empty(py), PyList::empty(py), PyList::empty(py), PyList::empty(py));
    for racefree::CounterEntry { counter, next, claims } in &inventory.counters {
        let entry = PyDict::new(py);
        entry.set_item("counter", counter)?;
        entry.set_item("next", next)?;
        entry.set_item("claims", claims)?;
        counters.append(entry)?;
    }
    for racefree::LeaseEntry { lock, key, token, deadline_ms } in &inventory.leases {
        let entry = PyDict::new(py);
        entry.set_item("lock", lock)?;
        entry.set_item("key", key)?;
        entry.set_item("token", token)?;
        entry.set_item("deadline_ms", deadline_ms)?;
        leases.append(entry)?;
    }
    for racefree::StreamEntry { guard, stream, marked, expires_at_ms } in &inventory.streams {
        let entry = PyDict::new(py);
        entry.set_item("guard", guard)?;
        entry.set_item("stream", stream)?;
        entry.set_item("marked", marked)?;
        entry.set_item("expires_at_ms", expires_at_ms)?;
        streams.append(entry)?;
    }
    for racefree::RecordEntry { space, key, version } in &inventory.records {
        let entry = PyDict::new(py);
        entry.set_item("space", space)?;
        entry.set_item("key", key)?;
        entry.set_item("version", version)?;
        records.append(entry)?;
    }
    let found = PyDict::new(py);
    found.set_item("counters", counters)?;
    found.set_item("leases", leases)?;
    found.set_item("streams", streams)?;
    found.set_item("records", records)?;
    Ok(found)
}

/// Runs a store call: directly on an in-process store (nanoseconds; releasing the GIL would cost
/// more), and with the GIL released on the others, which may wait on disk or other processes.
pub fn call<T: Send>(py: Python<'_>, local: bool, f: impl FnOnce() -> T + Send) -> T {
    if local {
        f()
    } else {
        py.detach(f)
    }
}

/// Checks a store URL as `open` would, without opening it (no file, no connection): raises
/// `InvalidArgument` for a malformed URL or option, `BackendUnavailable` for a missing backend.
#[pyfunction]
pub fn check_url(url: &Bound<'_, PyAny>) -> PyResult<()> {
    racefree::store::StoreUrl::parse(convert::key("url", url)?).map(drop).py()
}

/// Creates racefree's schema in the database of a `postgres://` or `sqlite:///` URL if it is
/// missing, and returns the schema version in place (what `manage.py migrate` runs). Raises
/// `InvalidArgument` for the other stores, which need no schema.
#[pyfunction]
pub fn migrate(py: Python<'_>, url: &Bound<'_, PyAny>) -> PyResult<i64> {
    use racefree::store::StoreUrl;
    let parsed = StoreUrl::parse(convert::key("url", url)?).py()?;
    py.detach(|| match parsed {
        StoreUrl::Postgres { server, options } => racefree::PostgresStore::migrate(&server, options),
        StoreUrl::Sqlite { path, options } => {
            racefree::SqliteStore::open(&path, std::sync::Arc::new(racefree::SystemClock), options)
                .map(|_| racefree::store::sqlite::SCHEMA_VERSION)
        }
        _ => Err(racefree::Error::InvalidArgument {
            reason: "only postgres:// and sqlite:/// stores have a schema to migrate".to_owned(),
        }),
    })
    .py()
}

/// Opens a store from a URL (`memory://` by default).
#[pyfunction]
#[pyo3(signature = (url = None, *, clock = None))]
pub fn open(
    py: Python<'_>,
    url: Option<&Bound<'_, PyAny>>,
    clock: Option<&Bound<'_, ManualClock>>,
) -> PyResult<Store> {
    let url = match url {
        Some(url) => convert::key("url", url)?,
        None => "memory://",
    };
    let clock = clock.map(|clock| -> SharedClock { clock.get().inner.clone() });
    let opening = clock.clone();
    // Opening may connect (Redis) or wait for a file lock (SQLite): without the GIL, so other
    // threads, and an event loop that opens in its executor, go on meanwhile.
    let inner = py
        .detach(|| match opening {
            Some(clock) => racefree::open_with_clock(url, clock),
            None => racefree::open(url),
        })
        .py()?;
    let aio = crate::aio::async_store(url, &inner, clock);
    Ok(Store { inner, aio })
}

/// A new execution id: a ULID, monotonic within the process.
#[pyfunction]
pub fn new_execution_id() -> String {
    racefree::new_execution_id()
}
