"""racefree.metrics: every count reaches the process's registry with its labels and moves by
exactly what a scripted run did; the Prometheus collector and the OpenTelemetry instruments show
the same numbers; a lease lost to a frozen Redis server counts one ``renewals_failed``.

The registry is the process's, shared by every test: each test names its own primitives and
compares only their series (a counter, named by its key, has no name label: its series are read
as differences)."""

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Dict, Union

import pytest

import racefree
import racefree.asyncio
import racefree.metrics
from racefree.metrics import Histogram
from conftest import _free_port, start_redis


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def series(metric: str, **labels: str) -> Dict[str, Union[int, Histogram]]:
    """The series of ``metric`` that carry every one of ``labels``, by their other labels."""
    found: Dict[str, Union[int, Histogram]] = {}
    for sample in racefree.metrics.samples():
        if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items()):
            rest = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k not in labels)
            found[rest] = sample.value
    return found


def indexes(**labels: str) -> Dict[str, int]:
    return {k: int(v) for k, v in series("racefree_indexes_total", primitive="counter", backend="memory", **labels).items()}  # type: ignore[call-overload]


def test_each_count_moves_by_what_the_run_did(store: racefree.Store) -> None:
    lock_name, guard_name, records_name = unique("tasks"), unique("streams"), unique("pods")
    before = indexes()
    counter = racefree.Counter(store, "task:42")
    for _ in range(3):
        counter.next()
    counter.claim("exec-a")
    counter.claim("exec-a")
    lock = racefree.StartLock(store, lock_name)
    lease = lock.try_start("k", ttl=30)
    assert lease is not None and lock.try_start("k", ttl=30) is None
    lease.renew(ttl=30)
    lease.release()
    with pytest.raises(racefree.NotOwner):
        lease.release()
    guard = racefree.EventGuard(store, guard_name, ["started", "ended"])
    guard.mark("s", "started")
    guard.mark("s", "started")
    with pytest.raises(racefree.OutOfOrder):
        guard.mark("t", "ended")
    records = racefree.Records(store, records_name)
    records.put("p", 1)
    with pytest.raises(racefree.Conflict):
        records.put("p", 2)

    after = indexes()
    moved = {k: after[k] - before.get(k, 0) for k in after}
    assert moved == {"outcome=next": 3, "outcome=new_claim": 1, "outcome=repeated_claim": 1}
    assert series("racefree_starts_total", name=lock_name) == {
        "backend=memory,outcome=granted,primitive=start_lock": 1,
        "backend=memory,outcome=refused,primitive=start_lock": 1,
    }
    assert series("racefree_renewals_total", name=lock_name, outcome="renewed") == {"backend=memory,primitive=start_lock": 1}
    assert series("racefree_releases_total", name=lock_name) == {
        "backend=memory,outcome=not_owner,primitive=start_lock": 1,
        "backend=memory,outcome=released,primitive=start_lock": 1,
    }
    assert series("racefree_marks_total", name=guard_name) == {
        "backend=memory,outcome=duplicate,primitive=event_guard": 1,
        "backend=memory,outcome=first,primitive=event_guard": 1,
        "backend=memory,outcome=out_of_order,primitive=event_guard": 1,
    }
    assert series("racefree_record_writes_total", name=records_name, outcome="conflict") == {"backend=memory,primitive=records": 1}
    assert lock.stats()["rejected_not_owner"] == 1


