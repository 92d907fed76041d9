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

# The wasm-bindgen CLI at exactly the version of the wasm-bindgen crate in Cargo.lock.
need_wasm_bindgen() {
    local wanted
    wanted=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
    if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wanted" ]; then
        echo "setup: installing wasm-bindgen-cli $wanted (a few minutes, once)"
        cargo install wasm-bindgen-cli --version "$wanted"
    fi
}

need_node() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "setup: installing Node.js and npm from Debian's packages"
        apt_install nodejs npm
    fi
}

# Debian's Chromium for the browser tests, and its ChromeDriver for the Django admin's test
# (driven by Selenium from Python).
need_chromium() {
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
        echo "setup: installing chromium and chromium-driver from Debian's packages"
        apt_install chromium chromium-driver
    fi
}

# Debian's redis-server (and redis-benchmark): the Redis backend's tests start their own servers
# on free 127.0.0.1 ports and stop them by PID; no service is started here. openssl makes the
# certificates of the rediss:// (TLS) test.
need_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null \
        || ! command -v openssl >/dev/null; then
        echo "setup: installing redis-server and openssl from Debian's packages"
        apt_install redis-server redis-tools openssl
    fi
}

# Debian's PostgreSQL server binaries and PgBouncer: the PostgreSQL backend's tests run initdb and
# start their own servers on free 127.0.0.1 ports (sockets in private directories), stopped by
# PID; the packaged cluster is not started here.
need_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v pgbouncer >/dev/null \
        || ! command -v psql >/dev/null; then
        echo "setup: installing postgresql and pgbouncer from Debian's packages"
        apt_install postgresql pgbouncer
    fi
}

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" > /dev/null
}
