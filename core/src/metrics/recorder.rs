//! An in-process recorder for hosts without an exporter of their own: Python's collectors read
//! its [`snapshot`](Recorder::snapshot). Counters are atomics; histograms keep fixed buckets
//! ([`SECONDS_BUCKETS`](super::names::SECONDS_BUCKETS)), so memory stays bounded however long the
//! process runs (metrics-util's atomic histogram keeps every sample until it is drained).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics::{Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit};
use parking_lot::Mutex;

use super::names::SECONDS_BUCKETS;

/// A [`metrics::Recorder`] that keeps every series in this process, to be read whole.
///
/// ```
/// use racefree::metrics::{Recorder, Value};
///
/// let recorder = Recorder::new();
/// metrics::with_local_recorder(&recorder, || metrics::counter!("racefree_indexes_total").increment(2));
/// let samples = recorder.snapshot();
/// assert_eq!(samples[0].name, "racefree_indexes_total");
/// assert_eq!(samples[0].value, Value::Counter(2));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    series: Arc<Mutex<BTreeMap<Key, Series>>>,
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Arc<AtomicU64>),
    Histogram(Arc<Buckets>),
}

/// One series of a [`Recorder`]: its name, its labels and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name (`racefree_…`).
    pub name: String,
    /// Its labels, in the order they were given.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: Value,
}

/// What a [`Sample`] holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter's total.
    Counter(u64),
    /// A histogram: for each bucket's upper bound (seconds), how many values were at most it
    /// (cumulative, as Prometheus' `le`); then how many values in all and their sum.
    Histogram {
        /// `(upper bound, values ≤ it)` for each of [`SECONDS_BUCKETS`].
        buckets: Vec<(f64, u64)>,
        /// Every value recorded, the ones above the last bound included.
        count: u64,
        /// The sum of the values.
        sum: f64,
    },
}

#[derive(Debug)]
struct Buckets {
    /// One per bound, and one last for the values above every bound.
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Buckets {
    fn new() -> Self {
        Self {
            counts: (0..=SECONDS_BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0),
        }
    }

    fn value(&self) -> Value {
        let mut below = 0;
        let buckets = SECONDS_BUCKETS
            .iter()
            .zip(&self.counts)
            .map(|(bound, count)| {
                below += count.load(Ordering::Relaxed);
                (*bound, below)
            })
            .collect();
        let count = below + self.counts[SECONDS_BUCKETS.len()].load(Ordering::Relaxed);
        Value::Histogram { buckets, count, sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)) }
    }
}

impl HistogramFn for Buckets {
    fn record(&self, value: f64) {
        // The first bound at or above the value (NaN lands above every bound).
        let bucket = SECONDS_BUCKETS.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self.sum_bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            Some((f64::from_bits(bits) + value).to_bits())
        });
    }
}

impl Recorder {
    /// An empty recorder; install it with [`metrics::set_global_recorder`] (a clone keeps the same
    /// series) before making primitives.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Every series so far, sorted by name and labels.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Sample> {
        self.series
            .lock()
            .iter()
            .map(|(key, series)| Sample {
                name: key.name().to_owned(),
                labels: key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect(),
                value: match series {
                    Series::Counter(count) => Value::Counter(count.load(Ordering::Relaxed)),
                    Series::Histogram(buckets) => buckets.value(),
                },
            })
            .collect()
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut series = self.series.lock();
        match series.entry(key.clone()).or_insert_with(|| Series::Counter(Arc::default())) {
            Series::Counter(count) => Counter::from_arc(Arc::clone(count)),
            Series::Histogram(_) => Counter::noop(), // one name, two kinds: the first kind stays
        }
    }

    /// racefree sets no gauges.
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut series = self.series.lock();
        match series.entry(key.clone()).or_insert_with(|| Series::Histogram(Arc::new(Buckets::new()))) {
            Series::Histogram(buckets) => Histogram::from_arc(Arc::clone(buckets)),
            Series::Counter(_) => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_each_value_in_the_first_bucket_at_or_above_it() {
        let recorder = Recorder::new();
        metrics::with_local_recorder(&recorder, || {
            let h = metrics::histogram!("racefree_renewal_seconds", "name" => "tasks");
            for v in [0.0005, 0.001, 0.002, 0.7, 100.0] {
                h.record(v);
            }
            // The same series as a counter: a clash of kinds, ignored.
            metrics::counter!("racefree_renewal_seconds", "name" => "tasks").increment(1);
            metrics::counter!("racefree_indexes_total").increment(3);
        });
        let samples = recorder.snapshot();
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!(samples[0].value, Value::Counter(3));
        let Value::Histogram { buckets, count, sum } = &samples[1].value else { panic!("{samples:?}") };
        assert_eq!(samples[1].labels, vec![("name".to_owned(), "tasks".to_owned())]);
        assert_eq!(*count, 5);
        assert!((sum - 100.7035).abs() < 1e-9, "{sum}");
        let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(at(0.001), Some(2)); // 0.001 itself is "le 0.001"
        assert_eq!(at(0.0025), Some(3));
        assert_eq!(at(0.5), Some(3));
        assert_eq!(at(1.0), Some(4));
        assert_eq!(at(60.0), Some(4)); // 100 s is above every bound, counted only in `count`
    }
}
