"""How an asyncio call reaches the store.

On the memory store every operation is an in-process critical section of a few hundred
nanoseconds: it is called directly. On the others (SQLite: disk and other processes' locks;
Redis and PostgreSQL: the network) it is one of the core's async operations, run on a runtime of
the extension's own: no thread per call, and the event loop never waits on the store. A call's
result comes back through its loop's :class:`_native.Completions`: the runtime queues it and
writes one byte to a pipe the loop reads, and the loop sets every queued result on its own thread.
"""

from __future__ import annotations

import asyncio
import os
import weakref

from racefree import _native

# loop -> its completions. Emptied in a forked child, which makes its own (the pipe and the
# runtime behind them are the parent's).
_completions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _native.Completions]" = weakref.WeakKeyDictionary()


def _forget_after_fork() -> None:
    global _completions
    _completions = weakref.WeakKeyDictionary()


os.register_at_fork(after_in_child=_forget_after_fork)


def completions() -> _native.Completions:
    """The running loop's completions, made on its first call."""
    loop = asyncio.get_running_loop()
    found = _completions.get(loop)
    return found if found is not None else _attach(loop)


def _attach(loop: asyncio.AbstractEventLoop) -> _native.Completions:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    native = _native.Completions(write_end)  # owns write_end from here on

    def drain() -> None:
        # The pipe first, then the queue: a call that finishes in between writes another byte.
        # One byte per batch, so one read empties it.
        try:
            os.read(read_end, 4096)
        except BlockingIOError:
            pass
        native.drain()

    loop.add_reader(read_end, drain)
    weakref.finalize(loop, os.close, read_end)
    _completions[loop] = native
    return native
