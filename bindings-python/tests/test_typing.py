"""The stubs and the package's annotations, checked against the real module."""

import subprocess
import sys
from pathlib import Path

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
