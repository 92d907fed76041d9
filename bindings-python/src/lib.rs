//! `racefree._native`: the Python binding of racefree. It converts types and errors and nothing
//! more; the idiomatic layer is the pure-Python package `racefree` around it.

use pyo3::prelude::*;

mod aio;
mod aio_primitives;
mod cache;
mod convert;
mod counter;
mod errors;
mod event_guard;
mod lease_keeper;
mod metrics;
mod records;
mod start_lock;
mod store;

/// Every error code the core can raise, for tests that check each maps to a class.
#[pyfunction]
fn error_codes() -> Vec<&'static str> {
    racefree::Error::CODES.to_vec()
}

/// Panics inside Rust on purpose: proves a panic reaches Python as an exception, not an abort.
#[pyfunction]
fn _panic_for_tests() {
    panic!("deliberate panic to test the FFI boundary");
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(store::open, m)?)?;
    m.add_function(wrap_pyfunction!(store::check_url, m)?)?;
    m.add_function(wrap_pyfunction!(store::migrate, m)?)?;
    m.add_function(wrap_pyfunction!(store::new_execution_id, m)?)?;
    m.add_function(wrap_pyfunction!(error_codes, m)?)?;
    metrics::install();
    m.add_function(wrap_pyfunction!(metrics::metrics_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::metric_catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_class::<store::Store>()?;
    m.add_class::<store::ManualClock>()?;
    m.add_class::<counter::Counter>()?;
    m.add_class::<counter::Claim>()?;
    m.add_class::<event_guard::EventGuard>()?;
    m.add_class::<event_guard::PyMark>()?;
    m.add_class::<start_lock::StartLock>()?;
    m.add_class::<start_lock::Lease>()?;
    m.add_class::<records::Records>()?;
    m.add_class::<records::Versioned>()?;
    m.add_class::<cache::Cache>()?;
    m.add_class::<cache::CacheHit>()?;
    m.add_class::<cache::LoadDuty>()?;
    m.add_class::<cache::LoadWait>()?;
    m.add_class::<aio::Completions>()?;
    m.add_class::<aio_primitives::AsyncCounter>()?;
    m.add_class::<aio_primitives::AsyncEventGuard>()?;
    m.add_class::<aio_primitives::AsyncStartLock>()?;
    m.add_class::<aio_primitives::AsyncLease>()?;
    m.add_class::<aio_primitives::AsyncRecords>()?;
    m.add_class::<aio_primitives::UpdateDelays>()?;
    m.add_class::<lease_keeper::KeeperOptions>()?;
    m.add_class::<lease_keeper::LeaseKeeper>()?;
    m.add_class::<lease_keeper::Acquisition>()?;
    m.add("MAX_KEY_BYTES", racefree::MAX_KEY_BYTES)?;
    Ok(())
}
