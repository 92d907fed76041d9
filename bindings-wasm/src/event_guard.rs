//! `EventGuard`.

use racefree::GuardOptions;
use wasm_bindgen::prelude::*;

use crate::convert;
use crate::errors::IntoJs;
use crate::fast_call::{mark_number, number_or_nan};
use crate::store::Store;

/// Ordered lifecycle events, each delivered once per stream.
#[wasm_bindgen]
pub struct EventGuard {
    inner: racefree::EventGuard,
}

#[wasm_bindgen]
impl EventGuard {
    /// A guard named `name` over `events` (in order); `retentionMs` keeps marks that long.
    #[wasm_bindgen(constructor)]
    pub fn new(
        store: &Store,
        name: &str,
        events: Vec<String>,
        retention_ms: Option<f64>,
    ) -> Result<EventGuard, JsValue> {
        let options = match retention_ms {
            Some(ms) => GuardOptions::retention(convert::millis("retention", ms)?),
            None => GuardOptions::default(),
        };
        Ok(EventGuard {
            inner: racefree::EventGuard::with_options(&store.inner, name, &events, options).js()?,
        })
    }

    /// The declared events, in order.
    #[wasm_bindgen(getter)]
    pub fn events(&self) -> Vec<String> {
        self.inner.events().to_vec()
    }

    /// Marks `event` of `stream`: first or duplicate (a fast call: see `fast_call`).
    pub fn mark(&self, stream: &str, event: &str) -> f64 {
        number_or_nan(self.inner.mark(stream, event).js().map(mark_number))
    }

    /// Whether `event` of `stream` is marked.
    #[wasm_bindgen(js_name = isMarked)]
    pub fn is_marked(&self, stream: &str, event: &str) -> Result<bool, JsValue> {
        self.inner.is_marked(stream, event).js()
    }

    /// The latest event marked for `stream`, or `undefined`.
    #[wasm_bindgen(js_name = lastMarked)]
    pub fn last_marked(&self, stream: &str) -> Result<Option<String>, JsValue> {
        Ok(self.inner.last_marked(stream).js()?.map(str::to_owned))
    }

    /// Forgets `stream`'s marks; returns whether it had any.
    pub fn forget(&self, stream: &str) -> Result<bool, JsValue> {
        self.inner.forget(stream).js()
    }

    /// `[delivered, duplicatesSuppressed, outOfOrder]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.delivered as f64, s.duplicates_suppressed as f64, s.out_of_order as f64]
    }
}
