// Node entry: the `nodejs` build of the wasm module (CommonJS, whose default export is its
// `module.exports`), loaded synchronously.
import native from "../node/racefree_wasm.js";
import { install } from "./native.js";

install(native);

export * from "./api.js";
