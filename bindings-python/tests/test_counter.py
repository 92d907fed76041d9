import random

import pytest

import racefree
from conftest import on_threads


def test_next_claim_peek_set_reset(store):
    c = racefree.Counter(store, "task:1")
    assert c.key == "task:1"
    assert (c.peek(), c.next(), c.next()) == (0, 0, 1)
    first = c.claim("exec-a")
    assert (first.index, first.is_new) == (2, True)
    assert c.claim("exec-a").index == 2
    assert c.claim("exec-a").is_new is False
    assert c.index_of("exec-a") == 2 and c.index_of("nope") is None
    c.set(10)
    assert c.next() == 10 and c.index_of("exec-a") == 2
    c.reset()
    assert c.peek() == 0 and c.index_of("exec-a") is None
    assert c.stats() == {"new_claims": 1, "repeated_claims": 2}
    assert repr(first) == "Claim(index=2, is_new=True)"


def test_claims_are_values(store):
    # Claim objects are shared or recycled (a freelist); equality and hashing go by value only.
    c = racefree.Counter(store, "task:values")
    first, again = c.claim("a"), c.claim("a")
    assert first != again and first.index == again.index == 0
    assert again == c.claim("a") and hash(again) == hash(c.claim("a"))
    assert len({c.claim(f"id-{i % 3}") for i in range(30)}) == 6  # ids 1-3, each new once, then repeated
    assert (again == 0) is False and (again != "a") is True
    claims = [c.claim(f"many-{i}") for i in range(1_000)]
    assert [claim.index for claim in claims] == list(range(4, 1_004))
    assert all(claim.is_new for claim in claims)


def test_claims_are_shared_below_1024_and_made_above(store):
    # Claims of small indexes are made once per process (claims are values, as small ints are).
    a, b = racefree.Counter(store, "task:shared-a"), racefree.Counter(store, "task:shared-b")
    first_a, first_b = a.claim("x"), b.claim("y")
    assert first_a is first_b and (first_a.index, first_a.is_new) == (0, True)
    again_a, again_b = a.claim("x"), b.claim("y")
    assert again_a is again_b and (again_a.index, again_a.is_new) == (0, False)
    for start in (1_022, 1_023, 1_024, 2**63 - 2):
        c = racefree.Counter(store, f"task:edge-{start}")
        c.set(start)
        made = [c.claim("p"), c.claim("q"), c.claim("p"), c.claim("q")]
        expected = [(start, True), (start + 1, True), (start, False), (start + 1, False)]
        assert [(m.index, m.is_new) for m in made] == expected
        assert [repr(m) for m in made][0] == f"Claim(index={start}, is_new=True)"


def test_eight_threads_next_is_gap_free(store):
    per_thread = 5_000

    def work(_):
        c = racefree.Counter(store, "task:hot")
        return [c.next() for _ in range(per_thread)]

    indexes = sorted(i for batch in on_threads(8, work) for i in batch)
    assert indexes == list(range(8 * per_thread))


def test_eight_threads_claim_shared_ids_in_shuffled_orders(store):
    ids = [f"exec-{i}" for i in range(1_000)]

    def work(t):
        c = racefree.Counter(store, "task:claims")
        order = ids[:]
        random.Random(t).shuffle(order)
        return {eid: c.claim(eid).index for eid in order}

    results = on_threads(8, work)
    for seen in results[1:]:
        assert seen == results[0], "an execution id got two different indexes"
    assert sorted(results[0].values()) == list(range(1_000))


def test_execution_ids_are_sortable_ulids():
    ids = [racefree.new_execution_id() for _ in range(1_000)]
    assert all(len(i) == 26 for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("bad", ["", "k" * (racefree.MAX_KEY_BYTES + 1), "\udc80"])
def test_bad_keys_are_invalid_key_and_record_nothing(store, bad):
    with pytest.raises(racefree.InvalidKey) as err:
        racefree.Counter(store, bad)
    assert err.value.code == "invalid_key" and isinstance(err.value, ValueError)
    c = racefree.Counter(store, "task")
    with pytest.raises(racefree.InvalidKey):
        c.claim(bad)
    assert store.stats()["entries"] == 0


@pytest.mark.parametrize("bad", [None, b"task", 7, object(), ["task"]])
def test_wrong_key_types_are_type_errors(store, bad):
    with pytest.raises(TypeError, match="must be str"):
        racefree.Counter(store, bad)
    with pytest.raises(TypeError, match="must be str"):
        racefree.Counter(store, "task").claim(bad)


@pytest.mark.parametrize("bad", [-1, 2**64, 1.5, "3", True, None])
def test_set_takes_unsigned_ints(store, bad):
    c = racefree.Counter(store, "task")
    with pytest.raises((TypeError, ValueError)):
        c.set(bad)
    assert c.peek() == 0
