"""Type stubs of the native module ``racefree._native`` (checked against it by mypy's stubtest)."""

from datetime import timedelta
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple, Union, final

from racefree.types import (
    CacheStats,
    CounterStats,
    GuardStats,
    Inventory,
    LockStats,
    RecordsStats,
    StoreStats,
)

_Seconds = Union[float, int, timedelta]

__all__ = [
    "Acquisition",
    "AsyncCounter",
    "AsyncEventGuard",
    "AsyncLease",
    "AsyncRecords",
    "AsyncStartLock",
    "Completions",
    "Cache",
    "CacheHit",
    "Claim",
    "Counter",
    "EventGuard",
    "KeeperOptions",
    "Lease",
    "LeaseKeeper",
    "LoadDuty",
    "LoadWait",
    "MAX_KEY_BYTES",
    "ManualClock",
    "Mark",
    "Records",
    "StartLock",
    "Store",
    "UpdateDelays",
    "Versioned",
    "error_codes",
    "new_execution_id",
    "open",
    "check_url",
    "migrate",
    "metric_catalogue",
    "metrics_snapshot",
    "_panic_for_tests",
]

MAX_KEY_BYTES: int

def open(url: Optional[str] = None, *, clock: Optional[ManualClock] = None) -> Store:
    """Opens a store from a URL (`memory://` by default)."""
def new_execution_id() -> str:
    """A new execution id: a ULID, monotonic within the process."""
def check_url(url: str) -> None:
    """Checks a store URL as `open` would, without opening it (no file, no connection): raises
    `InvalidArgument` for a malformed URL or option, `BackendUnavailable` for a missing backend."""
def migrate(url: str) -> int:
    """Creates racefree's schema in the database of a `postgres://` or `sqlite:///` URL if it is
    missing, and returns the schema version in place (what `manage.py migrate` runs). Raises
    `InvalidArgument` for the other stores, which need no schema."""
def error_codes() -> List[str]:
    """Every error code the core can raise, for tests that check each maps to a class."""
def _panic_for_tests() -> None: ...
def metrics_snapshot() -> List[Tuple[str, Dict[str, str], Union[int, Tuple[List[Tuple[float, int]], int, float]]]]:
    """Every series so far: `(name, labels, value)`, where `value` is a counter's `int` or a
    histogram's `(buckets, count, sum)` with cumulative `(upper_bound, count)` buckets."""
def metric_catalogue() -> Tuple[List[Tuple[str, str, str]], List[float]]:
    """Every metric racefree emits: `(name, "counter" | "histogram", help)`; and the histograms'
    bucket bounds, in seconds."""
@final
class ManualClock:
    """A clock that moves only when told to (tests, deterministic scenarios)."""

    def __new__(cls, start_ms: int = 0) -> ManualClock: ...
    def advance(self, by: _Seconds) -> None:
        """Moves the clock forward by `by` (seconds or a `timedelta`)."""
    def set_ms(self, now_ms: int) -> None:
        """Sets the clock to `now_ms` milliseconds."""
    def now_ms(self) -> int:
        """The clock's time, in milliseconds."""

@final
class Store:
    """An open store; every primitive is created on one."""

    @property
    def namespace(self) -> str:
        """The namespace that prefixes every key of this store ("" for none)."""
    @property
    def is_local(self) -> bool:
        """Whether every operation is in-process (nothing to wait for: no disk, network or other process)."""
    def sweep(self) -> int:
        """Removes every expired lease and mark now; returns how many."""
    def inspect(self) -> Inventory:
        """What the namespace holds, for operators: `{"counters": [...], "leases": [...], "streams":
        [...], "records": [...]}`, each entry a dict."""
    def stats(self) -> StoreStats:
        """The store's counts: `entries` (held now), `expired_swept` (removed so far)."""
    def now_ms(self) -> int:
        """The store's time (its clock's), in milliseconds: the clock lease deadlines are on."""
    def sweep_async(self, completions: Completions) -> Awaitable[int]:
        """`sweep` as a future of the running loop (`racefree.asyncio.Store`)."""
    def stats_async(self, completions: Completions) -> Awaitable[StoreStats]:
        """`stats` as a future of the running loop (`racefree.asyncio.Store`)."""
    def inspect_async(self, completions: Completions) -> Awaitable[Inventory]:
        """`inspect` as a future of the running loop (`racefree.asyncio.Store`)."""

