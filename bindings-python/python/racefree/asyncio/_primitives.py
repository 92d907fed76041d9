"""The primitives with every operation awaitable: the names, arguments, results and errors of the
blocking API (:mod:`racefree`). On the memory store each call runs directly; on the others it is
the core's async operation (see :mod:`racefree.asyncio._bridge`).

Cancelling any of these calls is safe: a cancelled ``try_start`` (or ``acquire``, ``hold``) whose
grant lands anyway releases it at once, so no lease is left without an owner; a cancelled
``mark`` that landed ``FIRST`` is told ``FIRST`` again on this handle's next mark of the event;
every other call either happened or did not, as if it had been made a moment earlier or later. A
``release`` goes on to the store even when its caller is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from datetime import timedelta
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

from racefree import _native
from racefree.asyncio._bridge import completions
from racefree.errors import Conflict
from racefree._native import Claim, Mark, Versioned
from racefree.types import CounterStats, GuardStats, Inventory, LockStats, RecordsStats, StoreStats

Seconds = Union[float, int, timedelta]
T = TypeVar("T")


async def _delivered(future: "Awaitable[T]", give_back: Callable[[T], None]) -> T:
    """``await future``; when the awaiting task is cancelled after the future got its result
    (the task had not resumed yet), the result goes to ``give_back``: nobody else will see it."""
    try:
        return await future
    except asyncio.CancelledError:
        if isinstance(future, asyncio.Future) and future.done() and not future.cancelled() and future.exception() is None:
            give_back(future.result())
        raise


AnyStore = Union[_native.Store, "Store"]


def _native_store(store: AnyStore) -> _native.Store:
    return store.native if isinstance(store, Store) else store


class Counter:
    """A per-key sequential index counter (:class:`racefree.Counter`), awaitable."""

    __slots__ = ("_blocking", "_async")

    def __init__(self, store: AnyStore, key: str) -> None:
        store = _native_store(store)
        self._blocking = _native.Counter(store, key)
        self._async = None if store.is_local else _native.AsyncCounter(store, key)

    @property
    def key(self) -> str:
        return self._blocking.key

    async def next(self) -> int:
        """The next index (0, 1, 2, … unique and gap-free); increments the counter."""
        if self._async is None:
            return self._blocking.next()
        return await self._async.next(completions())

    async def claim(self, execution_id: str) -> Claim:
        """The index of ``execution_id``: assigned on its first claim, the same on every later one."""
        if self._async is None:
            return self._blocking.claim(execution_id)
        return await self._async.claim(completions(), execution_id)

    async def index_of(self, execution_id: str) -> Optional[int]:
        """The index ``execution_id`` claimed, or ``None``."""
        if self._async is None:
            return self._blocking.index_of(execution_id)
        return await self._async.index_of(completions(), execution_id)

    async def peek(self) -> int:
        """The index the next ``next`` or new claim returns."""
        if self._async is None:
            return self._blocking.peek()
        return await self._async.peek(completions())

    async def set(self, next: int) -> None:
        """Sets the index the next ``next`` or new claim returns; claims are kept."""
        if self._async is None:
            self._blocking.set(next)
            return
        await self._async.set(completions(), next)

    async def reset(self) -> None:
        """Forgets the counter and all its claims."""
        if self._async is None:
            self._blocking.reset()
            return
        await self._async.reset(completions())

    def stats(self) -> CounterStats:
        """This handle's counts: ``new_claims``, ``repeated_claims``."""
        return (self._blocking if self._async is None else self._async).stats()


class EventGuard:
    """Ordered lifecycle events, each delivered once per stream (:class:`racefree.EventGuard`), awaitable."""

    __slots__ = ("_blocking", "_async")

    def __init__(self, store: AnyStore, name: str, events: Sequence[str], *, retention: Optional[Seconds] = None) -> None:
        store = _native_store(store)
        self._blocking = _native.EventGuard(store, name, events, retention=retention)
        self._async = None if store.is_local else _native.AsyncEventGuard(store, name, events, retention=retention)

    @property
    def events(self) -> List[str]:
        return self._blocking.events

    async def mark(self, stream: str, event: str) -> Mark:
        """``Mark.FIRST``: deliver the event; ``Mark.DUPLICATE``: it was delivered already.
        Raises ``OutOfOrder`` for an event before one already marked."""
        if self._async is None:
            return self._blocking.mark(stream, event)
        native = self._async

        def keep(mark: Mark) -> None:
            if mark is Mark.FIRST:
                native.keep_undelivered(stream, event)

        return await _delivered(native.mark(completions(), stream, event), keep)

    async def is_marked(self, stream: str, event: str) -> bool:
        """Whether ``event`` of ``stream`` is marked."""
        if self._async is None:
            return self._blocking.is_marked(stream, event)
        return await self._async.is_marked(completions(), stream, event)

    async def last_marked(self, stream: str) -> Optional[str]:
        """The latest event marked for ``stream``, or ``None``."""
        if self._async is None:
            return self._blocking.last_marked(stream)
        return await self._async.last_marked(completions(), stream)

    async def forget(self, stream: str) -> bool:
        """Forgets ``stream``'s marks; returns whether it had any."""
        if self._async is None:
            return self._blocking.forget(stream)
        return await self._async.forget(completions(), stream)

    def stats(self) -> GuardStats:
        """This handle's counts: ``delivered``, ``duplicates_suppressed``, ``out_of_order``."""
        return (self._blocking if self._async is None else self._async).stats()


