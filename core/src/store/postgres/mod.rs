//! The PostgreSQL store: every operation is one statement, or one call of one server-side
//! function, in one READ COMMITTED transaction (see [`schema`] for the statements and why).
//!
//! **Connections.** The store runs the async client (`tokio-postgres`) on a runtime of its own,
//! one worker thread, and each call waits for its result on a plain channel: so the store is
//! callable from any thread, a tokio worker included (the sync `postgres` crate would start a
//! runtime of its own there and panic). Up to `pool_size` connections are opened as needed and
//! kept; a call that finds none free waits for one, within the timeout.
//!
//! **PgBouncer.** By default statements are unnamed (`query_typed`, parsed and planned on every
//! call), each call's `BEGIN ISOLATION LEVEL READ COMMITTED … COMMIT` is sent in one round trip,
//! and nothing is kept in the session (no `SET`, no session advisory locks): transaction pooling
//! is safe. `prepare_statements` prepares each statement once per connection instead (faster,
//! for a direct connection or a pooler that tracks prepared statements): behind a transaction
//! pooler that does not, a name prepared on one server connection is missing on another, or
//! names another client's statement there.
//!
//! **Time.** Handed the wall clock ([`SystemClock`](crate::SystemClock)), deadlines are judged
//! by the server's own clock (`clock_timestamp()`, read after the row lock is held), so client
//! clocks don't matter; handed any other clock (a [`ManualClock`](crate::ManualClock) in tests),
//! by that clock.

mod engine;
mod options;
mod protocol;
pub mod schema;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use self::engine::{find_version, Connection, Engine, Failure, Target};
pub(crate) use self::options::check_options;
pub use self::options::{PostgresOptions, PostgresTls};
use self::protocol::{bytes, int8, missing_row, opt_int8, text, unsigned, Isolation, Param, Statement};
use self::tls::tls_config;
use super::fork::OpenedIn;
use super::{
    counter_overflow, counter_value_i64, current_version, Claim, CounterEntry, Inventory, LeaseEntry,
    LeaseGrant, MarkOutcome, RecordEntry, Store, StoreStats, StreamEntry, Versioned,
};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

pub use schema::SCHEMA_VERSION;

