//! Conversions between JavaScript values and racefree's types.

use std::time::Duration;

use js_sys::{Array, JsString, Object, Reflect};
use racefree::Error;
use serde_json::{Map, Number, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::errors::{to_js, wrong_type};

/// How deep a record value may nest; deeper (or self-containing) values are refused.
const MAX_DEPTH: usize = 64;

/// Indexes, versions and tokens are JavaScript numbers: exact up to 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn invalid(reason: String) -> JsValue {
    to_js(Error::InvalidArgument { reason })
}

/// A key, id or name: a string of well-formed UTF-16 (lone surrogates cannot be UTF-8).
pub fn key(what: &str, value: &JsValue) -> Result<String, JsValue> {
    let Some(text) = value.dyn_ref::<JsString>() else {
        return Err(wrong_type(what, "a string", value));
    };
    if !text.is_valid_utf16() {
        return Err(to_js(Error::InvalidKey {
            reason: format!("{what} contains a lone surrogate (not valid UTF-8)"),
        }));
    }
    Ok(String::from(text))
}

/// A duration in milliseconds (a finite, non-negative number); the core refuses zero and huge ones.
pub fn millis(what: &str, value: &JsValue) -> Result<Duration, JsValue> {
    let Some(ms) = value.as_f64() else {
        return Err(wrong_type(what, "a number of milliseconds", value));
    };
    if !ms.is_finite() || ms < 0.0 {
        return Err(invalid(format!("{what} must be a finite, positive number of milliseconds, got {ms}")));
    }
    Ok(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX))
}

/// A non-negative safe integer (versions, tokens, counter values).
pub fn unsigned(what: &str, value: &JsValue) -> Result<u64, JsValue> {
    let Some(n) = value.as_f64() else {
        return Err(wrong_type(what, "a number", value));
    };
    if n.fract() != 0.0 || !(0.0..=MAX_SAFE_INTEGER as f64).contains(&n) {
        return Err(invalid(format!("{what} must be an integer from 0 to 2^53 - 1, got {n}")));
    }
    Ok(n as u64)
}

/// An optional [`unsigned`]: `undefined` and `null` are absent.
pub fn optional_unsigned(what: &str, value: &JsValue) -> Result<Option<u64>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    unsigned(what, value).map(Some)
}

/// A core integer as a JavaScript number, refusing values past 2^53 − 1 rather than rounding them.
pub fn to_number(what: &str, value: u64) -> Result<f64, JsValue> {
    if value > MAX_SAFE_INTEGER {
        return Err(invalid(format!("{what} {value} exceeds Number.MAX_SAFE_INTEGER")));
    }
    Ok(value as f64)
}

/// A JSON-compatible JavaScript value → JSON. Refuses what `JSON.stringify` would silently drop
/// or change: `undefined`, functions, symbols, bigints, NaN and infinities, class instances.
pub fn to_json(value: &JsValue) -> Result<Value, JsValue> {
    to_json_at(value, 0)
}

fn to_json_at(value: &JsValue, depth: usize) -> Result<Value, JsValue> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "record value nests deeper than {MAX_DEPTH} levels (or contains itself)"
        )));
    }
    if value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(flag) = value.as_bool() {
        return Ok(Value::Bool(flag));
    }
    if let Some(x) = value.as_f64() {
        if x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER as f64 {
            return Ok(Value::from(x as i64));
        }
        return Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("{x} is not a JSON number")));
    }
    if let Some(text) = value.as_string() {
        return Ok(Value::String(text));
    }
    if Array::is_array(value) {
        let array: &Array = value.unchecked_ref();
        return array
            .iter()
            .map(|item| to_json_at(&item, depth + 1))
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if value.is_object() && is_plain_object(value) {
        let mut object = Map::new();
        for entry in Object::entries(value.unchecked_ref()).iter() {
            let pair: Array = entry.unchecked_into();
            let name = pair.get(0).as_string().unwrap_or_default();
            object.insert(name, to_json_at(&pair.get(1), depth + 1)?);
        }
        return Ok(Value::Object(object));
    }
    Err(wrong_type(
        "a record value",
        "JSON-compatible (plain object, array, string, finite number, boolean or null)",
        value,
    ))
}

/// Plain objects only (`{...}` or `Object.create(null)`): not Map, Date, class instances.
fn is_plain_object(value: &JsValue) -> bool {
    let proto: JsValue = Object::get_prototype_of(value).into();
    let object_proto: JsValue = Object::get_prototype_of(&Object::new().into()).into();
    proto.is_null() || proto == object_proto
}

/// JSON → JavaScript values.
pub fn from_json(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(from_json).collect::<Array>().into(),
        Value::Object(object) => {
            let out = Object::new();
            for (k, v) in object {
                let _ = Reflect::set(&out, &JsValue::from_str(k), &from_json(v));
            }
            out.into()
        }
    }
}
