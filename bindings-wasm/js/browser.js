// Browser entry: the `web` build of the wasm module, fetched and instantiated before first use.
import init, * as native from "./web/racefree_wasm.js";
import { createApi } from "./api.js";

await init();
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