@final
class Claim:
    """The index of an execution id and whether this claim assigned it. Claims compare with `==`."""

    @property
    def index(self) -> int:
        """The execution id's index, stable for as long as the counter is not reset."""
    @property
    def is_new(self) -> bool:
        """`True` for the one claim that assigned the index, `False` for every later claim."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Counter:
    """A per-key sequential index counter."""

    def __new__(cls, store: Store, key: str) -> Counter: ...
    @property
    def key(self) -> str:
        """The counter's key."""
    def next(self) -> int:
        """Returns the next index and increments the counter: 0, 1, 2, … unique and gap-free."""
    def claim(self, execution_id: str) -> Claim:
        """The index of `execution_id`: assigned from the counter on its first claim, the same on every
        later one."""
    def index_of(self, execution_id: str) -> Optional[int]:
        """The index `execution_id` claimed, or `None` if it has not claimed one."""
    def peek(self) -> int:
        """The index the next `next` or new claim returns."""
    def set(self, next: int) -> None:
        """Sets the index the next `next` or new claim returns; claims are kept."""
    def reset(self) -> None:
        """Forgets the counter and all its claims."""
    def stats(self) -> CounterStats:
        """This handle's counts: `new_claims`, `repeated_claims`."""

@final
class Mark:
    """What `EventGuard.mark` found: deliver on `FIRST`, suppress on `DUPLICATE`."""

    FIRST: Mark
    DUPLICATE: Mark
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class EventGuard:
    """Ordered lifecycle events, each delivered once per stream."""

    def __new__(
        cls, store: Store, name: str, events: Sequence[str], *, retention: Optional[_Seconds] = None
    ) -> EventGuard: ...
    @property
    def events(self) -> List[str]:
        """The declared events, in order."""
    def mark(self, stream: str, event: str) -> Mark:
        """`Mark.FIRST` or `Mark.DUPLICATE`: the class's own members, so `is` comparisons work."""
    def is_marked(self, stream: str, event: str) -> bool:
        """Whether `event` of `stream` is marked."""
    def last_marked(self, stream: str) -> Optional[str]:
        """The latest event marked for `stream`, or `None`."""
    def forget(self, stream: str) -> bool:
        """Forgets `stream`'s marks; returns whether it had any."""
    def stats(self) -> GuardStats:
        """This handle's counts: `delivered`, `duplicates_suppressed`, `out_of_order`."""

@final
class Lease:
    """A granted lease. A context manager: leaving the `with` block releases it."""

    @property
    def key(self) -> str:
        """The key the lease is on."""
    @property
    def token(self) -> int:
        """The fencing token: larger than every token the lock granted before."""
    @property
    def deadline_ms(self) -> int:
        """The lease's deadline on the store's clock, in milliseconds."""
    @property
    def time_left(self) -> float:
        """Seconds left until the deadline by the store's clock."""
    def renew(self, *, ttl: _Seconds) -> None:
        """Extends the lease to `ttl` from now; raises `NotOwner` once it was released or has expired."""
    def release(self) -> None:
        """Releases the lease; raises `NotOwner` once it was released or has expired."""
    def __enter__(self) -> Lease:
        """Returns the lease itself."""
    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        """Releases the lease; an exception inside the `with` block is never suppressed."""

@final
class StartLock:
    """One winner per key, with TTL leases and fencing tokens."""

    def __new__(cls, store: Store, name: str) -> StartLock: ...
    @property
    def name(self) -> str:
        """The lock's name."""
    def try_start(self, key: str, *, ttl: _Seconds) -> Optional[Lease]:
        """A lease on `key` for `ttl` if nobody holds one, else `None`."""
    def acquire(self, key: str, *, ttl: _Seconds, timeout: Optional[_Seconds] = None) -> Lease:
        """Waits up to `timeout` (forever when `None`) for the lease, with the GIL released while
        waiting."""
    def hold(self, key: str, *, ttl: _Seconds, timeout: Optional[_Seconds] = None) -> Lease:
        """`acquire` for `with lock.hold(key, ttl=30) as lease:` (the lease releases on exit)."""
    def release_token(self, key: str, token: int) -> None:
        """Releases the lease holding `token` on `key` (an operator freeing a stuck key, a process
        that kept the token); raises `NotOwner` when `token` no longer holds it."""
    def is_held(self, key: str) -> bool:
        """Whether somebody holds an unexpired lease on `key`."""
    def holder(self, key: str) -> Optional[Tuple[int, int]]:
        """`(token, deadline_ms)` of the unexpired lease on `key`, or `None`."""
    def stats(self) -> LockStats:
        """This handle's counts: `granted`, `contended`, `renewed`, `released`, `rejected_not_owner`."""

