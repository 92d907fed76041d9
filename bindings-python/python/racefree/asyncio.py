"""asyncio forms of racefree's waiting operations, and the task coordinator built on them.

Operations on the memory store are in-process critical sections of a few hundred nanoseconds, so
they are called directly; operations on other stores (SQLite: disk, other processes' locks;
Redis: the network) run in the loop's executor so the event loop never waits on them. What waits (acquiring a held lease,
waiting for another caller's load) awaits instead of blocking, and can be cancelled.
"""

from __future__ import annotations

import asyncio as _asyncio
import concurrent.futures
import contextlib
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, TypeVar, Union
from datetime import timedelta

from racefree import _native
from racefree.errors import NotOwner, Timeout

__all__ = ["StartLock", "get_or_load", "TaskCoordinator"]

T = TypeVar("T")
Seconds = Union[float, int, timedelta]
logger = logging.getLogger("racefree")

# Releases of finished tasks' leases on stores that aren't local: they run from a done callback
# (no loop to await in), and `wait` awaits them from whichever loop asks.
_releases = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="racefree-release")


async def _call(local: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``: directly for in-process stores, in the executor for the others."""
    if local:
        return fn(*args, **kwargs)
    return await _asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class StartLock:
    """A :class:`racefree.StartLock` whose ``acquire`` and ``hold`` are awaitable."""

    def __init__(self, store: _native.Store, name: str) -> None:
        self._lock = _native.StartLock(store, name)
        self._local = store.is_local

    @property
    def name(self) -> str:
        return self._lock.name

    def try_start(self, key: str, *, ttl: Seconds) -> Optional[_native.Lease]:
        """A lease on ``key`` if nobody holds one, else ``None`` (never waits)."""
        return self._lock.try_start(key, ttl=ttl)

    async def acquire(self, key: str, *, ttl: Seconds, timeout: Optional[Seconds] = None) -> _native.Lease:
        """Waits up to ``timeout`` seconds (forever when ``None``) for a lease on ``key``.

        Retries on the same backoff schedule as every other language; raises
        :class:`racefree.Timeout` when the time is up. Cancelling the awaiting task stops the wait.
        """
        loop = _asyncio.get_running_loop()
        started = loop.time()
        limit = None if timeout is None else _seconds(timeout)
        if limit is not None and (limit != limit or limit < 0):
            # Same validation and error as the synchronous acquire.
            self._lock.try_start(key, ttl=ttl)
            raise _native_invalid("timeout", limit)
        delays = _native.Backoff.for_acquire()
        while True:
            lease = await _call(self._local, self._lock.try_start, key, ttl=ttl)
            if lease is not None:
                return lease
            waited = loop.time() - started
            if limit is not None and waited >= limit:
                raise Timeout(f"timed out after {waited:.3f}s waiting for {key!r}", {"waited": waited})
            delay = next(delays)
            if limit is not None:
                delay = min(delay, limit - waited)
            await _asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def hold(
        self, key: str, *, ttl: Seconds, timeout: Optional[Seconds] = None
    ) -> AsyncIterator[_native.Lease]:
        """``async with lock.hold(key, ttl=30) as lease:`` — acquires, and releases on exit."""
        lease = await self.acquire(key, ttl=ttl, timeout=timeout)
        try:
            yield lease
        finally:
            await _call(self._local, lease.release)

    def is_held(self, key: str) -> bool:
        return self._lock.is_held(key)

    def stats(self) -> Dict[str, int]:
        return self._lock.stats()


def _native_invalid(what: str, value: float) -> Exception:
    from racefree.errors import InvalidArgument

    return InvalidArgument(f"invalid argument: {what} must be a finite, positive number of seconds, got {value}")


async def get_or_load(cache: _native.Cache, key: str, ttl: Seconds, loader: Callable[[], Awaitable[Any]]) -> Any:
    """The cached value of ``key``, or ``await loader()`` run by exactly one concurrent caller.

    Callers that find a load in flight await its result without blocking the loop. A loader
    exception reaches every waiter and is not cached; if the loading task is cancelled, one of
    the waiters loads instead.
    """
    while True:
        kind, found = cache.lookup(key, ttl)
        if kind == "hit":
            return found
        if kind == "load":
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
        outcome = found.result()
        if outcome is None:  # pragma: no cover - the callback fires only once the load has ended
            continue
        kind, value = outcome
        if kind == "done":
            return value
        if kind == "error":
            raise value
        # "abandoned": the loader was cancelled; look up again.


def _set_once(future: "_asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


class TaskCoordinator:
    """Runs at most one task per key — across threads, event loops and processes sharing the store.

    ``await coordinator.start(key, coro_fn)`` returns ``True`` and runs ``coro_fn()`` in a new task
    if nobody runs ``key``; otherwise it returns ``False`` at once. The task runs under a lease
    that is renewed while it runs and released when it ends — on success, failure or
    cancellation — so the key can be started again right after. If a renewal finds the lease
    lost (the process stalled past the TTL and another starter took over), the task is cancelled.
    """

    def __init__(
        self,
        store: Optional[_native.Store] = None,
        *,
        name: str = "tasks",
        ttl: Seconds = 30.0,
        renew_every: Optional[Seconds] = None,
    ) -> None:
        self.store = store if store is not None else _native.open()
        self._lock = _native.StartLock(self.store, name)
        self._local = self.store.is_local
        self._ttl = _seconds(ttl)
        self._renew_every = _seconds(renew_every) if renew_every is not None else self._ttl / 3
        if not self._renew_every > 0 or self._renew_every >= self._ttl:
            raise _native_invalid("renew_every (below ttl)", self._renew_every)
        self._running: Dict[str, "_asyncio.Task[Any]"] = {}
        self._releasing: Dict[str, "concurrent.futures.Future[None]"] = {}

    async def start(self, key: str, coro_fn: Callable[[], Awaitable[Any]]) -> bool:
        """Starts ``coro_fn()`` for ``key`` unless it already runs anywhere; returns whether it started."""
        lease = await _call(self._local, self._lock.try_start, key, ttl=self._ttl)
        if lease is None:
            return False
        task = _asyncio.get_running_loop().create_task(self._run(key, lease, coro_fn))
        self._running[key] = task
        # A done callback, not a `finally`: a task cancelled before its first step never runs its body.
        task.add_done_callback(functools.partial(self._finished, key, lease))
        return True

    async def _run(self, key: str, lease: _native.Lease, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        renewer = _asyncio.get_running_loop().create_task(self._keep_renewed(lease, _asyncio.current_task()))
        try:
            return await coro_fn()
        except Exception:
            logger.exception("task %r failed", key)
            return None
        finally:
            renewer.cancel()

    def _finished(self, key: str, lease: _native.Lease, task: "_asyncio.Task[Any]") -> None:
        if self._running.get(key) is task:
            del self._running[key]

        def release() -> None:
            try:
                lease.release()
            except NotOwner:
                logger.warning("task %r lost its lease before it ended", key)

        if self._local:
            release()
            return
        releasing = _releases.submit(release)
        self._releasing[key] = releasing

        def forget(done: "concurrent.futures.Future[None]") -> None:
            if self._releasing.get(key) is done:
                del self._releasing[key]

        releasing.add_done_callback(forget)

    async def _keep_renewed(self, lease: _native.Lease, task: "Optional[_asyncio.Task[Any]]") -> None:
        while True:
            await _asyncio.sleep(self._renew_every)
            try:
                await _call(self._local, lease.renew, ttl=self._ttl)
            except NotOwner:
                logger.error("task %r lost its lease; cancelling it", lease.key)
                if task is not None:
                    task.cancel()
                return

    async def stop(self, key: str) -> bool:
        """Cancels this process's task for ``key`` and waits for it to end; returns whether one ran."""
        task = self._running.get(key)
        if task is None:
            return False
        if task.get_loop() is _asyncio.get_running_loop():
            task.cancel()
            await _asyncio.wait([task])
        else:
            task.get_loop().call_soon_threadsafe(task.cancel)
        return True

    async def wait(self, key: str) -> None:
        """Waits until this process's task for ``key`` (if any) has ended and released its lease,
        from any event loop: right after, the key can be started again."""
        task = self._running.get(key)
        if task is not None:
            await self._ended(task)
        releasing = self._releasing.get(key)
        if releasing is not None:
            await _asyncio.wrap_future(releasing)

    @staticmethod
    async def _ended(task: "_asyncio.Task[Any]") -> None:
        loop = _asyncio.get_running_loop()
        if task.get_loop() is loop:
            await _asyncio.wait([task])
            return
        ended = loop.create_future()

        def notify(_: "_asyncio.Task[Any]") -> None:
            loop.call_soon_threadsafe(_set_once, ended)

        # Callbacks must be added from the task's own loop.
        task.get_loop().call_soon_threadsafe(task.add_done_callback, notify)
        await ended

    def running(self) -> List[str]:
        """Keys whose tasks run in this process."""
        return sorted(key for key, task in list(self._running.items()) if not task.done())

    def is_running(self, key: str) -> bool:
        """Whether ``key`` runs anywhere (any process sharing the store)."""
        return self._lock.is_held(key)
