// Node entry: the `nodejs` build of the wasm module, loaded synchronously.
import { createRequire } from "node:module";
import { createApi } from "./api.js";

const native = createRequire(import.meta.url)("./node/racefree_wasm.js");
const api = createApi(native);

export * from "./errors.js";
export { Mark } from "./api.js";
export const {
  open,
  newExecutionId,
  errorCodes,
  MAX_KEY_BYTES,
  ManualClock,
  Store,
  Counter,
  EventGuard,
  StartLock,
  Lease,
  Records,
  Cache,
} = api;
