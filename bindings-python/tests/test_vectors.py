"""The Python runner of the shared scenarios in tests/vectors/*.json (same results as Rust and JS)."""

import json
from pathlib import Path

import pytest

import racefree

VECTORS = sorted((Path(__file__).resolve().parents[2] / "tests" / "vectors").glob("*.json"))


class Runner:
    def __init__(self):
        self.clock = racefree.ManualClock(1_000_000)
        self.store = racefree.open("memory://", clock=self.clock)
        self.leases = {}

    def guard(self, step):
        kwargs = {"retention": step["retention_ms"] / 1000} if "retention_ms" in step else {}
        return racefree.EventGuard(self.store, step["guard"], step["events"], **kwargs)

    def run(self, step):
        op = step["op"]
        counter = lambda: racefree.Counter(self.store, step["counter"])  # noqa: E731
        records = lambda: racefree.Records(self.store, step["space"])  # noqa: E731
        lock = lambda: racefree.StartLock(self.store, step["lock"])  # noqa: E731
        ttl = lambda: step["ttl_ms"] / 1000  # noqa: E731
        if op == "clock.advance":
            return self.clock.advance(step["ms"] / 1000)
        if op == "store.sweep":
            return self.store.sweep()
        if op == "store.entries":
            return self.store.stats()["entries"]
        if op == "counter.next":
            return counter().next()
        if op == "counter.peek":
            return counter().peek()
        if op == "counter.claim":
            claim = counter().claim(step["id"])
            return {"index": claim.index, "new": claim.new}
        if op == "counter.index_of":
            return counter().index_of(step["id"])
        if op == "counter.set":
            return counter().set(step["value"])
        if op == "counter.reset":
            return counter().reset()
        if op == "guard.mark":
            mark = self.guard(step).mark(step["stream"], step["event"])
            return "first" if mark == racefree.Mark.FIRST else "duplicate"
        if op == "guard.is_marked":
            return self.guard(step).is_marked(step["stream"], step["event"])
        if op == "guard.forget":
            return self.guard(step).forget(step["stream"])
        if op == "lock.try_start":
            lease = lock().try_start(step["key"], ttl=ttl())
            if lease is None:
                return None
            if "save" in step:
                self.leases[step["save"]] = lease
            return {"token": lease.token}
        if op == "lock.is_held":
            return lock().is_held(step["key"])
        if op == "lease.renew":
            return self.leases[step["lease"]].renew(ttl=ttl())
        if op == "lease.release":
            return self.leases[step["lease"]].release()
        if op == "records.get":
            found = records().get(step["key"])
            return None if found is None else {"value": found.value, "version": found.version}
        if op == "records.put":
            return records().put(
                step["key"],
                step["value"],
                expected_version=step.get("expected_version"),
                fencing_token=step.get("fencing_token"),
            )
        if op == "records.update":
            updated = records().update(
                step["key"], lambda current: {**(current or {}), **step["set"]}, fencing_token=step.get("fencing_token")
            )
            return {"value": updated.value, "version": updated.version}
        if op == "records.delete":
            return records().delete(step["key"], expected_version=step.get("expected_version"))
        raise AssertionError(f"unknown op {op!r}")


def test_the_five_seed_scenarios_are_there():
    assert len(VECTORS) >= 5


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_scenario(path):
    scenario = json.loads(path.read_text())
    runner = Runner()
    for i, step in enumerate(scenario["steps"]):
        where = f"{path.name} step {i} ({step['op']})"
        if "error" in step:
            with pytest.raises(racefree.RacefreeError) as err:
                runner.run(step)
            assert err.value.code == step["error"], where
        else:
            result = runner.run(step)
            if "expect" in step:
                assert result == step["expect"], where
