//! `Records`.
//!
//! A record crosses the boundary as JSON text. Serialising a value and decoding the text into a
//! JavaScript string cost more than the store's own work, so each handle keeps the text of the
//! latest version of each key it has read, as a JavaScript string ([`TextCache`]): a version is
//! never repeated for a key, so a text cached under it is never stale, and handing it back costs
//! nothing. The cached text is the core's serialisation (keys sorted, as every language reads
//! them), never the writer's own. `update` returns only the new version: the JavaScript layer has
//! the value it wrote.

use std::cell::RefCell;
use std::collections::HashMap;

use js_sys::{Float64Array, Function, JsString};
use racefree::{Error, UpdateOptions, Versioned};
use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::{to_js, IntoJs};
use crate::fast_call::number_or_nan;
use crate::store::Store;

/// Texts cached per handle, at most this many characters of them in all (2 bytes a character at
/// most in V8: 4 MiB of the host's memory). Measured, Node 20, a three-key record, best of 5 in
/// one process: `records.get` 2,031 ns before (a text made on every read), 1,089 ns cached.
const CACHE_MAX_CHARS: usize = 2 << 20;
/// Texts longer than this are not cached: one would push out many small ones, and serialising a
/// large value costs little beside the work of making it.
const CACHE_MAX_TEXT_CHARS: usize = 64 << 10;

/// The JSON text of each key's latest version this handle has seen.
#[derive(Default)]
struct TextCache {
    texts: HashMap<String, (u64, JsString, usize), foldhash::fast::RandomState>,
    chars: usize,
}

impl TextCache {
    /// The text of `key` at `version`, when cached.
    fn get(&self, key: &str, version: u64) -> Option<JsString> {
        match self.texts.get(key) {
            Some((cached, text, _)) if *cached == version => Some(text.clone()),
            _ => None,
        }
    }

    /// Caches `text` as `key`'s text at `version` (in place of any older one).
    fn put(&mut self, key: &str, version: u64, text: &JsString) {
        self.forget(key);
        let chars = text.length() as usize;
        if chars > CACHE_MAX_TEXT_CHARS {
            return;
        }
        if self.chars + chars > CACHE_MAX_CHARS {
            // Simplest bound that keeps the common case (a few hot keys) cached.
            self.texts.clear();
            self.chars = 0;
        }
        self.chars += chars;
        self.texts.insert(key.to_owned(), (version, text.clone(), chars));
    }

    fn forget(&mut self, key: &str) {
        if let Some((_, _, chars)) = self.texts.remove(key) {
            self.chars -= chars;
        }
    }
}

/// Versioned JSON records with compare-and-swap writes.
#[wasm_bindgen]
pub struct Records {
    inner: racefree::Records,
    texts: RefCell<TextCache>,
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

impl Records {
    /// The text of `record` (from the cache, or serialised and cached).
    fn text_of(&self, key: &str, record: &Versioned) -> JsString {
        if let Some(text) = self.texts.borrow().get(key, record.version) {
            return text;
        }
        let text = JsString::from(convert::json_text(&record.value));
        self.texts.borrow_mut().put(key, record.version, &text);
        text
    }
}

#[wasm_bindgen]
impl Records {
    /// The record space named `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, name: &str) -> Result<Records, JsValue> {
        Ok(Records { inner: racefree::Records::new(&store.inner, name).js()?, texts: RefCell::default() })
    }

    /// The record's value as JSON text with its version written to `reply[0]`, or `undefined`
    /// when the record does not exist.
    pub fn get(&self, key: &str, reply: &Float64Array) -> Result<Option<JsString>, JsValue> {
        let Some(record) = self.inner.get(key).js()? else { return Ok(None) };
        reply.set_index(0, to_number("version", record.version)?);
        Ok(Some(self.text_of(key, &record)))
    }

    /// Writes the JSON text `value` (create-only without `expectedVersion`); returns the new version.
    pub fn put(
        &self,
        key: &str,
        value: &str,
        expected_version: JsValue,
        fencing_token: JsValue,
    ) -> Result<f64, JsValue> {
        let parsed = convert::parse_json(value)?;
        let expected = convert::optional_unsigned("expectedVersion", &expected_version)?;
        let version = match convert::optional_unsigned("fencingToken", &fencing_token)? {
            Some(token) => self.inner.put_fenced(key, &parsed, expected, token),
            None => self.inner.put(key, &parsed, expected),
        }
        .js()?;
        to_number("version", version)
    }

    /// Applies `change(currentJsonOrNull) -> newJson` as one compare-and-swap write, retrying on
    /// conflict; returns the new version (a fast call: see `fast_call`). An exception from
    /// `change` is the error, and nothing is written.
    pub fn update(&self, key: &str, change: &Function, fencing_token: JsValue, max_attempts: JsValue) -> f64 {
        number_or_nan(self.update_version(key, change, &fencing_token, &max_attempts))
    }

    /// Deletes the record (only at `expectedVersion`, when given); returns whether there was one.
    pub fn delete(&self, key: &str, expected_version: JsValue) -> Result<bool, JsValue> {
        let deleted =
            self.inner.delete(key, convert::optional_unsigned("expectedVersion", &expected_version)?).js()?;
        self.texts.borrow_mut().forget(key);
        Ok(deleted)
    }

    /// `[writes, conflicts, retries, staleTokens]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        [s.writes, s.conflicts, s.retries, s.stale_tokens].iter().map(|&n| n as f64).collect()
    }
}

impl Records {
    fn update_version(
        &self,
        key: &str,
        change: &Function,
        fencing_token: &JsValue,
        max_attempts: &JsValue,
    ) -> Result<f64, JsValue> {
        let mut options = UpdateOptions::default();
        if let Some(token) = convert::optional_unsigned("fencingToken", fencing_token)? {
            options = options.with_fencing_token(token);
        }
        if let Some(attempts) = convert::optional_unsigned("maxAttempts", max_attempts)? {
            options = options.with_max_attempts(convert::attempts(attempts)?);
        }
        let outcome = self.inner.try_update_record_with(key, &options, |current| {
            // `change` is the JS layer's adapter: JSON text (or null) in, JSON text out.
            let current = current.map_or(JsValue::NULL, |record| self.text_of(key, record).into());
            let next = change.call1(&JsValue::NULL, &current).map_err(UpdateError::Js)?;
            let text = next.as_string().ok_or_else(|| {
                UpdateError::Js(crate::errors::wrong_type("the change adapter's result", "JSON text", &next))
            })?;
            convert::parse_json(&text).map_err(UpdateError::Js)
        });
        match outcome {
            Ok(updated) => to_number("version", updated.version),
            Err(UpdateError::Core(err)) => Err(to_js(err)),
            Err(UpdateError::Js(err)) => Err(err),
        }
    }
}
