import asyncio
import random

import pytest

import racefree
from racefree.asyncio import StartLock


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def store(request, clock, tmp_path):
    """Every test here on the memory store (called inline) and on SQLite, Redis and PostgreSQL,
    whose calls are the core's async ones, where cancellation can strike while a grant is in
    flight."""
    if request.param == "memory":
        return racefree.open("memory://", clock=clock)
    if request.param == "sqlite":
        return racefree.open(f"sqlite://{tmp_path}/racefree.db")
    return racefree.open(request.getfixturevalue(f"{request.param}_url"))


async def test_acquire_waits_for_release_without_blocking_the_loop(store):
    lock = StartLock(store, "tasks")
    held = await lock.try_start("k", ttl=30)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def release_later():
        await asyncio.sleep(0.1)
        await held.release()

    tick_task = asyncio.create_task(ticker())
    asyncio.create_task(release_later())
    await asyncio.sleep(0)
    before = ticks
    lease = await lock.acquire("k", ttl=30, timeout=5)
    during = ticks - before
    tick_task.cancel()
    assert lease.token > held.token
    # A blocked loop would not tick at all while acquire waits; any two ticks show it ran.
    assert during >= 2, "the event loop was blocked while waiting"


async def test_acquire_times_out(store):
    lock = StartLock(store, "tasks")
    await lock.try_start("k", ttl=30)
    with pytest.raises(racefree.Timeout) as err:
        await lock.acquire("k", ttl=30, timeout=0.05)
    assert isinstance(err.value, TimeoutError) and err.value.waited >= 0.05


async def test_acquire_is_cancellable_and_takes_nothing(store):
    lock = StartLock(store, "tasks")
    held = await lock.try_start("k", ttl=30)
    waiter = asyncio.create_task(lock.acquire("k", ttl=30))
    await asyncio.sleep(0.02)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await held.release()
    assert not await lock.is_held("k")


async def test_async_hold_releases_on_exit_and_on_error(store):
    lock = StartLock(store, "tasks")
    async with lock.hold("k", ttl=30) as lease:
        assert await lock.is_held("k") and lease.key == "k"
    assert not await lock.is_held("k")
    with pytest.raises(ValueError):
        async with lock.hold("k", ttl=30):
            raise ValueError("task failed")
    assert not await lock.is_held("k")


@pytest.mark.parametrize("timeout", [-1, float("nan")])
async def test_bad_timeouts(store, timeout):
    with pytest.raises(racefree.InvalidArgument):
        await StartLock(store, "tasks").acquire("k", ttl=30, timeout=timeout)


async def test_a_refused_timeout_or_ttl_leaves_the_key_free(store):
    lock = StartLock(store, "tasks")
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(racefree.InvalidArgument):
            await lock.acquire("k", ttl=30, timeout=bad)
    with pytest.raises(racefree.InvalidArgument):
        await lock.acquire("k", ttl=0, timeout=1)
    with pytest.raises(TypeError):
        await lock.acquire("k", ttl=30, timeout="soon")
    assert not await lock.is_held("k") and store.stats()["entries"] == 0


async def test_a_cancelled_acquire_leaves_no_lease_behind(store):
    """Cancelled after a random delay around one round trip, on fresh keys: a grant that landed
    after the cancellation must not keep the key (it did for the whole TTL before)."""
    lock = StartLock(store, "tasks")
    keys = [f"k{i}" for i in range(300)]
    cancelled = 0
    for key in keys:
        attempt = asyncio.create_task(lock.acquire(key, ttl=30))
        await asyncio.sleep(random.uniform(0, 0.0006))
        attempt.cancel()
        try:
            await (await attempt).release()
        except asyncio.CancelledError:
            cancelled += 1
    # Late grants are released by a worker as they land: give them a moment.
    deadline = asyncio.get_running_loop().time() + 10
    held = [key for key in keys if await lock.is_held(key)]
    while held and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        held = [key for key in held if await lock.is_held(key)]
    assert not held, f"{len(held)} of {cancelled} cancelled acquires left their key held"
