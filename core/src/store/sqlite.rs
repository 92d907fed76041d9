//! The embedded SQLite store: several processes on one machine, and it survives restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde_json::Value;

use super::fork::OpenedIn;
use super::{
    counter_overflow, counter_value_i64, decide_mark, decide_record_delete, decide_record_write, Claim,
    LeaseGrant, MarkOutcome, RecordSlot, Store, StoreStats, Versioned,
};
use super::{CounterEntry, Inventory, LeaseEntry, RecordEntry, StreamEntry};
use crate::backoff::Backoff;
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// The schema this build writes; a file with another version is refused rather than misread.
/// Version 2 added `record_floors` and `record_tombstones` (a version 1 file is upgraded when
/// opened: the new tables start empty, which is what version 1 held).
pub const SCHEMA_VERSION: i64 = 2;

/// The page size of files this store creates (existing files keep theirs).
const PAGE_SIZE: u32 = 1024;

/// Every this many writes of a handle, up to [`AMORTIZED_SWEEP`] expired rows are removed too,
/// so expiry costs are spread over calls.
const SWEEP_EVERY: u64 = 32;
const AMORTIZED_SWEEP: i64 = 64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS racefree_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (ns TEXT NOT NULL, counter TEXT NOT NULL, next INTEGER NOT NULL,
    PRIMARY KEY (ns, counter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (ns TEXT NOT NULL, counter TEXT NOT NULL, id TEXT NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (ns, counter, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (ns TEXT NOT NULL, guard TEXT NOT NULL, stream TEXT NOT NULL,
    marked INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (ns, guard, stream)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS marks_by_expiry ON marks (ns, expires_at);
CREATE TABLE IF NOT EXISTS leases (ns TEXT NOT NULL, lock TEXT NOT NULL, key TEXT NOT NULL,
    token INTEGER NOT NULL, deadline INTEGER NOT NULL, PRIMARY KEY (ns, lock, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_by_deadline ON leases (ns, deadline);
CREATE TABLE IF NOT EXISTS lock_tokens (ns TEXT NOT NULL, lock TEXT NOT NULL, last INTEGER NOT NULL,
    PRIMARY KEY (ns, lock)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (ns TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    version INTEGER NOT NULL, fence INTEGER NOT NULL, PRIMARY KEY (ns, space, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_floors (ns TEXT NOT NULL, space TEXT NOT NULL, deleted INTEGER NOT NULL,
    PRIMARY KEY (ns, space)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS record_tombstones (ns TEXT NOT NULL, space TEXT NOT NULL, key TEXT NOT NULL,
    fence INTEGER NOT NULL, PRIMARY KEY (ns, space, key)) WITHOUT ROWID;
";

/// Options of a [`SqliteStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Prefixes every key: stores with different namespaces share a file without sharing keys.
    pub namespace: String,
    /// How long a call waits for another process's transaction before failing with `timeout`.
    pub busy_timeout: Duration,
    /// `synchronous=FULL` (each commit survives power loss) instead of `NORMAL` (WAL default:
    /// survives a process crash; a power loss can drop the last commits).
    pub synchronous_full: bool,
}

impl SqliteOptions {
    /// These options with the given namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// These options with the given busy timeout.
    #[must_use]
    pub fn with_busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// These options with `synchronous=FULL` (or `NORMAL`).
    #[must_use]
    pub fn with_synchronous_full(mut self, full: bool) -> Self {
        self.synchronous_full = full;
        self
    }
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { namespace: String::new(), busy_timeout: Duration::from_secs(5), synchronous_full: false }
    }
}

/// The SQLite store: one `BEGIN IMMEDIATE` transaction per operation, on a file shared by any
/// number of processes (WAL mode). Deadlines are judged by the injected clock, which must be one
/// all processes agree on: the default [`SystemClock`](crate::SystemClock) (Unix milliseconds).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// A child after `fork()` opens its own connection (see [`OpenedIn`]).
    opened_in: OpenedIn,
    clock: SharedClock,
    options: SqliteOptions,
    expired_swept: AtomicU64,
    writes: AtomicU64,
}

fn unavailable(err: rusqlite::Error) -> Error {
    Error::unavailable_because(format!("sqlite: {err}"), err)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its schema.
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] when the file cannot be opened or holds another schema
    /// version; [`Error::Timeout`] when another process holds it past the busy timeout.
    pub fn open(path: &Path, clock: SharedClock, options: SqliteOptions) -> Result<Self> {
        crate::validate::namespace(&options.namespace)?;
        let conn = connect(path, &options)?;
        let store = Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            opened_in: OpenedIn::this_process(),
            clock,
            options,
            expired_swept: AtomicU64::new(0),
            writes: AtomicU64::new(1),
        };
        until_not_busy(store.options.busy_timeout, || store.create_schema())?;
        Ok(store)
    }

    /// Creates the tables if they are missing, and checks the file's schema version.
    fn create_schema(&self) -> Result<()> {
        let path = &self.path;
        self.write(|tx, _| {
            tx.execute_batch(SCHEMA)?;
            let found: Option<i64> =
                opt(tx, "SELECT value FROM racefree_meta WHERE name = 'schema_version'", [], |r| r.get(0))?;
            match found {
                None => {
                    exec(tx, "INSERT INTO racefree_meta VALUES ('schema_version', ?1)", [SCHEMA_VERSION])?;
                    Ok(Ok(()))
                }
                Some(SCHEMA_VERSION) => Ok(Ok(())),
                Some(1) => {
                    exec(
                        tx,
                        "UPDATE racefree_meta SET value = ?1 WHERE name = 'schema_version'",
                        [SCHEMA_VERSION],
                    )?;
                    Ok(Ok(()))
                }
                Some(other) => Ok(Err(Error::unavailable(format!(
                    "sqlite: schema version {other} in {path:?}; this build reads {SCHEMA_VERSION}"
                )))),
            }
        })
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction; commits only when it returns `Ok(Ok(_))`
    /// and rolls back otherwise, so a refused call records nothing. `BEGIN`, `COMMIT` and
    /// `ROLLBACK` are cached statements: nothing is parsed while the file's write lock is held.
    fn write<T>(&self, body: impl FnOnce(&Connection, u64) -> rusqlite::Result<Result<T>>) -> Result<T> {
        let conn = self.connection()?;
        let fail = |e: rusqlite::Error| classify(e, self.options.busy_timeout);
        exec(&conn, "BEGIN IMMEDIATE", []).map_err(fail)?;
        // Read once the write lock is held: a call that waited for another process judges
        // deadlines, and sets new ones, at the moment it takes effect.
        let now = self.clock.now_ms();
        let outcome = body(&conn, now).and_then(|result| {
            let Ok(value) = result else { return Ok(result) };
            let swept = if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
                sweep_some(&conn, &self.options.namespace, now, AMORTIZED_SWEEP)?
            } else {
                0
            };
            exec(&conn, "COMMIT", [])?;
            self.expired_swept.fetch_add(swept, Ordering::Relaxed);
            Ok(Ok(value))
        });
        match outcome {
            Ok(Ok(value)) => Ok(value),
            refused_or_failed => {
                // Still inside the transaction (a refusal, or a failed statement or commit).
                if !conn.is_autocommit() {
                    let _ = exec(&conn, "ROLLBACK", []);
                }
                refused_or_failed.map_err(fail)?
            }
        }
    }

    /// Runs one read-only statement (atomic on its own).
    fn read<T>(&self, body: impl FnOnce(&Connection, u64) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.connection()?;
        let now = self.clock.now_ms();
        body(&conn, now).map_err(|e| classify(e, self.options.busy_timeout))
    }

    /// This process's connection. In a child after `fork()` the inherited one is leaked, never
    /// used or closed (SQLite forbids both: closing it could checkpoint or delete the WAL under
    /// the parent), and the file is opened again.
    fn connection(&self) -> Result<MutexGuard<'_, Connection>> {
        let mut conn = self.conn.lock();
        if self.opened_in.moved() {
            let inherited = std::mem::replace(&mut *conn, connect(&self.path, &self.options)?);
            std::mem::forget(inherited);
            self.opened_in.settled();
        }
        Ok(conn)
    }

    fn ns(&self) -> &str {
        &self.options.namespace
    }
}

/// A connection to the file at `path`, set up as every connection of the store is (waiting out a
/// busy file: see [`until_not_busy`]).
fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    until_not_busy(options.busy_timeout, || connect_once(path, options))
}

fn connect_once(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(options.busy_timeout).map_err(unavailable)?;
    let synchronous = if options.synchronous_full { "FULL" } else { "NORMAL" };
    // A new file gets 1 KiB pages: every operation rewrites one small row, and each commit
    // appends whole pages to the WAL, so 4 KiB pages copied and checksummed 4x the bytes
    // (measured: 27 -> 17 us per `next`). Only takes effect before the file's first write.
    conn.execute_batch(&format!(
        "PRAGMA page_size={PAGE_SIZE}; PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};"
    ))
    .map_err(|e| classify(e, options.busy_timeout))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// `attempt()`, tried again while it meets a busy file, until `busy_timeout` has passed. Opening
/// can meet `SQLITE_BUSY` at once rather than after the busy timeout: when several connections
/// open a fresh file together, one turns it to WAL while the others read it, and SQLite refuses
/// to wait where waiting could deadlock. (Measured: 1 of 8 threads opening a fresh file together
/// failed so, in 1 of about 7 rounds.)
fn until_not_busy<T>(busy_timeout: Duration, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    let mut delays = Backoff::for_acquire();
    loop {
        match attempt() {
            Err(Error::Timeout { .. }) => {
                let waited = started.elapsed();
                if waited >= busy_timeout {
                    return Err(Error::Timeout { waited });
                }
                std::thread::sleep(delays.delay().min(busy_timeout - waited));
            }
            other => return other,
        }
    }
}

/// SQLite errors as racefree errors: a lock held past the busy timeout is `timeout`; a stored
/// value that does not fit its column's meaning (a negative index, text where a number belongs:
/// unsigned columns are read as `u64` and `u32`, which rusqlite range-checks) is `corrupt_data`;
/// anything else (I/O, a corrupt or unreadable file) is `backend_unavailable`.
fn classify(err: rusqlite::Error, busy_timeout: Duration) -> Error {
    use rusqlite::Error::{FromSqlConversionFailure, IntegralValueOutOfRange, InvalidColumnType};
    match err {
        IntegralValueOutOfRange(..) | FromSqlConversionFailure(..) | InvalidColumnType(..) => {
            Error::corrupt(format!("sqlite: a stored value does not fit: {err}"))
        }
        _ if matches!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) => {
            Error::Timeout { waited: busy_timeout }
        }
        _ => unavailable(err),
    }
}

fn sweep_some(tx: &Connection, ns: &str, now: u64, limit: i64) -> rusqlite::Result<u64> {
    let now = to_sql(now);
    let leases = exec(
        tx,
        "DELETE FROM leases WHERE (ns, lock, key) IN
            (SELECT ns, lock, key FROM leases WHERE ns = ?1 AND deadline <= ?2 LIMIT ?3)",
        params![ns, now, limit],
    )?;
    let marks = exec(
        tx,
        "DELETE FROM marks WHERE (ns, guard, stream) IN
            (SELECT ns, guard, stream FROM marks WHERE ns = ?1 AND expires_at <= ?2 LIMIT ?3)",
        params![ns, now, limit],
    )?;
    Ok((leases + marks) as u64)
}

/// Runs a cached statement (prepared once per connection).
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// The one row of a cached query.
fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}

/// The row of a cached query, if there is one.
fn opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    one(conn, sql, params, row).optional()
}

/// A record's JSON text, or `corrupt_data`.
fn record_json(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| Error::corrupt(format!("sqlite: record {key:?} holds invalid JSON: {e}")))
}

/// A token or version as SQLite's signed 64-bit integer; a larger one is refused, never clamped.
fn sql_integer(what: &str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        Error::invalid_argument(format!("a SQLite store holds a {what} of at most {}, got {value}", i64::MAX))
    })
}

