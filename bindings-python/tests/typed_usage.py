"""Typical use of racefree, type-checked by mypy --strict in test_typing.py (not a test module)."""

import asyncio
from datetime import timedelta
from typing import Any, Dict, List, Optional

import racefree
from racefree.asyncio import StartLock, TaskCoordinator, get_or_load


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
    stats: Dict[str, int] = store.stats()
    return claim.index + (index or 0) + int(first) + token + updated.version + len(engines) + stats["entries"]


async def async_use() -> List[bool]:
    store = racefree.open()
    lock = StartLock(store, "tasks")
    async with lock.hold("k", ttl=30) as lease:
        lease.renew(ttl=30)

    async def load() -> List[str]:
        return ["a"]

    cache = racefree.Cache()
    value: Any = await get_or_load(cache, "k", 2.0, load)
    coordinator = TaskCoordinator(store, ttl=30)

    async def work() -> None:
        await asyncio.sleep(0)

    return [await coordinator.start("k", work), bool(value)]
