#!/usr/bin/env bash
# Sets up what the suites need and runs every test suite of racefree. This is the README's test
# command, and .ci/run calls it. Each suite ends with its runner's own summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
need_python_venv
need_wasm_bindgen
need_node
need_chromium
need_redis
need_postgres

section() { printf '\n==== %s ====\n' "$1"; }

section "rust: format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

section "rust: core builds for wasm32-unknown-unknown (no threads, no system clock), also with the Redis and PostgreSQL protocols (no client crate) and the async primitives over a host's client"
cargo build --locked -p racefree --target wasm32-unknown-unknown
cargo clippy --locked -p racefree --target wasm32-unknown-unknown --features redis-protocol -- -D warnings
cargo clippy --locked -p racefree --target wasm32-unknown-unknown --features aio,redis-protocol -- -D warnings
cargo clippy --locked -p racefree --target wasm32-unknown-unknown --features postgres-protocol -- -D warnings

section "rust: the CLI and the bindings' own Rust tests (the core's suites run once, from its packaged .crate, below)"
cargo test --workspace --exclude racefree --profile release-tests --locked --all-features

section "rust: the core with each other feature set a user can build (none, sqlite, redis-protocol, redis, postgres-protocol, postgres, aio, tokio), debug profile"
# A warning fails the run here too: clippy above builds every feature at once, and code that one
# feature set alone leaves unused (dead code, unused imports) warns only in that set's build.
built=$(mktemp)
for features in "" sqlite redis-protocol redis postgres-protocol postgres aio tokio; do
    echo "-- features: ${features:-none}"
    cargo test --locked -p racefree ${features:+--features "$features"} --no-run 2>&1 | tee "$built"
    # rustc's warnings, by cargo's summary of them (not cargo's own, e.g. a retried download).
    if grep -qE '^warning: .* generated [0-9]+ warnings?' "$built"; then
        echo "error: the build with features '${features:-none}' warns (above)" >&2
        exit 1
    fi
    cargo test --locked -p racefree ${features:+--features "$features"}
done
rm -f "$built"

section "rust: the core's suites, every feature, from the published crate's packaged .crate (nothing outside it): unit, conformance (memory, sqlite, redis, postgres, postgres with prepared statements, postgres through pgbouncer), racy-store proof, processes and fork, Redis restarts and failures, PostgreSQL stops, schema and TLS, linearizability, differential fuzzing, bad input, isolation and bounds, scenarios, doc examples"
cargo package --locked --allow-dirty -p racefree --no-verify
unpacked=$(mktemp -d) target_dir=$(pwd)/target
tar -xzf target/package/racefree-0.1.0.crate -C "$unpacked"
# The workspace's optimized test profile (Cargo.toml), which a packaged crate does not carry.
(cd "$unpacked/racefree-0.1.0" && CARGO_TARGET_DIR="$target_dir" cargo test --locked --all-features \
    --profile release-tests --config 'profile.release-tests.inherits="release"' \
    --config 'profile.release-tests.lto=false' --config 'profile.release-tests.codegen-units=16')
rm -rf "$unpacked"

section "rust: loom model of the memory store's synchronization (bounded preemptions)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 cargo test --locked -p racefree --test loom

section "python: build the wheel, install it into .venv, run pytest"
rm -f target/wheels/racefree-*.whl
.venv/bin/maturin build --release --locked --manifest-path bindings-python/Cargo.toml --out target/wheels
.venv/bin/pip install --quiet --force-reinstall --no-deps target/wheels/racefree-*.whl
(cd bindings-python && ../.venv/bin/python -m pytest -p no:cacheprovider)

section "javascript: npm package (wasm), node --test, tsc, headless Chromium"
bash bindings-wasm/scripts/test.sh

section "packages: what each crate, wheel, sdist and npm tarball ships (no strays, nothing missing)"
bash scripts/check-packages.sh
