"""racefree.asyncio on stores that wait: every operation awaitable, results as the blocking API's,
cancellation that leaves no lease without an owner, a loop that never waits on a frozen server,
and races from OS threads (each with its loop) and processes."""

import asyncio
import multiprocessing
import os
import random
import signal
import threading
import time

import pytest

import racefree
import racefree.asyncio
from conftest import PostgresServer, _free_port, reachable_by_postgres, start_redis
from racefree.asyncio import Counter, EventGuard, Records, StartLock, TaskCoordinator

# Cancellations per operation and store (the floor is 300).
CANCELLATIONS = int(os.environ.get("RACEFREE_CANCELLATIONS", "300"))


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/racefree.db"
    return request.getfixturevalue(f"{request.param}_url")


async def test_every_operation_answers_as_the_blocking_one(url):
    store = racefree.open(url)
    assert not store.is_local
    counter, blocking_counter = Counter(store, "c"), racefree.Counter(store, "c")
    assert [await counter.next(), blocking_counter.next(), await counter.next()] == [0, 1, 2]
    first_claim = await counter.claim("run")
    assert (first_claim.index, first_claim.is_new) == (3, True)
    assert (await counter.claim("run")).is_new is False
    assert await counter.index_of("run") == 3 and await counter.index_of("other") is None
    await counter.set(10)
    assert await counter.peek() == 10 == blocking_counter.peek()
    await counter.reset()
    assert await counter.peek() == 0
    assert counter.stats() == {"new_claims": 1, "repeated_claims": 1}

    guard = EventGuard(store, "g", ["started", "ended"])
    assert await guard.mark("s", "started") is racefree.Mark.FIRST
    assert await guard.mark("s", "started") is racefree.Mark.DUPLICATE
    assert await guard.mark("s", "ended") is racefree.Mark.FIRST
    with pytest.raises(racefree.OutOfOrder):
        await guard.mark("t", "ended")  # before "started"
    assert await guard.is_marked("s", "ended") and await guard.last_marked("s") == "ended"
    assert await guard.forget("s") and await guard.last_marked("s") is None

    lock = StartLock(store, "l")
    lease = await lock.try_start("k", ttl=30)
    assert lease is not None and await lock.try_start("k", ttl=30) is None
    assert await lock.is_held("k") and (await lock.holder("k"))[0] == lease.token
    await lease.renew(ttl=60)
    assert lease.time_left > 30
    await lease.release()
    with pytest.raises(racefree.NotOwner):
        await lease.release()
    assert not await lock.is_held("k") and await lock.holder("k") is None
    assert lock.stats()["granted"] == 1 and lock.stats()["released"] == 1

    records = Records(store, "r")
    assert await records.put("p", {"phase": "Pending"}) == 1
    with pytest.raises(racefree.Conflict):
        await records.put("p", {"phase": "Pending"})

    async def running(current):
        await asyncio.sleep(0)  # a coroutine function, run on the loop between the read and the write
        return {**current, "phase": "Running"}

    assert (await records.update("p", running)).value == {"phase": "Running"}
    assert (await records.update("p", lambda current: {**current, "ready": True})).version == 3
    assert (await records.get("p")).value == {"phase": "Running", "ready": True}
    assert await records.delete("p", expected_version=3) and await records.get("p") is None
    with pytest.raises(racefree.InvalidArgument):
        await records.update("p", running, max_attempts=0)

    operator = racefree.asyncio.Store(store)
    assert await operator.inspect() == store.inspect()
    assert await operator.stats() == store.stats()
    assert await operator.sweep() == 0
    held = await StartLock(operator, "l").try_start("k", ttl=30)  # primitives take either form
    assert (await operator.inspect())["leases"][0]["token"] == held.token
    with pytest.raises(racefree.InvalidKey):
        await counter.claim("")


