"""Django integration: a :class:`~racefree.asyncio.TaskCoordinator` configured from settings.

.. code-block:: python

    # settings.py
    RACEFREE = {"STORE": "memory://", "TASK_TTL": 30}

    # anywhere
    from racefree.django import coordinator
    started = await coordinator().start(f"tasks.ExampleTask:{task.pk}", task.process)
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from racefree import _native
from racefree.asyncio import TaskCoordinator

__all__ = ["coordinator", "store", "reset"]

_lock = threading.Lock()
_store: Optional[_native.Store] = None
_coordinator: Optional[TaskCoordinator] = None


def _settings() -> Dict[str, Any]:
    from django.conf import settings  # type: ignore[import-untyped]

    return dict(getattr(settings, "RACEFREE", {}))


def store() -> _native.Store:
    """The store named by ``RACEFREE["STORE"]`` (default ``memory://``), opened once per process."""
    global _store
    with _lock:
        if _store is None:
            _store = _native.open(_settings().get("STORE", "memory://"))
        return _store


def coordinator() -> TaskCoordinator:
    """The process's task coordinator (``RACEFREE["TASK_TTL"]`` seconds per lease, default 30)."""
    global _coordinator
    shared = store()
    with _lock:
        if _coordinator is None:
            config = _settings()
            _coordinator = TaskCoordinator(
                shared, name=config.get("TASK_LOCK", "tasks"), ttl=config.get("TASK_TTL", 30.0)
            )
        return _coordinator


def reset() -> None:
    """Forgets the store and coordinator (tests; after settings change)."""
    global _store, _coordinator
    with _lock:
        _store = None
        _coordinator = None
