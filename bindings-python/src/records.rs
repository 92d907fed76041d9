//! `Records` and `Versioned`.

use pyo3::prelude::*;
use racefree::{Error, UpdateOptions};
use std::collections::HashMap;

use crate::convert;
use crate::errors::{to_py, IntoPy};
use crate::store::{call, Store};

/// A record's value and version.
#[pyclass(module = "racefree._native", frozen)]
pub struct Versioned {
    /// The record's value (what JSON can hold).
    #[pyo3(get)]
    value: Py<PyAny>,
    /// The record's version: one more on every write, never repeated for a key (a new record
    /// starts above every version its space has deleted; 1 in a space that deleted none).
    #[pyo3(get)]
    version: u64,
}

#[pymethods]
impl Versioned {
    #[new]
    fn new(value: Py<PyAny>, version: u64) -> Self {
        Self { value, version }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Versioned(value={}, version={})", self.value.bind(py), self.version)
    }
}

pub(crate) fn versioned(py: Python<'_>, v: racefree::Versioned) -> PyResult<Versioned> {
    Ok(Versioned { value: convert::from_json(py, &v.value)?.unbind(), version: v.version })
}

/// Versioned JSON records with compare-and-swap writes.
#[pyclass(module = "racefree._native", frozen)]
pub struct Records {
    inner: racefree::Records,
    local: bool,
}

/// Either a core error or the exception raised by the caller's `change` function.
enum UpdateError {
    Core(Error),
    Python(PyErr),
}

impl From<Error> for UpdateError {
    fn from(err: Error) -> Self {
        UpdateError::Core(err)
    }
}

pub(crate) fn optional(what: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    value.filter(|v| !v.is_none()).map(|v| convert::unsigned(what, v)).transpose()
}

#[pymethods]
impl Records {
    #[new]
    fn new(store: &Bound<'_, Store>, name: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name = convert::key("record space name", name)?;
        let store = &store.get().inner;
        Ok(Self { inner: racefree::Records::new(store, name).py()?, local: store.is_local() })
    }

    /// The record's value and version, or `None` if there is none.
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Versioned>> {
        let key = convert::key("record key", key)?;
        let found = call(py, self.local, || self.inner.get(key)).py()?;
        found.map(|v| versioned(py, v)).transpose()
    }

    /// Writes `value`: create-only without `expected_version` (raises `Conflict` if the record
    /// exists), else only over that version; refused with `StaleToken` for a fencing token below
    /// the largest one the record has accepted, also after it was deleted. Returns the new
    /// version.
    #[pyo3(signature = (key, value, *, expected_version = None, fencing_token = None))]
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
        fencing_token: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let key = convert::key("record key", key)?;
        let value = convert::to_json(value)?;
        let expected = optional("expected_version", expected_version)?;
        let token = optional("fencing_token", fencing_token)?;
        call(py, self.local, || match token {
            Some(token) => self.inner.put_fenced(key, &value, expected, token),
            None => self.inner.put(key, &value, expected),
        })
        .py()
    }

    /// Applies `change(current_value_or_None) -> new_value` as one compare-and-swap write,
    /// re-reading and retrying on conflict. The GIL is released while backing off.
    #[pyo3(signature = (key, change, *, fencing_token = None, max_attempts = 5))]
    fn update(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        change: Py<PyAny>,
        fencing_token: Option<&Bound<'_, PyAny>>,
        max_attempts: u32,
    ) -> PyResult<Versioned> {
        let key = convert::key("record key", key)?;
        let mut options = UpdateOptions::default().with_max_attempts(max_attempts);
        if let Some(token) = optional("fencing_token", fencing_token)? {
            options = options.with_fencing_token(token);
        }
        let records = &self.inner;
        let outcome = py.detach(|| {
            records.try_update_with(key, &options, |current| {
                Python::attach(|py| {
                    let current = match current {
                        Some(value) => convert::from_json(py, value)?,
                        None => py.None().into_bound(py),
                    };
                    convert::to_json(&change.bind(py).call1((current,))?)
                })
                .map_err(UpdateError::Python)
            })
        });
        match outcome {
            Ok(updated) => versioned(py, updated),
            Err(UpdateError::Core(err)) => Err(to_py(err)),
            Err(UpdateError::Python(err)) => Err(err),
        }
    }

    /// Deletes the record (only at `expected_version`, when given); returns whether one was
    /// deleted.
    #[pyo3(signature = (key, *, expected_version = None))]
    fn delete(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        expected_version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let key = convert::key("record key", key)?;
        let expected = optional("expected_version", expected_version)?;
        call(py, self.local, || self.inner.delete(key, expected)).py()
    }

    /// This handle's counts: `writes`, `conflicts`, `retries`, `stale_tokens`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        record_stats(&self.inner.stats())
    }
}

/// A record space handle's counts, as Python sees them.
pub(crate) fn record_stats(s: &racefree::RecordStats) -> HashMap<&'static str, u64> {
    HashMap::from([
        ("writes", s.writes),
        ("conflicts", s.conflicts),
        ("retries", s.retries),
        ("stale_tokens", s.stale_tokens),
    ])
}
