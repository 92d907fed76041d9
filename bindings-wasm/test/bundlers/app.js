// The app Vite and webpack build: the package's default browser entry, which fetches the .wasm
// the bundler emitted (it follows `new URL(..., import.meta.url)`) before its first use. Named
// imports, as apps write them: a bundler that wrongly thought the entry free of side effects
// would link them past its `await init()`.
import { Counter, EventGuard, InvalidKeyError, StartLock, open } from "racefree";
import { runChecks, show } from "./checks.js";

show(await runChecks({ Counter, EventGuard, InvalidKeyError, StartLock, open }, "racefree"));
