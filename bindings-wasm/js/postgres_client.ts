// How a PostgreSQL store reaches the server: the application's own `pg` Pool, wrapped in the one
// `run` function the wasm core calls for every transaction it plans. Every value comes back as
// PostgreSQL's text (no type parser of the application applies), so the core reads each exactly;
// `bytea` parameters go as the Uint8Arrays the core made (pg sends them as binary).

import { notCarried } from "./host_failure.js";

/** A `pg` (node-postgres, v8+) Pool: what this module uses of it. */
export interface PgPoolLike {
  /** Checks a client out of the pool. */
  connect(): Promise<PgClientLike>;
}

/** A client checked out of a `pg` Pool. */
export interface PgClientLike {
  /** Runs one query (a simple query when `values` is empty). */
  query(config: { text: string; name?: string; values?: unknown[]; rowMode: "array"; types: PgTypes }): Promise<unknown>;
  /** Gives the client back, or (with `true`) closes its connection. */
  release(destroy?: boolean | Error): void;
}

interface PgTypes {
  /** The parser of a column type: here, every value stays text. */
  getTypeParser(oid: number, format?: string): (text: string) => unknown;
}

/** One statement's answer, as the core reads it: the columns' type OIDs and each row's text. */
type StatementRows = [number[], (string | null)[][]];
type Run = (
  begin: string | null,
  statements: [string, unknown[]][],
) => Promise<StatementRows[] | { sqlstate: string; message: string }>;

/** Every column as its text: the core parses each by its type. */
const RAW: PgTypes = { getTypeParser: () => (text: string) => text };

interface ResultLike {
  fields?: { dataTypeID: number }[];
  rows?: (string | null)[][];
}

/** The server's refusal of a statement (node-postgres' DatabaseError): its SQLSTATE. */
function serverError(error: unknown): { sqlstate: string; message: string } | null {
  if (!(error instanceof Error)) return null;
  const { code, severity } = error as Error & { code?: unknown; severity?: unknown };
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && typeof severity === "string") {
    return { sqlstate: code, message: error.message };
  }
  return null;
}

function statementRows(result: unknown): StatementRows {
  // A simple query of several commands (the schema's) answers one result per command.
  const last = (Array.isArray(result) ? result[result.length - 1] : result) as ResultLike | undefined;
  return [(last?.fields ?? []).map((field) => field.dataTypeID), last?.rows ?? []];
}

const isPool = (pool: unknown): pool is PgPoolLike => typeof (pool as PgPoolLike)?.connect === "function";

/** A prepared statement's name for `sql`: its FNV-1a hash, the same in every process. */
function statementName(sql: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < sql.length; i++) hash = Math.imul(hash ^ sql.charCodeAt(i), 0x01000193);
  return `racefree_${(hash >>> 0).toString(16)}_${sql.length}`;
}

/**
 * The `run` of the core's transactions over `pool`. With `prepare`, each statement with
 * parameters is prepared once per connection (pg's named statements) instead of parsed on every
 * call: for a direct connection, or a pooler that tracks prepared statements; behind a
 * transaction pooler that does not, a name prepared on one server connection is missing on
 * another.
 */
export function postgresRunner(pool: unknown, prepare = false): Run {
  if (!isPool(pool)) throw new TypeError("pool must be a pg Pool");
  return async (begin, statements) => {
    let client: PgClientLike;
    try {
      client = await pool.connect();
    } catch (error) {
      throw notCarried(error, false);
    }
    // Whether a failure of the connection leaves the outcome unknown: once a statement sent alone
    // (its own transaction) or the COMMIT is in flight.
    let mayHaveCommitted = false;
    try {
      if (begin !== null) await client.query({ text: begin, rowMode: "array", types: RAW });
      const results: StatementRows[] = [];
      for (const [text, values] of statements) {
        mayHaveCommitted = begin === null;
        const name = prepare && values.length > 0 ? statementName(text) : undefined;
        const result = await client.query({ text, name, values, rowMode: "array", types: RAW });
        results.push(statementRows(result));
      }
      if (begin !== null) {
        mayHaveCommitted = true;
        await client.query({ text: "COMMIT", rowMode: "array", types: RAW });
      }
      client.release();
      return results;
    } catch (error) {
      const refused = serverError(error);
      if (refused !== null) {
        // The transaction is aborted (or, for a failed COMMIT, rolled back): end it before the
        // connection goes back to the pool.
        let ended = true;
        if (begin !== null) {
          try {
            await client.query({ text: "ROLLBACK", rowMode: "array", types: RAW });
          } catch {
            ended = false;
          }
        }
        client.release(!ended);
        return refused;
      }
      // A connection that failed mid-transaction is not given back: closing it rolls back
      // whatever had not committed.
      client.release(true);
      throw notCarried(error, mayHaveCommitted);
    }
  };
}
