//! `Counter` and `Claim`.

use pyo3::prelude::*;
use std::collections::HashMap;

use crate::convert;
use crate::errors::IntoPy;
use crate::store::Store;

/// The index of an execution id and whether this claim assigned it.
#[pyclass(module = "racefree._native", frozen, eq, hash)]
#[derive(PartialEq, Eq, Hash)]
pub struct Claim {
    #[pyo3(get)]
    index: u64,
    #[pyo3(get)]
    new: bool,
}

#[pymethods]
impl Claim {
    fn __repr__(&self) -> String {
        format!("Claim(index={}, new={})", self.index, if self.new { "True" } else { "False" })
    }
}

/// A per-key sequential index counter.
#[pyclass(module = "racefree._native", frozen)]
pub struct Counter {
    inner: racefree::Counter,
}

#[pymethods]
impl Counter {
    #[new]
    fn new(store: &Bound<'_, Store>, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = convert::key("counter key", key)?;
        Ok(Self { inner: racefree::Counter::new(&store.get().inner, key).py()? })
    }

    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    fn next(&self) -> PyResult<u64> {
        self.inner.next().py()
    }

    fn claim(&self, execution_id: &Bound<'_, PyAny>) -> PyResult<Claim> {
        let claim = self.inner.claim(convert::key("execution id", execution_id)?).py()?;
        Ok(Claim { index: claim.index, new: claim.new })
    }

    fn index_of(&self, execution_id: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        self.inner.index_of(convert::key("execution id", execution_id)?).py()
    }

    fn peek(&self) -> PyResult<u64> {
        self.inner.peek().py()
    }

    fn set(&self, next: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.set(convert::unsigned("next", next)?).py()
    }

    fn reset(&self) -> PyResult<()> {
        self.inner.reset().py()
    }

    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        HashMap::from([("new_claims", s.new_claims), ("repeated_claims", s.repeated_claims)])
    }

    fn __repr__(&self) -> String {
        format!("<racefree.Counter key={:?}>", self.inner.key())
    }
}
