//! `EventGuard`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use racefree::{GuardOptions, Mark};
use std::collections::HashMap;

use crate::convert;
use crate::errors::IntoPy;
use crate::store::{call, Store};

/// What `EventGuard.mark` found: deliver on `FIRST`, suppress on `DUPLICATE`.
#[pyclass(module = "racefree._native", name = "Mark", frozen, eq, eq_int, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PyMark {
    #[pyo3(name = "FIRST")]
    First,
    #[pyo3(name = "DUPLICATE")]
    Duplicate,
}

/// The class's own members, looked up once: returning them avoids an allocation per mark.
static FIRST: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DUPLICATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A guard's name, events and options, checked.
pub(crate) fn arguments<'a>(
    name: &'a Bound<'_, PyAny>,
    events: &Bound<'_, PyAny>,
    retention: Option<&Bound<'_, PyAny>>,
) -> PyResult<(&'a str, Vec<String>, GuardOptions)> {
    let name = convert::key("guard name", name)?;
    if events.is_instance_of::<pyo3::types::PyString>() {
        return Err(crate::errors::wrong_type("events", "a sequence of event names", events));
    }
    let items: Vec<Bound<'_, PyAny>> = events.try_iter()?.collect::<PyResult<_>>()?;
    let events =
        items.iter().map(|e| convert::key("event name", e).map(str::to_owned)).collect::<PyResult<_>>()?;
    let options = match retention {
        Some(retention) => GuardOptions::retention(convert::duration("retention", retention)?),
        None => GuardOptions::default(),
    };
    Ok((name, events, options))
}

/// `Mark.FIRST` or `Mark.DUPLICATE`: the class's own members, so `is` comparisons work.
pub(crate) fn member(py: Python<'_>, mark: Mark) -> PyResult<Bound<'_, PyAny>> {
    let (member, name) = match mark {
        Mark::First => (&FIRST, "FIRST"),
        Mark::Duplicate => (&DUPLICATE, "DUPLICATE"),
    };
    let member = member.get_or_try_init(py, || py.get_type::<PyMark>().getattr(name).map(Bound::unbind))?;
    Ok(member.bind(py).clone())
}

/// Ordered lifecycle events, each delivered once per stream.
#[pyclass(module = "racefree._native", frozen)]
pub struct EventGuard {
    inner: racefree::EventGuard,
    local: bool,
}

#[pymethods]
impl EventGuard {
    #[new]
    #[pyo3(signature = (store, name, events, *, retention = None))]
    fn new(
        store: &Bound<'_, Store>,
        name: &Bound<'_, PyAny>,
        events: &Bound<'_, PyAny>,
        retention: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (name, events, options) = arguments(name, events, retention)?;
        Ok(Self {
            inner: racefree::EventGuard::with_options(&store.get().inner, name, &events, options).py()?,
            local: store.get().inner.is_local(),
        })
    }

    /// The declared events, in order.
    #[getter]
    fn events(&self) -> Vec<String> {
        self.inner.events().to_vec()
    }

    /// `Mark.FIRST` or `Mark.DUPLICATE`: the class's own members, so `is` comparisons work.
    fn mark<'py>(
        &self,
        py: Python<'py>,
        stream: &Bound<'py, PyAny>,
        event: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (stream, event) = (convert::key("stream id", stream)?, convert::key("event name", event)?);
        member(py, call(py, self.local, || self.inner.mark(stream, event)).py()?)
    }

    /// Whether `event` of `stream` is marked.
    fn is_marked(
        &self,
        py: Python<'_>,
        stream: &Bound<'_, PyAny>,
        event: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let (stream, event) = (convert::key("stream id", stream)?, convert::key("event name", event)?);
        call(py, self.local, || self.inner.is_marked(stream, event)).py()
    }

    /// The latest event marked for `stream`, or `None`.
    fn last_marked(&self, py: Python<'_>, stream: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let stream = convert::key("stream id", stream)?;
        call(py, self.local, || self.inner.last_marked(stream).map(|e| e.map(str::to_owned))).py()
    }

    /// Forgets `stream`'s marks; returns whether it had any.
    fn forget(&self, py: Python<'_>, stream: &Bound<'_, PyAny>) -> PyResult<bool> {
        let stream = convert::key("stream id", stream)?;
        call(py, self.local, || self.inner.forget(stream)).py()
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
