#!/usr/bin/env bash
# Serves the web build with a test page on 127.0.0.1, loads it in headless Chromium and fails on
# any mismatch. Usage: browser_test.sh <installed package dist/> <tests/vectors>
set -euo pipefail
dist=$1
vectors=$2
here=$(cd "$(dirname "$0")/.." && pwd)

site=$(mktemp -d)
profile=$(mktemp -d)
cp -r "$dist" "$site/dist"
cp "$here/test/scenario_runner.mjs" "$site/"
cp "$here/test/browser.html" "$site/index.html"
mkdir "$site/vectors"
cp "$vectors"/*.json "$site/vectors/"
python3 -c 'import json, os, sys; print(json.dumps(sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".json"))))' \
    "$site/vectors" > "$site/vectors-index.json"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site" > "$site.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$site" "$profile" "$site.log"' EXIT
for _ in $(seq 50); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/index.html')" 2>/dev/null && break
    sleep 0.1
done

dom=$(timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget=10000 --dump-dom \
    "http://127.0.0.1:$port/index.html" 2>/dev/null)

python3 - "$dom" <<'PY'
import html, json, re, sys
match = re.search(r'<pre id="result">(.*?)</pre>', sys.argv[1], re.S)
if not match or match.group(1) == "pending":
    print("browser: the page did not finish (no report in the DOM)")
    print("0 passed, 1 failed")
    sys.exit(1)
report = json.loads(html.unescape(match.group(1)))
for name in report["passed"]:
    print(f"browser: ok   {name}")
for failure in report["failed"]:
    print(f"browser: FAIL {failure}")
print(f"browser: {len(report['passed'])} passed, {len(report['failed'])} failed")
sys.exit(1 if report["failed"] or not report["passed"] else 0)
PY
