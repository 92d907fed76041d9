#!/usr/bin/env bash
# Builds a tiny app from the packed tarball with each bundler users pick — Vite, webpack 5,
# esbuild (test/bundlers/, exact versions in its package-lock.json) — and runs each build in
# headless Chromium. Usage: bundler_test.sh <racefree-*.tgz>
set -euo pipefail
tarball=$1
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/chromium.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/test/bundlers/{package.json,package-lock.json,checks.js,app.js,app_manual.js,index.html,webpack.config.js} "$work/"
cd "$work"
npm ci --no-audit --no-fund --silent
npm install --no-save --no-audit --no-fund --silent "$tarball"

echo "-- vite $(node -p 'require("vite/package.json").version'): default entry, wasm emitted by new URL(…, import.meta.url)"
node_modules/.bin/vite build --logLevel warn --outDir out/vite
echo "-- webpack $(node -p 'require("webpack/package.json").version'): default entry, top-level await, wasm as an asset"
OUT_DIR="$work/out/webpack" node_modules/.bin/webpack --config webpack.config.js --no-stats
printf '<!doctype html>\n<meta charset="utf-8">\n<pre id="result">pending</pre>\n<script src="main.js"></script>\n' > out/webpack/index.html
echo "-- esbuild $(node -p 'require("esbuild/package.json").version'): racefree/web, init(url of the .wasm from --loader:.wasm=file)"
node_modules/.bin/esbuild app_manual.js --bundle --format=esm --platform=browser --outdir=out/esbuild \
    --loader:.wasm=file --log-level=warning
sed 's/app\.js/app_manual.js/' index.html > out/esbuild/index.html

status=0
for bundler in vite webpack esbuild; do
    page_report "out/$bundler" "$bundler" || status=1
done
exit $status
