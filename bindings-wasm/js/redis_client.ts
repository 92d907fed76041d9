// How a Redis store reaches the server: the application's own ioredis or node-redis client,
// wrapped in the one `send` function the wasm core calls for every request it plans.

import { InvalidArgumentError } from "./errors.js";

/** What `send` resolves to: a reply as the client decoded it, or the server's error reply. */
type Reply = null | number | bigint | string | Uint8Array | Reply[] | { error: string };
export type Send = (command: string, sha1: string | null, keys: string[], args: string[]) => Promise<Reply>;

/** An ioredis client (v5+): what this module uses of it. */
export interface IoredisLike {
  /** Runs a loaded script by its SHA-1. */
  evalsha(sha1: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** Sends any command. */
  call(command: string, ...args: string[]): Promise<unknown>;
  options?: { keyPrefix?: string };
}

/** A node-redis client (v5+): what this module uses of it. */
export interface NodeRedisLike {
  /** Sends any command, its name first. */
  sendCommand(args: string[]): Promise<unknown>;
}

const isIoredis = (client: unknown): client is IoredisLike =>
  typeof (client as IoredisLike)?.evalsha === "function" && typeof (client as IoredisLike)?.call === "function";
const isNodeRedis = (client: unknown): client is NodeRedisLike => typeof (client as NodeRedisLike)?.sendCommand === "function";

/** The classes of a server's error reply (as opposed to a transport failure): ioredis' ReplyError,
 * node-redis' SimpleError and BlobError (RESP3) and ErrorReply (RESP2). */
const SERVER_ERRORS = new Set(["ReplyError", "SimpleError", "BlobError", "ErrorReply"]);
const isServerError = (error: unknown): error is Error =>
  error instanceof Error && (SERVER_ERRORS.has(error.name) || SERVER_ERRORS.has(error.constructor?.name));

/** A client's timeout (ioredis' commandTimeout, node-redis' socket timeout): the request may have run. */
const isTimeout = (error: unknown): boolean =>
  error instanceof Error && (/timed? ?out/i.test(error.message) || error.constructor?.name === "TimeoutError");

/** The client's value as the core reads replies: strings, numbers, arrays, nil. */
function normalized(value: unknown): Reply {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") return value;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map(normalized);
  throw new TypeError(`racefree: the Redis client answered with an unexpected ${typeof value}`);
}

export function redisSender(client: unknown): Send {
  let request: (command: string, sha1: string | null, keys: string[], args: string[]) => Promise<unknown>;
  if (isIoredis(client)) {
    if (client.options?.keyPrefix) {
      // A prefix ioredis applies to declared keys only would not reach the keys scripts derive.
      throw new InvalidArgumentError(
        "invalid argument: the ioredis client has a keyPrefix; use openRedis(client, { namespace }) with a client without one",
      );
    }
    request = (command, sha1, keys, args) =>
      command === "EVALSHA" ? client.evalsha(sha1!, keys.length, ...keys, ...args) : client.call(command, ...keys, ...args);
  } else if (isNodeRedis(client)) {
    request = (command, sha1, keys, args) =>
      client.sendCommand(
        command === "EVALSHA" ? ["EVALSHA", sha1!, String(keys.length), ...keys, ...args] : [command, ...keys, ...args],
      );
  } else {
    throw new TypeError("client must be an ioredis or node-redis client");
  }
  // A server's error reply is a reply; anything else rejects with what the core sorts failures by.
  const failed = (error: unknown): Reply => {
    if (isServerError(error)) return { error: error.message };
    throw { message: error instanceof Error ? error.message : String(error), timedOut: isTimeout(error) };
  };
  const decoded = (value: unknown): Reply => {
    try {
      return normalized(value);
    } catch (error) {
      return failed(error);
    }
  };
  // `then` on the client's promise, not an async function around it: fewer promises and
  // microtask turns per request (a 1-caller `next` on ioredis, best of 5: 88 -> 83-86 us, the
  // client's own INCR 68-72 us; the rest is the wasm side's, before the send and after the reply).
  return (command, sha1, keys, args) => {
    try {
      return request(command, sha1, keys, args).then(decoded, failed);
    } catch (error) {
      return Promise.reject(error).then(undefined, failed);
    }
  };
}
