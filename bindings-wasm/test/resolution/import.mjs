// import of the installed package, ES module build: first the manual `racefree/web` entry,
// initialised synchronously from the .wasm bytes (any call before says what to do), then the
// default Node entry, which shares the same API module (whichever entry loads first installs the
// wasm module; the other finds it installed).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as web from "racefree/web";

assert.throws(() => web.open(), /call `await init\(\)`/);
const wasm = createRequire(import.meta.url).resolve("racefree/racefree_wasm_bg.wasm");
web.initSync(readFileSync(wasm));
web.initSync(readFileSync(wasm)); // a second call does nothing
assert.equal(new web.Counter(web.open(), "k").next(), 0);
const racefree = await import("racefree");
assert.deepEqual(new racefree.Counter(racefree.open(), "task:1").claim("a"), { index: 0, isNew: true });
assert.equal(racefree.Counter, web.Counter, "one API module behind both entries");
console.log("import 'racefree/web' and 'racefree': ok");
