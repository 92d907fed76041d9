// Browser entry: the `web` build of the wasm module, fetched and instantiated before first use.
import init, * as native from "./web/racefree_wasm.js";
import { install } from "./api.js";

await init();
install(native);

export * from "./api.js";
