//! The one error type of racefree.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Everything that can go wrong in racefree, for every primitive and every backend.
///
/// Each variant has a stable [`code`](Error::code) string; the Python and JavaScript bindings map
/// on that code (never on the message), so codes never change once released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key, id or name is empty, longer than [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES) or not UTF-8.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// An argument other than a key is out of range (a zero TTL, an unknown event, …).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong with it.
        reason: String,
    },
    /// A compare-and-swap found another version than the one expected.
    #[error("conflict on record {key:?}: current version is {}", fmt_version(*current_version))]
    Conflict {
        /// The record's key.
        key: String,
        /// The version the record has now; `None` when it does not exist.
        current_version: Option<u64>,
    },
    /// A lease was renewed or released by someone who no longer holds it (released or expired).
    #[error("lease on {key:?} with token {token} is not held by its caller (released or expired)")]
    NotOwner {
        /// The leased key.
        key: String,
        /// The token the caller presented.
        token: u64,
    },
    /// An event was marked before its predecessor; nothing was recorded.
    #[error("event {event:?} of stream {stream:?} is out of order: {missing:?} was not marked first")]
    OutOfOrder {
        /// The stream id.
        stream: String,
        /// The event the caller tried to mark.
        event: String,
        /// The earliest event that must be marked first.
        missing: String,
    },
    /// A write carried a fencing token older than one the record has already seen.
    #[error("stale fencing token {token} for record {key:?}: token {latest} was already seen")]
    StaleToken {
        /// The record's key.
        key: String,
        /// The token the write carried.
        token: u64,
        /// The largest token the record has seen.
        latest: u64,
    },
    /// The store holds as many entries as its `max_keys` bound allows.
    #[error("capacity exceeded: the store holds at most {max_keys} entries")]
    CapacityExceeded {
        /// The configured bound.
        max_keys: usize,
    },
    /// The backend could not be reached or failed, and the request did not run: it could not be
    /// sent, or the backend refused it. (A request that may have run is [`Error::Timeout`].)
    #[error("backend unavailable: {reason}")]
    BackendUnavailable {
        /// The backend's own description of the failure.
        reason: String,
        /// The backend client's own error, when there is one: what
        /// [`source()`](std::error::Error::source) returns.
        source: Option<Cause>,
    },
    /// The backend holds, or answered, a value racefree could not have written: a negative or
    /// out-of-range integer where an index, token, version or time belongs, a record that is not
    /// JSON, a reply of the wrong shape. A damaged key, or one written by something else; the
    /// call is refused rather than answered with a guess, and retrying does not help.
    #[error("corrupt data: {reason}")]
    CorruptData {
        /// What was found, and where.
        reason: String,
    },
    /// A wait (for a lease, a lock, a loader) ran out of time; or a request was sent and its
    /// reply never came (it timed out, or the connection was lost after the write): the request
    /// may have run, so its outcome is unknown.
    #[error("timed out after {waited:?}")]
    Timeout {
        /// How long the caller waited.
        waited: Duration,
    },
    /// A kept lease must be treated as lost: the work under it has to stop, because another
    /// holder may start the key from now on (see [`LeaseKeeper`](crate::LeaseKeeper)).
    #[error("lease on {key:?} with token {token} is lost: {reason}")]
    LeaseLost {
        /// The leased key.
        key: String,
        /// The lost lease's token.
        token: u64,
        /// Why it is lost.
        reason: LossReason,
    },
}

/// Why a kept lease is lost ([`Error::LeaseLost`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LossReason {
    /// The store answered a renewal with `not_owner`: the lease was released with its token or
    /// expired, and another holder may already run the key.
    NotOwner,
    /// No renewal was confirmed before the lease's safe deadline. `last_error` is the last
    /// renewal's failure; `None` when renewals did not fail but their replies came too late.
    RenewalsFailed {
        /// The last renewal's error, if one failed.
        last_error: Option<Box<Error>>,
    },
    /// The lease was held for its `max_hold` and is not renewed further.
    MaxHoldReached,
}

