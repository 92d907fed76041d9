// An ES module importing the package (checked under node16 and nodenext resolution).
import { Counter, open, type Claim } from "racefree";
import { init, initSync, type WasmSource } from "racefree/web";

export const claim: Claim = new Counter(open(), "task:1").claim("exec-a");
export const loaders: [typeof init, typeof initSync, WasmSource] = [init, initSync, new URL("https://example.invalid/x.wasm")];
