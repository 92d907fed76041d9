// Web entry without side effects, for hosts and bundlers that load the `.wasm` themselves:
// `await init()` fetches it beside this module (`new URL(..., import.meta.url)`, which Vite and
// webpack 5 follow), `await init(url | Response | bytes | WebAssembly.Module)` takes it from
// wherever the host put it, and `initSync(bytes | WebAssembly.Module)` instantiates it at once.
// Every other export works once one of them has run; a second call does nothing.
import initWasm, { initSync as initWasmSync } from "../web/racefree_wasm.js";
import * as native from "../web/racefree_wasm.js";
import { install, isInstalled } from "./native.js";

// The browser build is the same module as Node's first (the memory store), for the web target.
const nativeWasm = native as unknown as Parameters<typeof install>[0];

/** What `init` can load the module from: its URL, a fetch response, its bytes, or the compiled
 * module (wasm-bindgen's `InitInput`, spelt out so the package's declarations need nothing of
 * wasm-bindgen's, which require the `esnext.disposable` lib). */
export type WasmSource = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** Fetches (or takes) and instantiates the wasm module; without `source`, fetches the `.wasm` shipped beside this file. */
export async function init(source?: WasmSource | Promise<WasmSource>): Promise<void> {
  if (isInstalled()) return;
  await initWasm(source === undefined ? undefined : { module_or_path: source });
  if (!isInstalled()) install(nativeWasm);
}

/** Instantiates the wasm module from its bytes or compiled module, synchronously (browsers allow this off the main thread or for small modules). */
export function initSync(source: BufferSource | WebAssembly.Module): void {
  if (isInstalled()) return;
  initWasmSync({ module: source });
  install(nativeWasm);
}

export * from "./api.js";
