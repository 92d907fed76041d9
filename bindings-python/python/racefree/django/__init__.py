"""Django integration: a :class:`~racefree.asyncio.TaskCoordinator` configured from settings.

.. code-block:: python

    # settings.py
    INSTALLED_APPS = [..., "racefree.django"]          # system checks, `manage.py racefree`
    RACEFREE = {"STORE": "redis://127.0.0.1:6379/0?namespace=app", "TASK_TTL": 30}

    # asgi.py: shutdown cancels this worker's tasks and releases their keys at once
    application = racefree.django.lifespan(get_asgi_application())

    # anywhere
    from racefree.django import acoordinator, start_task
    started = await (await acoordinator()).start(f"tasks.ExampleTask:{task.pk}", task.process)
    started = await start_task(task, "tasks", "ExampleTask")   # the same, by app and model

``"STORE": "django"`` (or ``"django://<alias>"``, and ``"django://default?namespace=app"``)
keeps racefree in the project's own database, ``DATABASES["default"]`` (or ``<alias>``): a
PostgreSQL one, or beside an SQLite one (in ``<NAME>-racefree``: two copies of SQLite in one
process must not open one file). racefree opens its own connection, never Django's, so a
request's ``atomic()`` rolling back does not undo a claim, a mark or a lease; ``manage.py
migrate`` creates racefree's tables there.

Settings (``RACEFREE``, every key optional): ``STORE`` (default ``memory://``), ``TASK_LOCK``
(``"tasks"``), ``TASK_TTL`` (seconds, 30), ``TASK_RENEW_EVERY`` (seconds, ``TASK_TTL / 3``),
``TASK_MAX_HOLD`` (seconds, unbounded), ``PROMETHEUS`` (``True`` registers
:class:`racefree.metrics.PrometheusCollector` with ``prometheus_client``'s default registry when
the app is ready; ``False``). ``manage.py check`` reports unknown keys and bad values.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Optional

from racefree import _native
from racefree.asyncio import TaskCoordinator

__all__ = [
    "SETTINGS",
    "acoordinator",
    "coordinator",
    "get_task_key",
    "lifespan",
    "reset",
    "start_task",
    "store",
    "store_url",
]

#: Every key ``RACEFREE`` may hold, with its default.
SETTINGS: Dict[str, Any] = {
    "STORE": "memory://",
    "TASK_LOCK": "tasks",
    "TASK_TTL": 30.0,
    "TASK_RENEW_EVERY": None,
    "TASK_MAX_HOLD": None,
    "PROMETHEUS": False,
}

# A failed open is remembered and raised again until the back-off has passed, so an unreachable
# store costs one attempt per back-off, not one per request.
_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0

#: The clock of the back-off (tests move it by hand).
_now: Callable[[], float] = time.monotonic

_lock = threading.Lock()
_store: Optional[_native.Store] = None
_coordinator: Optional[TaskCoordinator] = None
_failed: Optional[BaseException] = None
_retry_at = 0.0
_retry_after = _RETRY_FIRST


def _seconds_left(deadline_ms: int, now_ms: int) -> str:
    """A lease's time left, as operators read it (the admin page, ``manage.py racefree``)."""
    return f"{max(0, deadline_ms - now_ms) / 1000:.1f} s"


def settings() -> Dict[str, Any]:
    """``RACEFREE`` from Django's settings, with the defaults filled in."""
    from django.conf import settings as django_settings  # type: ignore[import-untyped]

    return {**SETTINGS, **dict(getattr(django_settings, "RACEFREE", {}))}


#: What ``"django"`` appends to an SQLite database's file name: racefree's own file beside it.
SQLITE_SUFFIX = "-racefree"

#: The Django database engines racefree can share, and the store scheme of each.
_ENGINES = {
    "django.db.backends.postgresql": "postgres",
    "django.contrib.gis.db.backends.postgis": "postgres",
    "django.db.backends.sqlite3": "sqlite",
}


def database_alias(url: str) -> Optional[str]:
    """The ``DATABASES`` alias a ``"django"`` / ``"django://<alias>"`` store names, else None."""
    if url == "django":
        return "default"
    if url.startswith("django://"):
        return url[len("django://") :].split("?", 1)[0] or "default"
    return None


def store_url(url: Optional[str] = None, databases: Optional[Dict[str, Any]] = None) -> str:
    """The store URL ``RACEFREE["STORE"]`` (or ``url``) means: itself, or for ``"django"`` and
    ``"django://<alias>[?options]"`` the URL of that database of ``DATABASES`` (or of
    ``databases``), its options appended. Raises ``ImproperlyConfigured`` for an unknown alias or
    an engine racefree cannot share."""
    from urllib.parse import quote

    from django.conf import settings as django_settings
    from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]

    url = settings()["STORE"] if url is None else url
    alias = database_alias(url)
    if alias is None:
        return url
    query = url.split("?", 1)[1] if "?" in url else ""
    if databases is None:
        databases = getattr(django_settings, "DATABASES", {})
    if alias not in databases:
        raise ImproperlyConfigured(f"RACEFREE['STORE'] is {url!r}, but DATABASES has no {alias!r} database")
    database = databases[alias]
    engine = database.get("ENGINE", "")
    scheme = _ENGINES.get(engine)
    if scheme is None:
        raise ImproperlyConfigured(
            f"RACEFREE['STORE'] is {url!r}: DATABASES[{alias!r}] uses {engine!r}; racefree shares "
            "PostgreSQL (django.db.backends.postgresql) and SQLite (django.db.backends.sqlite3) databases only"
        )
    options = [query] if query else []
    if scheme == "sqlite":
        name = str(database.get("NAME", ""))
        if not name.startswith("/"):
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}]['NAME'] is {name!r}: racefree shares an SQLite database by its "
                "absolute file path (not :memory:, not a relative path)"
            )
        # A file of racefree's own beside Django's, never Django's file itself: Python's sqlite3
        # and racefree each link their own copy of SQLite, and two copies in one process that
        # open one file break each other's POSIX locks (closing a descriptor in one drops the
        # other's locks: https://sqlite.org/howtocorrupt.html#multiple_copies_of_sqlite_linked_into_the_same_application).
        return f"sqlite://{name}{SQLITE_SUFFIX}" + (f"?{'&'.join(options)}" if options else "")
    user, password = str(database.get("USER") or ""), str(database.get("PASSWORD") or "")
    host, port = str(database.get("HOST") or ""), str(database.get("PORT") or "")
    credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    if host.startswith("/"):
        options.append(f"host={quote(host, safe='/')}")
        host = "localhost"
    netloc = (credentials + "@" if credentials else "") + _hosts(alias, host or "localhost", port)
    for name in ("sslmode", "sslrootcert", "target_session_attrs"):
        value = (database.get("OPTIONS") or {}).get(name)
        if value is not None:
            options.append(f"{name}={value}")
    return f"postgres://{netloc}/{quote(str(database.get('NAME') or ''), safe='')}" + (
        f"?{'&'.join(options)}" if options else ""
    )


