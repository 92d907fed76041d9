//! The WebAssembly binding of racefree: converts types and errors, nothing more. The idiomatic
//! JavaScript API (options objects, promises, `AbortSignal`, error classes) lives in `js/`.

mod cache;
mod convert;
mod counter;
mod errors;
mod event_guard;
mod fast_call;
mod floor;
#[cfg(feature = "hosted")]
mod hosted;
#[cfg(feature = "hosted")]
mod hosted_postgres;
#[cfg(feature = "hosted")]
mod hosted_redis;
mod lease_keeper;
mod records;
mod start_lock;
mod store;

use wasm_bindgen::prelude::*;

pub use cache::Cache;
pub use counter::Counter;
pub use errors::install_error_factory;
pub use event_guard::EventGuard;
pub use fast_call::take_error;
pub use floor::BenchFloor;
#[cfg(feature = "hosted")]
pub use hosted::{
    AsyncCounter, AsyncEventGuard, AsyncLease, AsyncRecords, AsyncStartLock, HostedStore, UpdateDelays,
};
pub use lease_keeper::{check_wait, first_wake_after_ms, Acquisition, LeaseKeeper};
pub use records::Records;
pub use start_lock::StartLock;
pub use store::{new_execution_id, open_store, ManualClock, Store};

/// Every error code the core can raise, for tests that check each maps to a class.
#[wasm_bindgen(js_name = errorCodes)]
pub fn error_codes() -> Vec<String> {
    racefree::Error::CODES.iter().map(|c| (*c).to_owned()).collect()
}

/// The largest key, id or name, in bytes of UTF-8.
#[wasm_bindgen(js_name = maxKeyBytes)]
pub fn max_key_bytes() -> usize {
    racefree::MAX_KEY_BYTES
}
