import asyncio
import threading
import time

import pytest

import racefree
from racefree.asyncio import get_or_load
from conftest import on_threads


def test_thirty_two_threads_load_once():
    cache = racefree.Cache()
    loads = []

    def loader():
        loads.append(1)
        time.sleep(0.05)  # the slow lookup; waiting threads must not hold the GIL meanwhile
        return ["engine-a", "engine-b"]

    values = on_threads(32, lambda _: cache.get_or_load("engines", 2, loader))
    assert len(loads) == 1
    assert all(v == ["engine-a", "engine-b"] for v in values)
    assert all(v is values[0] for v in values), "waiters should get the loaded object itself"


def test_ttl_with_manual_clock(clock):
    cache = racefree.Cache(clock=clock)
    n = iter(range(100))
    assert cache.get_or_load("k", 2, lambda: next(n)) == 0
    clock.advance(1.999)
    assert cache.get_or_load("k", 2, lambda: next(n)) == 0
    clock.advance(0.001)
    assert cache.get_or_load("k", 2, lambda: next(n)) == 1
    assert cache.invalidate("k") and cache.get_or_load("k", 2, lambda: next(n)) == 2
    assert cache.stats()["expired"] == 1


def test_loader_errors_reach_waiters_and_are_not_cached():
    cache = racefree.Cache()
    calls = []

    def failing():
        calls.append(1)
        time.sleep(0.2)  # every thread arrives while it runs: a failure is not cached
        raise ConnectionError("orchestrator down")

    def work(_):
        try:
            cache.get_or_load("engines", 2, failing)
        except ConnectionError as exc:
            return str(exc)
        return "no error"

    assert on_threads(8, work) == ["orchestrator down"] * 8
    assert len(calls) == 1 and len(cache) == 0
    assert cache.get_or_load("engines", 2, lambda: "back") == "back"


async def test_asyncio_callers_load_once_without_blocking_the_loop():
    cache = racefree.Cache()
    loads = 0
    ticks = 0

    async def loader():
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)  # inside the window: every other caller arrives meanwhile
        return {"engines": 2}

    async def ticker():
        nonlocal ticks
        for _ in range(10):
            ticks += 1
            await asyncio.sleep(0.002)

    results = await asyncio.gather(ticker(), *(get_or_load(cache, "engines", 2, loader) for _ in range(32)))
    assert loads == 1
    assert all(r == {"engines": 2} for r in results[1:])
    assert ticks == 10


async def test_asyncio_errors_reach_every_waiter():
    cache = racefree.Cache()

    async def failing():
        await asyncio.sleep(0.02)
        raise LookupError("boom")

    results = await asyncio.gather(*(get_or_load(cache, "k", 2, failing) for _ in range(8)), return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert cache.stats()["load_errors"] == 1 and len(cache) == 0


async def test_a_cancelled_loader_hands_the_load_to_a_waiter():
    cache = racefree.Cache()
    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.sleep(10)
        return "never"

    async def quick():
        return "from the waiter"

    first = asyncio.create_task(get_or_load(cache, "k", 2, slow))
    await started.wait()
    second = asyncio.create_task(get_or_load(cache, "k", 2, quick))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "from the waiter"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_waiters_in_other_threads_and_loops():
    cache = racefree.Cache()
    gate = threading.Event()

    async def loader():
        gate.set()
        await asyncio.sleep(0.05)
        return "shared"

    def other_thread():
        gate.wait()
        return asyncio.run(get_or_load(cache, "k", 2, loader))

    result = {}
    t = threading.Thread(target=lambda: result.setdefault("v", other_thread()))
    t.start()
    assert await get_or_load(cache, "k", 2, loader) == "shared"
    t.join()
    assert result["v"] == "shared" and cache.stats()["loads"] == 1


def test_decorator_sync_and_async():
    cache = racefree.Cache()
    calls = []

    @racefree.cached(cache, ttl=5)
    def engines(region):
        calls.append(region)
        return [region]

    @racefree.cached(cache, ttl=5, key=lambda region: f"async:{region}")
    async def engines_async(region):
        calls.append(region)
        await asyncio.sleep(0.01)
        return [region]

    assert engines("eu") == engines("eu") == ["eu"]
    assert engines("us") == ["us"]

    async def run():
        return await asyncio.gather(*(engines_async("ap") for _ in range(5)))

    assert asyncio.run(run()) == [["ap"]] * 5
    assert calls == ["eu", "us", "ap"]
    assert engines.__name__ == "engines"


def test_bad_input_and_capacity():
    cache = racefree.Cache(max_entries=1)
    cache.get_or_load("a", 5, lambda: 1)
    with pytest.raises(racefree.CapacityExceeded):
        cache.get_or_load("b", 5, lambda: 2)
    with pytest.raises(racefree.InvalidKey):
        cache.get_or_load("", 5, lambda: 1)
    with pytest.raises(racefree.InvalidArgument):
        cache.get_or_load("a2", 0, lambda: 1)
    with pytest.raises(TypeError):
        cache.get_or_load(None, 5, lambda: 1)
