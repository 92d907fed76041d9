# Installs what the suites and the demo need, skipping whatever is already in place.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again.

need_rust() {
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install Rust with rustup first" >&2
        return 1
    fi
}

need_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        echo "setup: adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}

need_rust
need_wasm_target
