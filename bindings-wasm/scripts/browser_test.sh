#!/usr/bin/env bash
# Serves the web build with a test page on 127.0.0.1, loads it in headless Chromium and fails on
# any mismatch. Usage: browser_test.sh <installed package dist/> <tests/vectors>
set -euo pipefail
dist=$1
vectors=$2
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/chromium.sh"

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
cp -r "$dist" "$site/dist"
cp "$here/test/scenario_runner.mjs" "$site/"
cp "$here/test/browser.html" "$site/index.html"
mkdir "$site/vectors"
cp "$vectors"/*.json "$site/vectors/"
page_report "$site" browser
