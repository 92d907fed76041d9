#!/usr/bin/env bash
# Sets up and runs the demo: each seed failure replayed against racefree on the in-memory store.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo run --release --locked -p racefree --example demo
