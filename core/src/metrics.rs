//! What a primitive handle counts: its `stats()`, and with the `metrics` feature the same counts
//! through the [`metrics`](https://docs.rs/metrics) crate's facade, for the exporter the
//! application installs (Prometheus, OpenTelemetry, StatsD…).
//!
//! Each count is a [`Tally`]: the handle's own atomic, plus a counter registered once, when the
//! handle is made, with its labels — `primitive`, `name` (the instance's name; never a key, so
//! the set stays bounded; a counter, named by its key, has none) and `backend` — and the
//! count's `outcome`. An operation then costs one relaxed atomic add more per count, whatever the
//! recorder; without one installed when the handle was made, the counter does nothing. Install the
//! recorder before making primitives.

#[cfg(feature = "metrics")]
mod recorder;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use recorder::{Recorder, Sample, Value};

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The labels every count of one handle carries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labels {
    #[cfg(feature = "metrics")]
    labels: Vec<metrics::Label>,
}

impl Labels {
    /// The labels of `primitive` named `name` (`None`: a counter, named by its key) on `backend`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(primitive: &'static str, name: Option<&str>, backend: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let mut labels = vec![metrics::Label::from_static_parts("primitive", primitive)];
            if let Some(name) = name {
                labels.push(metrics::Label::new("name", name.to_owned()));
            }
            labels.push(metrics::Label::from_static_parts("backend", backend));
            Self { labels }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }

    /// Counts an error an operation returned, by its code (registered when it first happens:
    /// errors are rare, and the codes many).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    #[cold]
    pub(crate) fn error(&self, err: &crate::Error) {
        #[cfg(feature = "metrics")]
        {
            let mut labels = self.labels.clone();
            labels.push(metrics::Label::from_static_parts("code", err.code()));
            metrics::counter!(ERRORS, labels).increment(1);
        }
    }

    /// These labels and one more, `(name, value)`, if any.
    #[cfg(feature = "metrics")]
    fn and(&self, label: Option<(&'static str, &'static str)>) -> Vec<metrics::Label> {
        let mut labels = self.labels.clone();
        if let Some((name, value)) = label {
            labels.push(metrics::Label::from_static_parts(name, value));
        }
        labels
    }

    /// Counts `result`'s error, if it is one, and returns it.
    pub(crate) fn errors<T>(&self, result: crate::Result<T>) -> crate::Result<T> {
        if let Err(err) = &result {
            self.error(err);
        }
        result
    }
}

/// Operations that returned an error, by `code` (`timeout`: the outcome is unknown).
pub const ERRORS: &str = "racefree_errors_total";

/// One count of a handle's `stats()`, and its counter.
pub(crate) struct Tally {
    count: AtomicU64,
    #[cfg(feature = "metrics")]
    counter: metrics::Counter,
}

impl Tally {
    /// A count of `metric` with `outcome` (if any) for the handle labelled `labels`.
    pub(crate) fn new(labels: &Labels, metric: &'static str, outcome: Option<&'static str>) -> Self {
        Self::labelled(labels, metric, outcome.map(|outcome| ("outcome", outcome)))
    }

    /// A count of `metric` with one more label `(name, value)` (if any).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn labelled(
        labels: &Labels,
        metric: &'static str,
        label: Option<(&'static str, &'static str)>,
    ) -> Self {
        Self {
            count: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            counter: metrics::counter!(metric, labels.and(label)),
        }
    }

    /// Adds `n`.
    pub(crate) fn add(&self, n: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.counter.increment(n);
    }

    /// The handle's count so far.
    pub(crate) fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// Durations of one kind for one handle: a histogram of seconds through the facade (no `stats()`
/// count of their own: the count beside them is).
#[derive(Debug)]
pub(crate) struct Timing {
    #[cfg(feature = "metrics")]
    histogram: metrics::Histogram,
}

impl Timing {
    /// The durations of `metric` with `outcome` (if any) for the handle labelled `labels`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(labels: &Labels, metric: &'static str, outcome: Option<&'static str>) -> Self {
        Self {
            #[cfg(feature = "metrics")]
            histogram: metrics::histogram!(metric, labels.and(outcome.map(|outcome| ("outcome", outcome)))),
        }
    }

    /// Records one duration.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn record(&self, took: std::time::Duration) {
        #[cfg(feature = "metrics")]
        self.histogram.record(took.as_secs_f64());
    }
}

/// A count through the facade only, where a handle keeps no stat of its own (a counter's `next`:
/// its hot path, where even an atomic add costs a quarter of the call).
#[cfg(feature = "metrics")]
#[derive(Debug)]
pub(crate) struct MetricOnly(metrics::Counter);

#[cfg(feature = "metrics")]
impl MetricOnly {
    pub(crate) fn new(labels: &Labels, metric: &'static str, outcome: &'static str) -> Self {
        Self(metrics::counter!(metric, labels.and(Some(("outcome", outcome)))))
    }

