//! `Counter` and `Claim`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::collections::HashMap;

use crate::convert;
use crate::errors::IntoPy;
use crate::store::{call, Store};

/// The index of an execution id and whether this claim assigned it. Claims compare with `==`.
//
// Claims of indexes below `SHARED_CLAIMS` are made once per process and shared; a freelist
// recycles the others. (`__eq__`/`__hash__` are written out because pyo3 0.30.1's `eq, hash`
// options do not compile together with `freelist`.)
#[pyclass(module = "racefree._native", frozen, freelist = 64)]
#[derive(PartialEq, Eq, Hash)]
pub struct Claim {
    /// The execution id's index, stable for as long as the counter is not reset.
    #[pyo3(get)]
    index: u64,
    /// `True` for the one claim that assigned the index, `False` for every later claim.
    #[pyo3(get)]
    is_new: bool,
}

#[pymethods]
impl Claim {
    /// Another type gives `NotImplemented` (pyo3 does so when `other` does not extract).
    fn __eq__(&self, other: &Bound<'_, Self>) -> bool {
        self == other.get()
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        // Stable across runs, like the hash of a tuple of ints.
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(self)
    }

    fn __repr__(&self) -> String {
        format!("Claim(index={}, is_new={})", self.index, if self.is_new { "True" } else { "False" })
    }
}

/// Claims of indexes below this are made once per process and then shared.
const SHARED_CLAIMS: usize = 1024;

/// The shared claims, `[is_new as usize][index]`, made on first use. A claim is an immutable value,
/// so sharing one is safe, as CPython shares small ints. Making and freeing one cost more than
/// the core's repeated claim itself (measured: a Python `claim` loop went from 272 to 218 ns).
static CLAIMS: [[PyOnceLock<Py<Claim>>; SHARED_CLAIMS]; 2] =
    [const { [const { PyOnceLock::new() }; SHARED_CLAIMS] }; 2];

impl Claim {
    pub(crate) fn shared(py: Python<'_>, claim: racefree::Claim) -> PyResult<Py<Self>> {
        let value = Self { index: claim.index, is_new: claim.is_new };
        let slot = usize::try_from(claim.index).ok().and_then(|i| CLAIMS[usize::from(claim.is_new)].get(i));
        match slot {
            Some(slot) => Ok(slot.get_or_try_init(py, || Py::new(py, value))?.clone_ref(py)),
            None => Py::new(py, value),
        }
    }
}

/// A per-key sequential index counter.
#[pyclass(module = "racefree._native", frozen)]
pub struct Counter {
    inner: racefree::Counter,
    local: bool,
}

#[pymethods]
impl Counter {
    #[new]
    fn new(store: &Bound<'_, Store>, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        let key = convert::key("counter key", key)?;
        let store = &store.get().inner;
        Ok(Self { inner: racefree::Counter::new(store, key).py()?, local: store.is_local() })
    }

    /// The counter's key.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// Returns the next index and increments the counter: 0, 1, 2, … unique and gap-free.
    fn next(&self, py: Python<'_>) -> PyResult<u64> {
        call(py, self.local, || self.inner.next()).py()
    }

    /// The index of `execution_id`: assigned from the counter on its first claim, the same on every
    /// later one.
    fn claim(&self, py: Python<'_>, execution_id: &Bound<'_, PyAny>) -> PyResult<Py<Claim>> {
        let id = convert::key("execution id", execution_id)?;
        let claim = call(py, self.local, || self.inner.claim(id)).py()?;
        Claim::shared(py, claim)
    }

    /// The index `execution_id` claimed, or `None` if it has not claimed one.
    fn index_of(&self, py: Python<'_>, execution_id: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
        let id = convert::key("execution id", execution_id)?;
        call(py, self.local, || self.inner.index_of(id)).py()
    }

    /// The index the next `next` or new claim returns.
    fn peek(&self, py: Python<'_>) -> PyResult<u64> {
        call(py, self.local, || self.inner.peek()).py()
    }

    /// Sets the index the next `next` or new claim returns; claims are kept.
    fn set(&self, py: Python<'_>, next: &Bound<'_, PyAny>) -> PyResult<()> {
        let next = convert::unsigned("next", next)?;
        call(py, self.local, || self.inner.set(next)).py()
    }

    /// Forgets the counter and all its claims.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        call(py, self.local, || self.inner.reset()).py()
    }

    /// This handle's counts: `new_claims`, `repeated_claims`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        let s = self.inner.stats();
        HashMap::from([("new_claims", s.new_claims), ("repeated_claims", s.repeated_claims)])
    }

    fn __repr__(&self) -> String {
        format!("<racefree.Counter key={:?}>", self.inner.key())
    }
}
