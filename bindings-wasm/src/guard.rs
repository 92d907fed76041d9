//! `EventGuard`.

use racefree::{GuardOptions, Mark};
use wasm_bindgen::prelude::*;

use crate::convert;
use crate::errors::{wrong_type, IntoJs};
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
        name: JsValue,
        events: JsValue,
        retention_ms: JsValue,
    ) -> Result<EventGuard, JsValue> {
        let name = convert::key("guard name", &name)?;
        if !js_sys::Array::is_array(&events) {
            return Err(wrong_type("events", "an array of event names", &events));
        }
        let events: Vec<String> = js_sys::Array::from(&events)
            .iter()
            .map(|e| convert::key("event name", &e))
            .collect::<Result<_, _>>()?;
        let options = if retention_ms.is_undefined() {
            GuardOptions::default()
        } else {
            GuardOptions::retention(convert::millis("retention", &retention_ms)?)
        };
        Ok(EventGuard {
            inner: racefree::EventGuard::with_options(&store.inner, &name, &events, options).js()?,
        })
    }

    /// The declared events, in order.
    #[wasm_bindgen(getter)]
    pub fn events(&self) -> Vec<String> {
        self.inner.events().to_vec()
    }

    /// `"first"` for the one caller that records the event, `"duplicate"` after.
    pub fn mark(&self, stream: JsValue, event: JsValue) -> Result<String, JsValue> {
        let (stream, event) = (convert::key("stream id", &stream)?, convert::key("event name", &event)?);
        Ok(match self.inner.mark(&stream, &event).js()? {
            Mark::First => "first",
            Mark::Duplicate => "duplicate",
        }
        .to_owned())
    }

    /// Whether `event` of `stream` is marked.
    #[wasm_bindgen(js_name = isMarked)]
    pub fn is_marked(&self, stream: JsValue, event: JsValue) -> Result<bool, JsValue> {
        let (stream, event) = (convert::key("stream id", &stream)?, convert::key("event name", &event)?);
        self.inner.is_marked(&stream, &event).js()
    }

    /// The latest event marked for `stream`, or `undefined`.
    #[wasm_bindgen(js_name = lastMarked)]
    pub fn last_marked(&self, stream: JsValue) -> Result<Option<String>, JsValue> {
        Ok(self.inner.last_marked(&convert::key("stream id", &stream)?).js()?.map(str::to_owned))
    }

    /// Forgets `stream`'s marks; returns whether it had any.
    pub fn forget(&self, stream: JsValue) -> Result<bool, JsValue> {
        self.inner.forget(&convert::key("stream id", &stream)?).js()
    }

    /// `[delivered, duplicatesSuppressed, outOfOrder]`.
    #[wasm_bindgen(js_name = statsRaw)]
    pub fn stats_raw(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.delivered as f64, s.duplicates_suppressed as f64, s.out_of_order as f64]
    }
}
