#!/usr/bin/env bash
# Builds the npm package into bindings-wasm/dist: the release wasm modules, wasm-bindgen for Node
# (nodejs) and browsers (web), wasm-opt, then the TypeScript layer.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two modules: the memory store and its primitives (for Node and browsers: one build, two
# wasm-bindgen targets), built for speed; and the stores over the host's own client (Node only,
# loaded on first use), built for size (see the profiles in ../Cargo.toml).
cargo build --locked --profile wasm-release --target wasm32-unknown-unknown -p racefree-wasm
cargo build --locked --profile wasm-hosted --target wasm32-unknown-unknown -p racefree-wasm --no-default-features --features hosted
rm -rf dist
wasm-bindgen --target nodejs --out-dir dist/node ../target/wasm32-unknown-unknown/wasm-release/racefree_wasm.wasm
wasm-bindgen --target web --out-dir dist/web ../target/wasm32-unknown-unknown/wasm-release/racefree_wasm.wasm
wasm-bindgen --target nodejs --out-dir dist/node-hosted ../target/wasm32-unknown-unknown/wasm-hosted/racefree_wasm.wasm
# The nodejs output is CommonJS inside an ESM package.
echo '{ "type": "commonjs" }' > dist/node/package.json
echo '{ "type": "commonjs" }' > dist/node-hosted/package.json
# Node requires the hosted stores' module on first use through this loader (CommonJS: its require
# resolves beside it, without import.meta in the layer's CommonJS declarations build).
echo 'module.exports = () => require("./racefree_wasm.js");' > dist/node-hosted/load.js
echo 'declare const load: () => unknown; export = load;' > dist/node-hosted/load.d.ts
wasm_opt() {
    node_modules/.bin/wasm-opt "$1" --enable-bulk-memory --enable-nontrapping-float-to-int \
        --enable-sign-ext --enable-reference-types --enable-multivalue "$2" -o "$2"
}
wasm_opt -O3 dist/node/racefree_wasm_bg.wasm
wasm_opt -O3 dist/web/racefree_wasm_bg.wasm
wasm_opt -Oz dist/node-hosted/racefree_wasm_bg.wasm
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
rm dist/node/*.d.ts dist/node-hosted/*.d.ts dist/web/*.d.ts
# fast_call is internal only: its declarations are empty.
rm dist/esm/fast_call.d.ts dist/cjs/fast_call.d.ts
# npm does not follow links: the package's license files are copies of the root's.
cp ../LICENSE-MIT ../LICENSE-APACHE .
# Each module within 150 KB gzipped (what a page or a cold start downloads and compiles).
for module in web node node-hosted; do
    size=$(gzip -9c "dist/$module/racefree_wasm_bg.wasm" | wc -c)
    echo "built dist/$module/racefree_wasm_bg.wasm: $size bytes gzipped"
    if [ "$size" -gt 150000 ]; then
        echo "dist/$module/racefree_wasm_bg.wasm is over 150 KB gzipped" >&2
        exit 1
    fi
done