/// SQLite integers are signed 64-bit: times past `i64::MAX` saturate there.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn next_index(tx: &Connection, ns: &str, counter: &str) -> rusqlite::Result<Result<u64>> {
    // A read and a write in the caller's transaction, which holds the write lock: nothing can
    // come between them. Two plain statements cost less than one upsert with RETURNING, which
    // SQLite runs through a temporary table (measured: a `next` took 16.8 us, now 15.4 us).
    let next: Option<u64> =
        opt(tx, "SELECT next FROM counters WHERE ns = ?1 AND counter = ?2", params![ns, counter], |r| {
            r.get(0)
        })?;
    match next.map(|index| (index, i64::try_from(index).ok().and_then(|i| i.checked_add(1)))) {
        None => {
            exec(tx, "INSERT INTO counters (ns, counter, next) VALUES (?1, ?2, 1)", params![ns, counter])?;
            Ok(Ok(0))
        }
        Some((_, None)) => Ok(Err(counter_overflow(counter))),
        Some((index, Some(after))) => {
            exec(
                tx,
                "UPDATE counters SET next = ?3 WHERE ns = ?1 AND counter = ?2",
                params![ns, counter, after],
            )?;
            Ok(Ok(index))
        }
    }
}

impl Store for SqliteStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        self.ns()
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        self.write(|tx, _| next_index(tx, self.ns(), counter))
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        self.write(|tx, _| {
            let ns = self.ns();
            let found: Option<u64> = opt(
                tx,
                "SELECT idx FROM claims WHERE ns = ?1 AND counter = ?2 AND id = ?3",
                params![ns, counter, id],
                |r| r.get(0),
            )?;
            if let Some(index) = found {
                return Ok(Ok(Claim { index, is_new: false }));
            }
            let index = match next_index(tx, ns, counter)? {
                Ok(index) => index,
                Err(refused) => return Ok(Err(refused)),
            };
            exec(tx, "INSERT INTO claims VALUES (?1, ?2, ?3, ?4)", params![ns, counter, id, to_sql(index)])?;
            Ok(Ok(Claim { index, is_new: true }))
        })
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        self.read(|conn, _| {
            opt(
                conn,
                "SELECT idx FROM claims WHERE ns = ?1 AND counter = ?2 AND id = ?3",
                params![self.ns(), counter, id],
                |r| r.get::<_, u64>(0),
            )
        })
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        self.read(|conn, _| {
            opt(
                conn,
                "SELECT next FROM counters WHERE ns = ?1 AND counter = ?2",
                params![self.ns(), counter],
                |r| r.get::<_, u64>(0),
            )
            .map(|found| found.unwrap_or(0))
        })
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        let next = counter_value_i64("SQLite", next)?;
        self.write(|tx, _| {
            exec(
                tx,
                "INSERT INTO counters (ns, counter, next) VALUES (?1, ?2, ?3)
                 ON CONFLICT (ns, counter) DO UPDATE SET next = excluded.next",
                params![self.ns(), counter, next],
            )?;
            Ok(Ok(()))
        })
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.write(|tx, _| {
            exec(tx, "DELETE FROM counters WHERE ns = ?1 AND counter = ?2", params![self.ns(), counter])?;
            exec(tx, "DELETE FROM claims WHERE ns = ?1 AND counter = ?2", params![self.ns(), counter])?;
            Ok(Ok(()))
        })
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        self.write(|tx, now| {
            let ns = self.ns();
            let live: Option<u32> = opt(tx,
                    "SELECT marked FROM marks WHERE ns = ?1 AND guard = ?2 AND stream = ?3 AND expires_at > ?4",
                    params![ns, guard, stream, to_sql(now)],
                    |r| r.get(0),
                )?;
            let marked = live.unwrap_or(0);
            let outcome = decide_mark(marked, position);
            if outcome != MarkOutcome::First {
                return Ok(Ok(outcome));
            }
            exec(tx,
                "INSERT INTO marks VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (ns, guard, stream) DO UPDATE SET marked = excluded.marked, expires_at = excluded.expires_at",
                params![ns, guard, stream, marked + 1, to_sql(now.saturating_add(retention_ms))],
            )?;
            Ok(Ok(MarkOutcome::First))
        })
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        self.read(|conn, now| {
            opt(
                conn,
                "SELECT marked FROM marks WHERE ns = ?1 AND guard = ?2 AND stream = ?3 AND expires_at > ?4",
                params![self.ns(), guard, stream, to_sql(now)],
                |r| r.get::<_, u32>(0),
            )
            .map(|found| found.unwrap_or(0))
        })
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        self.write(|tx, now| {
            let removed: Option<i64> = opt(
                tx,
                "DELETE FROM marks WHERE ns = ?1 AND guard = ?2 AND stream = ?3 RETURNING expires_at",
                params![self.ns(), guard, stream],
                |r| r.get(0),
            )?;
            Ok(Ok(removed.is_some_and(|expires_at| expires_at > to_sql(now))))
        })
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        self.write(|tx, now| {
            let ns = self.ns();
            let held: Option<i64> = opt(tx,
                    "SELECT deadline FROM leases WHERE ns = ?1 AND lock = ?2 AND key = ?3 AND deadline > ?4",
                    params![ns, lock, key, to_sql(now)],
                    |r| r.get(0),
                )?;
            if held.is_some() {
                return Ok(Ok(None));
            }
            // One token counter per lock, never deleted: tokens grow across keys, expiry and restarts.
            // Read, then write: see `next_index`.
            let last: Option<u64> =
                opt(tx, "SELECT last FROM lock_tokens WHERE ns = ?1 AND lock = ?2", params![ns, lock], |r| r.get(0))?;
            // Tokens only grow: at the largest integer the lock refuses rather than repeat one.
            let next = last.map_or(Some(1), |last| i64::try_from(last).ok().and_then(|l| l.checked_add(1)));
            let Some(token) = next else {
                return Ok(Err(Error::invalid_argument(format!(
                    "lock {lock:?} has issued its largest fencing token"
                ))));
            };
            exec(tx,
                "INSERT INTO lock_tokens VALUES (?1, ?2, ?3) ON CONFLICT (ns, lock) DO UPDATE SET last = excluded.last",
                params![ns, lock, token],
            )?;
            let deadline = now.saturating_add(ttl_ms);
            exec(tx,
                "INSERT INTO leases VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (ns, lock, key) DO UPDATE SET token = excluded.token, deadline = excluded.deadline",
                params![ns, lock, key, token, to_sql(deadline)],
            )?;
            Ok(Ok(Some(LeaseGrant { token: token.unsigned_abs(), deadline_ms: deadline })))
        })
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        self.write(|tx, now| {
            let deadline = now.saturating_add(ttl_ms);
            let changed = exec(
                tx,
                "UPDATE leases SET deadline = ?5
                 WHERE ns = ?1 AND lock = ?2 AND key = ?3 AND token = ?4 AND deadline > ?6",
                params![self.ns(), lock, key, to_sql(token), to_sql(deadline), to_sql(now)],
            )?;
            Ok(if changed == 1 { Ok(deadline) } else { Err(Error::NotOwner { key: key.to_owned(), token }) })
        })
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        self.write(|tx, now| {
            let changed = exec(tx,
                "DELETE FROM leases WHERE ns = ?1 AND lock = ?2 AND key = ?3 AND token = ?4 AND deadline > ?5",
                params![self.ns(), lock, key, to_sql(token), to_sql(now)],
            )?;
            Ok(if changed == 1 { Ok(()) } else { Err(Error::NotOwner { key: key.to_owned(), token }) })
        })
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        self.read(|conn, now| {
            opt(conn,
                "SELECT token, deadline FROM leases WHERE ns = ?1 AND lock = ?2 AND key = ?3 AND deadline > ?4",
                params![self.ns(), lock, key, to_sql(now)],
                |r| Ok(LeaseGrant { token: r.get(0)?, deadline_ms: r.get(1)? }),
            )
        })
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        let found = self.read(|conn, _| {
            opt(
                conn,
                "SELECT value, version FROM records WHERE ns = ?1 AND space = ?2 AND key = ?3",
                params![self.ns(), space, key],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)),
            )
        })?;
        found.map(|(text, version)| Ok(Versioned { value: record_json(key, &text)?, version })).transpose()
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        if let Some(token) = fencing_token {
            sql_integer("fencing token", token)?;
        }
        let text = value.to_string();
        self.write(|tx, _| {
            let ns = self.ns();
            let live: Option<(u64, u64)> = opt(
                tx,
                "SELECT version, fence FROM records WHERE ns = ?1 AND space = ?2 AND key = ?3",
                params![ns, space, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let slot = match live {
                Some((version, fence)) => RecordSlot::Live { version, fence },
                None => RecordSlot::Absent {
                    floor: opt(
                        tx,
                        "SELECT deleted FROM record_floors WHERE ns = ?1 AND space = ?2",
                        params![ns, space],
                        |r| r.get(0),
                    )?
                    .unwrap_or(0),
                    // Taken over by the write (a refusal rolls back, and the tombstone stays).
                    fence: opt(
                        tx,
                        "DELETE FROM record_tombstones WHERE ns = ?1 AND space = ?2 AND key = ?3 RETURNING fence",
                        params![ns, space, key],
                        |r| r.get(0),
                    )?
                    .unwrap_or(0),
                },
            };
            let written = decide_record_write(key, slot, expected_version, fencing_token)
                .and_then(|(version, fence)| Ok((sql_integer("record version", version)?, sql_integer("fence", fence)?)));
            let (version, fence) = match written {
                Ok(next) => next,
                Err(refused) => return Ok(Err(refused)),
            };
            exec(
                tx,
                "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (ns, space, key) DO UPDATE
                 SET value = excluded.value, version = excluded.version, fence = excluded.fence",
                params![ns, space, key, text, version, fence],
            )?;
            Ok(Ok(version.unsigned_abs()))
        })
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        self.write(|tx, _| {
            let ns = self.ns();
            let live: Option<(u64, u64)> = opt(
                tx,
                "SELECT version, fence FROM records WHERE ns = ?1 AND space = ?2 AND key = ?3",
                params![ns, space, key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            match decide_record_delete(key, live.map(|(version, _)| version), expected_version) {
                Ok(true) => {
                    let (version, fence) = live.unwrap_or_default();
                    exec(
                        tx,
                        "DELETE FROM records WHERE ns = ?1 AND space = ?2 AND key = ?3",
                        params![ns, space, key],
                    )?;
                    exec(
                        tx,
                        "INSERT INTO record_floors VALUES (?1, ?2, ?3)
                         ON CONFLICT (ns, space) DO UPDATE SET deleted = max(deleted, excluded.deleted)",
                        params![ns, space, version],
                    )?;
                    if fence > 0 {
                        exec(
                            tx,
                            "INSERT INTO record_tombstones VALUES (?1, ?2, ?3, ?4)",
                            params![ns, space, key, fence],
                        )?;
                    }
                    Ok(Ok(true))
                }
                other => Ok(other),
            }
        })
    }

    fn sweep(&self) -> Result<u64> {
        let removed = self.write(|tx, now| sweep_some(tx, self.ns(), now, i64::MAX).map(Ok))?;
        self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn inspect(&self) -> Result<Inventory> {
        let mut inventory = Inventory::default();
        let conn = self.connection()?;
        let now = to_sql(self.clock.now_ms());
        let ns = self.ns();
        let fail = |e: rusqlite::Error| classify(e, self.options.busy_timeout);
        // One read transaction: a consistent snapshot across the tables.
        conn.execute_batch("BEGIN").map_err(fail)?;
        let snapshot = (|| -> rusqlite::Result<()> {
            let mut counters = conn.prepare_cached(
                "SELECT counter, next, (SELECT count(*) FROM claims WHERE claims.ns = counters.ns AND claims.counter = counters.counter)
                 FROM counters WHERE ns = ?1",
            )?;
            for row in counters.query_map([ns], |r| {
                Ok(CounterEntry { counter: r.get(0)?, next: r.get(1)?, claims: r.get(2)? })
            })? {
                inventory.counters.push(row?);
            }
            let mut leases = conn.prepare_cached(
                "SELECT lock, key, token, deadline FROM leases WHERE ns = ?1 AND deadline > ?2",
            )?;
            for row in leases.query_map(params![ns, now], |r| {
                Ok(LeaseEntry { lock: r.get(0)?, key: r.get(1)?, token: r.get(2)?, deadline_ms: r.get(3)? })
            })? {
                inventory.leases.push(row?);
            }
            let mut marks = conn.prepare_cached(
                "SELECT guard, stream, marked, expires_at FROM marks WHERE ns = ?1 AND expires_at > ?2",
            )?;
            for row in marks.query_map(params![ns, now], |r| {
                Ok(StreamEntry {
                    guard: r.get(0)?,
                    stream: r.get(1)?,
                    marked: r.get(2)?,
                    expires_at_ms: r.get(3)?,
                })
            })? {
                inventory.streams.push(row?);
            }
            let mut records = conn.prepare_cached("SELECT space, key, version FROM records WHERE ns = ?1")?;
            for row in records.query_map([ns], |r| {
                Ok(RecordEntry { space: r.get(0)?, key: r.get(1)?, version: r.get(2)? })
            })? {
                inventory.records.push(row?);
            }
            Ok(())
        })();
        conn.execute_batch("COMMIT").map_err(fail)?;
        snapshot.map_err(fail)?;
        inventory.sort();
        Ok(inventory)
    }

    fn stats(&self) -> Result<StoreStats> {
        let entries = self.read(|conn, _| {
            one(conn,
                "SELECT (SELECT count(*) FROM counters WHERE ns = ?1) + (SELECT count(*) FROM claims WHERE ns = ?1)
                      + (SELECT count(*) FROM marks WHERE ns = ?1) + (SELECT count(*) FROM leases WHERE ns = ?1)
                      + (SELECT count(*) FROM records WHERE ns = ?1)
                      + (SELECT count(*) FROM record_tombstones WHERE ns = ?1)",
                params![self.ns()],
                |r| r.get::<_, u64>(0),
            )
        })?;
        Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
    }
}
