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

pub mod schema;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement as Prepared};

use super::fork::OpenedIn;
use super::{
    counter_overflow, counter_value_i64, decoded, Claim, CounterEntry, Inventory, LeaseEntry, LeaseGrant,
    MarkOutcome, RecordEntry, Store, StoreStats, StreamEntry, Versioned,
};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

pub use schema::SCHEMA_VERSION;

/// How many times a transaction that PostgreSQL aborted for a serialization failure or a
/// deadlock is tried again (both roll back everything, so a retry cannot apply twice).
const RETRIES: u32 = 5;

/// Every this many writes of a store, up to this many expired leases and marks are removed
/// after the write commits, so expiry costs are spread over calls.
const SWEEP_EVERY: u64 = 64;
const AMORTIZED_SWEEP: i64 = 64;

/// How a [`PostgresStore`] secures its connections (`sslmode=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresTls {
    /// No TLS (`sslmode=disable`, the default): for loopback, Unix sockets and private networks.
    #[default]
    Disable,
    /// TLS with the server's certificate verified, host name included (`sslmode=verify-full`),
    /// against the system's trust store or the given CA certificate (`sslrootcert=`, PEM).
    VerifyFull {
        /// A PEM file of the CA certificates to trust instead of the system's.
        root_cert: Option<PathBuf>,
    },
}

/// Options of a [`PostgresStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Prefixes every key: stores with different namespaces share a database without sharing keys.
    pub namespace: String,
    /// How long connecting, or one call (waiting for a free connection included), may take
    /// before failing with `timeout`.
    pub timeout: Duration,
    /// The most connections the store keeps open at once.
    pub pool_size: usize,
    /// TLS.
    pub tls: PostgresTls,
    /// Create racefree's tables and functions when the database has none (the default); when
    /// `false`, `open` refuses such a database (run `racefree migrate <url>` first).
    pub create_schema: bool,
    /// Prepare each statement once per connection (named server-side statements) instead of
    /// sending it unnamed on every call. Off by default: only safe on a direct connection, or
    /// behind a pooler that tracks prepared statements (PgBouncer 1.21 and later with
    /// `max_prepared_statements` set), never behind an older transaction pooler.
    pub prepare_statements: bool,
}

impl PostgresOptions {
    /// These options with the given namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// These options with the given connect and call timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options with the given pool size.
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// These options creating (or refusing) a missing schema.
    #[must_use]
    pub fn with_create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// These options preparing statements once per connection, or not (see
    /// [`prepare_statements`](Self::prepare_statements)).
    #[must_use]
    pub fn with_prepare_statements(mut self, prepare: bool) -> Self {
        self.prepare_statements = prepare;
        self
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            timeout: Duration::from_secs(5),
            pool_size: 8,
            tls: PostgresTls::Disable,
            create_schema: true,
            prepare_statements: false,
        }
    }
}

/// A statement's parameter, owned so that the call can run on the store's runtime.
#[derive(Debug, Clone)]
enum Param {
    Bytes(Vec<u8>),
    Int8(Option<i64>),
    Int4(i32),
    Text(String),
}

impl Param {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Bytes(v) => (v, Type::BYTEA),
            Param::Int8(v) => (v, Type::INT8),
            Param::Int4(v) => (v, Type::INT4),
            Param::Text(v) => (v, Type::TEXT),
        }
    }
}

fn bytes(text: &str) -> Param {
    Param::Bytes(text.as_bytes().to_vec())
}

fn int8(value: u64) -> Param {
    Param::Int8(Some(i64::try_from(value).unwrap_or(i64::MAX)))
}