/// The PostgreSQL store. Cheap to share between threads: each call borrows one pooled
/// connection, so N threads make up to `pool_size` concurrent calls.
pub struct PostgresStore {
    /// Shared with each call's future (which must own what it uses): cloned as an `Arc`, not
    /// the client configuration itself, on every call.
    target: Arc<Target>,
    engine: RwLock<Arc<Engine>>,
    /// A child after `fork()` leaves the inherited runtime and connections alone and makes its
    /// own (see [`OpenedIn`]).
    opened_in: OpenedIn,
    clock: SharedClock,
    /// Deadlines are judged by `clock` (passed to each statement) instead of the server's.
    judge_by_clock: bool,
    options: PostgresOptions,
    expired_swept: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.target.config.get_hosts())
            .field("dbname", &self.target.config.get_dbname())
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.judge_by_clock)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens a store on the server at `url` (`postgres://` or `postgresql://`, a key=value
    /// connection string also works), creating racefree's schema when it is missing and
    /// `options.create_schema` allows.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL the client cannot read or an unreadable CA file;
    /// [`Error::BackendUnavailable`] when the server cannot be reached, racefree's schema is
    /// missing (and may not be created) or is of another version; [`Error::Timeout`].
    pub fn open(url: &str, clock: SharedClock, options: PostgresOptions) -> Result<Self> {
        check_options(&options)?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| Error::invalid_argument(format!("bad postgres URL {url:?}: {e}")))?;
        config.connect_timeout(options.timeout);
        if config.get_application_name().is_none() {
            config.application_name("racefree");
        }
        let tls = match &options.tls {
            PostgresTls::Disable => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            PostgresTls::VerifyFull { root_cert } => {
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(root_cert.as_deref())?))
            }
        };
        let store = Self {
            target: Arc::new(Target { config, tls }),
            engine: RwLock::new(Arc::new(Engine::new(options.pool_size)?)),
            opened_in: OpenedIn::this_process(),
            judge_by_clock: !clock.is_wall_clock(),
            clock,
            options,
            expired_swept: AtomicU64::new(0),
            writes: AtomicU64::new(1),
        };
        store.prepare_schema(store.options.create_schema)?;
        Ok(store)
    }

    /// Creates racefree's tables and functions in the database at `url` if they are missing
    /// (what `racefree migrate` runs), and returns the schema version now in place.
    ///
    /// # Errors
    /// As [`PostgresStore::open`]; a database with a newer schema than this build is refused.
    pub fn migrate(url: &str, options: PostgresOptions) -> Result<i64> {
        let store = Self::open(url, Arc::new(crate::clock::SystemClock), options.with_create_schema(true))?;
        store.schema_version()?.ok_or_else(|| {
            Error::unavailable("postgres: racefree's schema is still missing after the migration")
        })
    }

    /// The racefree schema version in the database, or `None` when it has none.
    ///
    /// # Errors
    /// Backend failures only.
    pub fn schema_version(&self) -> Result<Option<i64>> {
        let engine = self.engine()?;
        let (target, timeout) = (Arc::clone(&self.target), self.options.timeout);
        self.on_runtime(&engine, async move {
            let connection = target.connect(timeout, false).await?;
            find_version(&connection.client).await.map_err(Failure::Postgres)
        })
    }

    /// Checks the schema version under the schema lock, and (when `create` allows) creates the
    /// schema when none exists or upgrades version 1. A newer version is refused before anything
    /// is written.
    fn prepare_schema(&self, create: bool) -> Result<()> {
        let engine = self.engine()?;
        let (target, timeout) = (Arc::clone(&self.target), self.options.timeout);
        let found = self.on_runtime(&engine, async move {
            let Connection { client, .. } = target.connect(timeout, false).await?;
            let body = async {
                client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
                client
                    .query_typed("SELECT pg_advisory_xact_lock($1)", &[(&schema::SCHEMA_LOCK, Type::INT8)])
                    .await?;
                let found = find_version(&client).await?;
                match found {
                    None if create => {
                        client.batch_execute(schema::CREATE).await?;
                        client.batch_execute(schema::RECORDS).await?;
                    }
                    Some(1) if create => client.batch_execute(schema::MIGRATE_FROM_1).await?,
                    _ => {}
                }
                client.batch_execute("COMMIT").await?;
                Ok::<_, tokio_postgres::Error>(found)
            };
            body.await.map_err(Failure::Postgres)
        })?;
        match found {
            Some(SCHEMA_VERSION) => Ok(()),
            None | Some(1) if create => Ok(()),
            None => Err(Error::unavailable(
                "postgres: racefree's tables are missing in this database; create them with \
                 `racefree migrate <url>` (or open without create_schema=false)",
            )),
            Some(1) => Err(Error::unavailable(format!(
                "postgres: the database holds racefree schema version 1; this build reads \
                 {SCHEMA_VERSION}: upgrade it with `racefree migrate <url>` (or open without \
                 create_schema=false; nothing was written)"
            ))),
            Some(other) => Err(Error::unavailable(format!(
                "postgres: the database holds racefree schema version {other}; this build reads \
                 {SCHEMA_VERSION} (upgrade racefree; nothing was written)"
            ))),
        }
    }
}

