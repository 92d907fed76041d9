//! The engine of the PostgreSQL store: a one-worker tokio runtime of its own, the connection
//! pool, connecting, running a call's statements in one transaction (prepared or not), retrying
//! what PostgreSQL rolled back for a retryable reason, and a new engine in a child after `fork()`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row as ClientRow, Statement as Prepared};

use super::calls::{self, Call, AMORTIZED_SWEEP, RETRIES, SWEEP_EVERY};
use super::protocol::{Cell, Isolation, Param, Row, Statement};
use super::{schema, PostgresStore};
use crate::error::{Error, Result};

/// How to reach the server: the client configuration and its TLS connector.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// One connection, and whether its transactions default to READ COMMITTED: then a single
/// statement runs as its own transaction, without `BEGIN`/`COMMIT` around it (measured: a `next`
/// went from 4,700 to 7,300 per second from 4 processes).
pub(super) struct Connection {
    pub(super) client: Client,
    read_committed_by_default: bool,
    /// With `prepare_statements`: this connection's statements, prepared on first use.
    prepared: Option<HashMap<&'static str, Prepared>>,
}

/// The runtime and the connections of one process (a child after `fork()` makes its own).
pub(super) struct Engine {
    pub(super) runtime: Option<tokio::runtime::Runtime>,
    pub(super) pool: Pool,
}

impl Engine {
    pub(super) fn new(pool_size: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("racefree-postgres")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::unavailable_because("postgres: cannot start its runtime", e))?;
        Ok(Self { runtime: Some(runtime), pool: Pool::new(pool_size) })
    }
}