class Lease:
    """A granted lease of :class:`StartLock`. ``async with`` releases it on exit."""

    __slots__ = ("_blocking", "_async")

    def __init__(self, lease: Union[_native.Lease, _native.AsyncLease]) -> None:
        self._blocking = lease if isinstance(lease, _native.Lease) else None
        self._async = lease if isinstance(lease, _native.AsyncLease) else None

    @property
    def _lease(self) -> Union[_native.Lease, _native.AsyncLease]:
        return self._blocking if self._blocking is not None else self._async  # type: ignore[return-value]

    @property
    def key(self) -> str:
        return self._lease.key

    @property
    def token(self) -> int:
        """The fencing token: larger than every token the lock granted before."""
        return self._lease.token

    @property
    def deadline_ms(self) -> int:
        """The deadline on the store's clock, in milliseconds, as of the last grant or renewal."""
        return self._lease.deadline_ms

    @property
    def time_left(self) -> float:
        """Seconds left until the deadline by the store's clock."""
        return self._lease.time_left

    async def renew(self, *, ttl: Seconds) -> None:
        """Extends the lease to ``ttl`` from now; raises ``NotOwner`` once it was released or expired."""
        if self._blocking is not None:
            self._blocking.renew(ttl=ttl)
        elif self._async is not None:
            await self._async.renew(completions(), ttl=ttl)

    async def release(self) -> None:
        """Releases the lease; raises ``NotOwner`` once it was released or expired. Goes on to
        the store even if the caller is cancelled."""
        if self._blocking is not None:
            self._blocking.release()
        elif self._async is not None:
            await asyncio.shield(self._async.release(completions()))

    async def __aenter__(self) -> "Lease":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.release()

    def __repr__(self) -> str:
        return f"<racefree.asyncio.Lease key={self.key!r} token={self.token}>"


def _release_unseen(lease: Optional[_native.AsyncLease]) -> None:
    if lease is not None:
        # Sent now and finished on the runtime whether or not anyone awaits it; its outcome
        # (NotOwner if it expired meanwhile) is of interest to nobody.
        releasing = lease.release(completions())
        if isinstance(releasing, asyncio.Future):
            releasing.add_done_callback(lambda done: done.cancelled() or done.exception())


class StartLock:
    """One winner per key, with TTL leases and fencing tokens (:class:`racefree.StartLock`), awaitable."""

    __slots__ = ("_blocking", "_async")

    def __init__(self, store: AnyStore, name: str) -> None:
        store = _native_store(store)
        self._blocking = _native.StartLock(store, name)
        self._async = None if store.is_local else _native.AsyncStartLock(store, name)

    @property
    def name(self) -> str:
        return self._blocking.name

    async def try_start(self, key: str, *, ttl: Seconds) -> Optional[Lease]:
        """A lease on ``key`` for ``ttl`` if nobody holds one, else ``None`` (never waits for a
        holder). Cancelled, a grant that lands anyway is released at once."""
        granted: Union[_native.Lease, _native.AsyncLease, None]
        if self._async is None:
            granted = self._blocking.try_start(key, ttl=ttl)
        else:
            granted = await _delivered(self._async.try_start(completions(), key, ttl=ttl), _release_unseen)
        return None if granted is None else Lease(granted)

    async def acquire(self, key: str, *, ttl: Seconds, timeout: Optional[Seconds] = None) -> Lease:
        """Waits up to ``timeout`` seconds (forever when ``None``) for a lease on ``key``.

        Waits by the core's schedule, as every language does; raises :class:`racefree.Timeout`
        when the time is up. A bad ``ttl`` or ``timeout`` raises before anything is tried.
        Cancelling the awaiting task stops the wait; a grant that lands after the cancellation is
        released at once.
        """
        loop = asyncio.get_running_loop()
        native_lock = self._blocking if self._async is None else self._async
        wait = _native.Acquisition(ttl=ttl, timeout=timeout, now=loop.time(), lock=native_lock)  # validates first
        while True:
            lease = await self.try_start(key, ttl=ttl)
            if lease is not None:
                wait.granted(loop.time())
                return lease
            await asyncio.sleep(wait.retry_after(loop.time()))

    @contextlib.asynccontextmanager
    async def hold(self, key: str, *, ttl: Seconds, timeout: Optional[Seconds] = None) -> AsyncIterator[Lease]:
        """``async with lock.hold(key, ttl=30) as lease:`` — acquires, and releases on exit."""
        lease = await self.acquire(key, ttl=ttl, timeout=timeout)
        try:
            yield lease
        finally:
            await lease.release()

    async def release_token(self, key: str, token: int) -> None:
        """Releases the lease ``token`` holds on ``key``; raises ``NotOwner`` if it holds none."""
        if self._async is None:
            self._blocking.release_token(key, token)
            return
        await asyncio.shield(self._async.release_token(completions(), key, token))

    async def is_held(self, key: str) -> bool:
        """Whether somebody holds an unexpired lease on ``key``."""
        if self._async is None:
            return self._blocking.is_held(key)
        return await self._async.is_held(completions(), key)

    async def holder(self, key: str) -> Optional[Tuple[int, int]]:
        """``(token, deadline_ms)`` of the unexpired lease on ``key``, or ``None``."""
        if self._async is None:
            return self._blocking.holder(key)
        return await self._async.holder(completions(), key)

    def stats(self) -> LockStats:
        """This handle's counts: ``granted``, ``contended``, ``renewed``, ``released``, ``rejected_not_owner``."""
        return (self._blocking if self._async is None else self._async).stats()


