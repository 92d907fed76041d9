"""The Redis store from Python: threads, asyncio that never blocks the loop on Redis I/O, calls that
release the GIL while they wait, and a server that goes away (processes: test_sqlite, test_django_processes)."""

import asyncio
import functools
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import racefree
import racefree.asyncio
from conftest import _free_port, on_threads, start_redis, start_redis_sentinel
from racefree.asyncio import StartLock, TaskCoordinator


def test_threads_share_one_counter(redis_url):
    store = racefree.open(redis_url)
    assert not store.is_local

    def work(_):
        counter = racefree.Counter(store, "task:1")
        return [counter.next() for _ in range(500)]

    indexes = sorted(i for batch in on_threads(8, work) for i in batch)
    assert indexes == list(range(4_000))


# The server's stall in the tests below, and the longest gap they accept: a stall on the loop's
# (or the GIL holder's) thread shows as a gap of the whole stall, while a loaded 2-core machine
# can delay a ticker by a few hundred milliseconds on its own; half the stall tells them apart.
STALL = 1.0
GAP_BOUND = STALL / 2


def _stall(url: str, seconds: float) -> socket.socket:
    """Sends ``DEBUG SLEEP`` on a connection of its own: the server stops answering everyone for
    ``seconds``, starting now (the send is local and immediate; the reply is never awaited)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    connection = socket.create_connection((host, int(port)))
    parts = ["DEBUG", "SLEEP", str(seconds)]
    connection.sendall(("*3\r\n" + "".join(f"${len(p)}\r\n{p}\r\n" for p in parts)).encode())
    return connection


async def _max_tick_gap(during) -> float:
    """The longest the loop went without running a 5 ms ticker while ``during()`` ran."""
    gaps = []

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    await during()
    await asyncio.sleep(0.02)  # the ticker's first step after `during` records the last gap
    tick.cancel()
    return max(gaps)


async def test_redis_calls_never_block_the_event_loop(redis_url, redis_server):
    store = racefree.open(redis_url)
    lock = StartLock(store, "tasks")
    coordinator = TaskCoordinator(store, ttl=30)
    runs = 0
    all_started = asyncio.Event()

    async def task():
        nonlocal runs
        runs += 1
        await all_started.wait()

    async def burst():
        # The server stalls at the start of the burst (DEBUG SLEEP from another connection):
        # every call waiting on it waits off the loop.
        stall = _stall(redis_server, STALL)

        async def worker(i):
            started = await coordinator.start("tests.ExampleTask:1", task)
            for _ in range(20):
                async with lock.hold(f"k{i % 4}", ttl=5, timeout=10):
                    await asyncio.sleep(0)
            return started

        started = await asyncio.gather(*(worker(i) for i in range(32)))
        all_started.set()
        await coordinator.wait("tests.ExampleTask:1")
        stall.close()
        assert started.count(True) == 1

    gap = await _max_tick_gap(burst)
    assert gap < GAP_BOUND, f"the loop stood still for {gap * 1000:.0f} ms during a {STALL:.0f} s server stall"
    assert runs == 1 and not await coordinator.is_running("tests.ExampleTask:1")

    # The control: the same stall, with a synchronous call on the loop, does freeze the ticker.
    counter = racefree.Counter(store, "task:1")

    async def blocking():
        stall = _stall(redis_server, STALL)
        await asyncio.sleep(0.05)
        counter.next()  # waits for the stalled server on the loop's own thread
        stall.close()

    gap = await _max_tick_gap(blocking)
    assert gap >= GAP_BOUND, f"a blocking call left the loop free ({gap * 1000:.0f} ms): the test cannot fail"


def test_a_stopped_server_fails_promptly_and_recovers(tmp_path):
    port = _free_port()

    def start():
        return start_redis(port, str(tmp_path), "--appendonly", "yes", "--appendfsync", "always")

    server = start()
    try:
        store = racefree.open(f"redis://127.0.0.1:{port}/0?timeout_ms=500")
        counter = racefree.Counter(store, "task:1")
        assert counter.next() == 0
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        started = time.monotonic()
        # The first request goes out on the pooled connection the server closed while idle:
        # written, then no reply, so its outcome is unknown. Then nothing can connect.
        with pytest.raises(racefree.Timeout):
            counter.next()
        for _ in range(3):
            with pytest.raises(racefree.BackendUnavailable) as caught:
                counter.next()
            assert caught.value.code == "backend_unavailable"
            assert isinstance(caught.value, ConnectionError)
        assert time.monotonic() - started < 2
        server = start()
        assert counter.next() == 1, "a failed call recorded something, or the store did not recover"
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def test_a_server_killed_under_a_written_request_is_a_timeout(tmp_path):
    """A request written to a server that then dies may have run: ``Timeout`` (the outcome
    unknown), never ``BackendUnavailable`` (which says it did not run), sync and asyncio. The
    server is frozen (SIGSTOP) so the request is surely written and unanswered, then killed well
    inside the request timeout."""
    for mode in ("sync", "asyncio"):
        port = _free_port()
        server = start_redis(port, str(tmp_path))
        try:
            url = f"redis://127.0.0.1:{port}/0?timeout_ms=10000"
            if mode == "sync":
                counter = racefree.Counter(racefree.open(url), "task:1")
                call = counter.next
            else:
                loop = asyncio.new_event_loop()
                counter = racefree.asyncio.Counter(racefree.open(url), "task:1")

                def call():
                    return loop.run_until_complete(counter.next())

            assert call() == 0
            os.kill(server.pid, signal.SIGSTOP)
            killer = threading.Timer(0.3, os.kill, (server.pid, signal.SIGKILL))
            killer.start()
            started = time.monotonic()
            with pytest.raises(racefree.Timeout) as caught:
                call()
            waited = time.monotonic() - started
            killer.join()
            assert caught.value.code == "timeout"
            assert waited < 5, f"{mode}: the request timeout, not the close, ended the call ({waited:.1f} s)"
            if mode == "asyncio":
                loop.close()
        finally:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


BLOCKING_OPERATIONS = {
    "counter.next": lambda s: racefree.Counter(s, "c").next,
    "counter.claim": lambda s: functools.partial(racefree.Counter(s, "c").claim, "e"),
    "counter.peek": lambda s: racefree.Counter(s, "c").peek,
    "guard.mark": lambda s: functools.partial(racefree.EventGuard(s, "g", ["a"]).mark, "s", "a"),
    "guard.is_marked": lambda s: functools.partial(racefree.EventGuard(s, "g", ["a"]).is_marked, "s", "a"),
    "lock.try_start": lambda s: functools.partial(racefree.StartLock(s, "l").try_start, "k", ttl=5),
    "lock.is_held": lambda s: functools.partial(racefree.StartLock(s, "l").is_held, "k"),
    "records.put": lambda s: functools.partial(racefree.Records(s, "r").put, "k", 1),
    "records.get": lambda s: functools.partial(racefree.Records(s, "r").get, "k"),
    "store.stats": lambda s: s.stats,
}


@pytest.mark.parametrize("name", BLOCKING_OPERATIONS)
def test_waiting_on_redis_releases_the_gil(redis_url, redis_server, name):
    call = BLOCKING_OPERATIONS[name](racefree.open(redis_url))
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    thread = threading.Thread(target=ticker)
    stall = _stall(redis_server, STALL)
    time.sleep(0.05)  # the server is surely asleep before the call is sent
    thread.start()
    started = time.monotonic()
    call()  # waits for the stalled server; another Python thread must run meanwhile
    waited = time.monotonic() - started
    stop.set()
    thread.join()
    stall.close()
    assert waited > GAP_BOUND, f"{name} did not wait for the stalled server ({waited * 1000:.0f} ms)"
    # No second tick at all: the ticker was starved for the whole wait.
    gap = max((b - a for a, b in zip(ticks, ticks[1:])), default=waited)
    assert gap < GAP_BOUND, f"{name} held the GIL for {gap * 1000:.0f} ms while waiting on Redis"


def test_a_sentinel_url_reaches_the_primary_it_names(redis_server, tmp_path):
    """``redis+sentinel://`` from Python, sync and asyncio: the store finds the session's server
    through a real sentinel and shares its keys with a store opened on the server directly. (The
    failover itself is tested in the core, core/tests/redis_sentinel.rs.)"""
    primary_port = int(redis_server.rsplit(":", 1)[1].split("/", 1)[0])
    port = _free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\nsentinel monitor orders 127.0.0.1 {primary_port} 1\n")
    sentinel = start_redis_sentinel(port, str(config))
    try:
        namespace = f"sentinel{os.getpid()}"
        through_sentinel = racefree.open(f"redis+sentinel://127.0.0.1:{port}/orders/0?namespace={namespace}")
        direct = racefree.open(f"{redis_server}?namespace={namespace}")
        assert racefree.Counter(through_sentinel, "c").next() == 0
        assert racefree.Counter(direct, "c").next() == 1

        async def next_async():
            return await racefree.asyncio.Counter(through_sentinel, "c").next()

        assert asyncio.run(next_async()) == 2
        with pytest.raises(racefree.InvalidArgument):
            racefree.open(f"redis+sentinel://127.0.0.1:{port}")  # no master named
        with pytest.raises(racefree.BackendUnavailable, match="sentinel"):
            racefree.open(f"redis+sentinel://127.0.0.1:{port}/no-such-master?timeout_ms=500")
    finally:
        os.kill(sentinel.pid, signal.SIGTERM)
        sentinel.wait(timeout=10)


def test_replicas_makes_each_write_wait_for_a_replica(tmp_path):
    """``replicas=1`` from Python, sync and asyncio, on a primary and a replica started here: the
    writes go through while the replica acknowledges them; with the replica frozen (SIGSTOP) a
    write fails with ``Timeout`` and a start with ``BackendUnavailable``, its grant released.
    (Every write and the tokio store's own connections are tested in the core,
    core/tests/redis_replicas.rs.)"""
    primary_port, replica_port = _free_port(), _free_port()
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    primary = start_redis(primary_port, str(tmp_path / "p"))
    replica = start_redis(replica_port, str(tmp_path / "r"), "--replicaof", "127.0.0.1", str(primary_port))
    try:
        deadline = time.monotonic() + 30
        with socket.create_connection(("127.0.0.1", replica_port)) as probe:
            while b"master_link_status:up" not in _info_replication(probe):
                assert time.monotonic() < deadline, "the replica did not connect"
                time.sleep(0.02)
        # The replica's "link up" can come before the primary counts it for WAIT.
        with socket.create_connection(("127.0.0.1", primary_port)) as probe:
            while not _counted_by_primary(_info_replication(probe)):
                assert time.monotonic() < deadline, "the primary did not count the replica"
                time.sleep(0.02)
        url = f"redis://127.0.0.1:{primary_port}/0?replicas=1&replicas_timeout_ms=400&timeout_ms=3000"
        store = racefree.open(url)
        counter, lock = racefree.Counter(store, "jobs"), racefree.StartLock(store, "tasks")
        assert counter.next() == 0

        async def next_async():
            return await racefree.asyncio.Counter(store, "jobs").next()

        assert asyncio.run(next_async()) == 1

        os.kill(replica.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(racefree.Timeout):
                counter.next()
            assert 0.4 <= time.monotonic() - started < 2.5
            with pytest.raises(racefree.Timeout):
                asyncio.run(next_async())
            with pytest.raises(racefree.BackendUnavailable, match="0 of 1 replicas"):
                lock.try_start("k", ttl=30)
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        assert racefree.StartLock(racefree.open(f"redis://127.0.0.1:{primary_port}/0"), "tasks").holder("k") is None
        assert lock.try_start("k", ttl=30) is not None

        with pytest.raises(racefree.InvalidArgument, match="below timeout_ms"):
            racefree.open(f"redis://127.0.0.1:{primary_port}/0?replicas=1&replicas_timeout_ms=5000")
    finally:
        for server in (replica, primary):
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=10)


def _info_replication(connection: socket.socket) -> bytes:
    connection.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\nreplication\r\n")
    return connection.recv(65536)


def _counted_by_primary(info: bytes) -> bool:
    """Whether the primary's ``INFO replication`` shows its replica online, having acknowledged
    the primary's whole replication stream so far."""
    offset = re.search(rb"master_repl_offset:(\d+)", info)
    replica = re.search(rb"slave0:[^\r\n]*", info)
    return (
        offset is not None
        and replica is not None
        and b"state=online" in replica.group(0)
        and b"offset=" + offset.group(1) + b"," in replica.group(0)
    )


