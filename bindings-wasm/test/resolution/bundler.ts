// What a bundled app writes (checked under `moduleResolution: bundler`).
import { Counter, StartLock, open, type Lease } from "racefree";
import { init } from "racefree/web";

await init();
const lease: Lease | null = new StartLock(open(), "tasks").tryStart("k", { ttl: 1_000 });
export const index: number = new Counter(open(), "task:1").next() + (lease?.token ?? 0);
