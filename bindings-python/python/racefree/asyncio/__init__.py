"""asyncio forms of every racefree primitive, and the task coordinator built on them.

Every operation is awaitable, with the names, arguments, results and errors of the blocking API.
On the memory store each runs directly (an in-process critical section); on SQLite, Redis and
PostgreSQL it is the core's async operation on a runtime of the extension's own, so the event
loop never waits on the store and no thread is taken per call. Cancelling any of them leaves no
lease without an owner.

- :mod:`racefree.asyncio._bridge`: how a call reaches the store and its result the loop;
- :mod:`racefree.asyncio._primitives`: ``Counter``, ``EventGuard``, ``StartLock``, ``Lease``, ``Records``,
  and ``Store`` (``sweep``, ``stats``, ``inspect``);
- :mod:`racefree.asyncio._keeping`: lease keeping on the loop's timers;
- :mod:`racefree.asyncio._coordinator`: ``TaskCoordinator`` and ``current_lease``;
- :mod:`racefree.asyncio._cache`: ``Cache`` and ``get_or_load``.
"""

from racefree.asyncio._cache import Cache, get_or_load
from racefree.asyncio._coordinator import TaskCoordinator, current_lease
from racefree.asyncio._primitives import Counter, EventGuard, Lease, Records, StartLock, Store

__all__ = [
    "Cache",
    "Counter",
    "EventGuard",
    "Lease",
    "Records",
    "StartLock",
    "Store",
    "TaskCoordinator",
    "current_lease",
    "get_or_load",
]
