"""racefree's exceptions: one tree, one class per stable error code.

Every class subclasses :class:`RacefreeError` and, where one fits, a built-in too, so
``except ValueError`` and ``except TimeoutError`` keep working. Each carries ``.code`` and the
structured details of its error as attributes.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Type

__all__ = [
    "RacefreeError",
    "InvalidKey",
    "InvalidArgument",
    "Conflict",
    "NotOwner",
    "OutOfOrder",
    "StaleToken",
    "CapacityExceeded",
    "BackendUnavailable",
    "BackendError",
    "CorruptData",
    "Timeout",
    "LeaseLost",
    "ERRORS_BY_CODE",
]


class RacefreeError(Exception):
    """Root of every racefree exception."""

    code: str = "racefree_error"

    def __init__(self, message: str, details: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: Dict[str, Any] = dict(details or {})
        for name, value in self.details.items():
            setattr(self, name, value)


class InvalidKey(RacefreeError, ValueError):
    """A key, id or name is empty, over 1024 bytes of UTF-8, or not encodable as UTF-8."""

    code = "invalid_key"


class InvalidArgument(RacefreeError, ValueError):
    """An argument other than a key is out of range (zero or negative TTL, unknown event, ...)."""

    code = "invalid_argument"


class Conflict(RacefreeError):
    """A compare-and-swap found another version; ``.current_version`` is ``None`` if the record is missing."""

    code = "conflict"
    key: str
    current_version: Optional[int]


class NotOwner(RacefreeError):
    """A lease was renewed or released by someone who no longer holds it."""

    code = "not_owner"
    key: str
    token: int


class OutOfOrder(RacefreeError):
    """An event was marked before its predecessor (``.missing``); nothing was recorded."""

    code = "out_of_order"
    stream: str
    event: str
    missing: str


class StaleToken(RacefreeError):
    """A fenced write carried a token older than ``.latest``, which the record has already seen."""

    code = "stale_token"
    key: str
    token: int
    latest: int


class CapacityExceeded(RacefreeError):
    """The store already holds ``.max_keys`` entries."""

    code = "capacity_exceeded"
    max_keys: int


class BackendUnavailable(RacefreeError, ConnectionError):
    """The backend could not be reached or failed, and the request did not run: it could not be
    sent, or the backend refused it. (A request that may have run is :class:`Timeout`.)

    Its ``__cause__`` is the backend client's own error (a :class:`BackendError`), when there is one.
    """

    code = "backend_unavailable"


class BackendError(Exception):
    """A backend client's own error, the ``__cause__`` of a :class:`BackendUnavailable`.

    Its own ``__cause__`` follows the client's chain of causes.
    """


class CorruptData(RacefreeError, RuntimeError):
    """The store holds, or answered, a value racefree could not have written (a negative index,
    a number out of range, a record that is not JSON): a damaged key, or one written by something
    else. The call is refused rather than answered with a guess; retrying does not help."""

    code = "corrupt_data"


class Timeout(RacefreeError, TimeoutError):
    """A wait ran out of time after ``.waited`` seconds; or a request was sent and its reply
    never came (it timed out, or the connection was lost after the write): the request may have
    run, so its outcome is unknown."""

    code = "timeout"
    waited: float


class LeaseLost(RacefreeError):
    """A kept lease must be treated as lost, so the work under it has to stop.

    ``.reason`` is ``"not_owner"`` (the store refused a renewal), ``"renewals_failed"`` (no
    renewal was confirmed before the lease's safe deadline; ``.last_error`` is the last
    renewal's exception, or ``None`` when the replies only came too late) or
    ``"max_hold_reached"``.
    """

    code = "lease_lost"
    key: str
    token: int
    reason: str
    last_error: Optional[RacefreeError]


ERRORS_BY_CODE: Dict[str, Type[RacefreeError]] = {
    cls.code: cls
    for cls in (
        InvalidKey,
        InvalidArgument,
        Conflict,
        NotOwner,
        OutOfOrder,
        StaleToken,
        CapacityExceeded,
        BackendUnavailable,
        CorruptData,
        Timeout,
        LeaseLost,
    )
}


def _from_native(
    code: str, message: str, details: Mapping[str, Any], causes: Sequence[str] = ()
) -> RacefreeError:
    """Builds the exception for an error raised by the native module (mapped on its code);
    ``causes`` are the backend client's errors behind it, outermost first."""
    exception = ERRORS_BY_CODE.get(code, RacefreeError)(message, details)
    inner: Optional[BaseException] = None
    for text in reversed(causes):
        cause = BackendError(text)
        cause.__cause__ = inner
        inner = cause
    exception.__cause__ = inner
    return exception
