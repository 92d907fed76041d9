// How a Redis store reaches the server: the application's own ioredis or node-redis client,
// wrapped in the one `send` function the wasm core calls for every request it plans.

import { InvalidArgumentError } from "./errors.js";
import { notCarried } from "./host_failure.js";

/** What `send` resolves to: a reply as the client decoded it, or the server's error reply. */
type Reply = null | number | bigint | string | Uint8Array | Reply[] | { error: string };
/** A plain request that follows a write on its connection: its command, keys and arguments. */
type Then = [command: string, keys: string[], args: string[]];
/** Sends one request — a keyed one where the client routes its first key, a walk's to `node`;
 * with `then` (a write that waits for replicas: a marker write and `WAIT`), the write and those
 * on a connection of its own (on a cluster, to the primary of `hashSlot`, its keys' hash slot),
 * answered with every reply — and hands what it got to the core's answer `slot`; throws when the
 * client refuses it at once. */
export type Send = (
  command: string,
  sha1: string | null,
  keys: string[],
  args: string[],
  node: string | undefined,
  then: Then[] | undefined,
  slot: number,
  hashSlot?: number,
) => void;
/** How the core reaches the server: `send`, and on a cluster `nodes`, which answers `slot` with
 * the primaries a walk visits. */
export interface Sender {
  send: Send;
  nodes?: (slot: number) => void;
}
/** Where a host call's outcome goes: the wasm core's slot for it (see `src/host_tasks.rs`). */
export interface Answers {
  hostAnswered(slot: number, value: unknown): void;
  hostFailed(slot: number, error: unknown): void;
}

/** What this module listens to on a client: its end (see `OwnConnections`), and errors of the
 * connections it opens (each request reports its own). */
interface Emitting {
  on(event: "end" | "error", listener: (...args: unknown[]) => void): unknown;
}

