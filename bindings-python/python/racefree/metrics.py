"""What racefree counts, for the tools operators watch: a Prometheus collector and OpenTelemetry
observable instruments.

Every primitive of this process counts into one in-process registry (the Rust core's, installed
when ``racefree`` is imported), whatever its store and whether it is sync or asyncio; the same
metric names and labels as in Rust and JavaScript (the README's "Metrics" table). Nothing is
registered anywhere until the application asks::

    from prometheus_client import REGISTRY
    from racefree.metrics import PrometheusCollector

    REGISTRY.register(PrometheusCollector())

or, with OpenTelemetry, ``racefree.metrics.observe(meter)``. Both libraries are optional extras
(``pip install racefree[prometheus]``, ``racefree[opentelemetry]``); importing this module needs
neither. Labels: ``primitive``, ``name`` (the lock's, guard's or record space's; never a key),
``backend``, and ``outcome``, ``reason`` or ``code``.
"""

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Tuple, Union

from racefree import _native

__all__ = ["Histogram", "Metric", "PrometheusCollector", "Sample", "catalogue", "observe", "samples"]


@dataclass(frozen=True)
class Histogram:
    """A histogram's state: cumulative ``(upper_bound_seconds, count)`` buckets, then how many
    values in all (those above the last bound included) and their sum in seconds."""

    buckets: List[Tuple[float, int]]
    count: int
    sum: float


class Sample(NamedTuple):
    """One series: the metric's name, its labels, and a counter's total or a histogram."""

    name: str
    labels: Dict[str, str]
    value: Union[int, Histogram]


class Metric(NamedTuple):
    """One metric racefree emits: its name, ``"counter"`` or ``"histogram"``, and its help."""

    name: str
    kind: str
    help: str


def catalogue() -> List[Metric]:
    """Every metric racefree emits, whether or not anything has counted it yet."""
    metrics, _ = _native.metric_catalogue()
    return [Metric(*metric) for metric in metrics]


def samples() -> List[Sample]:
    """Every series of this process so far, sorted by name and labels."""
    result = []
    for name, labels, value in _native.metrics_snapshot():
        if isinstance(value, tuple):
            buckets, count, total = value
            result.append(Sample(name, labels, Histogram([(bound, n) for bound, n in buckets], count, total)))
        else:
            result.append(Sample(name, labels, value))
    return result


def _by_metric() -> Iterator[Tuple[Metric, List[Sample]]]:
    taken: Dict[str, List[Sample]] = {}
    for sample in samples():
        taken.setdefault(sample.name, []).append(sample)
    for metric in catalogue():
        yield metric, taken.get(metric.name, [])


class PrometheusCollector:
    """A ``prometheus_client`` collector of every racefree metric of this process: register it
    once (``REGISTRY.register(PrometheusCollector())``); each scrape reads the counts then."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        for metric, series in _by_metric():
            # One family has one set of label names: a series without one of them leaves it empty,
            # which Prometheus reads as absent.
            label_names = sorted({label for sample in series for label in sample.labels})
            if metric.kind == "counter":
                family: Any = CounterMetricFamily(metric.name, metric.help, labels=label_names)
                for sample in series:
                    values = [sample.labels.get(label, "") for label in label_names]
                    family.add_metric(values, sample.value)
            else:
                family = HistogramMetricFamily(metric.name, metric.help, labels=label_names, unit="seconds")
                for sample in series:
                    histogram = sample.value
                    assert isinstance(histogram, Histogram)
                    buckets = [(_bound(bound), float(n)) for bound, n in histogram.buckets]
                    buckets.append(("+Inf", float(histogram.count)))
                    values = [sample.labels.get(label, "") for label in label_names]
                    family.add_metric(values, buckets, histogram.sum)
            yield family

    def describe(self) -> Iterable[Any]:
        """Nothing ahead of a scrape: the series appear as primitives are made."""
        return []


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def observe(meter: Any) -> None:
    """Creates OpenTelemetry observable counters on ``meter`` (the application's, from
    ``opentelemetry.metrics.get_meter``) that read racefree's counts at each collection: one per
    counter, and for each histogram its ``…_count`` and ``…_sum`` (OpenTelemetry has no observable
    histogram). Call it once per meter."""
    from opentelemetry.metrics import CallbackOptions, Observation

    def reading(name: str, part: str) -> Any:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            for sample in samples():
                if sample.name != name:
                    continue
                value = sample.value
                if isinstance(value, Histogram):
                    yield Observation(value.count if part == "count" else value.sum, dict(sample.labels))
                else:
                    yield Observation(value, dict(sample.labels))

        return callback

    for metric in catalogue():
        if metric.kind == "counter":
            meter.create_observable_counter(metric.name, callbacks=[reading(metric.name, "")], description=metric.help)
        else:
            for part, unit in (("count", "1"), ("sum", "s")):
                meter.create_observable_counter(
                    f"{metric.name}_{part}", callbacks=[reading(metric.name, part)], unit=unit, description=metric.help
                )
