import pytest

import racefree
from conftest import on_threads


def test_compare_and_swap(store):
    r = racefree.Records(store, "pods")
    assert r.get("p") is None
    assert r.put("p", {"phase": "Pending"}) == 1
    with pytest.raises(racefree.Conflict) as err:
        r.put("p", {"phase": "x"})
    assert err.value.current_version == 1
    with pytest.raises(racefree.Conflict) as err:
        r.put("missing", 1, expected_version=3)
    assert err.value.current_version is None
    assert r.put("p", {"phase": "Running"}, expected_version=1) == 2
    got = r.get("p")
    assert (got.value, got.version) == ({"phase": "Running"}, 2)
    with pytest.raises(racefree.Conflict):
        r.delete("p", expected_version=1)
    assert r.delete("p", expected_version=2) and not r.delete("p")


def test_update_batches_fields_into_one_write(store):
    r = racefree.Records(store, "pods")
    r.put("p", {"phase": "Pending", "restarts": 0})
    updated = r.update("p", lambda v: {**v, "phase": "Running", "ready": True})
    assert updated.version == 2 and updated.value == {"phase": "Pending", "restarts": 0} | {"phase": "Running", "ready": True}


def test_update_error_propagates_and_writes_nothing(store):
    r = racefree.Records(store, "pods")
    r.put("p", {"n": 1})

    def fail(_):
        raise KeyError("no such field")

    with pytest.raises(KeyError):
        r.update("p", fail)
    assert r.get("p").version == 1


def test_eight_threads_thousand_updates_each(store):
    def work(_):
        r = racefree.Records(store, "status")
        for _ in range(1_000):
            while True:  # an update that gives up says so (Conflict); the caller tries again
                try:
                    r.update("job", lambda v: {"count": (v or {"count": 0})["count"] + 1})
                    break
                except racefree.Conflict:
                    continue

    on_threads(8, work)
    final = racefree.Records(store, "status").get("job")
    assert final.value == {"count": 8_000} and final.version == 8_000


def test_fencing(store):
    r = racefree.Records(store, "pods")
    r.put("p", "v1", fencing_token=5)
    with pytest.raises(racefree.StaleToken) as err:
        r.put("p", "late", expected_version=1, fencing_token=3)
    assert (err.value.token, err.value.latest) == (3, 5)
    with pytest.raises(racefree.StaleToken):
        r.update("p", lambda v: "late", fencing_token=4)
    assert r.update("p", lambda v: "new", fencing_token=6).version == 2


def test_json_values_round_trip(store):
    r = racefree.Records(store, "r")
    value = {"s": "ü", "i": -(2**63), "u": 2**64 - 1, "f": 1.5, "b": False, "n": None, "l": [1, [2, {"x": []}]], "t": (1, 2)}
    r.put("k", value)
    assert r.get("k").value == {**value, "t": [1, 2]}


@pytest.mark.parametrize(
    "bad, error",
    [
        (object(), TypeError),
        ({1: "int key"}, TypeError),
        ({"set": {1, 2}}, TypeError),
        (b"bytes", TypeError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (2**64, ValueError),
    ],
)
def test_non_json_values_are_refused(store, bad, error):
    r = racefree.Records(store, "r")
    with pytest.raises(error):
        r.put("k", bad)
    assert r.get("k") is None


def test_self_containing_values_are_refused(store):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="deeper"):
        racefree.Records(store, "r").put("k", loop)


@pytest.mark.parametrize("bad", [-1, "1", 1.0, True])
def test_versions_and_tokens_are_unsigned_ints(store, bad):
    r = racefree.Records(store, "r")
    with pytest.raises((TypeError, ValueError)):
        r.put("k", 1, expected_version=bad)
    with pytest.raises((TypeError, ValueError)):
        r.put("k", 1, fencing_token=bad)
    assert r.get("k") is None
