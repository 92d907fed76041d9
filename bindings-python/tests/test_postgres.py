"""The PostgreSQL store from Python, on a real server started by the tests."""

import asyncio
import os
import threading
import time

import pytest

import racefree
import racefree.asyncio
from conftest import on_threads


def test_every_primitive_works_on_postgres(postgres_url):
    store = racefree.open(postgres_url)
    assert not store.is_local
    counter = racefree.Counter(store, "task:42")
    assert [counter.claim(f"exec-{i}").index for i in range(3)] == [0, 1, 2]
    assert counter.claim("exec-1").is_new is False
    lock = racefree.StartLock(store, "tasks")
    with lock.hold("report", ttl=5) as lease:
        assert lock.try_start("report", ttl=5) is None
        records = racefree.Records(store, "pods")
        assert records.put("web-1", {"phase": "Running"}, fencing_token=lease.token) == 1
    assert lock.try_start("report", ttl=5) is not None
    guard = racefree.EventGuard(store, "streams", ["started", "ended"])
    with pytest.raises(racefree.OutOfOrder):
        guard.mark("s1", "ended")
    assert guard.mark("s1", "started") is racefree.Mark.FIRST
    assert guard.mark("s1", "started") is racefree.Mark.DUPLICATE
    assert store.inspect()["records"] == [{"space": "pods", "key": "web-1", "version": 1}]


def test_sixteen_threads_one_starter_and_gap_free_indexes(postgres_url):
    store = racefree.open(postgres_url)
    lock, counter = racefree.StartLock(store, "tasks"), racefree.Counter(store, "c")
    leases = on_threads(16, lambda i: lock.try_start("k", ttl=30))
    assert sum(lease is not None for lease in leases) == 1
    indexes = on_threads(16, lambda i: [counter.next() for _ in range(50)])
    assert sorted(i for batch in indexes for i in batch) == list(range(800))


async def test_the_asyncio_coordinator_starts_a_key_once_on_postgres(postgres_url):
    from racefree.asyncio import TaskCoordinator

    coordinator = TaskCoordinator(racefree.open(postgres_url), ttl=5)
    runs = []

    async def work():
        runs.append(time.monotonic())
        await asyncio.sleep(0.2)

    started = await asyncio.gather(*(coordinator.start("job", work) for _ in range(50)))
    await coordinator.wait("job")
    assert started.count(True) == 1 and len(runs) == 1
    await coordinator.aclose()


def test_a_stopped_server_is_backend_unavailable_and_the_store_recovers(tmp_path_factory):
    from conftest import PostgresServer

    server = PostgresServer(str(tmp_path_factory.mktemp("pg-stop")))
    store = racefree.open(server.url(options="timeout_ms=5000"))
    counter = racefree.Counter(store, "c")
    assert counter.next() == 0
    server.stop()
    started = time.monotonic()
    with pytest.raises(racefree.BackendUnavailable):
        counter.next()
    assert time.monotonic() - started < 1.0
    server.start()
    assert counter.next() == 1
    server.stop()


def test_bad_postgres_urls_are_invalid_arguments():
    for url in ["postgres://h/db?sslmode=require", "postgres://h/db?pool_size=0", "postgres://h/db?nope=1"]:
        with pytest.raises(racefree.InvalidArgument):
            racefree.check_url(url)
    with pytest.raises(racefree.InvalidArgument, match="postgres:// and sqlite:///"):
        racefree.migrate("memory://")


def test_migrate_creates_the_schema_a_strict_open_requires(postgres_server):
    postgres_server.psql("CREATE DATABASE py_migrate")
    strict = postgres_server.url("py_migrate", "create_schema=false")
    with pytest.raises(racefree.BackendUnavailable, match="racefree migrate"):
        racefree.open(strict)
    assert racefree.migrate(postgres_server.url("py_migrate")) == 2
    assert racefree.Counter(racefree.open(strict), "c").next() == 0


def test_a_multi_host_url_takes_the_host_that_takes_writes(postgres_server):
    """Several hosts, a primary's standbys among them (``target_session_attrs=read-write``),
    from Python: a first host where no server listens is skipped on every new connection. (A
    standby promoted under a running store is tested in the core, core/tests/postgres_failover.rs.)"""
    from conftest import _free_port

    nobody = _free_port()
    url = (f"postgres://racefree@127.0.0.1:{nobody},127.0.0.1:{postgres_server.port}/postgres"
           f"?target_session_attrs=read-write&timeout_ms=3000&namespace=multihost{os.getpid()}")
    store = racefree.open(url)
    counter = racefree.Counter(store, "jobs")
    assert [counter.next() for _ in range(3)] == [0, 1, 2]

    async def next_async():
        return await racefree.asyncio.Counter(store, "jobs").next()

    assert asyncio.run(next_async()) == 3
    with pytest.raises(racefree.InvalidArgument, match="target_session_attrs"):
        racefree.open(f"postgres://racefree@127.0.0.1:{postgres_server.port}/postgres?target_session_attrs=standby")

