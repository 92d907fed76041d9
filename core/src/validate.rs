//! Checks shared by every primitive, run before anything reaches a store.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest key, id or name accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest TTL or retention accepted: 100 years.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Checks a key, id or name: non-empty and at most [`MAX_KEY_BYTES`] bytes.
pub(crate) fn key<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() {
        return Err(Error::invalid_key(format!("{what} must not be empty")));
    }
    if value.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_key(format!(
            "{what} is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(value)
}

/// Checks a TTL-like duration and returns it in whole milliseconds (at least 1).
pub(crate) fn ttl_ms(what: &str, ttl: Duration) -> Result<u64> {
    if ttl > MAX_TTL {
        return Err(Error::invalid_argument(format!("{what} {ttl:?} exceeds the maximum of 100 years")));
    }
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::invalid_argument(format!("{what} must be at least 1 ms, got {ttl:?}")));
    }
    Ok(ms)
}

/// Checks a namespace: may be empty (none), at most [`MAX_KEY_BYTES`] bytes.
pub(crate) fn namespace(value: &str) -> Result<&str> {
    if value.len() > MAX_KEY_BYTES {
        return Err(Error::invalid_argument(format!(
            "namespace is {} bytes; at most {MAX_KEY_BYTES} are allowed",
            value.len()
        )));
    }
    Ok(value)
}

/// The default connect and request timeout of the stores that talk to a server.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// The options every store that talks to a server has: its namespace, and a positive timeout.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn server_options(backend: &str, namespace_value: &str, timeout: Duration) -> Result<()> {
    namespace(namespace_value)?;
    if timeout.is_zero() {
        return Err(Error::invalid_argument(format!("the {backend} timeout must be positive")));
    }
    Ok(())
}
