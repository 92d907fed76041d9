// Browser entry: the `web` build of the wasm module, fetched (beside this file) and instantiated
// before first use, with a top-level await. Hosts that cannot await at the top level, or serve the
// `.wasm` from elsewhere, use `racefree/web` and call `init` themselves.
import { init } from "./web.js";

await init();

export * from "./web.js";