async def test_updates_from_many_coroutines_lose_nothing(url):
    """64 coroutines add one each through `update` whose change awaits between its read and its
    write: every conflict is retried, no increment is lost."""
    records = Records(racefree.open(url), "r")
    await records.put("n", {"n": 0})

    async def add_one(current):
        await asyncio.sleep(random.uniform(0, 0.002))  # the window a lost update needs
        return {"n": current["n"] + 1}

    await asyncio.gather(*(records.update("n", add_one, max_attempts=1_000) for _ in range(64)))
    assert (await records.get("n")).value == {"n": 64}
    assert records.stats()["retries"] > 0, "no conflict happened: the test proves nothing"


async def test_an_update_may_allow_any_number_of_attempts(url):
    """`max_attempts` up to 2^32 - 1 costs nothing up front: the delays are drawn one at a time
    (they were a list of `max_attempts - 1` floats, 32 GB for the largest)."""
    records = Records(racefree.open(url), "r")

    async def one(current):
        return 1

    assert (await records.update("k", one, max_attempts=2**32 - 1)).value == 1
    delays = racefree._native.AsyncRecords.retry_delays("k", 3)
    assert len(list(delays)) == 2 and next(delays, None) is None


async def _round_trip(call) -> float:
    """The mean time of ``await call(i)``: one round trip of the operation about to be cancelled."""
    started = time.perf_counter()
    for i in range(20):
        await call(i)
    return (time.perf_counter() - started) / 20


