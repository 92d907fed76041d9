//! The PostgreSQL store for an async host that runs the planned statements with a client of its
//! own (tokio-postgres here, a Node service's `pg` pool): the host carries the statements and
//! their rows, the core plans every call, decides its transaction, retries what PostgreSQL rolled
//! back, and decodes every row.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::calls::{retryable, Call, Planner, AMORTIZED_SWEEP, RETRIES, SWEEP_EVERY};
use super::protocol::{Isolation, Param, Row, Statement};
use super::{schema, schema_verdict, SCHEMA_VERSION};
use crate::aio::{BoxFuture, Spawner};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

/// One call's statements, to run on one connection as one transaction.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Transaction<'a> {
    /// The transaction's isolation.
    pub isolation: Isolation,
    /// The statements, run in order; a statement without parameters may hold several SQL
    /// commands (the schema's), to be sent as one simple query.
    pub statements: &'a [Statement],
    /// The one statement may be sent alone, as its own transaction: the server's default
    /// isolation is the one asked for (one round trip instead of three on a client that does
    /// not pipeline `BEGIN`, the statement and `COMMIT`).
    pub may_send_alone: bool,
    /// Whether it writes (a host with a read replica sends only what does not to it).
    pub writes: bool,
}

impl Transaction<'_> {
    /// The statement to send before the statements (and `COMMIT` after them), or `None` when
    /// the one statement is sent alone.
    pub fn begin(&self) -> Option<&'static str> {
        (!self.may_send_alone).then(|| self.isolation.begin())
    }
}

/// Why a host's transaction did not commit.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransactionError {
    /// The server refused a statement and rolled the transaction back: its SQLSTATE (`40001`)
    /// and message. A serialization failure or a deadlock is tried again by the store.
    Server {
        /// The five-character SQLSTATE.
        sqlstate: String,
        /// The server's message.
        message: String,
    },
    /// The host could not carry it: `backend_unavailable` when nothing committed (the
    /// connection failed before `COMMIT` was sent), `timeout` when it may have (a connection lost
    /// while the commit, or a statement sent alone, was in flight).
    Failed(Error),
}

/// How a host runs one transaction with its own client.
pub trait Transport: Send + Sync + 'static {
    /// Runs `transaction` on one connection: [`Transaction::begin`] (when there is one), the
    /// statements in order, then `COMMIT` (or `ROLLBACK` after a failed statement); resolves to
    /// each statement's rows, every column converted to a [`Cell`](super::protocol::Cell) (from the text
    /// format: [`Cell::from_text`](super::protocol::Cell::from_text)).
    fn run<'a>(
        &'a self,
        transaction: Transaction<'a>,
    ) -> BoxFuture<'a, std::result::Result<Vec<Vec<Row>>, TransactionError>>;

    /// How the host starts a task of its own (see [`crate::aio::Store::spawner`]).
    fn spawner(&self) -> Spawner;

    /// Whether the host runs every operation's future to its end (see
    /// [`crate::aio::Store::runs_to_completion`]; a JavaScript event loop). Default `false`.
    fn runs_to_completion(&self) -> bool {
        false
    }
}

/// The PostgreSQL store over a host's [`Transport`]: every operation the same statements,
/// schema and answers as [`crate::PostgresStore`], so processes in any language share one
/// schema and namespace.
pub struct HostedPostgresStore<T> {
    pub(super) transport: T,
    planner: Planner,
    namespace: String,
    read_committed_by_default: bool,
    expired_swept: AtomicU64,
    writes: AtomicU64,
}

