# Sourced by the browser tests: `page_report <site dir> <label>` serves <site dir> on a free
# 127.0.0.1 port, loads its index.html in headless Chromium, reads the JSON report the page
# writes into <pre id="result">, prints one line per check and a summary, and fails on any
# failure (or on a page that never finished).
page_report() {
    local site=$1 label=$2 profile port server dom status=0
    profile=$(mktemp -d)
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site" > "$profile.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
        sleep 0.1
    done
    dom=$(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --virtual-time-budget=10000 --dump-dom \
        "http://127.0.0.1:$port/index.html" 2>/dev/null) || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$profile" "$profile.log"
    python3 - "$dom" "$label" <<'PY' || status=1
import html, json, re, sys
dom, label = sys.argv[1], sys.argv[2]
match = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
if not match or match.group(1) == "pending":
    print(f"{label}: the page did not finish (no report in the DOM)")
    print(f"{label}: 0 passed, 1 failed")
    sys.exit(1)
report = json.loads(html.unescape(match.group(1)))
for name in report["passed"]:
    print(f"{label}: ok   {name}")
for failure in report["failed"]:
    print(f"{label}: FAIL {failure}")
print(f"{label}: {len(report['passed'])} passed, {len(report['failed'])} failed")
sys.exit(1 if report["failed"] or not report["passed"] else 0)
PY
    return $status
}
