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

fn versioned(v: Versioned) -> Result<js_sys::Object, JsValue> {
    let out = js_sys::Object::new();
    js_sys::Reflect::set(&out, &"value".into(), &convert::from_json(&v.value))?;
    js_sys::Reflect::set(&out, &"version".into(), &to_number("version", v.version)?.into())?;
    Ok(out)
}

#[wasm_bindgen]
impl Records {
    /// The record space named `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, name: JsValue) -> Result<Records, JsValue> {
        let name = convert::key("record space name", &name)?;
        Ok(Records { inner: racefree::Records::new(&store.inner, &name).js()? })
    }

    /// `{value, version}`, or `undefined` when the record does not exist.
    pub fn get(&self, key: JsValue) -> Result<Option<js_sys::Object>, JsValue> {
        self.inner.get(&convert::key("record key", &key)?).js()?.map(versioned).transpose()
    }

    /// Writes `value` (create-only without `expectedVersion`); returns the new version.
    pub fn put(
        &self,
        key: JsValue,
        value: JsValue,
        expected_version: JsValue,
        fencing_token: JsValue,
    ) -> Result<f64, JsValue> {
        let key = convert::key("record key", &key)?;
        let value = convert::to_json(&value)?;
        let expected = convert::optional_unsigned("expectedVersion", &expected_version)?;
        let version = match convert::optional_unsigned("fencingToken", &fencing_token)? {
            Some(token) => self.inner.put_fenced(&key, &value, expected, token),
            None => self.inner.put(&key, &value, expected),
        }
        .js()?;
        to_number("version", version)
    }

    /// Applies `change(currentOrNull) -> newValue` as one compare-and-swap write, retrying on
    /// conflict; an exception from `change` is rethrown and nothing is written.
    pub fn update(
        &self,
        key: JsValue,
        change: Function,
        fencing_token: JsValue,
        max_attempts: JsValue,
    ) -> Result<js_sys::Object, JsValue> {
        let key = convert::key("record key", &key)?;
        let mut options = UpdateOptions::default();
        if let Some(token) = convert::optional_unsigned("fencingToken", &fencing_token)? {
            options = options.with_fencing_token(token);
        }
        if let Some(attempts) = convert::optional_unsigned("maxAttempts", &max_attempts)? {
            options = options.with_max_attempts(u32::try_from(attempts).unwrap_or(u32::MAX));
        }
        let outcome = self.inner.try_update_with(&key, &options, |current| {
            let current = current.map_or(JsValue::NULL, convert::from_json);
            let next = change.call1(&JsValue::NULL, &current).map_err(UpdateError::Js)?;
            convert::to_json(&next).map_err(UpdateError::Js)
        });
        match outcome {
            Ok(updated) => versioned(updated),
            Err(UpdateError::Core(err)) => Err(to_js(err)),
            Err(UpdateError::Js(err)) => Err(err),
        }
    }

    /// Deletes the record (only at `expectedVersion`, when given); returns whether there was one.
    pub fn delete(&self, key: JsValue, expected_version: JsValue) -> Result<bool, JsValue> {
        let key = convert::key("record key", &key)?;
        self.inner.delete(&key, convert::optional_unsigned("expectedVersion", &expected_version)?).js()
    }

    /// `[writes, conflicts, retries, staleTokens]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        [s.writes, s.conflicts, s.retries, s.stale_tokens].iter().map(|&n| n as f64).collect()
    }
}
