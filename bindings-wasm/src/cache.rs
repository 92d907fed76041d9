//! `Cache`: the single-flight TTL cache, awaiting JavaScript loaders.

use std::sync::Arc;

use js_sys::{Function, Promise};
use racefree::{LoadError, SharedClock};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::clock::DateClock;
use crate::convert;
use crate::errors::to_js;
use crate::store::ManualClock;

/// A single-flight TTL cache of JavaScript values.
#[wasm_bindgen]
pub struct Cache {
    inner: racefree::Cache<JsValue, JsValue>,
}

#[wasm_bindgen]
impl Cache {
    /// A cache of at most `maxEntries` keys (default 10,000).
    #[wasm_bindgen(constructor)]
    pub fn new(max_entries: JsValue, clock: Option<ManualClock>) -> Result<Cache, JsValue> {
        let max_entries = match convert::optional_unsigned("maxEntries", &max_entries)? {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => racefree::DEFAULT_MAX_ENTRIES,
        };
        let clock: SharedClock = match clock {
            Some(clock) => clock.inner.clone(),
            None => Arc::new(DateClock),
        };
        Ok(Cache { inner: racefree::Cache::with_max_entries(clock, max_entries) })
    }

    /// Resolves to the cached value of `key`, or to `await loader()` run by exactly one of the
    /// concurrent callers; a rejection reaches every waiter and is not cached.
    #[wasm_bindgen(js_name = getOrLoad)]
    pub fn get_or_load(&self, key: &str, ttl_ms: f64, loader: Function) -> Result<Promise, JsValue> {
        let ttl = convert::millis("ttl", ttl_ms)?;
        let (cache, key) = (self.inner.clone(), key.to_owned());
        Ok(future_to_promise(async move {
            let load = || async move {
                let returned = loader.call0(&JsValue::NULL)?;
                // Accept a promise or a plain value alike.
                JsFuture::from(Promise::resolve(&returned)).await
            };
            match cache.get_or_load_async(&key, ttl, load).await {
                Ok(value) => Ok(value),
                Err(LoadError::Cache(err)) => Err(to_js(err)),
                Err(LoadError::Loader(err)) => Err(err),
            }
        }))
    }

    /// Drops the cached value of `key`; returns whether one was cached.
    pub fn invalidate(&self, key: &str) -> Result<bool, JsValue> {
        Ok(self.inner.invalidate(key))
    }

    /// Removes expired values; returns how many.
    pub fn sweep(&self) -> f64 {
        self.inner.sweep() as f64
    }

    /// Keys held now.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.len() as f64
    }

    /// `[hits, loads, coalesced, loadErrors, expired]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        [s.hits, s.loads, s.coalesced, s.load_errors, s.expired].iter().map(|&n| n as f64).collect()
    }
}
