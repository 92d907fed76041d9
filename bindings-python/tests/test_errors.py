import sqlite3
import subprocess
import sys

import pytest

import racefree
from racefree import _native
from racefree.errors import ERRORS_BY_CODE, RacefreeError

BUILTINS = {
    "invalid_key": ValueError,
    "invalid_argument": ValueError,
    "backend_unavailable": ConnectionError,
    "corrupt_data": RuntimeError,
    "timeout": TimeoutError,
}


def test_every_core_code_has_its_class():
    codes = _native.error_codes()
    assert sorted(codes) == sorted(ERRORS_BY_CODE), "a core error code has no Python class (or vice versa)"
    for code in codes:
        cls = ERRORS_BY_CODE[code]
        assert issubclass(cls, RacefreeError) and cls.code == code
        assert getattr(racefree, cls.__name__) is cls, f"{cls.__name__} is not exported"
        if code in BUILTINS:
            assert issubclass(cls, BUILTINS[code])


def test_every_code_is_raised_by_some_call(store, clock, tmp_path):
    """Each class is reachable from a real call, carrying its code and details."""
    raised = {}
    corrupted_sqlite = _sqlite_with_a_negative_counter(tmp_path)

    def capture(call):
        try:
            call()
        except RacefreeError as exc:
            raised[exc.code] = exc

    lock = racefree.StartLock(store, "l")
    lease = lock.try_start("k", ttl=1)
    records = racefree.Records(store, "r")
    records.put("k", 1, fencing_token=5)
    capture(lambda: racefree.Counter(store, ""))
    capture(lambda: lock.try_start("k", ttl=0))
    capture(lambda: records.put("k", 2))
    capture(lambda: records.put("k", 2, expected_version=1, fencing_token=1))
    capture(lambda: racefree.EventGuard(store, "g", ["a", "b"]).mark("s", "b"))
    capture(lambda: lock.acquire("k", ttl=1, timeout=0.01))
    capture(lambda: racefree.open("redis://127.0.0.1:1/0"))
    capture(lambda: racefree.Counter(corrupted_sqlite, "c").next())
    capture(lambda: racefree.Counter(racefree.open("memory://?max_keys=1"), "a").claim("x"))
    kept = lock.try_start("kept", ttl=1)
    keeper = _native.KeeperOptions(ttl=1).keep(lock, kept, 0.0)
    capture(lambda: keeper.poll(5.0))  # no renewal confirmed: lost at its safe deadline
    clock.advance(2)
    capture(lease.release)
    assert sorted(raised) == sorted(_native.error_codes())
    assert raised["conflict"].current_version == 1
    assert raised["stale_token"].latest == 5
    assert raised["out_of_order"].missing == "a"
    assert raised["not_owner"].token == lease.token
    assert raised["capacity_exceeded"].max_keys == 1
    assert raised["timeout"].waited >= 0.01
    lost = raised["lease_lost"]
    assert (lost.key, lost.token, lost.reason, lost.last_error) == ("kept", kept.token, "renewals_failed", None)


def test_a_rust_panic_is_an_exception_not_an_abort():
    code = "from racefree import _native\ntry:\n    _native._panic_for_tests()\nexcept BaseException as e:\n    print(type(e).__name__)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PanicException"


@pytest.mark.parametrize(
    "url, error",
    [
        ("mysql://x", racefree.InvalidArgument),
        ("postgres://127.0.0.1:1/db", racefree.BackendUnavailable),
        ("nope", racefree.InvalidArgument),
        ("sqlite://relative.db", racefree.InvalidArgument),
        ("sqlite:///nonexistent-dir/racefree/x.db", racefree.BackendUnavailable),
        ("redis://127.0.0.1:6379/0", racefree.BackendUnavailable),
    ],
)
def test_open_explains_bad_urls(url, error):
    with pytest.raises(error):
        racefree.open(url)


def test_namespace_and_bound_from_url():
    store = racefree.open("memory://?namespace=billing&max_keys=2")
    assert store.namespace == "billing"


def _sqlite_with_a_negative_counter(tmp_path) -> racefree.Store:
    """A SQLite store whose counter "c" holds -5, written behind racefree's back."""
    path = tmp_path / "corrupt.db"
    racefree.Counter(racefree.open(f"sqlite://{path}"), "c").next()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE counters SET next = -5")
    return racefree.open(f"sqlite://{path}")


def test_a_value_racefree_did_not_write_is_corrupt_data_not_a_guess(tmp_path):
    store = _sqlite_with_a_negative_counter(tmp_path)
    with pytest.raises(racefree.CorruptData) as caught:
        racefree.Counter(store, "c").next()  # once answered 0: a duplicate index
    assert caught.value.code == "corrupt_data"
    assert isinstance(caught.value, RuntimeError)


def test_a_backend_failure_keeps_the_clients_error_as_its_cause():
    with pytest.raises(racefree.BackendUnavailable) as caught:
        racefree.open("redis://127.0.0.1:1/0")
    cause = caught.value.__cause__
    assert isinstance(cause, racefree.BackendError), repr(cause)
    assert "refused" in str(cause).lower(), str(cause)