impl LossReason {
    /// The stable, machine-readable name of the reason: `"not_owner"`, `"renewals_failed"` or
    /// `"max_hold_reached"`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            LossReason::NotOwner => "not_owner",
            LossReason::RenewalsFailed { .. } => "renewals_failed",
            LossReason::MaxHoldReached => "max_hold_reached",
        }
    }

    /// The last renewal error behind [`LossReason::RenewalsFailed`], if any.
    #[must_use]
    pub fn last_error(&self) -> Option<&Error> {
        match self {
            LossReason::RenewalsFailed { last_error } => last_error.as_deref(),
            _ => None,
        }
    }
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossReason::NotOwner => f.write_str("the store says another holder may have it (not_owner)"),
            LossReason::RenewalsFailed { last_error: Some(error) } => {
                write!(f, "no renewal was confirmed before its safe deadline; the last one failed: {error}")
            }
            LossReason::RenewalsFailed { last_error: None } => {
                f.write_str("no renewal was confirmed before its safe deadline (the replies came too late)")
            }
            LossReason::MaxHoldReached => f.write_str("held for its max_hold, so no longer renewed"),
        }
    }
}

/// The error a backend client reported, kept as the [`source`](std::error::Error::source) of
/// [`Error::BackendUnavailable`]. Two causes are equal when they read the same.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps a backend client's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The wrapped error.
    #[must_use]
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

fn fmt_version(version: Option<u64>) -> String {
    version.map_or_else(|| "none (no such record)".to_owned(), |v| v.to_string())
}

impl Error {
    /// Every code [`Error::code`] can return, for bindings and tests that must cover them all.
    pub const CODES: &'static [&'static str] = &[
        "invalid_key",
        "invalid_argument",
        "conflict",
        "not_owner",
        "out_of_order",
        "stale_token",
        "capacity_exceeded",
        "backend_unavailable",
        "corrupt_data",
        "timeout",
        "lease_lost",
    ];

    /// The stable, machine-readable code of this error.
    ///
    /// ```
    /// let err = racefree::Error::Timeout { waited: std::time::Duration::from_secs(1) };
    /// assert_eq!(err.code(), "timeout");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidKey { .. } => "invalid_key",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::Conflict { .. } => "conflict",
            Error::NotOwner { .. } => "not_owner",
            Error::OutOfOrder { .. } => "out_of_order",
            Error::StaleToken { .. } => "stale_token",
            Error::CapacityExceeded { .. } => "capacity_exceeded",
            Error::BackendUnavailable { .. } => "backend_unavailable",
            Error::CorruptData { .. } => "corrupt_data",
            Error::Timeout { .. } => "timeout",
            Error::LeaseLost { .. } => "lease_lost",
        }
    }

    /// Whether trying the same call again later can succeed without changing its arguments.
    ///
    /// ```
    /// use racefree::Error;
    /// assert!(Error::Conflict { key: "k".into(), current_version: Some(3) }.is_retryable());
    /// assert!(!Error::InvalidKey { reason: "empty".into() }.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Conflict { .. }
                | Error::CapacityExceeded { .. }
                | Error::BackendUnavailable { .. }
                | Error::Timeout { .. }
        )
    }

    pub(crate) fn invalid_argument(reason: impl Into<String>) -> Self {
        Error::InvalidArgument { reason: reason.into() }
    }

    pub(crate) fn invalid_key(reason: impl Into<String>) -> Self {
        Error::InvalidKey { reason: reason.into() }
    }

    /// A `BackendUnavailable` with no client error behind it.
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Error::BackendUnavailable { reason: reason.into(), source: None }
    }

    /// A `BackendUnavailable` caused by a backend client's `error`.
    #[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
    pub(crate) fn unavailable_because(
        reason: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::BackendUnavailable { reason: reason.into(), source: Some(Cause::new(error)) }
    }

    #[cfg(any(feature = "sqlite", feature = "redis-protocol", feature = "postgres-protocol"))]
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::CorruptData { reason: reason.into() }
    }
}

/// `Result` with racefree's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
