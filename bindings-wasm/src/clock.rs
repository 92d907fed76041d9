//! The clocks of the stores: the host's `Date.now()`, or a JavaScript function (a hosted store
//! judged by the memory module's `ManualClock`, in tests).

#[cfg(feature = "hosted")]
use js_sys::Function;
use racefree::Clock;
#[cfg(feature = "hosted")]
use wasm_bindgen::prelude::*;

/// The wall clock of the host: `Date.now()`, in milliseconds.
#[derive(Debug)]
pub struct DateClock;

impl Clock for DateClock {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now().max(0.0) as u64
    }

    /// The host's wall clock: a hosted server store judges deadlines by the server's own.
    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock read by calling a JavaScript function that returns milliseconds: how the hosted
/// stores' module (a separate wasm instance) reads the memory module's `ManualClock`.
#[cfg(feature = "hosted")]
pub struct FunctionClock(pub crate::hosted::OneThread<Function>);

#[cfg(feature = "hosted")]
impl std::fmt::Debug for FunctionClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FunctionClock")
    }
}

#[cfg(feature = "hosted")]
impl Clock for FunctionClock {
    fn now_ms(&self) -> u64 {
        // A clock has no error to return: a function that throws or returns no number reads as 0,
        // which expires nothing early (deadlines only ever pass later).
        self.0 .0.call0(&JsValue::NULL).ok().and_then(|ms| ms.as_f64()).unwrap_or(0.0).max(0.0) as u64
    }
}