/// Up to `pool_size` connections, opened as needed and kept for reuse.
pub(super) struct Pool {
    idle: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Pool {
    pub(super) fn new(pool_size: usize) -> Self {
        Self { idle: Mutex::new(Vec::new()), slots: Arc::new(tokio::sync::Semaphore::new(pool_size)) }
    }

    /// Runs `statements` in one transaction on a pooled connection, within `timeout`, up to
    /// `attempts` times after a serialization failure or a deadlock. A connection that failed is dropped
    /// with every idle one (after a server restart they are all dead); the next call connects
    /// afresh, so the store recovers without being reopened. Dropped before it ends (a timeout,
    /// a cancelled caller), the call drops its connection too, so no connection is given back
    /// inside a transaction: closing it rolls that transaction back.
    pub(super) async fn execute(
        &self,
        target: &Target,
        timeout: Duration,
        prepare: bool,
        attempts: u32,
        isolation: Isolation,
        statements: &[Statement],
    ) -> std::result::Result<Vec<Vec<Row>>, Failure> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let call = async {
            let _slot = self.slots.acquire().await.expect("never closed");
            let reused = {
                let mut idle = self.idle.lock();
                idle.retain(|connection| !connection.client.is_closed());
                idle.pop()
            };
            let mut connection = match reused {
                Some(connection) => connection,
                None => target.connect(timeout, prepare).await?,
            };
            let mut attempt = 1;
            loop {
                match transaction(&mut connection, isolation, statements).await {
                    Ok(rows) => {
                        self.idle.lock().push(connection);
                        return Ok(rows);
                    }
                    Err(failed) if retryable(&failed.err) && attempt < attempts => attempt += 1,
                    Err(TransactionFailure { err, may_have_committed }) => {
                        let lost = err.code().is_some_and(|code| calls::server_lost(code.code()));
                        if connection.client.is_closed() || err.as_db_error().is_none() || lost {
                            // After a restart or a failover every pooled connection is dead or
                            // on a server that no longer takes writes.
                            self.idle.lock().clear();
                        } else {
                            self.idle.lock().push(connection);
                        }
                        // Sent, then lost: the outcome is unknown, as any timeout's.
                        return Err(if may_have_committed {
                            Failure::Refused(Error::Timeout { waited: started.elapsed() })
                        } else {
                            Failure::Postgres(err)
                        });
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Refused(Error::Timeout { waited: started.elapsed() })),
        }
    }
}

/// A call's outcome as a racefree result.
pub(super) fn settled<T>(result: std::result::Result<T, Failure>) -> Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(Failure::Postgres(err)) => Err(unavailable(err)),
        Err(Failure::Refused(err)) => Err(err),
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

/// A failed call as a racefree error: `backend_unavailable` with the server's own words, the
/// client's error kept as its source.
pub(super) fn unavailable(err: tokio_postgres::Error) -> Error {
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
    err.code().is_some_and(|code| calls::retryable(code.code()))
}

/// A call's failure.
pub(super) enum Failure {
    /// Nothing committed: the server refused a statement, or the connection failed before the
    /// commit was sent.
    Postgres(tokio_postgres::Error),
    /// The racefree error itself: no connection could be had in time, the call ran out of
    /// time, or the connection failed while the commit (or a statement sent alone, its own
    /// transaction) was in flight — `timeout` too, the outcome unknown, as a hosted store's host
    /// reports it.
    Refused(Error),
}

/// A transaction that did not commit, or may have.
pub(super) struct TransactionFailure {
    pub(super) err: tokio_postgres::Error,
    pub(super) may_have_committed: bool,
}

impl TransactionFailure {
    /// Failed before the commit was sent: nothing committed.
    fn before_commit(err: tokio_postgres::Error) -> Self {
        Self { err, may_have_committed: false }
    }

    /// Failed with the commit sent: committed unless the server said it refused.
    fn in_flight(err: tokio_postgres::Error) -> Self {
        let may_have_committed = err.as_db_error().is_none();
        Self { err, may_have_committed }
    }
}

impl Target {
    pub(super) async fn connect(
        &self,
        timeout: Duration,
        prepare: bool,
    ) -> std::result::Result<Connection, Failure> {
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
        let isolation =
            client.query_typed_one(schema::DEFAULT_ISOLATION, &[]).await.map_err(Failure::Postgres)?;
        let read_committed_by_default = isolation.get::<_, &str>(0) == "read committed";
        Ok(Connection { client, read_committed_by_default, prepared: prepare.then(HashMap::new) })
    }
}

/// Runs `statements` in one transaction on `connection`: `BEGIN`, the statements and `COMMIT`
/// are sent together (one round trip for one statement); on an error the server answers the
/// `COMMIT` with a rollback. One statement at READ COMMITTED on a connection that defaults to it
/// is sent alone: it is its own transaction.
///
/// A connection lost once the commit may have been sent (with a statement sent alone, or the
/// pipelined `BEGIN`, statement and `COMMIT`) leaves the outcome unknown.
pub(super) async fn transaction(
    connection: &mut Connection,
    isolation: Isolation,
    statements: &[Statement],
) -> std::result::Result<Vec<Vec<Row>>, TransactionFailure> {
    if let Some(prepared) = &mut connection.prepared {
        prepare(&connection.client, prepared, statements).await.map_err(TransactionFailure::before_commit)?;
    }
    let connection = &*connection;
    let client = &connection.client;
    if let ([only], Isolation::ReadCommitted, true) =
        (statements, isolation, connection.read_committed_by_default)
    {
        return Ok(vec![query(connection, only).await.map_err(TransactionFailure::in_flight)?]);
    }
    if let [only] = statements {
        let (begun, rows, committed) = tokio::join!(
            client.batch_execute(isolation.begin()),
            query(connection, only),
            client.batch_execute("COMMIT"),
        );
        begun.map_err(TransactionFailure::in_flight)?;
        let rows = rows.map_err(TransactionFailure::in_flight)?;
        committed.map_err(TransactionFailure::in_flight)?;
        return Ok(vec![rows]);
    }
    client.batch_execute(isolation.begin()).await.map_err(TransactionFailure::before_commit)?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        match query(connection, statement).await {
            Ok(rows) => results.push(rows),
            Err(err) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(TransactionFailure::before_commit(err));
            }
        }
    }
    client.batch_execute("COMMIT").await.map_err(TransactionFailure::in_flight)?;
    Ok(results)
}

/// Prepares those of `statements` this connection has not prepared yet (once per connection).
pub(super) async fn prepare(
    client: &Client,
    prepared: &mut HashMap<&'static str, Prepared>,
    statements: &[Statement],
) -> std::result::Result<(), tokio_postgres::Error> {
    for statement in statements {
        if !prepared.contains_key(statement.sql) {
            let types: Vec<Type> = statement.params.iter().map(|param| typed(param).1).collect();
            prepared.insert(statement.sql, client.prepare_typed(statement.sql, &types).await?);
        }
    }
    Ok(())
}

