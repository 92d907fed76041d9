#!/usr/bin/env bash
# Builds the npm package into bindings-wasm/dist: release wasm (size-optimised profile),
# wasm-bindgen for Node (nodejs) and browsers (web), wasm-opt, then the TypeScript layer.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p racefree-wasm
wasm=../target/wasm32-unknown-unknown/wasm-release/racefree_wasm.wasm
rm -rf dist
wasm-bindgen --target nodejs --out-dir dist/node "$wasm"
wasm-bindgen --target web --out-dir dist/web "$wasm"
# The nodejs output is CommonJS inside an ESM package.
echo '{ "type": "commonjs" }' > dist/node/package.json
for out in dist/node/racefree_wasm_bg.wasm dist/web/racefree_wasm_bg.wasm; do
    node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-reference-types --enable-multivalue "$out" -o "$out"
done
# The TypeScript layer, compiled beside the wasm-bindgen output it imports (see tsconfig.json).
cp js/*.ts dist/
node_modules/.bin/tsc -p tsconfig.json
for source in js/*.ts; do rm "dist/$(basename "$source")"; done
echo "built dist/: $(gzip -9c dist/web/racefree_wasm_bg.wasm | wc -c) bytes of gzipped wasm"
