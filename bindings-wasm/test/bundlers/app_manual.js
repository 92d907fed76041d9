// The app esbuild builds: esbuild does not follow `new URL(..., import.meta.url)`, so the app
// imports the .wasm as a file (`--loader:.wasm=file` copies it and gives its URL) and passes it to
// `init` of the side-effect-free `racefree/web` entry.
import wasmUrl from "racefree/racefree_wasm_bg.wasm";
import { Counter, EventGuard, InvalidKeyError, StartLock, init, open } from "racefree/web";
import { runChecks, show } from "./checks.js";

let early = "no error";
try {
  open();
} catch (error) {
  early = String(error.message);
}
await init(wasmUrl);
const report = await runChecks({ Counter, EventGuard, InvalidKeyError, StartLock, open }, "racefree/web");
(early.includes("await init()") ? report.passed : report.failed).push(`racefree/web: a call before init says what to do (${early})`);
show(report);