def _hosts(alias: str, host: str, port: str) -> str:
    """``HOST`` and ``PORT`` as a URL's hosts, as libpq reads them: comma-separated lists (a
    primary and its standbys, tried in order), one port for every host or one port each."""
    from django.core.exceptions import ImproperlyConfigured

    hosts = [h.strip() for h in host.split(",")]
    ports = [p.strip() for p in port.split(",")] if port else []
    if "" in hosts or "" in ports or (len(hosts) > 1 and any(h.startswith("/") for h in hosts)):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]: HOST {host!r} and PORT {port!r} must be host names (no empty item, no "
            "socket directory among several hosts)"
        )
    if len(ports) > 1 and len(ports) != len(hosts):
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]: {len(hosts)} hosts in HOST but {len(ports)} ports in PORT (give one port, "
            "or one per host)"
        )
    if len(ports) <= 1:
        ports = (ports or [""]) * len(hosts)
    return ",".join(h + (f":{p}" if p else "") for h, p in zip(hosts, ports))


def store() -> _native.Store:
    """The store named by ``RACEFREE["STORE"]``, opened once per process (and again in a child
    after ``fork()`` by the store itself). Blocks while it opens: in async code use
    :func:`acoordinator`, which opens it off the event loop."""
    global _store, _failed, _retry_at, _retry_after
    with _lock:
        if _store is not None:
            return _store
        if _failed is not None and _now() < _retry_at:
            raise _failed
        try:
            _store = _native.open(store_url())
        except Exception as error:
            _failed, _retry_at = error, _now() + _retry_after
            _retry_after = min(_retry_after * 2, _RETRY_MAX)
            raise
        _failed, _retry_after = None, _RETRY_FIRST
        return _store


def coordinator() -> TaskCoordinator:
    """The process's task coordinator (opening the store if needed: see :func:`acoordinator`)."""
    global _coordinator
    shared = store()
    with _lock:
        if _coordinator is None:
            config = settings()
            _coordinator = TaskCoordinator(
                shared,
                name=config["TASK_LOCK"],
                ttl=config["TASK_TTL"],
                renew_every=config["TASK_RENEW_EVERY"],
                max_hold=config["TASK_MAX_HOLD"],
            )
        return _coordinator


async def acoordinator() -> TaskCoordinator:
    """:func:`coordinator` for async code: the first call opens the store in a thread, so the
    event loop never waits on a slow or unreachable server."""
    found = _coordinator
    if found is not None:
        return found
    return await asyncio.get_running_loop().run_in_executor(None, coordinator)


def get_task_key(app_name: str, model_name: str, pk: Any) -> str:
    """The coordinator key of a model instance's task: ``"<app>.<Model>:<pk>"``."""
    return f"{app_name}.{model_name}:{pk}"


async def start_task(task_instance: Any, app_name: str, model_name: str) -> bool:
    """Runs ``await task_instance.process()`` unless that instance's task already runs anywhere
    (any thread, event loop or process sharing the store); returns whether it started."""
    key = get_task_key(app_name, model_name, task_instance.pk)
    return await (await acoordinator()).start(key, task_instance.process)


def reset() -> None:
    """Forgets the store and coordinator (done on every change of ``RACEFREE``)."""
    global _store, _coordinator, _failed, _retry_at, _retry_after
    with _lock:
        _store, _coordinator, _failed, _retry_at, _retry_after = None, None, None, 0.0, _RETRY_FIRST


async def shutdown(timeout: float = 10.0) -> None:
    """Cancels this process's tasks and releases their leases (see
    :meth:`TaskCoordinator.aclose`); nothing to do if no task was ever started."""
    found = _coordinator
    if found is not None:
        await found.aclose(timeout)


def lifespan(application: Callable[..., Awaitable[None]], *, timeout: float = 10.0) -> Callable[..., Awaitable[None]]:
    """Wraps an ASGI application so that the server's lifespan shutdown (uvicorn, hypercorn,
    gunicorn's UvicornWorker on SIGTERM) cancels this worker's tasks and releases their leases
    before it exits: another worker can start those keys at once instead of after the TTL.
    Django's own ASGI handler speaks HTTP only; this answers the lifespan messages for it."""

    async def app(scope: Dict[str, Any], receive: Callable[..., Awaitable[Any]], send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "lifespan":
            return await application(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await shutdown(timeout)
                except Exception as error:  # reported, and the server still stops
                    await send({"type": "lifespan.shutdown.failed", "message": str(error)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    return app