@final
class Versioned:
    """A record's value and version."""

    def __new__(cls, value: Any, version: int) -> Versioned: ...
    @property
    def value(self) -> Any:
        """The record's value (what JSON can hold)."""
    @property
    def version(self) -> int:
        """The record's version: one more on every write, never repeated for a key (a new record
        starts above every version its space has deleted; 1 in a space that deleted none)."""

@final
class Records:
    """Versioned JSON records with compare-and-swap writes."""

    def __new__(cls, store: Store, name: str) -> Records: ...
    def get(self, key: str) -> Optional[Versioned]:
        """The record's value and version, or `None` if there is none."""
    def put(
        self, key: str, value: Any, *, expected_version: Optional[int] = None, fencing_token: Optional[int] = None
    ) -> int:
        """Writes `value`: create-only without `expected_version` (raises `Conflict` if the record
        exists), else only over that version; refused with `StaleToken` for a fencing token below
        the largest one the record has accepted, also after it was deleted. Returns the new
        version."""
    def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        fencing_token: Optional[int] = None,
        max_attempts: int = 5,
    ) -> Versioned:
        """Applies `change(current_value_or_None) -> new_value` as one compare-and-swap write,
        re-reading and retrying on conflict. The GIL is released while backing off."""
    def delete(self, key: str, *, expected_version: Optional[int] = None) -> bool:
        """Deletes the record (only at `expected_version`, when given); returns whether one was
        deleted."""
    def stats(self) -> RecordsStats:
        """This handle's counts: `writes`, `conflicts`, `retries`, `stale_tokens`."""

@final
class LoadDuty:
    """The duty to load a key, handed to exactly one caller."""

    def complete(self, value: Any) -> None:
        """Caches `value` and hands it to every waiter."""
    def fail(self, error: BaseException) -> None:
        """Hands `error` to every waiter; nothing is cached."""
    def abandon(self) -> None:
        """Gives the load up (cancelled): one of the waiters loads instead."""

@final
class CacheHit:
    """A value `Cache.lookup` found cached."""

    @property
    def value(self) -> Any:
        """The cached value."""

@final
class LoadWait:
    """A wait for another caller's load."""

    def on_finished(self, callback: Callable[[], Any]) -> None:
        """Calls `callback()` (from the thread that ends the load) once the load has ended."""
    def done(self) -> bool:
        """Whether the load has ended (loaded, failed or abandoned)."""
    def abandoned(self) -> bool:
        """Whether the load was given up (its loader cancelled): look the key up again."""
    def result(self) -> Any:
        """The loaded value, or the loader's exception raised; `RuntimeError` while the load runs
        or once it was abandoned."""

@final
class Cache:
    """A single-flight TTL cache of Python objects."""

    def __new__(cls, *, max_entries: int = ..., clock: Optional[ManualClock] = None) -> Cache: ...
    def get_or_load(self, key: str, ttl: _Seconds, loader: Callable[[], Any]) -> Any:
        """The cached value, or `loader()` run by exactly one of the concurrent callers. Waiting
        threads release the GIL."""
    def lookup(self, key: str, ttl: _Seconds) -> Union[CacheHit, LoadDuty, LoadWait]:
        """A `CacheHit`, the `LoadDuty` of the one caller that loads, or a `LoadWait` on its load:
        the building block of the asyncio form."""
    def invalidate(self, key: str) -> bool:
        """Drops the cached value of `key`; returns whether one was cached."""
    def sweep(self) -> int:
        """Removes expired values; returns how many."""
    def __len__(self) -> int: ...
    def stats(self) -> CacheStats:
        """Counts: `hits`, `loads`, `coalesced`, `load_errors`, `expired`."""