impl<T> std::fmt::Debug for HostedPostgresStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedPostgresStore")
            .field("namespace", &self.namespace)
            .field("judge_by_clock", &self.planner.judge_by_clock)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> HostedPostgresStore<T> {
    /// A store in `namespace` over `transport`, after checking racefree's schema in its
    /// database: created when missing (or upgraded from version 1) if `create_schema` allows,
    /// refused when of another version. `clock` is what deadlines are reported on: with a wall
    /// clock ([`crate::Clock::is_wall_clock`]) the statements judge by the server's clock, as
    /// with `postgres://` URLs; any other clock (a test's manual one) judges them itself.
    ///
    /// # Errors
    /// `invalid_argument` for a bad namespace; `backend_unavailable` for a missing schema that
    /// may not be created, another schema version, or a server that cannot be reached.
    ///
    /// # Cancel safety
    /// Cancel-safe with a transport that does not leave a dropped transaction open (the tokio
    /// one drops its connection, and PostgreSQL rolls the transaction back): the schema is created
    /// or upgraded in one transaction, whole or not at all; no store is returned.
    pub async fn new(transport: T, namespace: &str, clock: SharedClock, create_schema: bool) -> Result<Self> {
        crate::validate::namespace(namespace)?;
        let mut store = Self::prepared(transport, namespace, clock, false);
        let isolation = store.query_one(schema::DEFAULT_ISOLATION).await?;
        store.read_committed_by_default = isolation.text(0)? == "read committed";
        let found = store.schema_version().await?;
        schema_verdict(found, create_schema)?;
        if found != Some(SCHEMA_VERSION) {
            store.create_schema(found).await?;
        }
        Ok(store)
    }

    /// A store on a database whose schema has been checked already.
    pub(super) fn prepared(transport: T, namespace: &str, clock: SharedClock, read_committed: bool) -> Self {
        Self {
            transport,
            planner: Planner::new(namespace, clock),
            namespace: namespace.to_owned(),
            read_committed_by_default: read_committed,
            expired_swept: AtomicU64::new(0),
            writes: AtomicU64::new(1),
        }
    }

    /// The first row of a statement without parameters, sent alone, if it returned one.
    async fn query_opt(&self, sql: &'static str) -> Result<Option<Row>> {
        let statements = [Statement { sql, params: Vec::new() }];
        let transaction = Transaction {
            isolation: Isolation::ReadCommitted,
            statements: &statements,
            may_send_alone: true,
            writes: false,
        };
        let mut rows = self.transport.run(transaction).await.map_err(refused)?;
        Ok(rows.pop().and_then(|rows| rows.into_iter().next()))
    }

    async fn query_one(&self, sql: &'static str) -> Result<Row> {
        self.query_opt(sql).await?.ok_or_else(|| Error::corrupt(format!("postgres: {sql:?} returned no row")))
    }

    /// The schema version in the database, or `None` when it has none.
    async fn schema_version(&self) -> Result<Option<i64>> {
        if !self.query_one(schema::HAS_SCHEMA).await?.bool(0)? {
            return Ok(None);
        }
        self.query_opt(schema::FIND_VERSION).await?.map(|row| row.int(0)).transpose()
    }

    /// Creates the schema (none `found`) or upgrades version 1, under the schema lock. Two
    /// processes creating it at once: the second one's `CREATE` fails and rolls back, and it
    /// finds the first one's schema.
    async fn create_schema(&self, found: Option<i64>) -> Result<()> {
        let lock =
            Statement { sql: schema::LOCK_SCHEMA, params: vec![Param::Int8(Some(schema::SCHEMA_LOCK))] };
        let ddl = |sql| Statement { sql, params: Vec::new() };
        let statements = match found {
            None => vec![lock, ddl(schema::CREATE), ddl(schema::VERSION_2)],
            _ => vec![lock, ddl(schema::MIGRATE_FROM_1)],
        };
        let transaction = Transaction {
            isolation: Isolation::ReadCommitted,
            statements: &statements,
            may_send_alone: false,
            writes: true,
        };
        match self.transport.run(transaction).await {
            Ok(_) => Ok(()),
            Err(err) if self.schema_version().await? == Some(SCHEMA_VERSION) => {
                drop(err);
                Ok(())
            }
            Err(err) => Err(refused(err)),
        }
    }

    /// Runs one planned call and decodes its rows, trying it again after a serialization failure
    /// or a deadlock (PostgreSQL rolled it back whole); after every [`SWEEP_EVERY`] writes, a
    /// bounded sweep of expired entries follows.
    fn execute<R: Send + 'static>(&self, call: Call<R>) -> BoxFuture<'_, Result<R>> {
        Box::pin(async move {
            let writes = call.writes;
            let result = self.rows(call).await;
            if writes && result.is_ok() && self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == 0 {
                // The write has committed; a failed sweep only leaves expired rows for a later one.
                if let Ok(removed) = self.rows(self.planner.sweep_up_to(AMORTIZED_SWEEP)).await {
                    self.expired_swept.fetch_add(removed, Ordering::Relaxed);
                }
            }
            result
        })
    }

    async fn rows<R>(&self, call: Call<R>) -> Result<R> {
        if call.statements.is_empty() {
            return (call.decode)(Vec::new());
        }
        let may_send_alone = self.read_committed_by_default
            && call.statements.len() == 1
            && call.isolation == Isolation::ReadCommitted;
        let transaction = Transaction {
            isolation: call.isolation,
            statements: &call.statements,
            may_send_alone,
            writes: call.writes,
        };
        let mut attempt = 1;
        loop {
            match self.transport.run(transaction).await {
                Ok(rows) => return (call.decode)(rows),
                Err(TransactionError::Server { sqlstate, .. })
                    if retryable(&sqlstate) && attempt < RETRIES =>
                {
                    attempt += 1;
                }
                Err(err) => return Err(refused(err)),
            }
        }
    }
}

