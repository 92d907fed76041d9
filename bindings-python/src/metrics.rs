//! The process's metrics for `racefree.metrics`: core's in-process recorder, installed when the
//! module loads (before any primitive is made, so every handle counts), read whole by the
//! Prometheus and OpenTelemetry collectors.

use std::sync::LazyLock;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use racefree::metrics::{names, Recorder, Value};

static RECORDER: LazyLock<Recorder> = LazyLock::new(Recorder::new);

/// Installs the recorder; another one already installed in this process (by a Rust host
/// embedding Python) keeps its place, and the snapshot stays empty.
pub(crate) fn install() {
    let _ = metrics::set_global_recorder(RECORDER.clone());
}

/// Every series so far: `(name, labels, value)`, where `value` is a counter's `int` or a
/// histogram's `(buckets, count, sum)` with cumulative `(upper_bound, count)` buckets.
#[pyfunction]
pub(crate) fn metrics_snapshot(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyTuple>>> {
    RECORDER
        .snapshot()
        .into_iter()
        .map(|sample| {
            let labels = PyDict::new(py);
            for (key, value) in &sample.labels {
                labels.set_item(key, value)?;
            }
            let value = match sample.value {
                Value::Counter(count) => count.into_pyobject(py)?.into_any(),
                Value::Histogram { buckets, count, sum } => {
                    (buckets, count, sum).into_pyobject(py)?.into_any()
                }
            };
            PyTuple::new(py, [sample.name.into_pyobject(py)?.into_any(), labels.into_any(), value])
        })
        .collect()
}

/// Every metric racefree emits: `(name, "counter" | "histogram", help)`; and the histograms'
/// bucket bounds, in seconds.
#[pyfunction]
pub(crate) fn metric_catalogue() -> (Vec<(&'static str, &'static str, &'static str)>, Vec<f64>) {
    let all = names::ALL
        .iter()
        .map(|(name, kind, help)| {
            let kind = match kind {
                names::Kind::Counter => "counter",
                names::Kind::Histogram => "histogram",
            };
            (*name, kind, *help)
        })
        .collect();
    (all, names::SECONDS_BUCKETS.to_vec())
}
