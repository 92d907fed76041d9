// Argument checks shared by every class: options objects, keys, milliseconds, record values. Only
// types are checked here; every range and rule is the Rust core's, the same in every language.

import { InvalidArgumentError, InvalidKeyError } from "./errors.js";

/** @internal An options argument: `undefined` (none given) or an object; anything else is a TypeError. */
export function options<T extends object>(value: T | undefined, what: string): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object") {
    throw new TypeError(`${what} must be an options object, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}

/** @internal */
export const typeName = (value: unknown): string => (value === null ? "null" : Array.isArray(value) ? "array" : typeof value);

/** @internal A key, id or name: a string of well-formed UTF-16 (a lone surrogate has no UTF-8 form). */
export function str(what: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${what} must be a string, got ${typeName(value)}`);
  if (!value.isWellFormed()) throw new InvalidKeyError(`invalid key: ${what} contains a lone surrogate (not valid UTF-8)`);
  return value;
}

/** @internal Milliseconds: a number (range checks happen in the core, the same in every language). */
export function ms(what: string, value: unknown): number {
  if (typeof value !== "number") throw new TypeError(`${what} must be a number of milliseconds, got ${typeName(value)}`);
  return value;
}

const MAX_DEPTH = 64;

/** @internal JSON text for a record value, refusing what JSON.stringify would silently drop or change. */
export function jsonText(value: unknown): string {
  const check = (v: unknown, depth: number): void => {
    if (depth > MAX_DEPTH) {
      throw new InvalidArgumentError(`invalid argument: record value nests deeper than ${MAX_DEPTH} levels (or contains itself)`);
    }
    if (v === null || typeof v === "string" || typeof v === "boolean") return;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(`invalid argument: ${v} is not a JSON number`);
      return;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        // JSON.stringify writes a hole as null: the record would not hold what was written.
        if (!(i in v)) throw new InvalidArgumentError(`invalid argument: a record value's array has a hole at index ${i}`);
        check(v[i], depth + 1);
      }
      return;
    }
    const proto = typeof v === "object" ? Object.getPrototypeOf(v) : undefined;
    if (proto === Object.prototype || proto === null) {
      const object = v as Record<string, unknown>;
      for (const key of Object.keys(object)) check(object[key], depth + 1);
      return;
    }
    throw new TypeError(
      `a record value must be JSON-compatible (plain object, array, string, finite number, boolean or null), got ${(v as object | undefined)?.constructor?.name ?? typeName(v)}`,
    );
  };
  check(value, 0);
  return JSON.stringify(value);
}

/** @internal Runs `work` so that a bad argument rejects the returned promise instead of throwing. */
export async function rejecting<T>(work: () => Promise<T>): Promise<T> {
  return work();
}
