"""Lease keeping on the event loop: one timer per loop keeps every lease of a coordinator's tasks."""

from __future__ import annotations

import asyncio as _asyncio
import logging
from typing import Any, Dict, List, Optional

from racefree import _native
from racefree.asyncio._bridge import completions
from racefree.errors import LeaseLost

logger = logging.getLogger("racefree")


class _LoopKeeper:
    """Keeps the leases of one coordinator's tasks on one event loop with one timer (no task or
    thread per lease): wakes when the core's keepers ask, sends their renewals (the core's async
    renewals on stores that wait), hands the replies back, and cancels a task when its lease is
    lost."""

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
        entry = self._leases.pop(keeper, None)  # the timer finds nothing to do for it
        if entry is not None and entry[1] is not None:
            entry[1].cancel()  # a renewal of a lease about to be released is of no use

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
            entry[1] = keeper.renew_async(completions())
            entry[1].add_done_callback(lambda _: self._step(keeper))
            # A stalled store must not hold the keeper past the instant the lease is lost.
            wake = keeper.lost_at
        self._wake_at(wake)
