"""asyncio forms of racefree's waiting operations, and the task coordinator built on them.

Operations on the memory store are in-process critical sections of a few hundred nanoseconds, so
they are called directly; operations on other stores (SQLite: disk, other processes' locks;
Redis: the network) run in the loop's executor so the event loop never waits on them. What waits (acquiring a held lease,
waiting for another caller's load) awaits instead of blocking, and can be cancelled.
"""

from __future__ import annotations

import asyncio as _asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import os as _os
import weakref
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar, Union
from datetime import timedelta

from racefree import _native
from racefree.errors import LeaseLost, NotOwner
from racefree.types import LockStats

__all__ = ["StartLock", "get_or_load", "TaskCoordinator", "current_lease"]

T = TypeVar("T")
Seconds = Union[float, int, timedelta]
logger = logging.getLogger("racefree")

# Releases of finished tasks' leases on stores that aren't local: they run from a done callback
# (no loop to await in), and `wait` awaits them from whichever loop asks.
def _release_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="racefree-release")


_releases = _release_pool()


def _after_fork_in_child() -> None:
    # The parent's worker threads do not exist in a child: a pool inherited from it would queue
    # releases that no thread ever runs.
    global _releases
    _releases = _release_pool()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


async def _call(local: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``: directly for in-process stores, in the executor for the others."""
    if local:
        return fn(*args, **kwargs)
    return await _asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


async def _grant(local: bool, fn: Callable[..., Optional[_native.Lease]], *args: Any, **kwargs: Any) -> Optional[_native.Lease]:
    """A grant (``try_start``), as :func:`_call` runs it. Cancelled while the executor runs it,
    the grant may still land, and nobody would ever hold that lease: it is released as soon as
    it lands instead of keeping the key for its whole TTL."""
    if local:
        return fn(*args, **kwargs)
    granting = _asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))
    try:
        return await _asyncio.shield(granting)
    except _asyncio.CancelledError:
        granting.add_done_callback(_release_if_granted)
        raise


def _release_if_granted(granting: "_asyncio.Future[Optional[_native.Lease]]") -> None:
    if granting.cancelled() or granting.exception() is not None:
        return
    lease = granting.result()
    if lease is not None:
        _releases.submit(_release_quietly, lease)


def _release_quietly(lease: _native.Lease) -> None:
    try:
        lease.release()
    except NotOwner:
        pass  # it expired meanwhile: the key is free either way
    except Exception:  # a failure to release leaves it to expire; nothing waits on this
        logger.warning("racefree: could not release the lease of a cancelled acquire on %r", lease.key, exc_info=True)


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
        Cancelling the awaiting task stops the wait; a grant that lands after the cancellation is
        released at once.
        """
        loop = _asyncio.get_running_loop()
        wait = _native.Acquisition(ttl=ttl, timeout=timeout, now=loop.time())  # validates first
        while True:
            lease = await _grant(self._local, self._lock.try_start, key, ttl=ttl)
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
        """Whether somebody holds an unexpired lease on ``key``."""
        return self._lock.is_held(key)

    def stats(self) -> LockStats:
        """This handle's counts: ``granted``, ``contended``, ``renewed``, ``released``, ``rejected_not_owner``."""
        return self._lock.stats()


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


def _running_loop() -> Optional[_asyncio.AbstractEventLoop]:
    try:
        return _asyncio.get_running_loop()
    except RuntimeError:
        return None


def _timeout_error(waited: float, what: str) -> Exception:
    from racefree.errors import Timeout

    return Timeout(f"timed out after {waited:.3f}s: {what}", {"waited": waited})


def _set_once(future: "_asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


class _LoopKeeper:
    """Keeps the leases of one coordinator's tasks on one event loop with one timer (no task or
    thread per lease): wakes when the core's keepers ask, sends their renewals (in the executor on
    stores that wait), hands the replies back, and cancels a task when its lease is lost."""

    __slots__ = ("_loop", "_local", "_leases", "_timer", "_timer_at")

    def __init__(self, loop: _asyncio.AbstractEventLoop, local: bool) -> None:
        self._loop, self._local = loop, local
        # keeper -> (its task, the renewal in flight on a store that waits)
        self._leases: "Dict[_native.LeaseKeeper, List[Any]]" = {}
        self._timer: Optional[_asyncio.TimerHandle] = None
        self._timer_at = float("inf")

    def keep(self, keeper: _native.LeaseKeeper, task: "_asyncio.Task[Any]") -> None:
        self._leases[keeper] = [task, None]
        self._step(keeper)

    def forget(self, keeper: _native.LeaseKeeper) -> None:
        self._leases.pop(keeper, None)  # the timer finds nothing to do for it

    def _wake_at(self, at: float) -> None:
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self._loop.call_at(at, self._tick), at

    def _tick(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        for keeper in list(self._leases):
            self._step(keeper)

    def _step(self, keeper: _native.LeaseKeeper) -> None:
        entry = self._leases.get(keeper)
        if entry is None:
            return
        loop = self._loop
        renewal = entry[1]
        if renewal is not None and renewal.done():
            entry[1] = None
            keeper.settle(loop.time())
        try:
            wake = keeper.poll(loop.time())
            while wake is None and self._local:  # the memory store answers at once
                keeper.renew()
                keeper.settle(loop.time())
                wake = keeper.poll(loop.time())
        except LeaseLost as lost:
            del self._leases[keeper]
            logger.error("task %r lost its lease (%s); cancelling it: %s", keeper.key, lost.reason, lost)
            entry[0].cancel(msg="racefree: the task's lease is lost")
            return
        if wake is None:
            entry[1] = loop.run_in_executor(None, keeper.renew)
            entry[1].add_done_callback(lambda _: self._step(keeper))
            # A stalled store must not hold the keeper past the instant the lease is lost.
            wake = keeper.lost_at
        self._wake_at(wake)


class _Run:
    """One task of a coordinator: its lease, and who waits for it to end (each waiter on its own
    future, so a cancelled waiter cancels nothing but itself)."""

    __slots__ = ("task", "lease", "ended", "_waiters")

    def __init__(self, lease: _native.Lease) -> None:
        self.lease = lease
        self.task: "_asyncio.Task[Any]"
        self.ended = False
        self._waiters: "List[Tuple[_asyncio.AbstractEventLoop, _asyncio.Future[None]]]" = []

    def ended_on(self, loop: _asyncio.AbstractEventLoop) -> "_asyncio.Future[None]":
        """A future of ``loop`` done once the run has ended and its lease is released (on stores
        that wait, once its release has been sent)."""
        ended = loop.create_future()
        self._waiters.append((loop, ended))
        if self.ended:  # ended meanwhile: `wake_waiters` may have missed it
            _set_once(ended)
        return ended

    def wake_waiters(self) -> None:
        for loop, ended in list(self._waiters):
            if loop is self.task.get_loop():
                _set_once(ended)
            else:
                loop.call_soon_threadsafe(_set_once, ended)


_coordinators: "weakref.WeakSet[TaskCoordinator]" = weakref.WeakSet()


@atexit.register
def _release_at_exit() -> None:
    # A server that ends its event loop without cancelling the tasks on it (and exits) would
    # leave their keys held for the TTL: after every deploy, for every task in flight.
    for coordinator in list(_coordinators):
        coordinator._release_abandoned()


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
    logged on the ``racefree`` logger. Leases are kept with the event loop's timers (no task or
    thread per lease); renewals on stores that wait run in the loop's executor.
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
        self._running: Dict[str, _Run] = {}
        self._releasing: Dict[str, "concurrent.futures.Future[None]"] = {}
        self._keepers: "weakref.WeakKeyDictionary[_asyncio.AbstractEventLoop, _LoopKeeper]" = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        _coordinators.add(self)

    async def start(self, key: str, coro_fn: Callable[[], Awaitable[Any]]) -> bool:
        """Starts ``coro_fn()`` for ``key`` unless it already runs anywhere; returns whether it started.

        Raises :class:`RuntimeError` once the coordinator is closed.
        """
        if self._closed:
            raise RuntimeError("this TaskCoordinator is closed")
        loop = _asyncio.get_running_loop()
        requested_at = loop.time()  # the lease is counted from before the request was sent
        if self._local:
            lease = self._lock.try_start(key, ttl=self._options.ttl)
        else:
            lease = await _call(False, self._lock.try_start, key, ttl=self._options.ttl)
        if lease is None:
            return False
        run = _Run(lease)
        run.task = loop.create_task(self._run(key, run, self._options.keep(self._lock, lease, requested_at), coro_fn))
        self._running[key] = run
        # Also a done callback: a task cancelled before its first step never runs its `finally`.
        run.task.add_done_callback(lambda _: self._end(key, run))
        return True

    async def _run(self, key: str, run: "_Run", keeper: _native.LeaseKeeper, coro_fn: Callable[[], Awaitable[Any]]) -> Any:
        _current_lease.set(run.lease)
        loop = _asyncio.get_running_loop()
        keeping = self._keepers.get(loop)
        if keeping is None:
            keeping = self._keepers.setdefault(loop, _LoopKeeper(loop, self._local))
        keeping.keep(keeper, run.task)
        try:
            return await coro_fn()
        except Exception:
            logger.exception("task %r failed", key)
            return None
        finally:
            keeping.forget(keeper)
            self._end(key, run)

    def _end(self, key: str, run: "_Run") -> None:
        """Releases the run's lease (once) and wakes whoever waits for it."""
        if run.ended:
            return
        run.ended = True
        if self._running.get(key) is run:
            del self._running[key]
        lease = run.lease

        def release() -> None:
            try:
                lease.release()
            except NotOwner:
                logger.warning("task %r lost its lease before it ended", key)
            except Exception as error:  # the lease expires by its TTL
                logger.warning("task %r could not release its lease: %s", key, error)

        if self._local:
            release()
        else:
            releasing = _releases.submit(release)
            self._releasing[key] = releasing

            def forget(done: "concurrent.futures.Future[None]") -> None:
                if self._releasing.get(key) is done:
                    del self._releasing[key]

            releasing.add_done_callback(forget)
        run.wake_waiters()

    async def stop(self, key: str) -> bool:
        """Cancels this process's task for ``key`` and waits, from any event loop, until it has
        ended and released its lease; returns whether one ran."""
        run = self._running.get(key)
        if run is None:
            return False
        task = run.task
        if task.get_loop() is _asyncio.get_running_loop():
            task.cancel()
        else:
            task.get_loop().call_soon_threadsafe(task.cancel)
        await self.wait(key)
        return True

    async def wait(self, key: str) -> None:
        """Waits until this process's task for ``key`` (if any) has ended and released its lease,
        from any event loop: right after, the key can be started again."""
        run = self._running.get(key)
        if run is not None:
            await run.ended_on(_asyncio.get_running_loop())
        releasing = self._releasing.get(key)
        if releasing is not None:
            await _asyncio.wrap_future(releasing)

    async def aclose(self, timeout: Seconds = 10.0) -> None:
        """Shuts down: refuses new starts, cancels this process's tasks (on every event loop) and
        waits until each has ended and released its lease, so other processes can start those
        keys at once instead of after the TTL. Raises :class:`racefree.Timeout` when tasks are
        still running after ``timeout`` seconds (their leases then expire by the TTL)."""
        self._closed = True
        limit = _seconds(timeout)
        loop = _asyncio.get_running_loop()
        ends = []
        for run in list(self._running.values()):
            task = run.task
            if task.get_loop() is loop:
                task.cancel()
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)
            ends.append(run.ended_on(loop))
        releases = [_asyncio.wrap_future(f) for f in list(self._releasing.values())]
        started = loop.time()
        if ends:
            _, pending = await _asyncio.wait(ends, timeout=limit)
            if pending:
                raise _timeout_error(loop.time() - started, f"{len(pending)} task(s) still running")
        # Releases started by the tasks' ends (stores that wait) are sent by now or soon.
        releases += [_asyncio.wrap_future(f) for f in list(self._releasing.values())]
        if releases:
            _, pending = await _asyncio.wait(releases, timeout=max(0.0, limit - (loop.time() - started)))
            if pending:
                raise _timeout_error(loop.time() - started, f"{len(pending)} release(s) unanswered")

    def close(self, timeout: Seconds = 10.0) -> None:
        """:meth:`aclose` from synchronous code (a signal handler, ``atexit``, a management
        command). Not from a thread whose event loop runs one of the tasks: it could not end."""
        for run in list(self._running.values()):
            task_loop = run.task.get_loop()
            if task_loop.is_running() and _running_loop() is task_loop:
                raise RuntimeError("close() would wait on its own event loop: use `await aclose()`")
        _asyncio.run(self.aclose(timeout))

    def _release_abandoned(self) -> None:
        """Releases the leases of tasks whose event loop has stopped, at interpreter exit (when
        such a task can never run again), so the keys can start elsewhere at once."""
        for key, run in list(self._running.items()):
            if not run.task.done() and not run.task.get_loop().is_running():
                try:
                    run.lease.release()
                except Exception as error:  # the lease expires by its TTL
                    logger.warning("task %r could not release its lease at exit: %s", key, error)
                run.ended = True
                if self._running.get(key) is run:
                    del self._running[key]

    def running(self) -> List[str]:
        """Keys whose tasks run in this process."""
        return sorted(key for key, run in list(self._running.items()) if not run.ended)

    def is_running(self, key: str) -> bool:
        """Whether ``key`` runs anywhere (any process sharing the store)."""
        return self._lock.is_held(key)
