"""The single-flight cache's awaitable form: :class:`Cache` and :func:`get_or_load`."""

from __future__ import annotations

import asyncio as _asyncio
from datetime import timedelta
from typing import Any, Awaitable, Callable, Optional, Union

from racefree import _native
from racefree.types import CacheStats

Seconds = Union[float, int, timedelta]


def _set_once(future: "_asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


async def get_or_load(cache: _native.Cache, key: str, ttl: Seconds, loader: Callable[[], Awaitable[Any]]) -> Any:
    """The cached value of ``key``, or ``await loader()`` run by exactly one concurrent caller.

    Callers that find a load in flight await its result without blocking the loop. A loader
    exception reaches every waiter and is not cached; if the loading task is cancelled, one of
    the waiters loads instead.
    """
    while True:
        found = cache.lookup(key, ttl)
        if isinstance(found, _native.CacheHit):
            return found.value
        if isinstance(found, _native.LoadDuty):
            try:
                value = await loader()
            except Exception as error:
                found.fail(error)
                raise
            except BaseException:
                found.abandon()  # cancelled: let a waiter load
                raise
            found.complete(value)
            return value
        loop = _asyncio.get_running_loop()
        finished = loop.create_future()

        def wake(finished: "_asyncio.Future[None]" = finished) -> None:
            loop.call_soon_threadsafe(_set_once, finished)

        found.on_finished(wake)
        await finished
        if not found.abandoned():  # abandoned: the loader was cancelled; look up again
            return found.result()


class Cache:
    """A single-flight TTL cache (:class:`racefree.Cache`) whose loads are awaited: concurrent
    callers of one key wait for one ``await loader()`` without blocking the loop. The cache is
    in-process, so its other calls answer at once; they are coroutines for the same names as the
    rest of :mod:`racefree.asyncio`. ``Cache(cache=racefree.Cache())`` shares a blocking cache."""

    __slots__ = ("native",)

    def __init__(
        self,
        *,
        max_entries: Optional[int] = None,
        clock: Optional[_native.ManualClock] = None,
        cache: Optional[_native.Cache] = None,
    ) -> None:
        if cache is not None:
            if max_entries is not None or clock is not None:
                raise TypeError("pass either cache= or max_entries=/clock=, not both")
            self.native = cache
        elif max_entries is None:
            self.native = _native.Cache(clock=clock)
        else:
            self.native = _native.Cache(max_entries=max_entries, clock=clock)

    async def get_or_load(self, key: str, ttl: Seconds, loader: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value of ``key``, or ``await loader()`` run by exactly one concurrent caller."""
        return await get_or_load(self.native, key, ttl, loader)

    async def invalidate(self, key: str) -> bool:
        """Drops the cached value of ``key``; returns whether one was cached."""
        return self.native.invalidate(key)

    async def sweep(self) -> int:
        """Removes expired values; returns how many."""
        return self.native.sweep()

    def stats(self) -> CacheStats:
        """Counts: ``hits``, ``loads``, ``coalesced``, ``load_errors``, ``expired``."""
        return self.native.stats()

    def __len__(self) -> int:
        return len(self.native)
