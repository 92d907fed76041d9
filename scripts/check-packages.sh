#!/usr/bin/env bash
# Lists what each package ships — the crates, the Python wheel and sdist, the npm tarball — and
# fails on a file that matches none of the package's expected patterns (a stray) or on an expected
# file that is missing. Needs the wheel in target/wheels and the tarball in target/js, which the
# test command builds first. Usage: scripts/check-packages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
listing=$(mktemp -d)
trap 'rm -rf "$listing"' EXIT

cargo package --locked --allow-dirty --list -p racefree > "$listing/racefree.crate"
cargo package --locked --allow-dirty --list -p racefree-cli > "$listing/racefree-cli.crate"
python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' target/wheels/racefree-*.whl \
    > "$listing/wheel"
.venv/bin/maturin sdist --manifest-path bindings-python/Cargo.toml --out "$listing/sdist" > /dev/null 2>&1
tar -tzf "$listing"/sdist/racefree-*.tar.gz | sed 's|^[^/]*/||' | grep -v '/$' > "$listing/sdist.list"
tar -tzf target/js/racefree-*.tgz | sed 's|^package/||' > "$listing/npm"
tar -xzf target/js/racefree-*.tgz -O package/package.json > "$listing/package.json"

python3 - "$listing" <<'PY'
import fnmatch, json, sys
from pathlib import Path

listing = Path(sys.argv[1])
# Per package: the patterns every shipped file must match, and the files that must be there.
packages = {
    "racefree.crate": (
        ["Cargo.toml", "Cargo.toml.orig", "Cargo.lock", ".cargo_vcs_info.json", "README.md", "LICENSE-MIT",
         "LICENSE-APACHE", "src/*.rs", "src/store/*.rs", "src/store/memory/*.rs", "src/store/postgres/*.rs", "src/store/redis/*.rs", "src/aio/*.rs", "src/metrics/*.rs", "tests/*.rs",
         "tests/common/*.rs", "tests/*.proptest-regressions", "tests/vectors/*.json", "tests/vectors/README.md",
         "benches/*.rs", "examples/*.rs"],
        ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "src/lib.rs", "tests/vectors/task_engine_indexes.json"],
    ),
    "racefree-cli.crate": (
        ["Cargo.toml", "Cargo.toml.orig", "Cargo.lock", ".cargo_vcs_info.json", "README.md", "LICENSE-MIT",
         "LICENSE-APACHE", "src/main.rs", "tests/cli.rs"],
        ["README.md", "LICENSE-MIT", "LICENSE-APACHE", "src/main.rs"],
    ),
    "wheel": (
        ["racefree/*.py", "racefree/asyncio/*.py", "racefree/django/*.py", "racefree/django/management/*.py",
         "racefree/django/management/commands/*.py", "racefree/django/migrations/*.py",
         "racefree/django/templates/racefree/admin/*.html", "racefree/_native.abi3.so", "racefree/_native.pyi",
         "racefree/py.typed", "racefree-*.dist-info/METADATA", "racefree-*.dist-info/WHEEL",
         "racefree-*.dist-info/RECORD", "racefree-*.dist-info/licenses/LICENSE-MIT",
         "racefree-*.dist-info/licenses/LICENSE-APACHE", "racefree-*.dist-info/sboms/*.cyclonedx.json"],
        ["racefree/_native.abi3.so", "racefree/_native.pyi", "racefree/py.typed", "racefree/types.py",
         "racefree/asyncio/__init__.py", "racefree/django/templates/racefree/admin/store.html",
         "racefree-0.1.0.dist-info/licenses/LICENSE-MIT", "racefree-0.1.0.dist-info/licenses/LICENSE-APACHE"],
    ),
    "sdist.list": (
        ["PKG-INFO", "pyproject.toml", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "Cargo.toml", "Cargo.lock",
         "python/racefree/*.py", "python/racefree/*.pyi", "python/racefree/py.typed", "python/racefree/asyncio/*.py", "python/racefree/django/*.py",
         "python/racefree/django/management/*.py", "python/racefree/django/management/commands/*.py", "python/racefree/django/migrations/*.py",
         "python/racefree/django/templates/racefree/admin/*.html",
         "bindings-python/Cargo.toml", "bindings-python/README.md", "bindings-python/LICENSE-*",
         "bindings-python/requirements-dev.txt", "bindings-python/src/*.rs",
         # The core crate as cargo needs it to build (its manifest names its tests and benches).
         "core/Cargo.toml", "core/README.md", "core/LICENSE-*", "core/src/*.rs", "core/src/store/*.rs",
         "core/src/store/memory/*.rs", "core/src/store/postgres/*.rs", "core/src/store/redis/*.rs", "core/src/aio/*.rs", "core/src/metrics/*.rs", "core/tests/*.rs", "core/tests/common/*.rs",
         "core/tests/*.proptest-regressions", "core/tests/vectors/*", "core/benches/*.rs", "core/examples/*.rs"],
        ["PKG-INFO", "pyproject.toml", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "python/racefree/py.typed"],
    ),
    "npm": (
        ["package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "dist/esm/*.js", "dist/esm/*.d.ts",
         "dist/cjs/*.js", "dist/cjs/*.d.ts", "dist/cjs/package.json", "dist/node/package.json",
         "dist/node/racefree_wasm.js", "dist/node/racefree_wasm_bg.wasm", "dist/node-hosted/package.json", "dist/node-hosted/load.js",
         "dist/node-hosted/racefree_wasm.js", "dist/node-hosted/racefree_wasm_bg.wasm", "dist/web/racefree_wasm.js",
         "dist/web/racefree_wasm_bg.wasm"],
        ["package.json", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "dist/esm/node.js", "dist/esm/node.d.ts",
         "dist/esm/browser.js", "dist/esm/web.js", "dist/cjs/node.js", "dist/cjs/node.d.ts",
         "dist/web/racefree_wasm_bg.wasm", "dist/node/racefree_wasm_bg.wasm", "dist/node-hosted/racefree_wasm_bg.wasm"],
    ),
}
problems = []
for name, (allowed, required) in packages.items():
    files = [line for line in (listing / name).read_text().splitlines() if line]
    strays = [f for f in files if not any(fnmatch.fnmatchcase(f, p) for p in allowed)]
    missing = [f for f in required if f not in files]
    print(f"{name}: {len(files)} files, {len(strays)} unexpected, {len(missing)} missing")
    problems += [f"{name}: ships {f}, which it should not" for f in strays]
    problems += [f"{name}: lacks {f}" for f in missing]

manifest = json.loads((listing / "package.json").read_text())
for field in ("scripts",):
    if field in manifest:
        problems.append(f"npm: package.json has {field!r}, which points at files the package does not ship")
for field in ("repository", "license", "keywords", "engines", "exports", "sideEffects"):
    if field not in manifest:
        problems.append(f"npm: package.json lacks {field!r}")

readme, crate_readme = Path("README.md").read_text(), Path("core/README.md").read_text()
example = readme[readme.index("```rust\n"):]
example = example[: example.index("\n```\n") + 5]
if example not in crate_readme:
    problems.append("core/README.md does not carry the README's Rust example (its doc test runs that copy)")

for problem in problems:
    print(f"FAIL {problem}")
print(f"packages: {len(packages)} checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
PY