def test_a_cluster_url_routes_every_primitive_to_its_slots_primary(tmp_path):
    """``redis+cluster://`` from Python, sync and asyncio, on a cluster of 3 primaries started
    here: 30 counters spread over the three, each reachable from both forms, a lease held through
    one and seen through the other, and ``inspect`` walking every primary. (Migrations, frozen and
    killed nodes are tested in the core, core/tests/redis_cluster.rs.)"""
    ports = [_free_port() for _ in range(3)]
    servers = []
    for port in ports:
        (tmp_path / str(port)).mkdir()
        servers.append(
            # The bus on a free port of its own (the default, port + 10000, may pass 65535).
            start_redis(port, str(tmp_path / str(port)), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-port", str(_free_port()))
        )
    try:
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        url = f"redis+cluster://{','.join(f'127.0.0.1:{p}' for p in ports)}?namespace=py{os.getpid()}"
        deadline = time.monotonic() + 30
        while True:  # the nodes agree on the slots a moment after the create
            try:
                store = racefree.open(url)
                racefree.Counter(store, "probe").next()
                break
            except racefree.BackendUnavailable:
                assert time.monotonic() < deadline, "the cluster did not come up"
                time.sleep(0.1)
        for i in range(30):
            assert racefree.Counter(store, f"task:{i}").next() == 0

        async def from_asyncio():
            astore = racefree.asyncio.Store(racefree.open(url))
            indexes = [await racefree.asyncio.Counter(astore, f"task:{i}").next() for i in range(30)]
            lease = await racefree.asyncio.StartLock(astore, "jobs").try_start("k", ttl=30)
            return indexes, lease

        indexes, lease = asyncio.run(from_asyncio())
        assert indexes == [1] * 30
        assert lease is not None and racefree.StartLock(store, "jobs").holder("k") is not None
        counters = {c["counter"] for c in store.inspect()["counters"]}
        assert {f"task:{i}" for i in range(30)} <= counters, "inspect walks every primary"
        with pytest.raises(racefree.InvalidArgument, match="one database"):
            racefree.open(f"redis+cluster://127.0.0.1:{ports[0]}/1")
    finally:
        for server in servers:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
