// What the Node tests on real servers share: free ports on 127.0.0.1, a Redis server started on
// one, and a plain connection to a Redis server (or sentinel) once it answers.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** `count` distinct free ports (held open together, so no two are the same). */
export async function freePorts(count) {
  const probes = await Promise.all(Array.from({ length: count }, () => new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => resolve(probe));
  })));
  const ports = probes.map((probe) => probe.address().port);
  await Promise.all(probes.map((probe) => new Promise((resolve) => probe.close(resolve))));
  return ports;
}

/** One free port. */
export const freePort = async () => (await freePorts(1))[0];

/** An ioredis connection (`Redis`, the application's class) to 127.0.0.1:`port`, once the server
 * there answers `PING` (it may still be starting). The connection returned reconnects by itself
 * (after a restart, or when Sentinel closes the clients of a server whose role it changes); the
 * attempts before it are clients of their own that never reconnect, each closed when it fails (a
 * client left reconnecting would refuse the next `connect()` as "already connecting" and keep
 * the process alive). */
export async function reachableRedis(Redis, port) {
  const attempts = 400; // 25 ms apart: 10 s for a server to start
  const options = { port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 };
  for (let attempt = 1; ; attempt++) {
    const probe = new Redis({ ...options, retryStrategy: null });
    probe.on("error", () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === "PONG") break;
      throw new Error(`127.0.0.1:${port} did not answer PING with PONG`);
    } catch (error) {
      if (attempt >= attempts) throw error;
      await new Promise((r) => setTimeout(r, 25));
    } finally {
      probe.disconnect();
    }
  }
  const client = new Redis({ ...options, retryStrategy: () => 50 });
  client.on("error", () => {});
  try {
    await client.connect();
    return client;
  } catch (error) {
    client.disconnect();
    throw error;
  }
}

/** A redis-server on 127.0.0.1:`port` that keeps nothing on disk, its files in `dir` (a fresh
 * temporary folder by default), with `extra` arguments after these (a later one overrides an
 * earlier: `--appendonly yes`). The caller stops it by its PID. */
export function spawnRedis(port, { dir = mkdtempSync(join(tmpdir(), "racefree-redis-")), extra = [] } = {}) {
  return spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", dir, ...extra], { stdio: "ignore" });
}
