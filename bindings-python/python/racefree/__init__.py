"""racefree: coordination primitives that are race-free by construction.

Every operation is one atomic step in its store: an index claim, a lease grant, an event mark, a
compare-and-swap write. The same core runs in Rust, Python and JavaScript.

>>> import racefree
>>> store = racefree.open()                      # memory:// by default
>>> executions = racefree.Counter(store, "task:42")
>>> executions.claim("exec-a").index
0
"""

from __future__ import annotations

from racefree._native import (
    MAX_KEY_BYTES,
    Cache,
    Claim,
    Counter,
    EventGuard,
    Lease,
    ManualClock,
    Mark,
    Records,
    StartLock,
    Store,
    Versioned,
    check_url,
    migrate,
    new_execution_id,
    open,
)
from racefree._cached import cached
from racefree.errors import (
    BackendError,
    BackendUnavailable,
    CapacityExceeded,
    Conflict,
    CorruptData,
    InvalidArgument,
    InvalidKey,
    LeaseLost,
    NotOwner,
    OutOfOrder,
    RacefreeError,
    StaleToken,
    Timeout,
)

__all__ = [
    "MAX_KEY_BYTES",
    "BackendError",
    "BackendUnavailable",
    "Cache",
    "CapacityExceeded",
    "Claim",
    "Conflict",
    "CorruptData",
    "Counter",
    "EventGuard",
    "InvalidArgument",
    "InvalidKey",
    "Lease",
    "LeaseLost",
    "ManualClock",
    "Mark",
    "NotOwner",
    "OutOfOrder",
    "RacefreeError",
    "Records",
    "StaleToken",
    "StartLock",
    "Store",
    "Timeout",
    "Versioned",
    "new_execution_id",
    "cached",
    "check_url",
    "migrate",
    "open",
]
