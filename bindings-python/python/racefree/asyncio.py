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
import contextvars
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, TypeVar, Union
from datetime import timedelta

from racefree import _native
from racefree.errors import LeaseLost, NotOwner

__all__ = ["StartLock", "get_or_load", "TaskCoordinator", "current_lease"]

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

        Waits by the core's schedule, as every language does; raises :class:`racefree.Timeout`
        when the time is up. A bad ``ttl`` or ``timeout`` raises before anything is tried.
        Cancelling the awaiting task stops the wait.
        """
        loop = _asyncio.get_running_loop()
        wait = _native.Acquisition(ttl=ttl, timeout=timeout, now=loop.time())  # validates first
        while True:
            lease = await _call(self._local, self._lock.try_start, key, ttl=ttl)
            if lease is not None:
                return lease
            await _asyncio.sleep(wait.retry_after(loop.time()))

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


_current_lease: "contextvars.ContextVar[_native.Lease]" = contextvars.ContextVar("racefree_current_lease")


def current_lease() -> _native.Lease:
    """The lease of the :class:`TaskCoordinator` task running this code: its ``.token`` fences
    writes that must not land once the lease is lost (``Records.put(..., fencing_token=...)``).

    Raises :class:`LookupError` outside such a task.
    """
    return _current_lease.get()


class TaskCoordinator:
    """Runs at most one task per key — across threads, event loops and processes sharing the store.

    ``await coordinator.start(key, coro_fn)`` returns ``True`` and runs ``coro_fn()`` in a new task
    if nobody runs ``key``; otherwise it returns ``False`` at once. The task runs under a lease
    that is renewed while it runs (every ``renew_every`` seconds, ``ttl / 3`` by default) and
    released when it ends — on success, failure or cancellation — so the key can be started again
    right after. Inside the task, :func:`current_lease` is its lease.

    When the lease is lost — a renewal refused, renewals failing until the lease's safe deadline
    (send time of the last confirmed renewal + ``ttl``, less a margin), or ``max_hold`` seconds
    reached — the task is cancelled before another holder can start the key, and the reason is
    logged on the ``racefree`` logger. Leases are kept with the event loop's timers; renewals on
    stores that wait run in the loop's executor.
    """

    def __init__(
        self,
        store: Optional[_native.Store] = None,
        *,
        name: str = "tasks",
        ttl: Seconds = 30.0,
        renew_every: Optional[Seconds] = None,
        max_hold: Optional[Seconds] = None,
    ) -> None:
        self._options = _native.KeeperOptions(ttl=ttl, renew_every=renew_every, max_hold=max_hold)
        self.store = store if store is not None else _native.open()
        self._lock = _native.StartLock(self.store, name)
        self._local = self.store.is_local
        self._running: Dict[str, "_asyncio.Task[Any]"] = {}
        self._releasing: Dict[str, "concurrent.futures.Future[None]"] = {}

    async def start(self, key: str, coro_fn: Callable[[], Awaitable[Any]]) -> bool:
        """Starts ``coro_fn()`` for ``key`` unless it already runs anywhere; returns whether it started."""
        loop = _asyncio.get_running_loop()
        requested_at = loop.time()  # the lease is counted from before the request was sent
        lease = await _call(self._local, self._lock.try_start, key, ttl=self._options.ttl)
        if lease is None:
            return False
        keeper = self._options.keep(self._lock, lease, requested_at)
        task = loop.create_task(self._run(key, lease, keeper, coro_fn))
        self._running[key] = task
        # A done callback, not a `finally`: a task cancelled before its first step never runs its body.
        task.add_done_callback(functools.partial(self._finished, key, lease))
        return True

    async def _run(
        self, key: str, lease: _native.Lease, keeper: _native.LeaseKeeper, coro_fn: Callable[[], Awaitable[Any]]
    ) -> Any:
        _current_lease.set(lease)
        this = _asyncio.current_task()
        assert this is not None
        keeping = _asyncio.get_running_loop().create_task(self._keep(keeper, this))
        try:
            return await coro_fn()
        except Exception:
            logger.exception("task %r failed", key)
            return None
        finally:
            keeping.cancel()

    def _finished(self, key: str, lease: _native.Lease, task: "_asyncio.Task[Any]") -> None:
        if self._running.get(key) is task:
            del self._running[key]

        def release() -> None:
            try:
                lease.release()
            except NotOwner:
                logger.warning("task %r lost its lease before it ended", key)
            except Exception as error:  # the lease expires by its TTL
                logger.warning("task %r could not release its lease: %s", key, error)

        if self._local:
            release()
            return
        releasing = _releases.submit(release)
        self._releasing[key] = releasing

        def forget(done: "concurrent.futures.Future[None]") -> None:
            if self._releasing.get(key) is done:
                del self._releasing[key]

        releasing.add_done_callback(forget)

    async def _keep(self, keeper: _native.LeaseKeeper, task: "_asyncio.Task[Any]") -> None:
        """Drives the core's keeper: sleeps until it asks for a renewal, sends it, hands the reply
        back, and cancels ``task`` when it says the lease is lost."""
        loop = _asyncio.get_running_loop()
        renewal: "Optional[_asyncio.Future[None]]" = None
        while True:
            if renewal is not None:
                # A stalled store must not hold the keeper past the instant the lease is lost.
                await _asyncio.wait([renewal], timeout=max(0.0, keeper.lost_at - loop.time()))
                if renewal.done():
                    renewal = None
                    keeper.settle(loop.time())
            try:
                wake = keeper.poll(loop.time())
            except LeaseLost as lost:
                logger.error("task %r lost its lease (%s); cancelling it: %s", keeper.key, lost.reason, lost)
                task.cancel(msg="racefree: the task's lease is lost")
                return
            if wake is not None:
                if renewal is None:
                    await _asyncio.sleep(max(0.0, wake - loop.time()))
                continue
            if self._local:
                keeper.renew()
                keeper.settle(loop.time())
            else:
                renewal = loop.run_in_executor(None, keeper.renew)

    async def stop(self, key: str) -> bool:
        """Cancels this process's task for ``key`` and waits, from any event loop, until it has
        ended and released its lease; returns whether one ran."""
        task = self._running.get(key)
        if task is None:
            return False
        if task.get_loop() is _asyncio.get_running_loop():
            task.cancel()
        else:
            task.get_loop().call_soon_threadsafe(task.cancel)
        await self.wait(key)
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