async def _yield_for(seconds: float) -> None:
    """Lets the loop run for ``seconds`` (to the microsecond: ``asyncio.sleep`` of less than a
    millisecond sleeps about one, as the selector's timeout is in milliseconds)."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await asyncio.sleep(0)


async def _cancel_many(store, start, check_free) -> int:
    """Starts ``start(key)`` on fresh keys and cancels each after a random delay around one round
    trip; returns how many were cancelled. Then every key must be free (late grants released)."""
    lock = StartLock(store, "tasks")
    round_trip = await _round_trip(lambda i: lock.try_start(f"probe{i}", ttl=1))
    keys = [f"k{i}" for i in range(CANCELLATIONS)]
    cancelled = 0
    for key in keys:
        attempt = asyncio.create_task(start(key))
        await _yield_for(random.uniform(0, 2 * round_trip))
        attempt.cancel()
        try:
            await attempt
        except asyncio.CancelledError:
            cancelled += 1
        await check_free(key, cancelled=False)
    deadline = time.monotonic() + 10
    held = [key for key in keys if await lock.is_held(key)]
    while held and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        held = [key for key in held if await lock.is_held(key)]
    assert not held, f"{len(held)} of {cancelled} cancelled calls left their key held"
    return cancelled


def _server_url(request, server: str, tmp_path) -> str:
    if server == "sqlite":
        return f"sqlite://{tmp_path}/racefree.db"
    return request.getfixturevalue(f"{server}_url")


@pytest.mark.parametrize("operation", ["try_start", "acquire", "hold", "coordinator.start"])
@pytest.mark.parametrize("server", ["sqlite", "redis", "postgres"])
async def test_cancelled_at_any_point_no_lease_is_left_without_an_owner(request, server, operation, tmp_path):
    store = racefree.open(_server_url(request, server, tmp_path))
    lock = StartLock(store, "tasks")
    coordinator = TaskCoordinator(store, ttl=30)
    finished = asyncio.Event()

    async def work():
        await finished.wait()

    async def start(key):
        if operation == "try_start":
            lease = await lock.try_start(key, ttl=30)
            await lease.release()
        elif operation == "acquire":
            lease = await lock.acquire(key, ttl=30, timeout=10)
            await lease.release()
        elif operation == "hold":
            async with lock.hold(key, ttl=30, timeout=10):
                pass
        else:
            assert await coordinator.start(key, work)
            await coordinator.stop(key)

    async def nothing(key, cancelled):
        pass

    cancelled = await _cancel_many(store, start, nothing)
    assert cancelled > CANCELLATIONS // 10, f"only {cancelled} calls were cancelled in flight: the delays miss"
    finished.set()
    await coordinator.aclose()


@pytest.mark.parametrize("server", ["sqlite", "redis", "postgres"])
async def test_a_cancelled_mark_still_delivers_its_event_exactly_once(request, server, tmp_path):
    """A mark cancelled after a random delay around one round trip, then made again on the same
    handle: exactly one of the two is told FIRST, whether the first landed or not, and whether its
    answer was on its way when it was cancelled."""
    store = racefree.open(_server_url(request, server, tmp_path))
    guard = EventGuard(store, "streams", ["started"])
    round_trip = await _round_trip(lambda i: guard.mark(f"probe{i}", "started"))
    lost, twice, cancelled = [], [], 0
    for i in range(CANCELLATIONS):
        stream = f"s{i}"
        attempt = asyncio.create_task(guard.mark(stream, "started"))
        await _yield_for(random.uniform(0, 2 * round_trip))
        attempt.cancel()
        firsts = 0
        try:
            firsts += (await attempt) is racefree.Mark.FIRST
        except asyncio.CancelledError:
            cancelled += 1
        firsts += (await guard.mark(stream, "started")) is racefree.Mark.FIRST
        (lost if firsts == 0 else twice if firsts > 1 else []).append(stream)
    assert not lost and not twice, f"of {cancelled} cancelled marks, {len(lost)} events were never delivered, {len(twice)} twice"
    assert cancelled > CANCELLATIONS // 10, f"only {cancelled} marks were cancelled in flight: the delays miss"


FROZEN_GAP_BOUND = 0.5  # a loaded 2-core machine delays a 10 ms ticker by far less; a frozen loop by the 1 s timeout


def _frozen(pid: int) -> "list[int]":
    """``pid`` and its children (a PostgreSQL server's backends): every process to stop."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [pid, *(int(child) for child in children.read().split())]
    except OSError:
        return [pid]


def _signal(pids: "list[int]", sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # a backend that ended before it was stopped
            pass


@pytest.mark.parametrize("server", ["redis", "postgres"])
async def test_a_frozen_server_never_stalls_the_loop(tmp_path, server):
    """The server is stopped (SIGSTOP, a PostgreSQL server with all its backends) with calls of
    every async form in flight and more made while it is frozen: each fails with a typed error
    after the store's timeout, and a 10 ms ticker on the loop keeps ticking throughout. Then the
    server resumes and the store recovers."""
    if server == "redis":
        port = _free_port()
        process = start_redis(port, str(tmp_path))
        url, stop = f"redis://127.0.0.1:{port}/0?timeout_ms=1000", lambda: (os.kill(process.pid, signal.SIGTERM), process.wait(timeout=10))
    else:
        postgres = PostgresServer(reachable_by_postgres(str(tmp_path)))
        process = postgres.process
        url, stop = postgres.url(options="timeout_ms=1000&pool_size=4"), postgres.stop
    stopped: "list[int]" = []
    try:
        store = racefree.open(url)
        counter, guard = Counter(store, "c"), EventGuard(store, "g", ["started", "ended"])
        lock, records, coordinator = StartLock(store, "l"), Records(store, "r"), TaskCoordinator(store, ttl=30)
        held = await lock.try_start("held", ttl=30)
        await asyncio.gather(*(counter.next() for _ in range(8)))  # connected before the freeze

        async def idle():
            await asyncio.sleep(3600)

        calls = {
            "counter.next": counter.next,
            "counter.claim": lambda: counter.claim("e"),
            "counter.peek": counter.peek,
            "guard.mark": lambda: guard.mark("s", "started"),
            "guard.is_marked": lambda: guard.is_marked("s", "started"),
            "lock.try_start": lambda: lock.try_start("k", ttl=30),
            "lock.acquire": lambda: lock.acquire("k", ttl=30, timeout=2),
            "lock.is_held": lambda: lock.is_held("k"),
            "lock.holder": lambda: lock.holder("k"),
            "lease.renew": lambda: held.renew(ttl=30),
            "records.get": lambda: records.get("p"),
            "records.put": lambda: records.put("p", 1),
            "records.update": lambda: records.update("p", lambda v: 1),
            "coordinator.start": lambda: coordinator.start("t", idle),
            "coordinator.is_running": lambda: coordinator.is_running("t"),
        }
        gaps = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        stopped = _frozen(process.pid)
        _signal(stopped, signal.SIGSTOP)
        try:
            started = time.monotonic()
            outcomes = await asyncio.gather(*(call() for call in calls.values()), return_exceptions=True)
            waited = time.monotonic() - started
        finally:
            _signal(stopped, signal.SIGCONT)
        await asyncio.sleep(0.05)
        ticking.cancel()
        failed = {name: type(outcome).__name__ for name, outcome in zip(calls, outcomes)}
        untyped = {name: kind for name, kind in failed.items() if kind not in ("BackendUnavailable", "Timeout")}
        assert not untyped, f"calls on a frozen server ended otherwise than with a typed error: {untyped}"
        assert waited < 10, f"calls on a frozen server took {waited:.1f} s"
        assert max(gaps) < FROZEN_GAP_BOUND, f"the loop stood still for {max(gaps) * 1000:.0f} ms"
        assert len(gaps) > 20, "the ticker did not run"
        deadline = time.monotonic() + 10
        while True:  # connections cut by the timeouts are made again
            try:
                assert await counter.next() >= 1
                break
            except (racefree.BackendUnavailable, racefree.Timeout):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await coordinator.aclose()
    finally:
        _signal(stopped, signal.SIGCONT)
        stop()


def _loop_in_thread(url, barrier, results, who):
    async def race():
        store = racefree.open(url)
        coordinator = TaskCoordinator(store, name="raced", ttl=30)
        counter = Counter(store, "raced")
        release = asyncio.Event()

        async def work():
            await release.wait()

        barrier.wait()
        started = await asyncio.gather(*(coordinator.start("one", work) for _ in range(16)))
        indexes = await asyncio.gather(*(counter.next() for _ in range(200)))
        barrier.wait()  # every loop has tried before any winner lets go
        release.set()
        await coordinator.aclose()
        results[who] = (started.count(True), indexes)

    asyncio.run(race())


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_loops_on_os_threads_race_one_key_and_one_counter(request, server):
    url = request.getfixturevalue(f"{server}_url")
    loops = 4
    barrier, results = threading.Barrier(loops), {}
    threads = [threading.Thread(target=_loop_in_thread, args=(url, barrier, results, i)) for i in range(loops)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == loops, "a loop did not finish"
    assert sum(won for won, _ in results.values()) == 1, "not exactly one start across the loops"
    indexes = sorted(i for _, batch in results.values() for i in batch)
    assert indexes == list(range(loops * 200))


def _process_counts(url, start, queue):
    async def count():
        counter = Counter(racefree.open(url), "processes")
        start.wait()
        return await asyncio.gather(*(counter.next() for _ in range(500)))

    queue.put(asyncio.run(count()))


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_processes_with_a_loop_each_share_one_counter(request, server):
    url = request.getfixturevalue(f"{server}_url")
    context = multiprocessing.get_context("fork")
    # The parent has used the async store before it forks: children must open their own.
    asyncio.run(Counter(racefree.open(url), "warm").next())
    start, queue = context.Event(), context.Queue()
    children = [context.Process(target=_process_counts, args=(url, start, queue)) for _ in range(3)]
    for child in children:
        child.start()
    start.set()
    indexes = sorted(i for _ in children for i in queue.get(timeout=60))
    for child in children:
        child.join(10)
    assert indexes == list(range(1_500))


async def test_the_cache_loads_once_for_concurrent_callers_without_blocking_the_loop():
    cache = racefree.asyncio.Cache()
    loads = 0

    async def load():
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.02)  # other callers arrive while it loads
        return {"engines": ["a"]}

    values = await asyncio.gather(*(cache.get_or_load("engines", 60, load) for _ in range(32)))
    assert loads == 1 and all(value == {"engines": ["a"]} for value in values)
    assert cache.stats()["coalesced"] == 31 and len(cache) == 1
    assert await cache.invalidate("engines") and not await cache.invalidate("engines")
    assert await cache.sweep() == 0
    shared = racefree.Cache()
    shared.get_or_load("k", 60, lambda: 1)
    assert await racefree.asyncio.Cache(cache=shared).get_or_load("k", 60, load) == 1
    with pytest.raises(TypeError):
        racefree.asyncio.Cache(cache=shared, max_entries=3)
