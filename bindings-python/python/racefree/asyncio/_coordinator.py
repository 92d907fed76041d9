"""The task coordinator: at most one task per key across threads, event loops and processes."""

from __future__ import annotations

import asyncio as _asyncio
import atexit
import concurrent.futures
import contextvars
import logging
import weakref
from datetime import timedelta
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union

from racefree import _native
from racefree.asyncio._keeping import _LoopKeeper
from racefree.asyncio._primitives import AnyStore, Lease, StartLock, _native_store
from racefree.errors import NotOwner

Seconds = Union[float, int, timedelta]
logger = logging.getLogger("racefree")


def _seconds(value: Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _set_once(future: "_asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _running_loop() -> Optional[_asyncio.AbstractEventLoop]:
    try:
        return _asyncio.get_running_loop()
    except RuntimeError:
        return None


def _timeout_error(waited: float, what: str) -> Exception:
    from racefree.errors import Timeout

    return Timeout(f"timed out after {waited:.3f}s: {what}", {"waited": waited})


class _Run:
    """One task of a coordinator: its lease, and who waits for it to end (each waiter on its own
    future, so a cancelled waiter cancels nothing but itself)."""

    __slots__ = ("task", "lease", "ended", "_waiters")

    def __init__(self, lease: Lease) -> None:
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


_current_lease: "contextvars.ContextVar[Lease]" = contextvars.ContextVar("racefree_current_lease")


def current_lease() -> Lease:
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
    thread per lease); on stores that wait, grants, renewals and releases are the core's async
    calls (no thread per call), and a ``start`` cancelled while its grant is in flight leaves
    the key free.
    """

    def __init__(
        self,
        store: Optional[AnyStore] = None,
        *,
        name: str = "tasks",
        ttl: Seconds = 30.0,
        renew_every: Optional[Seconds] = None,
        max_hold: Optional[Seconds] = None,
    ) -> None:
        self._options = _native.KeeperOptions(ttl=ttl, renew_every=renew_every, max_hold=max_hold)
        self.store = _native_store(store) if store is not None else _native.open()
        self._lock = StartLock(self.store, name)
        self._blocking_lock = _native.StartLock(self.store, name)  # releases at exit, with no loop
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
        lease = await self._lock.try_start(key, ttl=self._options.ttl)
        if lease is None:
            return False
        run = _Run(lease)
        if lease._blocking is not None:
            keeper = self._options.keep(self._lock._blocking, lease._blocking, requested_at)
        else:
            assert self._lock._async is not None and lease._async is not None
            keeper = self._options.keep_async(self._lock._async, lease._async, requested_at)
        run.task = loop.create_task(self._run(key, run, keeper, coro_fn))
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

        def failed(error: Exception) -> None:
            if isinstance(error, NotOwner):
                logger.warning("task %r lost its lease before it ended", key)
            else:  # the lease expires by its TTL
                logger.warning("task %r could not release its lease: %s", key, error)

        async def release() -> None:
            try:
                await lease.release()
            except Exception as error:
                failed(error)

        if self._local:
            try:
                assert lease._blocking is not None
                lease._blocking.release()  # in-process: nothing to wait for
            except Exception as error:
                failed(error)
        else:
            # Awaitable from any loop (`wait`, `aclose`): a concurrent future set by the release.
            releasing: "concurrent.futures.Future[None]" = concurrent.futures.Future()
            sending = run.task.get_loop().create_task(release())
            sending.add_done_callback(lambda _: releasing.set_result(None))
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
                    self._blocking_lock.release_token(key, run.lease.token)
                except Exception as error:  # the lease expires by its TTL
                    logger.warning("task %r could not release its lease at exit: %s", key, error)
                run.ended = True
                if self._running.get(key) is run:
                    del self._running[key]

    def running(self) -> List[str]:
        """Keys whose tasks run in this process."""
        return sorted(key for key, run in list(self._running.items()) if not run.ended)

    async def is_running(self, key: str) -> bool:
        """Whether ``key`` runs anywhere (any process sharing the store)."""
        return await self._lock.is_held(key)