/** An ioredis client (v5+): what this module uses of it. */
export interface IoredisLike {
  /** Runs a loaded script by its SHA-1. */
  evalsha(sha1: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Sends any command. */
  call(command: string, ...args: string[]): Promise<unknown>;
  options?: { keyPrefix?: string; host?: string; port?: number };
  /** A new client with the same options (`replicas`: each waiting write has a connection of its own). */
  duplicate?(override?: {
    lazyConnect?: boolean;
    enableOfflineQueue?: boolean;
    retryStrategy?: null;
    reconnectOnError?: null;
  }): IoredisLike & Emitting & { connect(): Promise<unknown>; disconnect(): void };
  /** (`replicas`) */
  on?: Emitting["on"];
}

/** An ioredis `Cluster` (v5+): what this module uses of it. */
export interface IoredisClusterLike {
  readonly isCluster: true;
  /** Runs a loaded script by its SHA-1, on the primary of its first key's slot. */
  evalsha(sha1: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Sends any command. */
  call(command: string, ...args: string[]): Promise<unknown>;
  /** The cluster's connections to its primaries. */
  nodes(role: "master"): IoredisLike[];
  /** Each hash slot's nodes (`"host:port"`), its primary first (`replicas`). */
  slots?: string[][];
  /** (`replicas`) */
  on?: Emitting["on"];
  options?: { keyPrefix?: string; redisOptions?: { keyPrefix?: string } };
}

/** A node-redis client (v5+): what this module uses of it. */
export interface NodeRedisLike {
  /** Sends any command, its name first. */
  sendCommand(args: string[]): Promise<unknown>;
  /** A new, unconnected client with the same options (`replicas`). */
  duplicate?(): NodeRedisLike & Emitting & { connect(): Promise<unknown>; destroy(): void };
  /** (`replicas`) */
  on?: Emitting["on"];
}

/** A node-redis cluster client (`createCluster`, v5+): what this module uses of it. */
export interface NodeRedisClusterLike {
  /** Sends any command, its name first, to the primary of `firstKey`'s slot. */
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  /** The cluster's primaries. */
  readonly masters: { address: string }[];
  /** The client of one of `masters`. */
  nodeClient(node: { address: string }): Promise<NodeRedisLike> | NodeRedisLike;
  /** Each hash slot's shard, its primary first (`replicas`). */
  readonly slots?: ({ master?: { address: string } } | undefined)[];
  /** (`replicas`) */
  on?: Emitting["on"];
}

/** A node-redis Sentinel client (`createSentinel`, v5+): what this module uses of it. */
export interface NodeRedisSentinelLike {
  /** Sends any command, its name first, to the primary (`isReadonly` false) the sentinels name. */
  sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  /** The primary the sentinels named last. */
  getMasterNode(): unknown;
  /** One of the client's `masterPoolSize` connections to the primary, for this module alone
   * until released (`replicas`). */
  acquire?(): Promise<{ sendCommand(isReadonly: boolean | undefined, args: string[]): Promise<unknown>; release(): unknown }>;
}

/** Any client `openRedis` takes. */
export type RedisClientLike = IoredisLike | IoredisClusterLike | NodeRedisLike | NodeRedisClusterLike | NodeRedisSentinelLike;

const isIoredis = (client: unknown): client is IoredisLike =>
  typeof (client as IoredisLike)?.evalsha === "function" && typeof (client as IoredisLike)?.call === "function";
const isIoredisCluster = (client: unknown): client is IoredisClusterLike =>
  isIoredis(client) && (client as unknown as IoredisClusterLike).isCluster === true && typeof (client as unknown as IoredisClusterLike).nodes === "function";
const isNodeRedis = (client: unknown): client is NodeRedisLike => typeof (client as NodeRedisLike)?.sendCommand === "function";
const isNodeRedisSentinel = (client: unknown): client is NodeRedisSentinelLike =>
  typeof (client as NodeRedisSentinelLike)?.sendCommand === "function" && typeof (client as NodeRedisSentinelLike).getMasterNode === "function";
const isNodeRedisCluster = (client: unknown): client is NodeRedisClusterLike =>
  isNodeRedis(client) && typeof (client as unknown as NodeRedisClusterLike).nodeClient === "function";

/** The classes of a server's error reply (as opposed to a transport failure): ioredis' ReplyError,
 * node-redis' SimpleError and BlobError (RESP3) and ErrorReply (RESP2). */
const SERVER_ERRORS = new Set(["ReplyError", "SimpleError", "BlobError", "ErrorReply"]);
const isServerError = (error: unknown): error is Error =>
  error instanceof Error && (SERVER_ERRORS.has(error.name) || SERVER_ERRORS.has(error.constructor?.name));

/** The failures that prove the request was never written: node-redis' closed or offline client,
 * its connect timeout, a cluster none of whose nodes answer; ioredis' refusal without an offline
 * queue; a primary the client no longer knows (this module's own). Any other failure — a timeout,
 * a socket closed while the request was in flight, ioredis' "Connection is closed." and
 * MaxRetriesPerRequestError (both also flush requests already written) — leaves the outcome
 * unknown: the request may have run. */
const NOT_SENT_CLASSES = new Set(["ClientClosedError", "ClientOfflineError", "ConnectionTimeoutError", "RootNodesUnavailableError"]);
const NOT_SENT_MESSAGES = [/^Stream isn't writeable and enableOfflineQueue options is false/, /^cluster node .* is no longer a primary the client knows$/];
const notSent = (error: unknown): boolean =>
  error instanceof Error &&
  (NOT_SENT_CLASSES.has(error.constructor?.name) || NOT_SENT_MESSAGES.some((pattern) => pattern.test(error.message)));

const isErrorReply = (reply: Reply): reply is { error: string } => typeof reply === "object" && reply !== null && "error" in reply;

/** The client's value as the core reads replies: strings, numbers, arrays, nil. */
function normalized(value: unknown): Reply {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") return value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(normalized);
  throw new TypeError(`racefree: the Redis client answered with an unexpected ${typeof value}`);
}

/** A script's request for ioredis (by SHA-1) or its command line for node-redis. */
const ioredisRequest = (client: IoredisLike | IoredisClusterLike, command: string, sha1: string | null, keys: string[], args: string[]) =>
  command === "EVALSHA" ? client.evalsha(sha1!, keys.length, ...keys, ...args) : client.call(command, ...keys, ...args);
const commandLine = (command: string, sha1: string | null, keys: string[], args: string[]) =>
  command === "EVALSHA" ? ["EVALSHA", sha1!, String(keys.length), ...keys, ...args] : [command, ...keys, ...args];

/** A primary the walk named that the client no longer knows (a failover or a resharding since). */
const gone = (node: string) => Promise.reject(new Error(`cluster node ${node} is no longer a primary the client knows`));

/**
 * On a cluster, a keyed request goes where the client routes its first key (every key of a
 * request shares one hash tag) and the client follows `MOVED` and `ASK`; a walk's requests go to
 * the primary it names; a script is loaded on every primary (a keyless `SCRIPT LOAD` would reach
 * one node at random, and the script's node would answer `NOSCRIPT` again).
 */
function clusterRequest(
  primaries: () => Promise<string[]>,
  keyed: (command: string, sha1: string | null, keys: string[], args: string[]) => Promise<unknown>,
  onNode: (node: string, command: string, sha1: string | null, keys: string[], args: string[]) => Promise<unknown>,
) {
  return (command: string, sha1: string | null, keys: string[], args: string[], node?: string): Promise<unknown> => {
    if (node !== undefined) return onNode(node, command, sha1, keys, args);
    if (keys.length === 0 && command === "SCRIPT") {
      return primaries().then((nodes) => Promise.all(nodes.map((n) => onNode(n, command, sha1, keys, args)))).then((loaded) => loaded[0]);
    }
    return keyed(command, sha1, keys, args);
  };
}

/** A connection one request has to itself: a write with its `WAIT`, which blocks the connection
 * it is sent on (on the client's shared connection it would hold up every request behind it, for
 * up to its timeout when a replica is slow). */
interface OwnConnection {
  request(command: string, sha1: string | null, keys: string[], args: string[]): Promise<unknown>;
  /** Closes it, or gives it back to the client that lent it. */
  close(): void;
}

/** Idle connections kept for writes that wait for replicas, per node (as on the Rust store: one
 * per such write in flight, up to this many kept). */
const MAX_IDLE_OWN = 64;

/** The connections of the writes that wait for replicas: one taken per write (an idle one to its
 * node, or a new one), kept idle for the next unless `keep` is false (a connection the client
 * lends goes back to it), none kept after the application's client ends, so that none keeps the
 * process alive. */
class OwnConnections {
  #idle = new Map<string, OwnConnection[]>();
  #ended = false;
  /** Nodes whose client of the application ended (`endsWith`). */
  #endedNodes = new Set<string>();
  #watched = new Set<string>();
  constructor(
    /** Opens one to `node`, within `withinMs` where the client's own wait could be unbounded. */
    readonly open: (withinMs: number, node: string) => Promise<OwnConnection>,
    readonly keep: boolean,
    client: { on?: Emitting["on"] },
    /** The node a write of `hashSlot` goes to: on a cluster the slot's primary in the client's
     * table, else `""`. */
    readonly nodeOf: (hashSlot: number | undefined) => string | Promise<string> = () => "",
  ) {
    client.on?.("end", () => {
      this.#ended = true;
      for (const idle of this.#idle.values()) for (const connection of idle.splice(0)) connection.close();
    });
  }
  /** Keeps no connection to `node` once `nodeClient`, the application's client of it, ends (a
   * node-redis cluster announces no end of its own, its node clients do). */
  endsWith(node: string, nodeClient: { on?: Emitting["on"] }): void {
    if (this.#watched.has(node)) return;
    this.#watched.add(node);
    nodeClient.on?.("end", () => {
      this.#endedNodes.add(node);
      for (const connection of this.#idle.get(node)?.splice(0) ?? []) connection.close();
    });
  }
  async take(withinMs: number, hashSlot: number | undefined): Promise<[string, OwnConnection]> {
    const node = await this.nodeOf(hashSlot);
    const idle = this.#idle.get(node)?.pop();
    return [node, idle ?? (await this.open(withinMs, node))];
  }
  /** After a request: kept when `healthy` (every reply came, none an error but `NOSCRIPT`: a
   * connection that met a failover answers `READONLY`, one that met a resharding `MOVED`). */
  put(node: string, connection: OwnConnection, healthy: boolean): void {
    const idle = this.#idle.get(node) ?? [];
    this.#idle.set(node, idle);
    if (healthy && this.keep && !this.#ended && !this.#endedNodes.has(node) && idle.length < MAX_IDLE_OWN) idle.push(connection);
    else connection.close();
  }
}

const noListener = () => {};

/** A connection of its own to the server of the ioredis client `client` is: a duplicate, connected
 * before its first request and never reconnected. After a reconnect ioredis resends unanswered
 * requests (and on `reconnectOnError` the refused one), which would send a `WAIT` alone — to
 * whichever server the reconnect reached, after a failover the new primary — to count
 * acknowledgements of nothing this connection wrote there. Closed, it fails what it was carrying
 * ("Connection is closed.": the outcome unknown), and is dropped. */
async function ioredisOwn(client: IoredisLike, cannot: () => Error): Promise<OwnConnection> {
  if (!client.duplicate) throw cannot();
  const own = client.duplicate({ lazyConnect: true, enableOfflineQueue: false, retryStrategy: null, reconnectOnError: null });
  own.on("error", noListener);
  try {
    await own.connect();
  } catch (error) {
    own.disconnect();
    throw error;
  }
  return { request: (...request) => ioredisRequest(own, ...request), close: () => own.disconnect() };
}

/** A connection of its own to the server of the node-redis client `client` is: a duplicate. */
async function nodeRedisOwn(client: NodeRedisLike, cannot: () => Error): Promise<OwnConnection> {
  if (!client.duplicate) throw cannot();
  const own = client.duplicate();
  own.on("error", noListener);
  try {
    await own.connect();
  } catch (error) {
    own.destroy();
    throw error;
  }
  return { request: (...request) => own.sendCommand(commandLine(...request)), close: () => own.destroy() };
}

/** A primary the client's slot table names for no hash slot, or no longer lists. */
const unknownPrimary = (node: string) => new Error(node ? `cluster node ${node} is no longer a primary the client knows` : "the cluster client knows no primary for the write's hash slot");

/** How `client` opens connections of its own, or why it cannot (a client without `duplicate`, or
 * for a node-redis Sentinel `acquire`). */
function ownConnections(client: unknown): OwnConnections {
  const cannot = () =>
    new InvalidArgumentError(
      "invalid argument: replicas needs a client that opens connections of its own (ioredis or node-redis duplicate(), a node-redis Sentinel's acquire())",
    );
  if (isIoredisCluster(client)) {
    const name = (node: IoredisLike) => `${node.options?.host}:${node.options?.port}`;
    return new OwnConnections(
      async (_, node) => {
        const primary = client.nodes("master").find((n) => name(n) === node);
        if (!primary) throw unknownPrimary(node);
        return ioredisOwn(primary, cannot);
      },
      true,
      client,
      async (hashSlot) => {
        if (hashSlot === undefined) return "";
        // Before its first connection the cluster knows no slot; any command waits for it.
        if (!client.slots?.[hashSlot]?.[0]) await client.call("PING");
        return client.slots?.[hashSlot]?.[0] ?? "";
      },
    );
  }
  if (isNodeRedisCluster(client)) {
    const connections: OwnConnections = new OwnConnections(
      async (_, node) => {
        const primary = client.masters.find((n) => n.address === node);
        if (!primary) throw unknownPrimary(node);
        const nodeClient = await client.nodeClient(primary);
        connections.endsWith(node, nodeClient);
        return nodeRedisOwn(nodeClient, cannot);
      },
      true,
      client,
      (hashSlot) => (hashSlot === undefined ? "" : client.slots?.[hashSlot]?.master?.address ?? ""),
    );
    return connections;
  }
  if (isIoredis(client)) {
    if (!client.duplicate) throw cannot();
    return new OwnConnections(() => ioredisOwn(client, cannot), true, client);
  }
  if (isNodeRedisSentinel(client)) {
    const acquire = client.acquire?.bind(client);
    if (!acquire) throw cannot();
    // When the pool last lent a connection to any write: a queue that moves is waited for.
    let lastLentAt = Date.now();
    return new OwnConnections(async (withinMs) => {
      // `acquire` waits for a free connection of the client's pool, for good if none comes back:
      // with `masterPoolSize` above 1, node-redis 5 can keep one leased after concurrent first
      // commands (tested). A write waits while the pool lends connections to others (writes
      // queued behind each other on the one connection); once it has lent none for `withinMs`,
      // the write fails unsent, and a connection lent late goes back.
      const lending = acquire().then((given) => {
        lastLentAt = Date.now();
        return given;
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        const check = () => {
          const still = lastLentAt + withinMs - Date.now();
          if (still > 0) timer = setTimeout(check, still);
          else reject(new Error(`the Sentinel client lent no connection to the primary within ${withinMs} ms`));
        };
        timer = setTimeout(check, withinMs);
      });
      let lent: Awaited<typeof lending>;
      try {
        lent = await Promise.race([lending, late]);
      } catch (error) {
        lending.then((given) => given.release(), noListener);
        throw error;
      } finally {
        clearTimeout(timer);
      }
      return {
        request: (...request) => lent.sendCommand(false, commandLine(...request)),
        close: () => {
          Promise.resolve()
            .then(() => lent.release())
            .catch(noListener);
        },
      };
      // Lent: nothing kept idle, nothing to close when the client ends.
    }, false, {});
  }
  if (isNodeRedis(client)) {
    if (!client.duplicate) throw cannot();
    return new OwnConnections(() => nodeRedisOwn(client, cannot), true, client);
  }
  throw cannot();
}

/**
 * The `send` (and, on a cluster, `nodes`) the wasm core carries its requests with, over any
 * client `openRedis` takes; each outcome goes to `answers`.
 *
 * @throws {TypeError} when `client` is none of those clients.
 * @throws {InvalidArgumentError} for an ioredis client or Cluster with a `keyPrefix`; when `waits`
 *   (`replicas`), for a client that opens no connection of its own (see `ownConnections`).
 */
export function redisSender(client: unknown, answers: Answers, waits = false): Sender {
  let request: (command: string, sha1: string | null, keys: string[], args: string[], node?: string) => Promise<unknown>;
  let nodes: (() => Promise<string[]>) | undefined;
  if (isIoredisCluster(client)) {
    if (client.options?.keyPrefix || client.options?.redisOptions?.keyPrefix) {
      throw new InvalidArgumentError(
        "invalid argument: the ioredis Cluster has a keyPrefix; use openRedis(cluster, { namespace }) with a cluster without one",
      );
    }
    const name = (node: IoredisLike) => `${node.options?.host}:${node.options?.port}`;
    nodes = async () => {
      // Before its first connection the cluster knows no node; any command waits for it.
      if (client.nodes("master").length === 0) await client.call("PING");
      return client.nodes("master").map(name);
    };
    request = clusterRequest(nodes, (command, sha1, keys, args) => ioredisRequest(client, command, sha1, keys, args), (node, ...rest) => {
      const found = client.nodes("master").find((n) => name(n) === node);
      return found ? ioredisRequest(found, ...rest) : gone(node);
    });
  } else if (isIoredis(client)) {
    if (client.options?.keyPrefix) {
      // A prefix ioredis applies to declared keys only would not reach the keys scripts derive.
      throw new InvalidArgumentError(
        "invalid argument: the ioredis client has a keyPrefix; use openRedis(client, { namespace }) with a client without one",
      );
    }
    request = (command, sha1, keys, args) => ioredisRequest(client, command, sha1, keys, args);
  } else if (isNodeRedisCluster(client)) {
    nodes = async () => client.masters.map((node) => node.address);
    // Every request to a primary: a replica may lag behind what was acknowledged.
    request = clusterRequest(nodes, (command, sha1, keys, args) => client.sendCommand(keys[0], false, commandLine(command, sha1, keys, args)), async (node, ...rest) => {
      const found = client.masters.find((n) => n.address === node);
      return found ? (await client.nodeClient(found)).sendCommand(commandLine(...rest)) : gone(node);
    });
  } else if (isNodeRedisSentinel(client)) {
    // Every request to the primary (`isReadonly` false): a replica may lag behind it.
    request = (command, sha1, keys, args) => client.sendCommand(false, commandLine(command, sha1, keys, args));
  } else if (isNodeRedis(client)) {
    request = (command, sha1, keys, args) => client.sendCommand(commandLine(command, sha1, keys, args));
  } else {
    throw new TypeError("client must be an ioredis client or Cluster, or a node-redis client, cluster or Sentinel client");
  }
  // A server's error reply is a reply; any other failure goes with what the core sorts it by.
  const failed = (slot: number, error: unknown): void => {
    if (isServerError(error)) answers.hostAnswered(slot, { error: error.message });
    else answers.hostFailed(slot, notCarried(error, !notSent(error)));
  };
  const own = waits ? ownConnections(client) : undefined;
  // A write and what follows it, on a connection of its own: every reply, or the failure.
  const sendWaiting = (
    connections: OwnConnections,
    command: string,
    sha1: string | null,
    keys: string[],
    args: string[],
    then: Then[],
    slot: number,
    hashSlot: number | undefined,
  ): void => {
    // A connection is had within the time the write may wait for its replicas: the timeout of
    // the `WAIT <replicas> <timeout>` that ends `then` (the core's order).
    const waitMs = Number(then[then.length - 1][2][1]);
    connections.take(waitMs, hashSlot).then(
      ([node, connection]) => {
        const requests = [
          connection.request(command, sha1, keys, args),
          ...then.map(([name, thenKeys, thenArgs]) => connection.request(name, null, thenKeys, thenArgs)),
        ];
        Promise.allSettled(requests).then((outcomes) => {
          const replies: Reply[] = [];
          for (const settled of outcomes) {
            if (settled.status === "fulfilled") {
              try {
                replies.push(normalized(settled.value));
              } catch (error) {
                connections.put(node, connection, false);
                return failed(slot, error);
              }
            } else if (isServerError(settled.reason)) {
              replies.push({ error: settled.reason.message });
            } else {
              connections.put(node, connection, false);
              // Once the write was answered, a failure of what follows leaves only its
              // replication unknown.
              return replies.length === 0 ? failed(slot, settled.reason) : answers.hostFailed(slot, notCarried(settled.reason, true));
            }
          }
          connections.put(node, connection, replies.every((reply) => !isErrorReply(reply) || reply.error.startsWith("NOSCRIPT")));
          answers.hostAnswered(slot, replies);
        });
      },
      // No connection: nothing was written.
      (error) => answers.hostFailed(slot, notCarried(error, false)),
    );
  };
  // One `then` on the client's promise, handing its outcome straight to the core: no promise or
  // microtask turn of our own per request (see `src/host_tasks.rs` for the figures).
  const send: Send = (command, sha1, keys, args, node, then, slot, hashSlot) => {
    if (then !== undefined) {
      if (own === undefined) throw notCarried(new Error("a write waiting for replicas on a store opened without them"), false);
      return sendWaiting(own, command, sha1, keys, args, then, slot, hashSlot);
    }
    let pending: Promise<unknown>;
    try {
      pending = request(command, sha1, keys, args, node);
    } catch (error) {
      // Thrown before the client took the request: it was never written.
      throw notCarried(error, false);
    }
    pending.then((value) => {
      let reply: Reply;
      try {
        reply = normalized(value);
      } catch (error) {
        return failed(slot, error);
      }
      answers.hostAnswered(slot, reply);
    }, (error) => failed(slot, error));
  };
  const listed = nodes;
  return {
    send,
    nodes: listed && ((slot: number) => {
      listed().then((names) => answers.hostAnswered(slot, names), (error) => failed(slot, error));
    }),
  };
}
