// A real PostgreSQL server for the Node tests (Debian's package): initdb into a private directory,
// started on a free 127.0.0.1 port (as the `postgres` user when the tests run as root, which
// PostgreSQL refuses), its socket in that directory; stopped by its PID.
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

import { freePort } from "./servers.mjs";

/** The server binaries of the newest installed PostgreSQL (`/usr/lib/postgresql/<major>/bin`). */
function bin(name) {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) {
    const path = join(root, major, "bin", name);
    if (existsSync(path)) return path;
  }
  return name;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class PostgresServer {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "racefree-pg-"));
    this.user = process.getuid?.() === 0 ? Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })) : null;
    if (this.user !== null) {
      const group = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
      chownSync(this.dir, this.user, group);
      // The server's user must be able to pass through the directories above its own.
      for (let path = dirname(this.dir); path !== "/"; path = dirname(path)) chmodSync(path, statSync(path).mode | 0o011);
      this.gid = group;
    }
    const as = this.user === null ? {} : { uid: this.user, gid: this.gid };
    execFileSync(bin("initdb"), ["-D", join(this.dir, "data"), "-U", "racefree", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
      { stdio: "ignore", cwd: this.dir, ...as });
    this.as = as;
    this.port = 0;
    this.process = null;
  }

  /** Starts the server (on the same port after a stop) and resolves once it accepts connections. */
  async start() {
    this.port ||= await freePort();
    this.process = spawn(bin("postgres"), ["-D", join(this.dir, "data"), "-p", String(this.port), "-k", this.dir,
      "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"], { stdio: "ignore", ...this.as });
    for (let i = 0; ; i++) {
      try {
        execFileSync(bin("pg_isready"), ["-h", this.dir, "-p", String(this.port), "-t", "1"], { stdio: "ignore" });
        return this;
      } catch (error) {
        if (i > 300) throw error;
        await sleep(50);
      }
    }
  }

  /** Fast shutdown (SIGINT), by PID; resolves once the server has exited. */
  async stop() {
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    process.kill(this.process.pid, "SIGINT");
    await exited;
  }

  /** Runs `sql` with psql; resolves to its unaligned output. */
  psql(sql, database = "postgres") {
    return execFileSync("psql", ["-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", this.dir, "-p", String(this.port), "-U", "racefree",
      "-d", database, "-c", sql], { encoding: "utf8" }).trim();
  }

  /** A connection string for `database`. */
  url(database = "postgres") {
    return `postgres://racefree@127.0.0.1:${this.port}/${database}`;
  }
}
