"""The shapes of what racefree returns as plain dicts: each primitive's ``stats()`` and
``Store.inspect()``. Use them in annotations (``stats: CounterStats = counter.stats()``); at run time
they are ordinary dicts."""

from __future__ import annotations

from typing import List, TypedDict

__all__ = [
    "CacheStats",
    "CounterEntry",
    "CounterStats",
    "GuardStats",
    "Inventory",
    "LeaseEntry",
    "LockStats",
    "RecordEntry",
    "RecordsStats",
    "StoreStats",
    "StreamEntry",
]


class StoreStats(TypedDict):
    """``Store.stats()``."""

    entries: int
    """Entries held now: counters, claims, marked streams, leases and records (unswept expired ones included)."""
    expired_swept: int
    """Expired leases and marks removed so far."""


class CounterStats(TypedDict):
    """``Counter.stats()``: this handle's claims."""

    new_claims: int
    repeated_claims: int


class GuardStats(TypedDict):
    """``EventGuard.stats()``: this handle's marks."""

    delivered: int
    duplicates_suppressed: int
    out_of_order: int


class LockStats(TypedDict):
    """``StartLock.stats()``: this handle's lease calls."""

    granted: int
    contended: int
    renewed: int
    released: int
    rejected_not_owner: int
    lost_not_owner: int
    lost_renewals_failed: int
    lost_max_hold: int


class RecordsStats(TypedDict):
    """``Records.stats()``: this handle's writes."""

    writes: int
    conflicts: int
    retries: int
    stale_tokens: int


class CacheStats(TypedDict):
    """``Cache.stats()``."""

    hits: int
    loads: int
    coalesced: int
    load_errors: int
    expired: int


class CounterEntry(TypedDict):
    """A counter in an ``Inventory``."""

    counter: str
    next: int
    claims: int


class LeaseEntry(TypedDict):
    """An unexpired lease in an ``Inventory``; ``deadline_ms`` is on the store's clock."""

    lock: str
    key: str
    token: int
    deadline_ms: int


class StreamEntry(TypedDict):
    """A marked stream in an ``Inventory``; ``expires_at_ms`` is on the store's clock."""

    guard: str
    stream: str
    marked: int
    expires_at_ms: int


class RecordEntry(TypedDict):
    """A record in an ``Inventory``."""

    space: str
    key: str
    version: int


class Inventory(TypedDict):
    """``Store.inspect()``: what a store's namespace holds, for operators."""

    counters: List[CounterEntry]
    leases: List[LeaseEntry]
    streams: List[StreamEntry]
    records: List[RecordEntry]