impl Store for PostgresStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        let rows = self.write(schema::NEXT, vec![self.ns(), bytes(counter)])?;
        match rows.first() {
            Some(row) => unsigned("counter index", row.get(0)),
            None => Err(counter_overflow(counter)),
        }
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        let rows = self.write(schema::CLAIM, vec![self.ns(), bytes(counter), bytes(id)])?;
        let row = rows.first().ok_or_else(|| missing_row("racefree_claim"))?;
        let (index, is_new): (i64, bool) = (row.get(0), row.get(1));
        if index == -1 {
            return Err(counter_overflow(counter));
        }
        Ok(Claim { index: unsigned("claimed index", index)?, is_new })
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        let rows = self.one(schema::INDEX_OF, vec![self.ns(), bytes(counter), bytes(id)])?;
        rows.first().map(|row| unsigned("claimed index", row.get(0))).transpose()
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        let rows = self.one(schema::PEEK, vec![self.ns(), bytes(counter)])?;
        rows.first().map_or(Ok(0), |row| unsigned("counter index", row.get(0)))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        let next = counter_value_i64("PostgreSQL", next)?;
        self.write(schema::SET, vec![self.ns(), bytes(counter), Param::Int8(Some(next))])?;
        Ok(())
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.write(schema::RESET, vec![self.ns(), bytes(counter)])?;
        Ok(())
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        let position = i32::try_from(position).map_err(|_| {
            Error::invalid_argument(format!("event position {position} is past PostgreSQL's integers"))
        })?;
        let (now, _) = self.now();
        let rows = self.write(
            schema::MARK,
            vec![self.ns(), bytes(guard), bytes(stream), Param::Int4(position), int8(retention_ms), now],
        )?;
        let row = rows.first().ok_or_else(|| missing_row("racefree_mark"))?;
        let (outcome, marked): (i32, i32) = (row.get(0), row.get(1));
        let marked = unsigned("marked count", marked.into())?;
        Ok(match outcome {
            0 => MarkOutcome::First,
            1 => MarkOutcome::Duplicate,
            _ => MarkOutcome::OutOfOrder { marked },
        })
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        let rows = self.one(schema::MARKED, vec![self.ns(), bytes(guard), bytes(stream), self.now().0])?;
        rows.first().map_or(Ok(0), |row| unsigned("marked count", row.get::<_, i32>(0).into()))
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        let rows = self.write(schema::FORGET, vec![self.ns(), bytes(guard), bytes(stream), self.now().0])?;
        Ok(rows.first().is_some_and(|row| row.get::<_, bool>(0)))
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        // Read before the request: the deadline this handle reports is never later than the server's.
        let (now, local) = self.now();
        let rows = self.write(schema::GRANT, vec![self.ns(), bytes(lock), bytes(key), int8(ttl_ms), now])?;
        let row = rows.first().ok_or_else(|| missing_row("racefree_grant"))?;
        let (token, left): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
        match token {
            None => Ok(None),
            Some(token) if token < 0 => {
                Err(Error::invalid_argument(format!("lock {lock:?} has issued its largest fencing token")))
            }
            Some(token) => Ok(Some(LeaseGrant {
                token: unsigned("token", token)?,
                deadline_ms: local.saturating_add(unsigned("ttl", left.unwrap_or(0))?),
            })),
        }
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        let (now, local) = self.now();
        let rows = self
            .write(schema::RENEW, vec![self.ns(), bytes(lock), bytes(key), int8(token), now, int8(ttl_ms)])?;
        if rows.is_empty() {
            return Err(Error::NotOwner { key: key.to_owned(), token });
        }
        Ok(local.saturating_add(ttl_ms))
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        let rows =
            self.write(schema::RELEASE, vec![self.ns(), bytes(lock), bytes(key), int8(token), self.now().0])?;
        if rows.is_empty() {
            return Err(Error::NotOwner { key: key.to_owned(), token });
        }
        Ok(())
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        let (now, local) = self.now();
        let rows = self.one(schema::HOLDER, vec![self.ns(), bytes(lock), bytes(key), now])?;
        rows.first()
            .map(|row| {
                Ok(LeaseGrant {
                    token: unsigned("token", row.get(0))?,
                    deadline_ms: local.saturating_add(unsigned("lease time left", row.get(1))?),
                })
            })
            .transpose()
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        let rows = self.one(schema::GET, vec![self.ns(), bytes(space), bytes(key)])?;
        rows.first()
            .map(|row| {
                let value = serde_json::from_str(row.get::<_, &str>(0)).map_err(|e| {
                    Error::corrupt(format!("postgres: record {key:?} holds invalid JSON: {e}"))
                })?;
                Ok(Versioned { value, version: unsigned("record version", row.get(1))? })
            })
            .transpose()
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        if fencing_token.is_some_and(|token| i64::try_from(token).is_err()) {
            return Err(Error::invalid_argument(format!(
                "a PostgreSQL store holds fencing tokens up to {}, got {}",
                i64::MAX,
                fencing_token.unwrap_or_default()
            )));
        }
        let params = vec![
            self.ns(),
            bytes(space),
            bytes(key),
            Param::Text(value.to_string()),
            opt_int8(expected_version),
            opt_int8(fencing_token),
        ];
        let rows = self.write(schema::PUT, params)?;
        let row = rows.first().ok_or_else(|| missing_row("racefree_put"))?;
        let (outcome, n): (i32, i64) = (row.get(0), row.get(1));
        match outcome {
            0 => unsigned("record version", n),
            1 => {
                Err(Error::Conflict { key: key.to_owned(), current_version: current_version("postgres", n)? })
            }
            _ => Err(Error::StaleToken {
                key: key.to_owned(),
                token: fencing_token.unwrap_or(0),
                latest: unsigned("fence", n)?,
            }),
        }
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        let rows = self
            .write(schema::DELETE, vec![self.ns(), bytes(space), bytes(key), opt_int8(expected_version)])?;
        let row = rows.first().ok_or_else(|| missing_row("racefree_delete"))?;
        let (outcome, n): (i32, i64) = (row.get(0), row.get(1));
        match outcome {
            0 => Ok(n == 1),
            _ => {
                Err(Error::Conflict { key: key.to_owned(), current_version: current_version("postgres", n)? })
            }
        }
    }

    fn sweep(&self) -> Result<u64> {
        let removed = self.sweep_up_to(i64::MAX)?;
        self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn stats(&self) -> Result<StoreStats> {
        let rows = self.one(schema::ENTRIES, vec![self.ns()])?;
        Ok(StoreStats {
            entries: rows.first().map_or(Ok(0), |row| unsigned("entry count", row.get(0)))?,
            expired_swept: self.expired_swept.load(Ordering::Relaxed),
        })
    }

    fn inspect(&self) -> Result<Inventory> {
        let ((now, local_now), ns) = (self.now(), self.ns());
        let statement = |sql, params| Statement { sql, params };
        let results = self.run(
            Isolation::Snapshot,
            vec![
                statement(schema::INSPECT_NOW, vec![now.clone()]),
                statement(schema::INSPECT_COUNTERS, vec![ns.clone()]),
                statement(schema::INSPECT_LEASES, vec![ns.clone(), now.clone()]),
                statement(schema::INSPECT_STREAMS, vec![ns.clone(), now]),
                statement(schema::INSPECT_RECORDS, vec![ns]),
            ],
        )?;
        let [server_now, counters, leases, streams, records] =
            <[Vec<Row>; 5]>::try_from(results).map_err(|_| missing_row("inspect"))?;
        let server_now: u64 =
            unsigned("time", server_now.first().ok_or_else(|| missing_row("inspect"))?.get(0))?;
        // Deadlines on the store's clock, as `lease_holder` reports them: the time left by the
        // server's clock, from the injected clock's now.
        let local = |deadline: i64| -> Result<u64> {
            Ok(local_now.saturating_add(unsigned::<u64>("deadline", deadline)?.saturating_sub(server_now)))
        };
        let mut inventory = Inventory {
            counters: counters
                .iter()
                .map(|r| {
                    Ok(CounterEntry {
                        counter: text(r, 0),
                        next: unsigned("counter index", r.get(1))?,
                        claims: unsigned("claim count", r.get(2))?,
                    })
                })
                .collect::<Result<_>>()?,
            leases: leases
                .iter()
                .map(|r| {
                    Ok(LeaseEntry {
                        lock: text(r, 0),
                        key: text(r, 1),
                        token: unsigned("token", r.get(2))?,
                        deadline_ms: local(r.get(3))?,
                    })
                })
                .collect::<Result<_>>()?,
            streams: streams
                .iter()
                .map(|r| {
                    Ok(StreamEntry {
                        guard: text(r, 0),
                        stream: text(r, 1),
                        marked: unsigned("marked count", r.get::<_, i32>(2).into())?,
                        expires_at_ms: local(r.get(3))?,
                    })
                })
                .collect::<Result<_>>()?,
            records: records
                .iter()
                .map(|r| {
                    Ok(RecordEntry {
                        space: text(r, 0),
                        key: text(r, 1),
                        version: unsigned("record version", r.get(2))?,
                    })
                })
                .collect::<Result<_>>()?,
        };
        inventory.sort();
        Ok(inventory)
    }
}