fn opt_int8(value: Option<u64>) -> Param {
    Param::Int8(value.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// One statement with its parameters.
#[derive(Debug, Clone)]
struct Statement {
    sql: &'static str,
    params: Vec<Param>,
}

/// The isolation of a call's transaction.
#[derive(Debug, Clone, Copy)]
enum Isolation {
    /// Every operation: each statement sees what committed before it (after its row locks).
    ReadCommitted,
    /// `inspect`: one snapshot across its statements.
    Snapshot,
}

impl Isolation {
    fn begin(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// How to reach the server: the client configuration and its TLS connector.
#[derive(Clone)]
struct Target {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// One connection, and whether its transactions default to READ COMMITTED: then a single
/// statement runs as its own transaction, without `BEGIN`/`COMMIT` around it (measured: a `next`
/// went from 4,700 to 7,300 per second from 4 processes).
struct Connection {
    client: Client,
    read_committed_by_default: bool,
    /// With `prepare_statements`: this connection's statements, prepared on first use.
    prepared: Option<HashMap<&'static str, Prepared>>,
}

/// The runtime and the connections of one process (a child after `fork()` makes its own).
struct Engine {
    runtime: Option<tokio::runtime::Runtime>,
    idle: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Engine {
    fn new(pool_size: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("racefree-postgres")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::unavailable_because("postgres: cannot start its runtime", e))?;
        Ok(Self {
            runtime: Some(runtime),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(pool_size)),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Never blocks, so a store may be dropped anywhere, a tokio worker thread included.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

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

/// The checks of `options` that need no server.
pub(super) fn check_options(options: &PostgresOptions) -> Result<()> {
    crate::validate::namespace(&options.namespace)?;
    if options.timeout.is_zero() {
        return Err(Error::invalid_argument("the postgres timeout must be positive"));
    }
    if options.pool_size == 0 {
        return Err(Error::invalid_argument("the postgres pool_size must be at least 1"));
    }
    Ok(())
}

/// A failed call as a racefree error: `backend_unavailable` with the server's own words, the
/// client's error kept as its source.
fn unavailable(err: tokio_postgres::Error) -> Error {
    let reason = match err.as_db_error() {
        Some(db) => format!("postgres: {} {}: {}", db.severity(), db.code().code(), db.message()),
        None => {
            let mut text = format!("postgres: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    };
    Error::unavailable_because(reason, err)
}

/// Whether PostgreSQL rolled the transaction back for a reason a retry can overcome.
fn retryable(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// A call's failure: the server's error, or a connection that could not be had.
enum Failure {
    Postgres(tokio_postgres::Error),
    Refused(Error),
}

impl Target {
    async fn connect(&self, timeout: Duration, prepare: bool) -> std::result::Result<Connection, Failure> {
        let connected = async {
            match &self.tls {
                None => {
                    let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(async move { drop(connection.await) });
                    Ok(client)
                }
                Some(tls) => {
                    let (client, connection) = self.config.connect(tls.clone()).await?;
                    tokio::spawn(async move { drop(connection.await) });
                    Ok(client)
                }
            }
        };
        let client = match tokio::time::timeout(timeout, connected).await {
            Ok(result) => result.map_err(Failure::Postgres)?,
            Err(_) => return Err(Failure::Refused(Error::Timeout { waited: timeout })),
        };
        // Read once per connection (a role or database may set its own default). Behind
        // PgBouncer every server connection of the pool is the same database and role.
        let isolation = client
            .query_typed_one("SELECT current_setting('default_transaction_isolation')", &[])
            .await
            .map_err(Failure::Postgres)?;
        let read_committed_by_default = isolation.get::<_, &str>(0) == "read committed";
        Ok(Connection { client, read_committed_by_default, prepared: prepare.then(HashMap::new) })
    }
}

/// Runs `statements` in one transaction on `connection`: `BEGIN`, the statements and `COMMIT`
/// are sent together (one round trip for one statement); on an error the server answers the
/// `COMMIT` with a rollback. One statement at READ COMMITTED on a connection that defaults to it
/// is sent alone: it is its own transaction.
async fn transaction(
    connection: &mut Connection,
    isolation: Isolation,
    statements: &[Statement],
) -> std::result::Result<Vec<Vec<Row>>, tokio_postgres::Error> {
    if let Some(prepared) = &mut connection.prepared {
        prepare(&connection.client, prepared, statements).await?;
    }
    let connection = &*connection;
    let client = &connection.client;
    if let ([only], Isolation::ReadCommitted, true) =
        (statements, isolation, connection.read_committed_by_default)
    {
        return Ok(vec![query(connection, only).await?]);
    }
    if let [only] = statements {
        let (begun, rows, committed) = tokio::join!(
            client.batch_execute(isolation.begin()),
            query(connection, only),
            client.batch_execute("COMMIT"),
        );
        begun?;
        let rows = rows?;
        committed?;
        return Ok(vec![rows]);
    }
    client.batch_execute(isolation.begin()).await?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        match query(connection, statement).await {
            Ok(rows) => results.push(rows),
            Err(err) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(err);
            }
        }
    }
    client.batch_execute("COMMIT").await?;
    Ok(results)
}

/// Prepares those of `statements` this connection has not prepared yet (once per connection).
async fn prepare(
    client: &Client,
    prepared: &mut HashMap<&'static str, Prepared>,
    statements: &[Statement],
) -> std::result::Result<(), tokio_postgres::Error> {
    for statement in statements {
        if !prepared.contains_key(statement.sql) {
            let types: Vec<Type> = statement.params.iter().map(|param| param.typed().1).collect();
            prepared.insert(statement.sql, client.prepare_typed(statement.sql, &types).await?);
        }
    }
    Ok(())
}

/// Runs one statement: by its prepared name when the connection prepares, unnamed otherwise.
async fn query(
    connection: &Connection,
    statement: &Statement,
) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
    let client = &connection.client;
    match connection.prepared.as_ref().and_then(|prepared| prepared.get(statement.sql)) {
        Some(prepared) => {
            let values: Vec<_> = statement.params.iter().map(|param| param.typed().0).collect();
            client.query(prepared, &values).await
        }
        None => {
            let params: Vec<_> = statement.params.iter().map(Param::typed).collect();
            client.query_typed(statement.sql, &params).await
        }
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

    /// This process's engine: a child after `fork()` leaves the inherited one alone (its
    /// runtime's threads did not survive the fork, and its sockets are the parent's) and starts
    /// its own.
    fn engine(&self) -> Result<Arc<Engine>> {
        if self.opened_in.moved() {
            let mut engine = self.engine.write();
            if self.opened_in.moved() {
                let inherited =
                    std::mem::replace(&mut *engine, Arc::new(Engine::new(self.options.pool_size)?));
                std::mem::forget(inherited);
                self.opened_in.settled();
            }
        }
        Ok(self.engine.read().clone())
    }

    /// Runs `work` on the engine's runtime and waits for it on this thread.
    fn on_runtime<T: Send + 'static>(
        &self,
        engine: &Engine,
        work: impl std::future::Future<Output = std::result::Result<T, Failure>> + Send + 'static,
    ) -> Result<T> {
        let (reply, result) = std::sync::mpsc::sync_channel(1);
        let runtime = engine.runtime.as_ref().expect("running until dropped");
        runtime.spawn(async move {
            let _ = reply.send(work.await);
        });
        match result.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::Postgres(err))) => Err(unavailable(err)),
            Ok(Err(Failure::Refused(err))) => Err(err),
            Err(_) => Err(Error::unavailable("postgres: the store's runtime stopped")),
        }
    }

    /// Runs `statements` in one transaction on a pooled connection, within the timeout, trying
    /// again after a serialization failure or a deadlock. A connection that failed is dropped
    /// with every idle one (after a server restart they are all dead); the next call connects
    /// afresh, so the store recovers without being reopened.
    fn run(&self, isolation: Isolation, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>> {
        let engine = self.engine()?;
        let (target, timeout) = (Arc::clone(&self.target), self.options.timeout);
        let prepare = self.options.prepare_statements;
        let pool = engine.clone();
        self.on_runtime(&engine, async move {
            let call = async {
                let _slot = pool.slots.clone().acquire_owned().await.expect("never closed");
                let reused = {
                    let mut idle = pool.idle.lock();
                    idle.retain(|connection| !connection.client.is_closed());
                    idle.pop()
                };
                let mut connection = match reused {
                    Some(connection) => connection,
                    None => target.connect(timeout, prepare).await?,
                };
                let mut attempt = 1;
                loop {
                    match transaction(&mut connection, isolation, &statements).await {
                        Ok(rows) => {
                            pool.idle.lock().push(connection);
                            return Ok(rows);
                        }
                        Err(err) if retryable(&err) && attempt < RETRIES => attempt += 1,
                        Err(err) => {
                            if connection.client.is_closed() || err.as_db_error().is_none() {
                                pool.idle.lock().clear();
                            } else {
                                pool.idle.lock().push(connection);
                            }
                            return Err(Failure::Postgres(err));
                        }
                    }
                }
            };
            // Dropping the call on a timeout drops its connection too: its state is unknown.
            let started = Instant::now();
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(Failure::Refused(Error::Timeout { waited: started.elapsed() })),
            }
        })
    }

    /// One statement in its own transaction.
    fn one(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>> {
        let mut results = self.run(Isolation::ReadCommitted, vec![Statement { sql, params }])?;
        Ok(results.pop().unwrap_or_default())
    }

    /// A write: [`one`](Self::one), then now and then a bounded sweep of expired entries.
    fn write(&self, sql: &'static str, params: Vec<Param>) -> Result<Vec<Row>> {
        let rows = self.one(sql, params)?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
            // The write has committed; a failed sweep only leaves expired rows for a later one.
            if let Ok(removed) = self.sweep_up_to(AMORTIZED_SWEEP) {
                self.expired_swept.fetch_add(removed, Ordering::Relaxed);
            }
        }
        Ok(rows)
    }

    fn sweep_up_to(&self, limit: i64) -> Result<u64> {
        let rows = self.one(schema::SWEEP, vec![self.ns(), self.now().0, Param::Int8(Some(limit))])?;
        rows.first().map_or(Ok(0), |row| unsigned("swept count", row.get::<_, i64>(0)))
    }

    fn ns(&self) -> Param {
        bytes(&self.options.namespace)
    }

    /// The `now` argument of the statements (NULL lets the server read its own clock), and the
    /// injected clock's reading, to turn "milliseconds left" into a deadline.
    fn now(&self) -> (Param, u64) {
        let now = self.clock.now_ms();
        (if self.judge_by_clock { int8(now) } else { Param::Int8(None) }, now)
    }
}

/// The racefree schema version in the database the client is connected to, if any.
async fn find_version(client: &Client) -> std::result::Result<Option<i64>, tokio_postgres::Error> {
    if !client.query_typed_one(schema::HAS_SCHEMA, &[]).await?.get::<_, bool>(0) {
        return Ok(None);
    }
    Ok(client.query_typed_opt(schema::FIND_VERSION, &[]).await?.map(|row| row.get(0)))
}

/// The certificates a `verify-full` connection trusts.
fn tls_config(root_cert: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;

    // rustls needs one process-wide crypto provider; a second install is a no-op error.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                Error::invalid_argument(format!("cannot read sslrootcert {}: {e}", path.display()))
            };
            let pem = std::fs::read(path).map_err(|e| bad(&e))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// A column's integer as the unsigned number it must be, or `corrupt_data`.
fn unsigned<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T> {
    decoded("postgres", what, value)
}

fn text(row: &Row, column: usize) -> String {
    String::from_utf8_lossy(row.get::<_, &[u8]>(column)).into_owned()
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
            1 => Err(Error::Conflict { key: key.to_owned(), current_version: version_or_none(n)? }),
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
            _ => Err(Error::Conflict { key: key.to_owned(), current_version: version_or_none(n)? }),
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

/// A conflict's "current version": -1 for no record.
fn version_or_none(number: i64) -> Result<Option<u64>> {
    if number == -1 {
        Ok(None)
    } else {
        unsigned("record version", number).map(Some)
    }
}

/// A function that must return one row returned none: the schema is not the one this build wrote.
fn missing_row(what: &str) -> Error {
    Error::corrupt(format!("postgres: {what} returned no row; is racefree's schema intact?"))
}