class Records:
    """Versioned JSON records with compare-and-swap writes (:class:`racefree.Records`), awaitable."""

    __slots__ = ("_blocking", "_async", "_retries")

    def __init__(self, store: AnyStore, name: str) -> None:
        store = _native_store(store)
        self._blocking = _native.Records(store, name)
        self._async = None if store.is_local else _native.AsyncRecords(store, name)
        self._retries = 0

    async def get(self, key: str) -> Optional[Versioned]:
        """The record's value and version, or ``None``."""
        if self._async is None:
            return self._blocking.get(key)
        return await self._async.get(completions(), key)

    async def put(self, key: str, value: Any, *, expected_version: Optional[int] = None, fencing_token: Optional[int] = None) -> int:
        """Writes ``value``: create-only without ``expected_version``, else only over that
        version; refused with ``StaleToken`` below the largest fencing token the record has
        accepted. Returns the new version."""
        if self._async is None:
            return self._blocking.put(key, value, expected_version=expected_version, fencing_token=fencing_token)
        return await self._async.put(completions(), key, value, expected_version=expected_version, fencing_token=fencing_token)

    async def update(
        self,
        key: str,
        change: Callable[[Any], Union[Any, Awaitable[Any]]],
        *,
        fencing_token: Optional[int] = None,
        max_attempts: int = 5,
    ) -> Versioned:
        """Applies ``change(current_value_or_None) -> new_value`` (a function or a coroutine
        function) as one compare-and-swap write, re-reading and retrying on conflict with the
        core's backoff; raises ``Conflict`` after ``max_attempts``. ``change`` may run more than
        once: it must not have side effects."""
        if self._async is None and not inspect.iscoroutinefunction(change):
            return self._blocking.update(key, change, fencing_token=fencing_token, max_attempts=max_attempts)
        delays = _native.AsyncRecords.retry_delays(key, max_attempts)  # checks both first
        while True:
            current = await self.get(key)
            value = change(None if current is None else current.value)
            if inspect.isawaitable(value):
                value = await value
            try:
                version = await self.put(
                    key,
                    value,
                    expected_version=None if current is None else current.version,
                    fencing_token=fencing_token,
                )
            except Conflict:
                delay = next(delays, None)
                if delay is None:
                    raise
                self._retries += 1
                await asyncio.sleep(delay)
                continue
            return _native.Versioned(value, version)

    async def delete(self, key: str, *, expected_version: Optional[int] = None) -> bool:
        """Deletes the record (only at ``expected_version``, when given); returns whether one was deleted."""
        if self._async is None:
            return self._blocking.delete(key, expected_version=expected_version)
        return await self._async.delete(completions(), key, expected_version=expected_version)

    def stats(self) -> RecordsStats:
        """This handle's counts: ``writes``, ``conflicts``, ``retries``, ``stale_tokens``."""
        counts = (self._blocking if self._async is None else self._async).stats()
        counts["retries"] += self._retries
        return counts


class Store:
    """A store's own operations (:class:`racefree.Store`) as coroutines: ``sweep``, ``stats`` and
    ``inspect`` go to the server on Redis and PostgreSQL (and to disk on SQLite), so their
    awaitable forms keep the loop free. ``Store(racefree.open(url))``; primitives take either."""

    __slots__ = ("native",)

    def __init__(self, store: _native.Store) -> None:
        self.native = store

    @property
    def namespace(self) -> str:
        return self.native.namespace

    @property
    def is_local(self) -> bool:
        return self.native.is_local

    def now_ms(self) -> int:
        """The store's time (its clock's), in milliseconds."""
        return self.native.now_ms()

    async def sweep(self) -> int:
        """Removes every expired lease and mark now; returns how many."""
        if self.native.is_local:
            return self.native.sweep()
        return await self.native.sweep_async(completions())

    async def stats(self) -> StoreStats:
        """The store's counts: ``entries`` (held now), ``expired_swept`` (removed so far)."""
        if self.native.is_local:
            return self.native.stats()
        return await self.native.stats_async(completions())

    async def inspect(self) -> Inventory:
        """What the namespace holds, for operators (as :meth:`racefree.Store.inspect`)."""
        if self.native.is_local:
            return self.native.inspect()
        return await self.native.inspect_async(completions())