/// Runs one statement: by its prepared name when the connection prepares, unnamed otherwise.
pub(super) async fn query(
    connection: &Connection,
    statement: &Statement,
) -> std::result::Result<Vec<Row>, tokio_postgres::Error> {
    let client = &connection.client;
    match connection.prepared.as_ref().and_then(|prepared| prepared.get(statement.sql)) {
        Some(prepared) => {
            let values: Vec<_> = statement.params.iter().map(|param| typed(param).0).collect();
            client.query(prepared, &values).await?.iter().map(cells).collect()
        }
        None => {
            let params: Vec<_> = statement.params.iter().map(typed).collect();
            client.query_typed(statement.sql, &params).await?.iter().map(cells).collect()
        }
    }
}

/// A parameter as the client sends it, with its type.
fn typed(param: &Param) -> (&(dyn ToSql + Sync), Type) {
    match param {
        Param::Bytes(v) => (v, Type::BYTEA),
        Param::Int8(v) => (v, Type::INT8),
        Param::Int4(v) => (v, Type::INT4),
        Param::Text(v) => (v, Type::TEXT),
    }
}

/// A row of the client as the planned calls decode it: each column by its type.
fn cells(row: &ClientRow) -> std::result::Result<Row, tokio_postgres::Error> {
    let cell = |column: usize, ty: &Type| -> std::result::Result<Cell, tokio_postgres::Error> {
        let cell = match *ty {
            Type::BOOL => row.try_get::<_, Option<bool>>(column)?.map(Cell::Bool),
            Type::INT2 => row.try_get::<_, Option<i16>>(column)?.map(|v| Cell::Int(v.into())),
            Type::INT4 => row.try_get::<_, Option<i32>>(column)?.map(|v| Cell::Int(v.into())),
            Type::INT8 => row.try_get::<_, Option<i64>>(column)?.map(Cell::Int),
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(column)?.map(Cell::Bytes),
            // A function returning nothing (`racefree_reset`).
            Type::VOID => None,
            // The character types; any other fails here as the wrong type.
            _ => row.try_get::<_, Option<String>>(column)?.map(Cell::Text),
        };
        Ok(cell.unwrap_or(Cell::Null))
    };
    row.columns()
        .iter()
        .enumerate()
        .map(|(column, info)| cell(column, info.type_()))
        .collect::<std::result::Result<_, _>>()
        .map(Row)
}

pub(super) async fn find_version(client: &Client) -> std::result::Result<Option<i64>, tokio_postgres::Error> {
    if !client.query_typed_one(schema::HAS_SCHEMA, &[]).await?.get::<_, bool>(0) {
        return Ok(None);
    }
    Ok(client.query_typed_opt(schema::FIND_VERSION, &[]).await?.map(|row| row.get(0)))
}

impl PostgresStore {
    /// This process's engine: a child after `fork()` leaves the inherited one alone (its
    /// runtime's threads did not survive the fork, and its sockets are the parent's) and starts
    /// its own.
    pub(super) fn engine(&self) -> Result<Arc<Engine>> {
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
    pub(super) fn on_runtime<T: Send + 'static>(
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
            Ok(result) => settled(result),
            Err(_) => Err(Error::unavailable("postgres: the store's runtime stopped")),
        }
    }

    /// Runs one planned call on this process's engine and decodes its rows; after every
    /// [`SWEEP_EVERY`] writes, a bounded sweep of expired entries follows.
    pub(super) fn execute<T>(&self, call: Call<T>) -> Result<T> {
        let rows = self.run(call.isolation, call.statements)?;
        let result = (call.decode)(rows);
        if call.writes && result.is_ok() && self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
            // The write has committed; a failed sweep only leaves expired rows for a later one.
            if let Ok(removed) = self.execute(self.planner.sweep_up_to(AMORTIZED_SWEEP)) {
                self.expired_swept.fetch_add(removed, Ordering::Relaxed);
            }
        }
        result
    }

    fn run(&self, isolation: Isolation, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>> {
        let engine = self.engine()?;
        let (target, timeout) = (Arc::clone(&self.target), self.options.timeout);
        let prepare = self.options.prepare_statements;
        let pool = engine.clone();
        self.on_runtime(&engine, async move {
            pool.pool.execute(&target, timeout, prepare, RETRIES, isolation, &statements).await
        })
    }
}
