//! `Records`.

use js_sys::Function;
use racefree::{Error, UpdateOptions, Versioned};
use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::{to_js, IntoJs};
use crate::store::Store;

/// Versioned JSON records with compare-and-swap writes.
#[wasm_bindgen]
pub struct Records {
    inner: racefree::Records,
}

enum UpdateError {
    Core(Error),
    Js(JsValue),
}

impl From<Error> for UpdateError {
    fn from(err: Error) -> Self {
        UpdateError::Core(err)
    }
}

/// `{"value": …, "version": n}` as JSON text: one string crosses the boundary, `JSON.parse` reads it.
fn versioned(v: Versioned) -> Result<String, JsValue> {
    let version = to_number("version", v.version)?;
    Ok(format!("{{\"value\":{},\"version\":{version}}}", convert::json_text(&v.value)))
}

#[wasm_bindgen]
impl Records {
    /// The record space named `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, name: &str) -> Result<Records, JsValue> {
        Ok(Records { inner: racefree::Records::new(&store.inner, name).js()? })
    }

    /// `{value, version}` as JSON text, or `undefined` when the record does not exist.
    pub fn get(&self, key: &str) -> Result<Option<String>, JsValue> {
        self.inner.get(key).js()?.map(versioned).transpose()
    }

    /// Writes `value` (create-only without `expectedVersion`); returns the new version.
    pub fn put(
        &self,
        key: &str,
        value_json: &str,
        expected_version: JsValue,
        fencing_token: JsValue,
    ) -> Result<f64, JsValue> {
        let value = convert::parse_json(value_json)?;
        let expected = convert::optional_unsigned("expectedVersion", &expected_version)?;
        let version = match convert::optional_unsigned("fencingToken", &fencing_token)? {
            Some(token) => self.inner.put_fenced(key, &value, expected, token),
            None => self.inner.put(key, &value, expected),
        }
        .js()?;
        to_number("version", version)
    }

    /// Applies `change(currentJsonOrNull) -> newJson` as one compare-and-swap write, retrying on
    /// conflict; an exception from `change` is rethrown and nothing is written.
    pub fn update(
        &self,
        key: &str,
        change: Function,
        fencing_token: JsValue,
        max_attempts: JsValue,
    ) -> Result<String, JsValue> {
        let mut options = UpdateOptions::default();
        if let Some(token) = convert::optional_unsigned("fencingToken", &fencing_token)? {
            options = options.with_fencing_token(token);
        }
        if let Some(attempts) = convert::optional_unsigned("maxAttempts", &max_attempts)? {
            options = options.with_max_attempts(convert::attempts(attempts)?);
        }
        let outcome = self.inner.try_update_with(key, &options, |current| {
            // `change` is the JS layer's adapter: JSON text (or null) in, JSON text out.
            let current = current.map_or(JsValue::NULL, |v| JsValue::from_str(&convert::json_text(v)));
            let next = change.call1(&JsValue::NULL, &current).map_err(UpdateError::Js)?;
            let text = next.as_string().ok_or_else(|| {
                UpdateError::Js(crate::errors::wrong_type("the change adapter's result", "JSON text", &next))
            })?;
            convert::parse_json(&text).map_err(UpdateError::Js)
        });
        match outcome {
            Ok(updated) => versioned(updated),
            Err(UpdateError::Core(err)) => Err(to_js(err)),
            Err(UpdateError::Js(err)) => Err(err),
        }
    }

    /// Deletes the record (only at `expectedVersion`, when given); returns whether there was one.
    pub fn delete(&self, key: &str, expected_version: JsValue) -> Result<bool, JsValue> {
        self.inner.delete(key, convert::optional_unsigned("expectedVersion", &expected_version)?).js()
    }

    /// `[writes, conflicts, retries, staleTokens]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        [s.writes, s.conflicts, s.retries, s.stale_tokens].iter().map(|&n| n as f64).collect()
    }
}
