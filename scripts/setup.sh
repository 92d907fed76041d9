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

# A virtualenv at .venv with maturin and the test tools; reinstalled only when the list changes.
need_python_venv() {
    local requirements=bindings-python/requirements-dev.txt
    local stamp=.venv/.racefree-requirements
    if [ ! -x .venv/bin/python ]; then
        echo "setup: creating the Python virtualenv .venv"
        python3 -m venv .venv
    fi
    if ! cmp -s "$requirements" "$stamp"; then
        echo "setup: installing $requirements into .venv"
        .venv/bin/pip install --quiet --upgrade pip
        .venv/bin/pip install --quiet -r "$requirements"
        cp "$requirements" "$stamp"
    fi
}
