#!/usr/bin/env bash
# Builds the npm package into bindings-wasm/dist: release wasm (size-optimised profile),
# wasm-bindgen for Node (nodejs) and browsers (web), wasm-opt, then the TypeScript layer.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node's module has the stores over the host's own client (feature hosted); the browser's does
# not (no Redis or PostgreSQL client there), and stays small. Separate target directories, so
# that neither build undoes the other's.
cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p racefree-wasm --features hosted
CARGO_TARGET_DIR=../target/wasm-web cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p racefree-wasm
rm -rf dist
wasm-bindgen --target nodejs --out-dir dist/node ../target/wasm32-unknown-unknown/wasm-release/racefree_wasm.wasm
wasm-bindgen --target web --out-dir dist/web ../target/wasm-web/wasm32-unknown-unknown/wasm-release/racefree_wasm.wasm
# The nodejs output is CommonJS inside an ESM package.
echo '{ "type": "commonjs" }' > dist/node/package.json
for out in dist/node/racefree_wasm_bg.wasm dist/web/racefree_wasm_bg.wasm; do
    node_modules/.bin/wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-reference-types --enable-multivalue "$out" -o "$out"
done
# The TypeScript layer, compiled beside the wasm-bindgen output it imports (see tsconfig.json):
# as ES modules into dist/esm (every entry), and as CommonJS into dist/cjs for the declarations a
# CommonJS `require` resolves to (TypeScript's node16 resolution will not hand an ES module's
# declarations to a require). The source files are copied in and removed again.
mkdir -p dist/esm dist/cjs
cp js/*.ts dist/esm/
cp js/*.ts dist/cjs/ && rm dist/cjs/browser.ts dist/cjs/web.ts  # the browser entries are ES modules only
echo '{ "type": "commonjs" }' > dist/cjs/package.json
node_modules/.bin/tsc -p tsconfig.json
find dist/esm dist/cjs -name '*.ts' ! -name '*.d.ts' -delete
# At run time `require("racefree")` loads the ES module build itself (require of an ES module
# without top-level await, Node 20.19+): one instance, one set of classes and one memory store,
# whichever way the app loads it.
rm dist/cjs/*.js
echo 'module.exports = require("../esm/node.js");' > dist/cjs/node.js
# wasm-bindgen's declarations type the layer's build only; the package's declarations need none.
rm dist/node/*.d.ts dist/web/*.d.ts
# fast_call is internal only: its declarations are empty.
rm dist/esm/fast_call.d.ts dist/cjs/fast_call.d.ts
# npm does not follow links: the package's license files are copies of the root's.
cp ../LICENSE-MIT ../LICENSE-APACHE .
echo "built dist/: $(gzip -9c dist/web/racefree_wasm_bg.wasm | wc -c) bytes of gzipped wasm for browsers, $(gzip -9c dist/node/racefree_wasm_bg.wasm | wc -c) for Node"