@final
class KeeperOptions:
    """How leases are kept: TTL, renewal period, optional max hold (validated here, before anything
    is acquired)."""

    def __new__(
        cls, *, ttl: _Seconds, renew_every: Optional[_Seconds] = None, max_hold: Optional[_Seconds] = None
    ) -> KeeperOptions: ...
    @property
    def ttl(self) -> float:
        """The lease TTL, in seconds."""
    @property
    def renew_every(self) -> float:
        """Seconds between renewals."""
    @property
    def max_hold(self) -> Optional[float]:
        """Seconds after which renewal stops and the lease is reported lost, or `None`."""
    def keep(self, lock: StartLock, lease: Lease, requested_at: float) -> LeaseKeeper:
        """A keeper for `lease` of `lock`, whose grant was requested at `requested_at`."""
    def keep_async(self, lock: AsyncStartLock, lease: AsyncLease, requested_at: float) -> LeaseKeeper:
        """A keeper for `lease` of an `AsyncStartLock`, renewed by `renew_async`."""

@final
class LeaseKeeper:
    """One kept lease: `poll(now)` says when to renew; `renew()` sends the renewal, `settle(now)`
    hands its reply back."""

    @property
    def key(self) -> str:
        """The key of the kept lease."""
    @property
    def token(self) -> int:
        """The fencing token of the kept lease."""
    @property
    def lost_at(self) -> float:
        """The instant the lease is lost unless a renewal is confirmed first (safe deadline or max hold)."""
    def poll(self, now: float) -> Optional[float]:
        """`None`: send a renewal now. A number: nothing to do until that instant. Raises
        `LeaseLost` once the lease is lost."""
    def renew(self) -> None:
        """Sends the renewal `poll` asked for and keeps its reply for `settle` (never raises; on
        stores that wait, without the GIL)."""
    def renew_async(self, completions: Completions) -> Awaitable[None]:
        """`renew` as a future of `completions`' loop, done (with `None`) once the reply is kept
        for `settle`. Cancelled, the renewal is dropped and `settle` finds no reply."""
    def settle(self, now: float) -> None:
        """Hands the kept reply of `renew` to the keeper, as received at `now`."""

@final
class Acquisition:
    """One wait for a lease: `retry_after(now)` says how long to sleep, or raises `Timeout`."""

    def __new__(
        cls,
        *,
        ttl: _Seconds,
        timeout: Optional[_Seconds],
        now: float,
        lock: Optional[Union[StartLock, AsyncStartLock]] = None,
    ) -> Acquisition: ...
    def retry_after(self, now: float) -> float:
        """Seconds to sleep before the next attempt; raises `Timeout` once the wait is over."""
    def granted(self, now: float) -> None:
        """The attempt made at `now` was granted: the wait is over (its time is recorded)."""

@final
class Completions:
    """The finished calls of one event loop, and the pipe that wakes it. Made by
    `racefree.asyncio`, which reads the pipe's other end with `loop.add_reader` and then calls
    `drain`. It holds no reference to the loop (the loop's reader holds it)."""

    def __new__(cls, wake_fd: int) -> Completions: ...
    def drain(self) -> None:
        """Sets the result or exception of every finished call (on the loop's thread)."""

@final
class AsyncCounter:
    """`Counter` whose calls are awaitables."""

    def __new__(cls, store: Store, key: str) -> AsyncCounter: ...
    @property
    def key(self) -> str:
        """The counter's key."""
    def next(self, completions: Completions) -> Awaitable[int]:
        """A future of the next index; increments the counter."""
    def claim(self, completions: Completions, execution_id: str) -> Awaitable[Claim]:
        """A future of the `Claim` of `execution_id`."""
    def index_of(self, completions: Completions, execution_id: str) -> Awaitable[Optional[int]]:
        """A future of the index `execution_id` claimed, or `None`."""
    def peek(self, completions: Completions) -> Awaitable[int]:
        """A future of the index the next `next` or new claim returns."""
    def set(self, completions: Completions, next: int) -> Awaitable[None]:
        """A future done once the next index is set to `next`."""
    def reset(self, completions: Completions) -> Awaitable[None]:
        """A future done once the counter and its claims are forgotten."""
    def stats(self) -> CounterStats:
        """This handle's counts: `new_claims`, `repeated_claims`."""

