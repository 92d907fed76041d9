// The wasm modules every class calls into: the memory store's, installed once by the entry point
// (node.js, web.js), and in Node the hosted stores', loaded on first use.

import type * as HostedNative from "../node-hosted/racefree_wasm.js";
import type * as Native from "../node/racefree_wasm.js";
import { fromNative } from "./errors.js";
import { bindFastCalls } from "./fast_call.js";

/** @internal The memory store's wasm module: the same exports in its `nodejs` and `web` builds. */
export type NativeModule = Omit<typeof Native, "default">;
/** @internal The hosted stores' wasm module (Node only): a second instance, built for size. */
export type HostedModule = Omit<typeof HostedNative, "default">;

/** Stands in for the wasm module until an entry point installs it: any use says what to do. */
const notInstalled = new Proxy({} as NativeModule, {
  get() {
    throw new Error("racefree is not initialized: with `racefree/web`, call `await init()` (or `initSync(module)`) first");
  },
});

/** @internal The wasm module every class calls into; set once by the entry point (node.js, web.js). */
export let native: NativeModule = notInstalled;

/** @internal Whether an entry point has installed the wasm module. */
export const isInstalled = (): boolean => native !== notInstalled;

/** The longest key, id or name accepted, in bytes of UTF-8 (set by `install`). */
export let MAX_KEY_BYTES: number;

/** @internal Connects this API to an instantiated wasm module; called once by each entry point. */
export function install(module: NativeModule): void {
  native = module;
  bindFastCalls(module);
  native.installErrorFactory(fromNative);
  MAX_KEY_BYTES = native.maxKeyBytes();
}

/** @internal The installed wasm module (for the `aio` classes). */
export const nativeModule = (): NativeModule => native;

let loadHosted: (() => HostedModule) | undefined;
let hosted: HostedModule | undefined;

/** @internal How the Node entry loads the hosted stores' module; the browser entry sets none. */
export function installHostedLoader(loader: () => HostedModule): void {
  loadHosted = loader;
}

/** @internal The hosted stores' wasm module, loaded (and given the error classes) on first use. */
export function hostedModule(): HostedModule {
  if (hosted === undefined) {
    if (loadHosted === undefined) {
      throw new DOMException("racefree: aio stores run in Node (the browser build has no Redis or PostgreSQL client to carry them)", "NotSupportedError");
    }
    const module = loadHosted();
    module.installErrorFactory(fromNative);
    hosted = module;
  }
  return hosted;
}

/** A new execution id: a ULID, monotonic within this instance. */
export const newExecutionId = (): string => native.newExecutionId();
/** Every error code the core can raise. */
export const errorCodes = (): string[] => native.errorCodes();
