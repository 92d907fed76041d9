"""The stubs and the package's annotations, checked against the real module."""

import subprocess
import sys
from pathlib import Path

import pytest

import racefree

HERE = Path(__file__).resolve().parent


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=600, cwd=HERE)


def test_stubs_match_the_native_module():
    out = run("mypy.stubtest", "racefree._native")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_package_and_an_example_type_check():
    for target in (["-p", "racefree"], [str(HERE / "typed_usage.py")]):
        out = run("mypy", "--strict", *target)
        assert out.returncode == 0, out.stdout + out.stderr


def test_py_typed_is_shipped():
    assert (Path(racefree.__file__).parent / "py.typed").exists()


def test_stub_docstrings_are_the_native_ones():
    """Every public native name has a docstring (the Rust doc comment, shown by help()), and the
    stub, which editors show, carries the same text."""
    out = subprocess.run(
        [sys.executable, str(HERE.parent / "scripts" / "stub_docs.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert racefree.Counter.next.__doc__ and racefree.StartLock.try_start.__doc__


def test_cache_lookup_results_are_typed():
    cache = racefree.Cache()
    duty = cache.lookup("k", 60)
    assert isinstance(duty, racefree._native.LoadDuty)
    wait = cache.lookup("k", 60)
    assert isinstance(wait, racefree._native.LoadWait) and not wait.done()
    with pytest.raises(RuntimeError, match="still running"):
        wait.result()
    duty.complete(["v"])
    assert wait.done() and not wait.abandoned() and wait.result() == ["v"]
    hit = cache.lookup("k", 60)
    assert isinstance(hit, racefree._native.CacheHit) and hit.value == ["v"]
    failing, waiting = cache.lookup("f", 60), cache.lookup("f", 60)
    failing.fail(KeyError("gone"))
    with pytest.raises(KeyError, match="gone"):
        waiting.result()
    abandoned, waiting = cache.lookup("a", 60), cache.lookup("a", 60)
    abandoned.abandon()
    assert waiting.done() and waiting.abandoned()
    with pytest.raises(RuntimeError, match="abandoned"):
        waiting.result()
