//! The async engine of the PostgreSQL store: tokio-postgres on the caller's runtime (no thread
//! of its own), carrying the same planned calls ([`super::calls`]) as the blocking engine.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::calls::{Call, Planner};
use super::engine::{settled, Pool, Target, AMORTIZED_SWEEP, SWEEP_EVERY};
use super::{prepare_schema, schema_verdict, target, PostgresOptions};
use crate::aio::BoxFuture;
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

/// The PostgreSQL store for tokio hosts ([`racefree::aio::PostgresStore`](crate::aio::PostgresStore)):
/// the same schema, statements and answers as [`PostgresStore`](super::PostgresStore), its
/// connections on the caller's runtime, up to `pool_size` of them.
///
/// A call dropped before it ends (a `timeout`, a lost `select!` branch) drops the connection it
/// was using: PostgreSQL rolls back what that connection had begun, and no connection is given
/// back to the pool inside a transaction.
pub struct AsyncPostgresStore {
    target: Target,
    pool: Pool,
    planner: Planner,
    options: PostgresOptions,
    expired_swept: AtomicU64,
    writes: AtomicU64,
}

impl std::fmt::Debug for AsyncPostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPostgresStore")
            .field("hosts", &self.target.config.get_hosts())
            .field("dbname", &self.target.config.get_dbname())
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.planner.judge_by_clock)
            .finish_non_exhaustive()
    }
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
        Ok(Self {
            target,
            pool: Pool::new(options.pool_size),
            planner: Planner::new(&options.namespace, clock),
            options,
            expired_swept: AtomicU64::new(0),
            writes: AtomicU64::new(1),
        })
    }

    async fn rows<T>(&self, call: Call<T>) -> Result<T> {
        let (timeout, prepare) = (self.options.timeout, self.options.prepare_statements);
        let rows = self.pool.execute(&self.target, timeout, prepare, call.isolation, &call.statements).await;
        (call.decode)(settled(rows)?)
    }

    /// Runs one planned call and decodes its rows; after every [`SWEEP_EVERY`] writes, a
    /// bounded sweep of expired entries follows.
    fn execute<T: Send + 'static>(&self, call: Call<T>) -> BoxFuture<'_, Result<T>> {
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
}

impl crate::aio::Store for AsyncPostgresStore {
    fn clock(&self) -> &SharedClock {
        self.planner.clock()
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
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
