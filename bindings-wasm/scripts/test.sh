#!/usr/bin/env bash
# Builds the npm package, packs it, installs the tarball into a scratch project and runs every
# JavaScript suite against that installed copy: node --test, tsc --noEmit, headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
root=$(cd .. && pwd)

npm ci --no-audit --no-fund --silent
bash scripts/build.sh

out="$root/target/js"
rm -rf "$out" && mkdir -p "$out/scratch/test"
npm pack --silent --pack-destination "$out" > /dev/null
tarball=$(ls "$out"/racefree-*.tgz)
echo "packed $(basename "$tarball"): $(du -k "$tarball" | cut -f1) KiB"

cd "$out/scratch"
echo '{ "name": "scratch", "private": true, "type": "module" }' > package.json
npm install --no-audit --no-fund --silent "$tarball"
cp "$here"/test/*.mjs "$here"/test/types.ts test/

echo "-- tsc --noEmit: the tests' types against the installed declarations (dist/*.d.ts)"
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "noEmit": true,
    "target": "es2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "lib": ["es2022", "dom"],
    "types": []
  },
  "files": ["test/types.ts"]
}
JSON
"$here/node_modules/.bin/tsc" -p tsconfig.json
echo "tsc: no type errors"

echo "-- tsc --noEmit: importing the package under each module resolution, from ES modules and CommonJS"
mkdir -p resolution
cp "$here"/test/resolution/* resolution/
for resolution in bundler node16 nodenext; do
    "$here/node_modules/.bin/tsc" -p "resolution/tsconfig.$resolution.json"
    echo "tsc ($resolution): no type errors"
done

echo "-- node $(node --version): require() and import of the installed package, and its exports map"
node resolution/require.cjs
node resolution/import.mjs

echo "-- node --test against the installed package (with Python and Rust processes in the cross-language races;"
echo "   the clients, and examples/prometheus.mjs with prom-client, from this folder, as an application's)"
# The Rust process of those races (core/examples/interop.rs), in the profile the main suite built.
(cd "$root" && cargo build --locked --profile release-tests -p racefree --all-features --example interop)
# A file still running after 10 minutes (the longest takes about 2) is cancelled and fails: a
# client left open keeps its process alive, and the runner would wait for it for good.
RACEFREE_VECTORS="$root/tests/vectors" RACEFREE_CLIENTS="$here" RACEFREE_PYTHON="$root/.venv/bin/python" \
    RACEFREE_RUST="$root/target/release-tests/examples/interop" node --test --test-timeout=600000 test/*.test.mjs

echo "-- headless Chromium: the key scenarios with the web build"
bash "$here/scripts/browser_test.sh" "$out/scratch/node_modules/racefree/dist" "$root/tests/vectors"

echo "-- bundlers: a tiny app built from the tarball by Vite, webpack and esbuild, run in headless Chromium"
bash "$here/scripts/bundler_test.sh" "$tarball"
