// One process of the racing test in redis.test.mjs: takes the key with runExclusive again and
// again for RACEFREE_WORKER_MS, printing "start <pid> <ms>" and "end <pid> <ms>" around each run.
import { createRequire } from "node:module";
import { join } from "node:path";
import { aio } from "racefree";

const clients = createRequire(join(process.env.RACEFREE_CLIENTS ?? process.cwd(), "package.json"));
const Redis = clients("ioredis");
const [port, namespace] = [Number(process.env.RACEFREE_PORT), process.env.RACEFREE_NAMESPACE];
const client = new Redis({ port, host: "127.0.0.1" });
const lock = new aio.StartLock(aio.openRedis(client, { namespace }), "tasks");
const until = Date.now() + Number(process.env.RACEFREE_WORKER_MS);
while (Date.now() < until) {
  try {
    await lock.runExclusive("one", { ttl: 400, renewEvery: 100, timeout: 5_000 }, async ({ signal }) => {
      console.log(`start ${process.pid} ${Date.now()}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 150);
        signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
      });
      console.log(`end ${process.pid} ${Date.now()}`);
    });
  } catch (error) {
    console.log(`error ${process.pid} ${error.code ?? error.name}`);
  }
}
client.disconnect();
