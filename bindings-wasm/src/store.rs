//! `open`, `Store` and `ManualClock`.

use std::sync::Arc;

use racefree::{Clock, SharedClock, SharedStore};
use wasm_bindgen::prelude::*;

use crate::clock::DateClock;
use crate::convert;
use crate::errors::IntoJs;

/// A clock that moves only when told to (tests, deterministic scenarios).
#[wasm_bindgen]
pub struct ManualClock {
    pub(crate) inner: Arc<racefree::ManualClock>,
}

#[wasm_bindgen]
impl ManualClock {
    /// A clock reading `startMs` until advanced.
    #[wasm_bindgen(constructor)]
    pub fn new(start_ms: Option<f64>) -> ManualClock {
        ManualClock { inner: Arc::new(racefree::ManualClock::new(start_ms.unwrap_or(0.0).max(0.0) as u64)) }
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: f64) -> Result<(), JsValue> {
        self.inner.advance(convert::millis("ms", ms)?);
        Ok(())
    }

    /// A second handle on this same clock (handles passed to constructors are consumed).
    pub fn fork(&self) -> ManualClock {
        ManualClock { inner: Arc::clone(&self.inner) }
    }

    /// The clock's time in milliseconds.
    #[wasm_bindgen(js_name = nowMs)]
    pub fn now_ms(&self) -> f64 {
        self.inner.now_ms() as f64
    }
}

/// An open store; every primitive is created on one.
#[wasm_bindgen]
pub struct Store {
    pub(crate) inner: SharedStore,
}

#[wasm_bindgen]
impl Store {
    /// The namespace that prefixes every key.
    #[wasm_bindgen(getter)]
    pub fn namespace(&self) -> String {
        self.inner.namespace().to_owned()
    }

    /// Removes every expired lease and mark now; returns how many.
    pub fn sweep(&self) -> Result<f64, JsValue> {
        Ok(self.inner.sweep().js()? as f64)
    }

    /// Entries held, and expired entries swept so far.
    pub fn stats(&self) -> Result<js_sys::Object, JsValue> {
        let stats = self.inner.stats().js()?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"entries".into(), &(stats.entries as f64).into())?;
        js_sys::Reflect::set(&out, &"expiredSwept".into(), &(stats.expired_swept as f64).into())?;
        Ok(out)
    }
}

/// Opens a store from a URL (`memory://` by default; the only backend in the browser).
#[wasm_bindgen(js_name = openStore)]
pub fn open_store(url: &str, clock: Option<ManualClock>) -> Result<Store, JsValue> {
    let clock: SharedClock = match clock {
        Some(clock) => clock.inner.clone(),
        None => Arc::new(DateClock),
    };
    Ok(Store { inner: racefree::open_with_clock(url, clock).js()? })
}

/// A new execution id: a ULID, monotonic within this instance.
#[wasm_bindgen(js_name = newExecutionId)]
pub fn new_execution_id() -> String {
    racefree::new_execution_id()
}
