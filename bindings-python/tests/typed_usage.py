"""Typical use of racefree, type-checked by mypy --strict in test_typing.py (not a test module)."""

import asyncio
from datetime import timedelta
from typing import Any, Dict, List, Optional, Tuple

import racefree
import racefree.asyncio
from racefree.asyncio import StartLock, TaskCoordinator, get_or_load
from racefree.types import CounterStats, Inventory, StoreStats


def sync_use() -> int:
    store = racefree.open("memory://")
    counter = racefree.Counter(store, "task:1")
    claim: racefree.Claim = counter.claim(racefree.new_execution_id())
    index: Optional[int] = counter.index_of("x")
    guard = racefree.EventGuard(store, "streams", ["started", "ended"], retention=timedelta(hours=1))
    first: bool = guard.mark("s", "started") == racefree.Mark.FIRST
    lock = racefree.StartLock(store, "tasks")
    with lock.hold("k", ttl=30, timeout=1.0) as lease:
        token: int = lease.token
    records = racefree.Records(store, "pods")
    updated: racefree.Versioned = records.update("p", lambda v: {"n": 1})
    cache = racefree.Cache(max_entries=10)
    engines: Any = cache.get_or_load("engines", 2, lambda: ["a"])
    stats: StoreStats = store.stats()
    claims: CounterStats = counter.stats()
    _ = claims["entries"]  # type: ignore[typeddict-item]  # mypy must reject the key (or the ignore is unused)
    inventory: Inventory = store.inspect()
    deadlines = [lease["deadline_ms"] for lease in inventory["leases"]]
    return claim.index + (index or 0) + int(first) + token + updated.version + len(engines) + stats["entries"] + len(deadlines) + claims["new_claims"]


def token_of_held_lease(lock: racefree.StartLock) -> int:
    """A plain `with` that returns from inside: `Lease.__exit__` never suppresses, so mypy sees no missing return."""
    with lock.hold("k", ttl=30) as lease:
        return lease.token


async def async_use() -> List[bool]:
    store = racefree.open()

    async def load() -> List[str]:
        return ["a"]

    lock = StartLock(store, "tasks")
    async with lock.hold("k", ttl=30) as lease:
        await lease.renew(ttl=30)
    granted: Optional[racefree.asyncio.Lease] = await lock.try_start("k", ttl=30)
    holder: Optional[Tuple[int, int]] = await lock.holder("k")
    counter = racefree.asyncio.Counter(store, "jobs")
    index: int = await counter.next()
    claim: racefree.Claim = await counter.claim("run-1")
    guard = racefree.asyncio.EventGuard(store, "streams", ["started", "ended"])
    first: bool = await guard.mark("s", "started") is racefree.Mark.FIRST
    records = racefree.asyncio.Records(store, "pods")

    async def change(current: Any) -> Dict[str, int]:
        return {"n": (current or {}).get("n", 0) + 1}

    updated: racefree.Versioned = await records.update("p", change)
    updated = await records.update("p", lambda current: {"n": 0})
    operator = racefree.asyncio.Store(store)
    inventory: Inventory = await operator.inspect()
    swept: int = await operator.sweep() + len(inventory["leases"])
    async_cache = racefree.asyncio.Cache(max_entries=10)
    loaded: Any = await async_cache.get_or_load("k", 2.0, load) if swept >= 0 else None

    cache = racefree.Cache()
    value: Any = await get_or_load(cache, "k", 2.0, load)
    coordinator = TaskCoordinator(store, ttl=30)

    async def work() -> None:
        await asyncio.sleep(0)

    return [await coordinator.start("k", work), bool(value), granted is None, holder is None, index == claim.index, first,
            updated.version > 0, await coordinator.is_running("k"), loaded is not None]
