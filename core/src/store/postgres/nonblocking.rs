//! The async engine of the PostgreSQL store: tokio-postgres on the caller's runtime (no thread
//! of its own), the transport of the same hosted store every async host drives
//! ([`HostedPostgresStore`]).

use super::blocking::{prepare_schema, target};
use super::engine::{settled, unavailable, Failure, Pool, Target};
use super::hosted::{HostedPostgresStore, Transaction, TransactionError, Transport};
use super::protocol::Row;
use super::{schema_verdict, PostgresOptions};
use crate::aio::{BoxFuture, Spawner};
use crate::clock::SharedClock;
use crate::error::Result;

/// The PostgreSQL store for tokio hosts ([`racefree::aio::PostgresStore`](crate::aio::PostgresStore)):
/// the same schema, statements and answers as [`PostgresStore`](super::PostgresStore), its
/// connections on the caller's runtime, up to `pool_size` of them.
///
/// A call dropped before it ends (a `timeout`, a lost `select!` branch) drops the connection it
/// was using: PostgreSQL rolls back what that connection had begun, and no connection is given
/// back to the pool inside a transaction.
pub type AsyncPostgresStore = HostedPostgresStore<ClientPool>;

/// tokio-postgres connections on the runtime the store was opened on, up to `pool_size`.
pub struct ClientPool {
    target: Target,
    pool: Pool,
    options: PostgresOptions,
    runtime: tokio::runtime::Handle,
}

impl AsyncPostgresStore {
    /// Opens a store on the server at `url` (the URLs and options of
    /// [`PostgresStore::open`](super::PostgresStore::open)), on the current tokio runtime: its
    /// connections' tasks run there, so use the store there.
    ///
    /// # Errors
    /// As [`PostgresStore::open`](super::PostgresStore::open).
    ///
    /// # Cancel safety
    /// Cancel-safe: the schema is created or upgraded in one transaction, which a dropped call's
    /// closed connection rolls back whole; no store is returned.
    pub async fn open(url: &str, clock: SharedClock, options: PostgresOptions) -> Result<Self> {
        let target = target(url, &options)?;
        let found = settled(prepare_schema(&target, options.timeout, options.create_schema).await)?;
        schema_verdict(found, options.create_schema)?;
        let namespace = options.namespace.clone();
        let pool = ClientPool {
            target,
            pool: Pool::new(options.pool_size),
            options,
            runtime: tokio::runtime::Handle::current(),
        };
        // Each connection checks its own default isolation before sending a statement alone.
        Ok(Self::prepared(pool, &namespace, clock, true))
    }
}

impl Transport for ClientPool {
    fn run<'a>(
        &'a self,
        transaction: Transaction<'a>,
    ) -> BoxFuture<'a, std::result::Result<Vec<Vec<Row>>, TransactionError>> {
        let (timeout, prepare) = (self.options.timeout, self.options.prepare_statements);
        Box::pin(async move {
            // One attempt: the store tries a rolled-back transaction again.
            let rows = self.pool.execute(
                &self.target,
                timeout,
                prepare,
                1,
                transaction.isolation,
                transaction.statements,
            );
            match rows.await {
                Ok(rows) => Ok(rows),
                Err(Failure::Postgres(err)) => match err.as_db_error() {
                    Some(db) => Err(TransactionError::Server {
                        sqlstate: db.code().code().to_owned(),
                        message: db.message().to_owned(),
                    }),
                    None => Err(TransactionError::Failed(unavailable(err))),
                },
                Err(Failure::Refused(err)) => Err(TransactionError::Failed(err)),
            }
        })
    }

    fn spawner(&self) -> Spawner {
        let runtime = self.runtime.clone();
        std::sync::Arc::new(move |task| drop(runtime.spawn(task)))
    }
}
