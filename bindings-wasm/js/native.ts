// The wasm module every class calls into, installed once by the entry point (node.js, web.js).

import type * as Native from "../node/racefree_wasm.js";
import { fromNative } from "./errors.js";
import { bindFastCalls } from "./fast_call.js";

/** The classes of the stores over a host's client: in the Node build only. */
type HostedClasses = "HostedStore" | "AsyncCounter" | "AsyncEventGuard" | "AsyncLease" | "AsyncRecords" | "AsyncStartLock" | "UpdateDelays";
/** @internal The wasm module's exports, the same in its `nodejs` and `web` builds but for the hosted stores. */
export type NativeModule = Omit<typeof Native, "default" | HostedClasses> & Partial<Pick<typeof Native, HostedClasses>>;
/** @internal The Node build's module, with the hosted stores' classes. */
export type HostedModule = Omit<typeof Native, "default">;

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

/** A new execution id: a ULID, monotonic within this instance. */
export const newExecutionId = (): string => native.newExecutionId();
/** Every error code the core can raise. */
export const errorCodes = (): string[] => native.errorCodes();