    #[inline]
    pub(crate) fn add(&self) {
        self.0.increment(1);
    }
}

/// Every metric's name, as documented in the README's "Metrics" table.
pub mod names {
    /// A counter's indexes: `outcome` `next`, `new_claim`, `repeated_claim`.
    pub const INDEXES: &str = "racefree_indexes_total";
    /// A lock's starts: `outcome` `granted`, `refused` (the key was held).
    pub const STARTS: &str = "racefree_starts_total";
    /// A lock's renewals: `outcome` `renewed`, `not_owner`.
    pub const RENEWALS: &str = "racefree_renewals_total";
    /// A lock's releases: `outcome` `released`, `not_owner`.
    pub const RELEASES: &str = "racefree_releases_total";
    /// A guard's marks: `outcome` `first`, `duplicate`, `out_of_order`.
    pub const MARKS: &str = "racefree_marks_total";
    /// A record space's writes: `outcome` `written`, `conflict`, `stale_token`.
    pub const RECORD_WRITES: &str = "racefree_record_writes_total";
    /// A record space's updates that read and tried again after a conflict.
    pub const RECORD_RETRIES: &str = "racefree_record_retries_total";
    /// A cache's lookups: `outcome` `hit`, `miss` (the loader ran), `coalesced` (waited for a
    /// load already running).
    pub const CACHE_LOOKUPS: &str = "racefree_cache_lookups_total";
    /// A cache's loads that failed.
    pub const CACHE_LOAD_ERRORS: &str = "racefree_cache_load_errors_total";
    /// A cache's entries dropped because they expired.
    pub const CACHE_EXPIRED: &str = "racefree_cache_expired_total";
    /// A lock's kept leases lost: `reason` `not_owner`, `renewals_failed`, `max_hold_reached`
    /// (counted by the keeper of a lease made with the lock's `keeper`).
    pub const LEASES_LOST: &str = "racefree_leases_lost_total";
    /// A lock's keeper renewals, from sending to the reply (histogram, seconds).
    pub const RENEWAL_SECONDS: &str = "racefree_renewal_seconds";
    /// A lock's `acquire` waits, from the first attempt to the grant or the timeout: `outcome`
    /// `granted`, `timed_out` (histogram, seconds).
    pub const ACQUIRE_WAIT_SECONDS: &str = "racefree_acquire_wait_seconds";
    /// The upper bounds of the histograms' buckets, in seconds, as racefree's own exporters (Python,
    /// [`Recorder`](super::Recorder)) use them: give the same to your exporter (for
    /// metrics-exporter-prometheus, `set_buckets`).
    pub const SECONDS_BUCKETS: &[f64] =
        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
    pub use super::ERRORS;

    /// What a metric is: a counter, or a histogram of seconds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Kind {
        /// A count that only grows (`…_total`).
        Counter,
        /// Durations in seconds, in [`SECONDS_BUCKETS`].
        Histogram,
    }

    /// Every metric: its name, kind and one line of help (what an exporter's `HELP` says).
    pub const ALL: &[(&str, Kind, &str)] = &[
        (
            INDEXES,
            Kind::Counter,
            "Indexes a counter handed out, by outcome (next, new_claim, repeated_claim).",
        ),
        (
            STARTS,
            Kind::Counter,
            "Lease grants asked of a start lock, by outcome (granted, refused: the key was held).",
        ),
        (RENEWALS, Kind::Counter, "Lease renewals, by outcome (renewed, not_owner)."),
        (RELEASES, Kind::Counter, "Lease releases, by outcome (released, not_owner)."),
        (
            LEASES_LOST,
            Kind::Counter,
            "Kept leases lost, by reason (not_owner, renewals_failed, max_hold_reached).",
        ),
        (MARKS, Kind::Counter, "Events marked by a guard, by outcome (first, duplicate, out_of_order)."),
        (RECORD_WRITES, Kind::Counter, "Record writes, by outcome (written, conflict, stale_token)."),
        (RECORD_RETRIES, Kind::Counter, "Record updates that read again after a conflict."),
        (
            CACHE_LOOKUPS,
            Kind::Counter,
            "Cache lookups, by outcome (hit, miss: the loader ran, coalesced: waited for a load).",
        ),
        (CACHE_LOAD_ERRORS, Kind::Counter, "Cache loads that failed."),
        (CACHE_EXPIRED, Kind::Counter, "Cache entries dropped because they expired."),
        (
            ERRORS,
            Kind::Counter,
            "Operations that returned an error, by code (timeout: the outcome is unknown).",
        ),
        (RENEWAL_SECONDS, Kind::Histogram, "Seconds from sending a kept lease's renewal to its reply."),
        (
            ACQUIRE_WAIT_SECONDS,
            Kind::Histogram,
            "Seconds an acquire waited, by outcome (granted, timed_out).",
        ),
    ];
}
