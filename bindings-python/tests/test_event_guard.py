from datetime import timedelta

import pytest

import racefree
from conftest import on_threads


def guard(store, retention=60):
    return racefree.EventGuard(store, "streams", ["started", "ended"], retention=retention)


def test_ordered_once_only(store):
    g = guard(store)
    assert g.events == ["started", "ended"]
    with pytest.raises(racefree.OutOfOrder) as err:
        g.mark("s1", "ended")
    assert (err.value.stream, err.value.event, err.value.missing) == ("s1", "ended", "started")
    assert store.stats()["entries"] == 0, "an out-of-order mark recorded something"
    assert g.mark("s1", "started") is racefree.Mark.FIRST
    assert g.mark("s1", "started") == racefree.Mark.DUPLICATE
    assert g.last_marked("s1") == "started"
    assert g.mark("s1", "ended") == racefree.Mark.FIRST
    assert g.is_marked("s1", "ended")
    assert g.stats() == {"delivered": 2, "duplicates_suppressed": 1, "out_of_order": 1}


def test_sixteen_threads_one_first(store):
    g = guard(store)
    streams = [f"s{i}" for i in range(100)]
    for s in streams:
        g.mark(s, "started")

    def work(_):
        mine = racefree.EventGuard(store, "streams", ["started", "ended"], retention=60)
        return sum(mine.mark(s, "ended") == racefree.Mark.FIRST for s in streams)

    assert sum(on_threads(16, work)) == len(streams)


def test_marks_are_forgotten_after_retention(store, clock):
    g = guard(store, retention=timedelta(seconds=60))
    g.mark("s", "started")
    clock.advance(59.999)
    assert g.is_marked("s", "started")
    clock.advance(0.001)
    assert not g.is_marked("s", "started")
    store.sweep()
    assert store.stats()["entries"] == 0
    assert g.mark("s", "started") == racefree.Mark.FIRST
    assert g.forget("s") and not g.forget("s")


@pytest.mark.parametrize(
    "events, retention, error",
    [
        ([], 60, racefree.InvalidArgument),
        (["a", "a"], 60, racefree.InvalidArgument),
        (["a", ""], 60, racefree.InvalidKey),
        (["a"], 0, racefree.InvalidArgument),
        (["a"], -5, racefree.InvalidArgument),
        (["a"], float("nan"), racefree.InvalidArgument),
        (["a"], float("inf"), racefree.InvalidArgument),
    ],
)
def test_bad_declarations(store, events, retention, error):
    with pytest.raises(error):
        racefree.EventGuard(store, "g", events, retention=retention)


@pytest.mark.parametrize("events", ["started", None, [b"started"], [1]])
def test_events_must_be_a_sequence_of_str(store, events):
    with pytest.raises(TypeError):
        racefree.EventGuard(store, "g", events)


def test_undeclared_event(store):
    with pytest.raises(racefree.InvalidArgument, match="paused"):
        guard(store).mark("s", "paused")
