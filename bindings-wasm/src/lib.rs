//! The WebAssembly binding of racefree: converts types and errors, nothing more. The idiomatic
//! JavaScript API (options objects, promises, `AbortSignal`, error classes) lives in `js/`.

#[cfg(feature = "memory")]
mod cache;
mod clock;
mod convert;
#[cfg(feature = "memory")]
mod counter;
mod errors;
#[cfg(feature = "memory")]
mod event_guard;
#[cfg(feature = "memory")]
mod fast_call;
#[cfg(feature = "memory")]
mod floor;
#[cfg(feature = "hosted")]
mod host_tasks;
#[cfg(feature = "hosted")]
mod hosted;
#[cfg(feature = "hosted")]
mod hosted_postgres;
#[cfg(feature = "hosted")]
mod hosted_redis;
mod lease_keeper;
#[cfg(feature = "memory")]
mod records;
#[cfg(feature = "memory")]
mod start_lock;
#[cfg(feature = "memory")]
mod store;

use wasm_bindgen::prelude::*;

#[cfg(feature = "memory")]
pub use cache::Cache;
#[cfg(feature = "memory")]
pub use counter::Counter;
pub use errors::install_error_factory;
#[cfg(feature = "memory")]
pub use event_guard::EventGuard;
#[cfg(feature = "memory")]
pub use fast_call::take_error;
#[cfg(feature = "memory")]
pub use floor::BenchFloor;
#[cfg(feature = "hosted")]
pub use hosted::{AsyncCounter, AsyncEventGuard, AsyncRecords, AsyncStartLock, HostedStore, UpdateDelays};
pub use lease_keeper::LeaseKeeper;
#[cfg(feature = "memory")]
pub use lease_keeper::{check_wait, first_wake_after_ms, Acquisition};
#[cfg(feature = "memory")]
pub use records::Records;
#[cfg(feature = "memory")]
pub use start_lock::StartLock;
#[cfg(feature = "memory")]
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
