//! The blocking PostgreSQL store: the planned calls carried by the engine's own runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use tokio_postgres::types::Type;

use super::calls::Planner;
use super::engine::{find_version, Connection, Engine, Failure, Target};
use super::options::check_options;
use super::tls::tls_config;
use super::{schema, schema_verdict, PostgresOptions, PostgresTls};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::fork::OpenedIn;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, Store, StoreStats, Versioned};

/// The PostgreSQL store. Cheap to share between threads: each call borrows one pooled
/// connection, so N threads make up to `pool_size` concurrent calls.
pub struct PostgresStore {
    /// Shared with each call's future (which must own what it uses): cloned as an `Arc`, not
    /// the client configuration itself, on every call.
    pub(super) target: Arc<Target>,
    pub(super) engine: RwLock<Arc<Engine>>,
    /// A child after `fork()` leaves the inherited runtime and connections alone and makes its
    /// own (see [`OpenedIn`]).
    pub(super) opened_in: OpenedIn,
    /// Every operation's statements and decoding, judged by the store's clock.
    pub(super) planner: Planner,
    pub(super) options: PostgresOptions,
    pub(super) expired_swept: AtomicU64,
    pub(super) writes: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.target.config.get_hosts())
            .field("dbname", &self.target.config.get_dbname())
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.planner.judge_by_clock)
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
        let target = target(url, &options)?;
        let store = Self {
            target: Arc::new(target),
            engine: RwLock::new(Arc::new(Engine::new(options.pool_size)?)),
            opened_in: OpenedIn::this_process(),
            planner: Planner::new(&options.namespace, clock),
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
        let found =
            self.on_runtime(&engine, async move { prepare_schema(&target, timeout, create).await })?;
        schema_verdict(found, create)
    }
}

/// The client's configuration and TLS for `url` and `options`.
pub(super) fn target(url: &str, options: &PostgresOptions) -> Result<Target> {
    check_options(options)?;
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
    Ok(Target { config, tls })
}

/// Checks the schema version under the schema lock, and (when `create` allows) creates the
/// schema when none exists or upgrades version 1. Returns the version it found.
pub(super) async fn prepare_schema(
    target: &Target,
    timeout: std::time::Duration,
    create: bool,
) -> std::result::Result<Option<i64>, Failure> {
    let Connection { client, .. } = target.connect(timeout, false).await?;
    let body = async {
        client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED").await?;
        client.query_typed(schema::LOCK_SCHEMA, &[(&schema::SCHEMA_LOCK, Type::INT8)]).await?;
        let found = find_version(&client).await?;
        match found {
            None if create => {
                client.batch_execute(schema::CREATE).await?;
                client.batch_execute(schema::VERSION_2).await?;
            }
            Some(1) if create => client.batch_execute(schema::MIGRATE_FROM_1).await?,
            _ => {}
        }
        client.batch_execute("COMMIT").await?;
        Ok::<_, tokio_postgres::Error>(found)
    };
    body.await.map_err(Failure::Postgres)
}

impl Store for PostgresStore {
    fn clock(&self) -> &SharedClock {
        self.planner.clock()
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        self.execute(self.planner.counter_next(counter))
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        self.execute(self.planner.counter_claim(counter, id))
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        self.execute(self.planner.counter_index_of(counter, id))
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        self.execute(self.planner.counter_peek(counter))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        self.execute(self.planner.counter_set(counter, next))
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.execute(self.planner.counter_reset(counter))
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        // A request id per call: the same request sent again gets the same answer.
        self.execute(self.planner.guard_mark(
            guard,
            stream,
            position,
            retention_ms,
            &crate::store::request_id()?,
        ))
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        self.execute(self.planner.guard_marked(guard, stream))
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        self.execute(self.planner.guard_forget(guard, stream))
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        self.execute(self.planner.lease_try_grant(lock, key, ttl_ms, &crate::store::request_id()?))
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        self.execute(self.planner.lease_renew(lock, key, token, ttl_ms))
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        self.execute(self.planner.lease_release(lock, key, token))
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        self.execute(self.planner.lease_holder(lock, key))
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        self.execute(self.planner.record_get(space, key))
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        self.execute(self.planner.record_put(space, key, value, expected_version, fencing_token))
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        self.execute(self.planner.record_delete(space, key, expected_version))
    }

    fn sweep(&self) -> Result<u64> {
        let removed = self.execute(self.planner.sweep_up_to(i64::MAX))?;
        self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn stats(&self) -> Result<StoreStats> {
        let entries = self.execute(self.planner.entries())?;
        Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
    }

    fn inspect(&self) -> Result<Inventory> {
        self.execute(self.planner.inspect())
    }
}
