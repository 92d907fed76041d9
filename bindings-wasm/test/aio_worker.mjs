// One process of the racing tests in redis.test.mjs and postgres.test.mjs: takes the key with
// runExclusive again and again for RACEFREE_WORKER_MS, printing "start <pid> <ms>" and
// "end <pid> <ms>" around each run. On Redis (RACEFREE_PORT) through ioredis, on a Redis Cluster
// (RACEFREE_CLUSTER_PORTS, comma-separated) through an ioredis Cluster, on PostgreSQL
// (RACEFREE_POSTGRES_URL) through a pg Pool.
import { createRequire } from "node:module";
import { join } from "node:path";
import { aio } from "racefree";

const clients = createRequire(join(process.env.RACEFREE_CLIENTS ?? process.cwd(), "package.json"));
const namespace = process.env.RACEFREE_NAMESPACE;
let client;
let store;
let close;
if (process.env.RACEFREE_POSTGRES_URL) {
  const { Pool } = clients("pg");
  client = new Pool({ connectionString: process.env.RACEFREE_POSTGRES_URL, max: 4 });
  store = await aio.openPostgres(client, { namespace });
  close = () => client.end();
} else if (process.env.RACEFREE_CLUSTER_PORTS) {
  const { Cluster } = clients("ioredis");
  client = new Cluster(process.env.RACEFREE_CLUSTER_PORTS.split(",").map((port) => ({ host: "127.0.0.1", port: Number(port) })));
  store = aio.openRedis(client, { namespace });
  close = () => client.disconnect();
} else {
  const Redis = clients("ioredis");
  client = new Redis({ port: Number(process.env.RACEFREE_PORT), host: "127.0.0.1" });
  store = aio.openRedis(client, { namespace });
  close = () => client.disconnect();
}
const lock = new aio.StartLock(store, "tasks");
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
await close();
