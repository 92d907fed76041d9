//! `Counter`.

use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::IntoJs;
use crate::fast_call::{claim_number, number_or_nan};
use crate::store::Store;

/// A per-key sequential index counter.
#[wasm_bindgen]
pub struct Counter {
    inner: racefree::Counter,
}

#[wasm_bindgen]
impl Counter {
    /// The counter named `key` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &Store, key: &str) -> Result<Counter, JsValue> {
        Ok(Counter { inner: racefree::Counter::new(&store.inner, key).js()? })
    }

    /// The counter's key.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        self.inner.key().to_owned()
    }

    /// The next index (a fast call: see `fast_call`).
    pub fn next(&self) -> f64 {
        number_or_nan(self.inner.next().js().and_then(|index| to_number("index", index)))
    }

    /// The index of `executionId` and whether this call assigned it (a fast call: see
    /// `fast_call`).
    pub fn claim(&self, execution_id: &str) -> f64 {
        number_or_nan(self.inner.claim(execution_id).js().and_then(claim_number))
    }

    /// The index `executionId` claimed, or `undefined`.
    #[wasm_bindgen(js_name = indexOf)]
    pub fn index_of(&self, execution_id: &str) -> Result<Option<f64>, JsValue> {
        let found = self.inner.index_of(execution_id).js()?;
        found.map(|i| to_number("index", i)).transpose()
    }

    /// The index the next call will return.
    pub fn peek(&self) -> Result<f64, JsValue> {
        to_number("index", self.inner.peek().js()?)
    }

    /// Sets the next index.
    pub fn set(&self, next: JsValue) -> Result<(), JsValue> {
        self.inner.set(convert::unsigned("next", &next)?).js()
    }

    /// Forgets the counter and its claims.
    pub fn reset(&self) -> Result<(), JsValue> {
        self.inner.reset().js()
    }

    /// `[newClaims, repeatedClaims]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.new_claims as f64, s.repeated_claims as f64]
    }
}
