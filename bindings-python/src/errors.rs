//! racefree errors → Python exceptions, mapped on the stable error code (never the message).
//!
//! The exception classes live in `racefree/errors.py`; `_from_native` there picks the class for
//! a code and sets its structured attributes.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use racefree::Error;

/// Converts a core error into the matching `racefree.RacefreeError` subclass.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| build(py, &err).unwrap_or_else(|failure| failure))
}

fn build(py: Python<'_>, err: &Error) -> Result<PyErr, PyErr> {
    let details = PyDict::new(py);
    match err {
        Error::Conflict { key, current_version } => {
            details.set_item("key", key)?;
            details.set_item("current_version", current_version)?;
        }
        Error::NotOwner { key, token } => {
            details.set_item("key", key)?;
            details.set_item("token", token)?;
        }
        Error::OutOfOrder { stream, event, missing } => {
            details.set_item("stream", stream)?;
            details.set_item("event", event)?;
            details.set_item("missing", missing)?;
        }
        Error::StaleToken { key, token, latest } => {
            details.set_item("key", key)?;
            details.set_item("token", token)?;
            details.set_item("latest", latest)?;
        }
        Error::CapacityExceeded { max_keys } => details.set_item("max_keys", max_keys)?,
        Error::Timeout { waited } => details.set_item("waited", waited.as_secs_f64())?,
        Error::LeaseLost { key, token, reason } => {
            details.set_item("key", key)?;
            details.set_item("token", token)?;
            details.set_item("reason", reason.code())?;
            let last_error = reason.last_error().map(|cause| build(py, cause)).transpose()?;
            details.set_item("last_error", last_error.map(|cause| cause.into_value(py)))?;
        }
        _ => {}
    }
    let causes = causes(err);
    let exception = py
        .import("racefree.errors")?
        .call_method1("_from_native", (err.code(), err.to_string(), details, causes))?;
    Ok(PyErr::from_value(exception))
}

/// The texts of the backend client's error behind `err` and of its own causes, outermost first.
fn causes(err: &Error) -> Vec<String> {
    let mut texts = Vec::new();
    let mut next = std::error::Error::source(err);
    while let Some(cause) = next {
        texts.push(cause.to_string());
        next = cause.source();
    }
    texts
}

/// A `TypeError` naming what was expected and the type that came instead.
pub fn wrong_type(what: &str, expected: &str, got: &Bound<'_, PyAny>) -> PyErr {
    let type_name = got.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!("{what} must be {expected}, not {type_name}"))
}

/// An internal invariant broke; surfaces as an exception, never an abort.
pub fn internal(message: &str) -> PyErr {
    PyRuntimeError::new_err(format!("racefree internal error: {message}"))
}

/// Extension for `racefree::Result`: `.py()?` raises the mapped exception.
pub trait IntoPy<T> {
    /// Maps the error to its Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
