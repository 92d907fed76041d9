//! Conversions between Python values and racefree's types: keys, durations, JSON values.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDelta, PyDeltaAccess, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use racefree::Error;
use serde_json::{Map, Number, Value};

use crate::errors::{to_py, wrong_type};

/// How deep a record value may nest; deeper (or self-containing) values are refused.
const MAX_DEPTH: usize = 64;

/// A key, id or name: a `str` that encodes to UTF-8 (lone surrogates do not).
///
/// Inlined, with its errors made out of line: every hot call converts one or two keys, and a
/// `PyResult` returned from a call comes back through memory.
#[inline(always)]
pub fn key<'a>(what: &str, value: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    match value.cast::<PyString>().map(|text| text.to_str()) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(_)) => Err(not_a_key(what, None)),
        Err(_) => Err(not_a_key(what, Some(value))),
    }
}

/// The error of [`key`]: `value` is not a `str` (`Some`), or is one with a lone surrogate.
#[cold]
#[inline(never)]
fn not_a_key(what: &str, value: Option<&Bound<'_, PyAny>>) -> PyErr {
    match value {
        Some(value) => wrong_type(what, "str", value),
        None => to_py(Error::InvalidKey { reason: format!("{what} is not valid UTF-8 (lone surrogate)") }),
    }
}

/// A duration: seconds as `int`/`float`, or a `datetime.timedelta`. Negative, NaN or infinite
/// values are `InvalidArgument`; the core rejects zero and too-large values the same way in
/// every language.
pub fn duration(what: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    // Exact float and int first: the common case, and cheaper to test than timedelta.
    let seconds = if value.is_exact_instance_of::<PyFloat>() {
        value.extract::<f64>()?
    } else if value.is_exact_instance_of::<PyInt>() {
        // As an i64 first: reading an int as a float makes CPython allocate a float object.
        match value.extract::<i64>() {
            Ok(whole) => whole as f64,
            Err(_) => value.extract::<f64>()?,
        }
    } else if let Ok(delta) = value.cast::<PyDelta>() {
        f64::from(delta.get_days()) * 86_400.0
            + f64::from(delta.get_seconds())
            + f64::from(delta.get_microseconds()) / 1e6
    } else if value.is_instance_of::<PyBool>() {
        return Err(wrong_type(what, "seconds (int or float) or a timedelta", value));
    } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        value.extract::<f64>()?
    } else {
        return Err(wrong_type(what, "seconds (int or float) or a timedelta", value));
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(to_py(Error::InvalidArgument {
            reason: format!("{what} must be a finite, positive number of seconds, got {seconds}"),
        }));
    }
    // Values past the core's maximum saturate and are then refused by the core with its message.
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// A non-negative integer argument (indexes, versions, tokens).
pub fn unsigned(what: &str, value: &Bound<'_, PyAny>) -> PyResult<u64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(wrong_type(what, "int", value));
    }
    value.extract::<u64>().map_err(|_| {
        to_py(Error::InvalidArgument {
            reason: format!("{what} must be between 0 and 2**64 - 1, got {value}"),
        })
    })
}

/// A JSON-compatible Python value → JSON.
pub fn to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(value, 0)
}

fn to_json_at(value: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(to_py(Error::InvalidArgument {
            reason: format!("record value nests deeper than {MAX_DEPTH} levels (or contains itself)"),
        }));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(n) = value.extract::<i64>() {
            return Ok(Value::from(n));
        }
        if let Ok(n) = value.extract::<u64>() {
            return Ok(Value::from(n));
        }
        return Err(to_py(Error::InvalidArgument {
            reason: format!("integer {value} does not fit in 64 bits"),
        }));
    }
    if value.is_instance_of::<PyFloat>() {
        let x = value.extract::<f64>()?;
        return Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| to_py(Error::InvalidArgument { reason: format!("{x} is not a JSON number") }));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(text.to_cow()?.into_owned()));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut object = Map::new();
        for (k, v) in dict.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(wrong_type("record value dict keys", "str", &k));
            };
            object.insert(k.to_cow()?.into_owned(), to_json_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(object));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        return value
            .try_iter()?
            .map(|item| to_json_at(&item?, depth + 1))
            .collect::<PyResult<_>>()
            .map(Value::Array);
    }
    Err(wrong_type(
        "a record value",
        "JSON-compatible (dict, list, tuple, str, int, float, bool or None)",
        value,
    ))
}

/// JSON → Python objects.
pub fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            PyList::new(py, items.iter().map(|item| from_json(py, item)).collect::<PyResult<Vec<_>>>()?)?
                .into_any()
        }
        Value::Object(object) => {
            let dict = PyDict::new(py);
            for (k, v) in object {
                dict.set_item(k, from_json(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
