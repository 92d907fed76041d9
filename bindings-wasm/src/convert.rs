//! Conversions between JavaScript values and racefree's types.

use std::time::Duration;

use racefree::Error;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::errors::{to_js, wrong_type};

/// Indexes, versions and tokens are JavaScript numbers: exact up to 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

pub fn invalid(reason: String) -> JsValue {
    to_js(Error::InvalidArgument { reason })
}

/// A duration in milliseconds (finite, non-negative; the JS layer has checked it is a number).
/// The core refuses zero and huge ones with the same messages in every language.
pub fn millis(what: &str, ms: f64) -> Result<Duration, JsValue> {
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
    unsigned_number(what, n)
}

/// [`unsigned`] for a value that is a number already.
pub fn unsigned_number(what: &str, n: f64) -> Result<u64, JsValue> {
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

/// JSON text from the JS layer (which has refused what JSON.stringify would drop or change).
pub fn parse_json(text: &str) -> Result<Value, JsValue> {
    serde_json::from_str(text).map_err(|err| invalid(format!("record value is not JSON: {err}")))
}

/// JSON text for the JS layer to `JSON.parse`.
pub fn json_text(value: &Value) -> String {
    value.to_string()
}

/// An update's `maxAttempts`: a whole number that fits the core's `u32`, refused otherwise (never
/// wrapped or clamped).
pub fn attempts(value: u64) -> Result<u32, JsValue> {
    u32::try_from(value)
        .map_err(|_| invalid(format!("maxAttempts must be at most {}, got {value}", u32::MAX)))
}

/// `[granted, contended, renewed, released, rejectedNotOwner, lostNotOwner, lostRenewalsFailed,
/// lostMaxHold]`: a lock's stats on every store.
pub(crate) fn lock_stats(s: &racefree::LockStats) -> Vec<f64> {
    [
        s.granted,
        s.contended,
        s.renewed,
        s.released,
        s.rejected_not_owner,
        s.lost_not_owner,
        s.lost_renewals_failed,
        s.lost_max_hold,
    ]
    .iter()
    .map(|&n| n as f64)
    .collect()
}
