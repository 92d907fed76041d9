"""The decorator form of the single-flight cache."""

from __future__ import annotations

import functools
import inspect
from datetime import timedelta
from typing import Any, Callable, Optional, TypeVar, Union

from racefree import _native

__all__ = ["cached"]

F = TypeVar("F", bound=Callable[..., Any])


def cached(
    cache: _native.Cache,
    *,
    ttl: Union[float, int, timedelta],
    key: Optional[Callable[..., str]] = None,
) -> Callable[[F], F]:
    """Caches a function's result for ``ttl``; concurrent calls with the same key load once.

    Works on plain and ``async`` functions. ``key(*args, **kwargs)`` names the cache entry
    (default: the function's qualified name and the ``repr`` of its arguments).
    """

    def decorate(fn: F) -> F:
        def key_of(*args: Any, **kwargs: Any) -> str:
            if key is not None:
                return key(*args, **kwargs)
            return f"{fn.__module__}.{fn.__qualname__}{args!r}{sorted(kwargs.items())!r}"

        if inspect.iscoroutinefunction(fn):
            from racefree.asyncio import get_or_load

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await get_or_load(cache, key_of(*args, **kwargs), ttl, lambda: fn(*args, **kwargs))

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache.get_or_load(key_of(*args, **kwargs), ttl, lambda: fn(*args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorate
