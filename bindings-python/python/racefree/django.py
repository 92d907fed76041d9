"""Django integration: a :class:`~racefree.asyncio.TaskCoordinator` configured from settings.

.. code-block:: python

    # settings.py
    RACEFREE = {"STORE": "memory://", "TASK_TTL": 30}

    # anywhere
    from racefree.django import coordinator
    started = await coordinator().start(f"tasks.ExampleTask:{task.pk}", task.process)

    # or in the form of a hand-written coordinator: runs task.process() once per key
    from racefree.django import start_task
    started = await start_task(task, "tasks", "ExampleTask")

Settings: ``STORE`` (default ``memory://``), ``TASK_LOCK`` (``"tasks"``), ``TASK_TTL`` (seconds,
30), ``TASK_RENEW_EVERY`` (seconds, ``TASK_TTL / 3``), ``TASK_MAX_HOLD`` (seconds, unbounded).
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from racefree import _native
from racefree.asyncio import TaskCoordinator

__all__ = ["coordinator", "store", "reset", "get_task_key", "start_task"]

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
                shared,
                name=config.get("TASK_LOCK", "tasks"),
                ttl=config.get("TASK_TTL", 30.0),
                renew_every=config.get("TASK_RENEW_EVERY"),
                max_hold=config.get("TASK_MAX_HOLD"),
            )
        return _coordinator


def get_task_key(app_name: str, model_name: str, pk: Any) -> str:
    """The coordinator key of a model instance's task: ``"<app>.<Model>:<pk>"``."""
    return f"{app_name}.{model_name}:{pk}"


async def start_task(task_instance: Any, app_name: str, model_name: str) -> bool:
    """Runs ``await task_instance.process()`` unless that instance's task already runs anywhere
    (any thread, event loop or process sharing the store); returns whether it started."""
    key = get_task_key(app_name, model_name, task_instance.pk)
    return await coordinator().start(key, task_instance.process)


def reset() -> None:
    """Forgets the store and coordinator (tests; after settings change)."""
    global _store, _coordinator
    with _lock:
        _store = None
        _coordinator = None