def test_the_prometheus_collector_shows_the_same_numbers(store: racefree.Store) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    name = unique("jobs")
    racefree.Counter(store, "task:1").next()
    lock = racefree.StartLock(store, name)
    with pytest.raises(racefree.Timeout):
        held = lock.try_start("k", ttl=30)
        assert held is not None
        lock.acquire("k", ttl=30, timeout=0.05)
    registry = CollectorRegistry()
    registry.register(racefree.metrics.PrometheusCollector())
    text = generate_latest(registry).decode()
    assert "# HELP racefree_starts_total Lease grants" in text
    assert "# TYPE racefree_acquire_wait_seconds histogram" in text
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("name") == name
    }

    def at(metric: str, **labels: str) -> float:
        return found[(metric, tuple(sorted({"backend": "memory", "name": name, "primitive": "start_lock", **labels}.items())))]

    assert at("racefree_starts_total", outcome="granted") == 1
    assert at("racefree_starts_total", outcome="refused") >= 1  # each attempt of the wait
    assert at("racefree_acquire_wait_seconds_count", outcome="timed_out") == 1
    assert at("racefree_acquire_wait_seconds_sum", outcome="timed_out") >= 0.05
    assert at("racefree_acquire_wait_seconds_bucket", outcome="timed_out", le="0.025") == 0
    assert at("racefree_acquire_wait_seconds_bucket", outcome="timed_out", le="+Inf") == 1
    # A counter has no name label (named by its key): its family has none either.
    assert 'racefree_indexes_total{backend="memory",outcome="next",primitive="counter"}' in text


def test_opentelemetry_observes_the_same_numbers(store: racefree.Store) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    name = unique("marks")
    guard = racefree.EventGuard(store, name, ["started"])
    guard.mark("a", "started")
    guard.mark("a", "started")
    guard.mark("b", "started")
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    racefree.metrics.observe(provider.get_meter("test"))
    data = reader.get_metrics_data()
    points = {
        (metric.name, tuple(sorted(point.attributes.items()))): point.value
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
        if point.attributes.get("name") == name
    }
    base = (("backend", "memory"), ("name", name))
    assert points[("racefree_marks_total", (*base, ("outcome", "first"), ("primitive", "event_guard")))] == 2
    assert points[("racefree_marks_total", (*base, ("outcome", "duplicate"), ("primitive", "event_guard")))] == 1
    names = {metric.name for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics}
    assert {"racefree_renewal_seconds_count", "racefree_renewal_seconds_sum"} <= names
    provider.shutdown()


async def test_an_asyncio_acquire_is_timed_until_its_grant() -> None:
    store = racefree.asyncio.Store(racefree.open("memory://"))
    name = unique("waits")
    lock = racefree.asyncio.StartLock(store, name)
    lease = await lock.try_start("k", ttl=30)
    assert lease is not None

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        await lease.release()

    releasing = asyncio.create_task(release_soon())
    await lock.acquire("k", ttl=30, timeout=5)
    await releasing
    (histogram,) = series("racefree_acquire_wait_seconds", name=name, outcome="granted").values()
    assert isinstance(histogram, Histogram)
    assert histogram.count == 1 and histogram.sum >= 0.04


async def test_a_lease_lost_to_a_frozen_redis_counts_one_renewals_failed(tmp_path: Path) -> None:
    port = _free_port()
    server = start_redis(port, str(tmp_path), "--appendonly", "no")
    try:
        store = racefree.open(f"redis://127.0.0.1:{port}/0?timeout_ms=200&namespace={unique('ns')}")
        name = unique("frozen")
        coordinator = racefree.asyncio.TaskCoordinator(store, name=name, ttl=0.6)
        cancelled = asyncio.Event()

        async def work() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        assert await coordinator.start("k", work)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            await asyncio.wait_for(cancelled.wait(), timeout=10)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        await asyncio.sleep(0.1)
        lost = series("racefree_leases_lost_total", name=name)
        assert lost == {
            "backend=redis,primitive=start_lock,reason=max_hold_reached": 0,
            "backend=redis,primitive=start_lock,reason=not_owner": 0,
            "backend=redis,primitive=start_lock,reason=renewals_failed": 1,
        }
        assert series("racefree_errors_total", name=name, code="timeout"), "the renewals timed out"
        await coordinator.aclose()
    finally:
        os.kill(server.pid, signal.SIGCONT)
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_the_catalogue_names_every_metric_of_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for metric in racefree.metrics.catalogue():
        assert f"`{metric.name}`" in readme, metric.name
