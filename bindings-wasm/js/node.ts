// Node entry: the `nodejs` build of the memory store's wasm module (CommonJS, whose default
// export is its `module.exports`), loaded synchronously; the hosted stores' module is required
// on the first `aio.openRedis` or `aio.openPostgres`, so that a process using neither never
// compiles it.
import loadHosted from "../node-hosted/load.js";
import native from "../node/racefree_wasm.js";
import { install, installHostedLoader } from "./native.js";
import type { HostedModule } from "./native.js";

install(native);
installHostedLoader(() => loadHosted() as HostedModule);

export * from "./api.js";