/// A transaction that did not commit as a racefree error.
fn refused(err: TransactionError) -> Error {
    match err {
        TransactionError::Server { sqlstate, message } => {
            Error::unavailable(format!("postgres: ERROR {sqlstate}: {message}"))
        }
        TransactionError::Failed(err) => err,
    }
}

impl<T: Transport> crate::aio::Store for HostedPostgresStore<T> {
    fn clock(&self) -> &SharedClock {
        self.planner.clock()
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn spawner(&self) -> Spawner {
        self.transport.spawner()
    }

    fn runs_to_completion(&self) -> bool {
        self.transport.runs_to_completion()
    }

    fn counter_next<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        self.execute(self.planner.counter_next(counter))
    }

    fn counter_claim<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Claim>> {
        self.execute(self.planner.counter_claim(counter, id))
    }

    fn counter_index_of<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        self.execute(self.planner.counter_index_of(counter, id))
    }

    fn counter_peek<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        self.execute(self.planner.counter_peek(counter))
    }

    fn counter_set<'a>(&'a self, counter: &'a str, next: u64) -> BoxFuture<'a, Result<()>> {
        self.execute(self.planner.counter_set(counter, next))
    }

    fn counter_reset<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<()>> {
        self.execute(self.planner.counter_reset(counter))
    }

    fn guard_mark<'a>(
        &'a self,
        guard: &'a str,
        stream: &'a str,
        position: u32,
        retention_ms: u64,
    ) -> BoxFuture<'a, Result<MarkOutcome>> {
        // A request id per call: the same request sent again gets the same answer.
        match crate::store::request_id() {
            Ok(id) => self.execute(self.planner.guard_mark(guard, stream, position, retention_ms, &id)),
            Err(err) => self.execute(Call::refused(err)),
        }
    }

    fn guard_marked<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<u32>> {
        self.execute(self.planner.guard_marked(guard, stream))
    }

    fn guard_forget<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.execute(self.planner.guard_forget(guard, stream))
    }

    fn lease_try_grant<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        match crate::store::request_id() {
            Ok(id) => self.execute(self.planner.lease_try_grant(lock, key, ttl_ms, &id)),
            Err(err) => self.execute(Call::refused(err)),
        }
    }

    fn lease_renew<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        token: u64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        self.execute(self.planner.lease_renew(lock, key, token, ttl_ms))
    }

    fn lease_release<'a>(&'a self, lock: &'a str, key: &'a str, token: u64) -> BoxFuture<'a, Result<()>> {
        self.execute(self.planner.lease_release(lock, key, token))
    }

    fn lease_holder<'a>(&'a self, lock: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        self.execute(self.planner.lease_holder(lock, key))
    }

    fn record_get<'a>(&'a self, space: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        self.execute(self.planner.record_get(space, key))
    }

    fn record_put<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: &'a Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> BoxFuture<'a, Result<u64>> {
        self.execute(self.planner.record_put(space, key, value, expected_version, fencing_token))
    }

    fn record_delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool>> {
        self.execute(self.planner.record_delete(space, key, expected_version))
    }

    fn sweep(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let removed = self.execute(self.planner.sweep_up_to(i64::MAX)).await?;
            self.expired_swept.fetch_add(removed, Ordering::Relaxed);
            Ok(removed)
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        Box::pin(async move {
            let entries = self.execute(self.planner.entries()).await?;
            Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
        })
    }

    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>> {
        self.execute(self.planner.inspect())
    }
}
