"""The Python runner of the shared scenarios in tests/vectors/*.json (same results as Rust and JS)."""

import json
from pathlib import Path

import pytest

import racefree
from racefree.asyncio import TaskCoordinator

FOLDER = Path(__file__).resolve().parents[2] / "tests" / "vectors"
#: The scenarios to run: the ones index.json names (the folder must hold exactly those).
VECTORS = [FOLDER / name for name in json.loads((FOLDER / "index.json").read_text())["scenarios"]]


def _circular():
    items = []
    items.append(items)
    return items


# The values JSON cannot spell (see tests/vectors/README.md).
SPECIAL = {
    "none": lambda: None,
    "bytes": lambda: b"k",
    "instance": object,
    "set": lambda: {1},
    "function": lambda: (lambda: 1),
    "circular": _circular,
    "string": lambda: "5",
    "lone_surrogate": lambda: "\udcff",
    "NaN": lambda: float("nan"),
    "Infinity": lambda: float("inf"),
}


def decode(value):
    if isinstance(value, dict):
        if "$repeat" in value:
            text, n = value["$repeat"]
            return text * n
        if "$" in value:
            return SPECIAL[value["$"]]()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def millis(value):
    """Milliseconds as seconds; a value of another type passes through for the API to refuse."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000
    return value


class Runner:
    def __init__(self):
        self.clock = racefree.ManualClock(1_000_000)
        self.store = racefree.open("memory://", clock=self.clock)
        self.leases = {}

    def guard(self, step):
        kwargs = {"retention": millis(step["retention_ms"])} if "retention_ms" in step else {}
        return racefree.EventGuard(self.store, step["guard"], step["events"], **kwargs)

    def run(self, step):
        op = step["op"]
        counter = lambda: racefree.Counter(self.store, step["counter"])  # noqa: E731
        records = lambda: racefree.Records(self.store, step["space"])  # noqa: E731
        lock = lambda: racefree.StartLock(self.store, step["lock"])  # noqa: E731
        ttl = lambda: millis(step["ttl_ms"])  # noqa: E731
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
            return {"index": claim.index, "is_new": claim.is_new}
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
        if op == "keeper.options":
            kwargs = {
                name: millis(step[field])
                for name, field in (("renew_every", "renew_every_ms"), ("max_hold", "max_hold_ms"))
                if field in step
            }
            TaskCoordinator(self.store, name=step["lock"], ttl=ttl(), **kwargs)
            return None
        if op == "store.open_redis":
            # Checked before any connection: no server listens on port 1.
            options = "&".join(f"{field}={step[field]}" for field in ("replicas", "replicas_timeout_ms") if field in step)
            racefree.open(f"redis://127.0.0.1:1/0?{options}")
            return None
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


#: Steps run and skipped (only for other languages), reported at the end of the session.
REPORT = {"run": 0, "skipped": 0}


def test_the_folder_holds_exactly_the_scenarios_index_json_names():
    found = sorted(p.name for p in FOLDER.glob("*.json") if p.name != "index.json")
    assert found == sorted(p.name for p in VECTORS)


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_scenario(path):
    scenario = json.loads(path.read_text())
    runner = Runner()
    for i, raw in enumerate(scenario["steps"]):
        if "python" not in raw.get("only", ["python"]):
            REPORT["skipped"] += 1
            continue
        REPORT["run"] += 1
        step = decode(raw)
        where = f"{path.name} step {i} ({step['op']})"
        if step.get("error") == "type_error":
            with pytest.raises(TypeError) as err:
                runner.run(step)
            assert not isinstance(err.value, racefree.RacefreeError), where
        elif "error" in step:
            with pytest.raises(racefree.RacefreeError) as err:
                runner.run(step)
            assert err.value.code == step["error"], where
        else:
            result = runner.run(step)
            if "expect" in step:
                assert result == step["expect"], where
