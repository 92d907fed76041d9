// Node entry: the `nodejs` build of the wasm module, loaded synchronously.
import { createRequire } from "node:module";
import { install } from "./api.js";

install(createRequire(import.meta.url)("./node/racefree_wasm.js"));

export * from "./api.js";
