"""The single-flight cache's awaitable form."""

from __future__ import annotations

import asyncio as _asyncio
from datetime import timedelta
from typing import Any, Awaitable, Callable, Union

from racefree import _native

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