@final
class AsyncEventGuard:
    """`EventGuard` whose calls are awaitables."""

    def __new__(cls, store: Store, name: str, events: Sequence[str], *, retention: Optional[_Seconds] = None) -> AsyncEventGuard: ...
    @property
    def events(self) -> List[str]:
        """The declared events, in order."""
    def mark(self, completions: Completions, stream: str, event: str) -> Awaitable[Mark]:
        """A future of `Mark.FIRST` or `Mark.DUPLICATE`."""
    def keep_undelivered(self, stream: str, event: str) -> None:
        """Keeps a `FIRST` whose caller was cancelled before it saw it: the next mark of `event` of
        `stream` on this handle is told `FIRST`."""
    def is_marked(self, completions: Completions, stream: str, event: str) -> Awaitable[bool]:
        """A future of whether `event` of `stream` is marked."""
    def last_marked(self, completions: Completions, stream: str) -> Awaitable[Optional[str]]:
        """A future of the latest event marked for `stream`, or `None`."""
    def forget(self, completions: Completions, stream: str) -> Awaitable[bool]:
        """A future of whether `stream` had marks, which are forgotten."""
    def stats(self) -> GuardStats:
        """This handle's counts: `delivered`, `duplicates_suppressed`, `out_of_order`."""

@final
class AsyncLease:
    """A lease of an `AsyncStartLock`."""

    @property
    def key(self) -> str:
        """The key the lease is on."""
    @property
    def token(self) -> int:
        """The fencing token: larger than every token the lock granted before."""
    @property
    def deadline_ms(self) -> int:
        """The lease's deadline on the store's clock, in milliseconds."""
    @property
    def time_left(self) -> float:
        """Seconds left until the deadline by the store's clock."""
    def renew(self, completions: Completions, *, ttl: _Seconds) -> Awaitable[None]:
        """A future done once the lease is extended to `ttl` from now; `NotOwner` once it was released or expired."""
    def release(self, completions: Completions) -> Awaitable[None]:
        """Releases the lease; finishes even when its future is cancelled."""

@final
class AsyncStartLock:
    """`StartLock` whose calls are awaitables. `acquire` and `hold` are written in Python on
    `try_start` (they sleep on the event loop between attempts)."""

    def __new__(cls, store: Store, name: str) -> AsyncStartLock: ...
    @property
    def name(self) -> str:
        """The lock's name."""
    def try_start(self, completions: Completions, key: str, *, ttl: _Seconds) -> Awaitable[Optional[AsyncLease]]:
        """An `AsyncLease` on `key` if nobody holds one, else `None`."""
    def release_token(self, completions: Completions, key: str, token: int) -> Awaitable[None]:
        """Releases the lease `token` holds on `key`; finishes even when its future is cancelled."""
    def is_held(self, completions: Completions, key: str) -> Awaitable[bool]:
        """A future of whether somebody holds an unexpired lease on `key`."""
    def holder(self, completions: Completions, key: str) -> Awaitable[Optional[Tuple[int, int]]]:
        """`(token, deadline_ms)` of the unexpired lease on `key`, or `None`."""
    def stats(self) -> LockStats:
        """This handle's counts: `granted`, `contended`, `renewed`, `released`, `rejected_not_owner`."""

@final
class AsyncRecords:
    """`Records` whose calls are awaitables. `update` is written in Python on `get` and `put` (its
    change function may be a coroutine function, which only the event loop can run)."""

    def __new__(cls, store: Store, name: str) -> AsyncRecords: ...
    def get(self, completions: Completions, key: str) -> Awaitable[Optional[Versioned]]:
        """A future of the record's `Versioned`, or `None`."""
    def put(
        self,
        completions: Completions,
        key: str,
        value: Any,
        *,
        expected_version: Optional[int] = None,
        fencing_token: Optional[int] = None,
    ) -> Awaitable[int]:
        """A future of the new version of the record `value` was written to (as `Records.put`)."""
    @staticmethod
    def retry_delays(key: str, max_attempts: int) -> UpdateDelays:
        """The seconds to sleep between `update`'s attempts on `key` (`max_attempts - 1` of them),
        drawn one at a time. Checks `key` and `max_attempts` as the blocking `update` does."""
    def delete(self, completions: Completions, key: str, *, expected_version: Optional[int] = None) -> Awaitable[bool]:
        """A future of whether the record was deleted (as `Records.delete`)."""
    def stats(self) -> RecordsStats:
        """This handle's counts: `writes`, `conflicts`, `retries`, `stale_tokens`."""

@final
class UpdateDelays:
    """The sleeps between an update's attempts, in seconds, drawn one at a time (any `max_attempts`
    costs nothing up front); an iterator."""

    def __iter__(self) -> UpdateDelays: ...
    def __next__(self) -> float: ...
