#!/usr/bin/env bash
# Builds the release wheels and sdist a `pip install racefree` user gets, into target/release-wheels:
# one abi3 wheel (CPython 3.10 and later) per architecture, x86_64 and aarch64, for manylinux2014
# (glibc 2.17 and later), linked by zig (PyPI's ziglang: nothing outside the registries), then
# installs the x86_64 wheel into a fresh virtualenv of every CPython 3.10+ found (pyenv's here)
# and runs each a smoke test, and checks that an older CPython refuses it.
# Usage: scripts/build-wheels.sh        (not part of the test command: ~10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
need_python_venv
.venv/bin/pip install --quiet "ziglang==0.14.1"
rustup target add aarch64-unknown-linux-gnu > /dev/null

out=target/release-wheels
rm -rf "$out"
for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu; do
    echo "-- wheel for $target"
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/maturin build --release --locked --manifest-path bindings-python/Cargo.toml \
        --zig --compatibility manylinux2014 --target "$target" --out "$out"
done
.venv/bin/maturin sdist --manifest-path bindings-python/Cargo.toml --out "$out"
ls -l "$out"

wheel=$(ls "$out"/racefree-*-manylinux*_x86_64.whl)
smoke='
import asyncio, os, sys, tempfile, racefree
from racefree.asyncio import TaskCoordinator
store = racefree.open(f"sqlite:///{tempfile.mkdtemp()}/racefree.db")
first, again = (racefree.Counter(store, "task:1").claim("a") for _ in range(2))
assert (first.index, first.is_new, again.index, again.is_new) == (0, True, 0, False)
with racefree.StartLock(store, "tasks").hold("k", ttl=5) as lease:
    assert racefree.StartLock(store, "tasks").try_start("k", ttl=5) is None
async def main():
    coordinator = TaskCoordinator(store, ttl=5)
    ran = []
    async def work(): ran.append(1)
    assert await coordinator.start("job", work)
    await coordinator.wait("job")
    await coordinator.aclose()
    return ran
assert asyncio.run(main()) == [1]
print(f"python {sys.version.split()[0]}: counter, lock, sqlite store and asyncio coordinator ok")
'
tested=0
for python in "$HOME"/.pyenv/versions/3.*/bin/python3; do
    version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    venv=$(mktemp -d)
    "$python" -m venv "$venv"
    if "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        "$venv/bin/pip" install --quiet --no-index "$wheel"
        "$venv/bin/python" -c "$smoke"
        tested=$((tested + 1))
    elif "$venv/bin/pip" install --quiet --no-index "$wheel" 2>/dev/null; then
        echo "python $version installed a wheel it cannot run"; exit 1
    else
        echo "python $version: refuses the wheel, as it should (requires-python >= 3.10)"
    fi
    rm -rf "$venv"
done
echo "wheels: built for x86_64 and aarch64; installed and run on $tested CPython versions"
