//! The async engine of the Redis store: one multiplexed redis-rs connection on the caller's
//! tokio runtime, carrying the protocol's requests ([`super::protocol`]) as the blocking engine
//! does, without a thread per call.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use serde_json::Value;

use super::blocking::{classify, client, command, config_get, fsync_verdict, reply, script_load};
use super::protocol::{Command, Layout, Now, Reply, Request, Step};
use super::RedisOptions;
use crate::aio::BoxFuture;
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

/// The Redis store for tokio hosts ([`racefree::aio::RedisStore`](crate::aio::RedisStore)):
/// the same keys, scripts and answers as [`RedisStore`](super::RedisStore), on one multiplexed
/// connection that every task of the process shares (requests are pipelined on it; none waits
/// for another's reply).
///
/// A connection that fails in transport is dropped, and the next call connects afresh: the
/// store recovers from a server restart without being reopened. Nothing is sent twice: a
/// request whose reply was lost is reported (`timeout` or `backend_unavailable`).
pub struct AsyncRedisStore {
    client: Client,
    config: AsyncConnectionConfig,
    /// The shared connection, and how many have been opened (to drop only the one that failed).
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    opened: AtomicU64,
    clock: SharedClock,
    judge_by_clock: bool,
    options: RedisOptions,
    layout: Layout,
    expired_swept: AtomicU64,
}

impl std::fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRedisStore")
            .field("server", &self.client.get_connection_info().addr().to_string())
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.judge_by_clock)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisStore {
    /// Connects to the server at `url` (the URLs of [`RedisStore::open`](super::RedisStore::open))
    /// on the current tokio runtime and checks that it answers. The connection's task runs on
    /// that runtime: use the store there.
    ///
    /// # Errors
    /// As [`RedisStore::open`](super::RedisStore::open).
    ///
    /// # Cancel safety
    /// Cancel-safe: dropped, no store is returned and its connection is closed; nothing was written.
    pub async fn open(url: &str, clock: SharedClock, options: RedisOptions) -> Result<Self> {
        let client = client(url, &options)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout));
        let store = Self {
            client,
            config,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
            judge_by_clock: !clock.is_wall_clock(),
            clock,
            layout: Layout::new(&options.namespace),
            options,
            expired_swept: AtomicU64::new(0),
        };
        store.query(&redis::cmd("PING")).await?;
        if store.options.require_fsync {
            let setting = |reply: Reply| match reply {
                Reply::Array(pair) => match pair.into_iter().nth(1) {
                    Some(Reply::Data(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            let appendonly = setting(store.query(&config_get("appendonly")).await?);
            let appendfsync = setting(store.query(&config_get("appendfsync")).await?);
            fsync_verdict(&appendonly, &appendfsync)?;
        }
        Ok(store)
    }

    /// The shared connection, opened on first use and after a transport failure.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection)> {
        if let Some(open) = self.connection.lock().clone() {
            return Ok(open);
        }
        // One task connects; the others wait for its connection instead of opening their own.
        let _connecting = self.connecting.lock().await;
        if let Some(open) = self.connection.lock().clone() {
            return Ok(open);
        }
        let timeout = self.options.timeout;
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|err| classify(&err, timeout))?;
        let open = (self.opened.fetch_add(1, Ordering::Relaxed), connection);
        *self.connection.lock() = Some(open.clone());
        Ok(open)
    }

    /// Sends one command and reads its reply; a transport failure drops the connection it
    /// happened on, so the next call connects afresh.
    async fn query(&self, cmd: &redis::Cmd) -> Result<Reply> {
        let (id, mut connection) = self.connection().await?;
        match connection.send_packed_command(cmd).await {
            Ok(value) => Ok(reply(value)),
            Err(err) => match server_error(&err) {
                Some(reply) => Ok(reply),
                None => {
                    if err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error() {
                        let mut shared = self.connection.lock();
                        if shared.as_ref().is_some_and(|(open, _)| *open == id) {
                            *shared = None;
                        }
                    }
                    Err(classify(&err, self.options.timeout))
                }
            },
        }
    }

    /// Sends one request: a script by `EVALSHA`, loaded and sent again on `NOSCRIPT`.
    async fn send(&self, request: &Request) -> Result<Reply> {
        let cmd = command(request);
        match self.query(&cmd).await? {
            Reply::Error { code, .. } if code == "NOSCRIPT" => {
                let Command::Script(script) = request.command else {
                    unreachable!("only scripts are loaded")
                };
                self.query(&script_load(script)).await?.into_result()?;
                self.query(&cmd).await
            }
            other => Ok(other),
        }
    }

    /// Runs an operation to its end: each request the protocol plans is sent, and its reply
    /// handed back to it.
    fn run<T: Send + 'static>(&self, mut step: Step<T>) -> BoxFuture<'_, Result<T>> {
        Box::pin(async move {
            loop {
                match step {
                    Step::Done(result) => return result,
                    Step::Send(request, then) => step = then(self.send(&request).await?),
                }
            }
        })
    }

    fn now(&self) -> Now {
        Now { local_ms: self.clock.now_ms(), judge_by_local: self.judge_by_clock }
    }
}

/// A server's error reply that redis-rs reported as an error, as the protocol's reply.
fn server_error(err: &RedisError) -> Option<Reply> {
    if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || err.is_connection_refusal() {
        return None;
    }
    let code = err.code()?;
    Some(Reply::Error { code: code.to_owned(), message: err.detail().unwrap_or_default().to_owned() })
}

impl crate::aio::Store for AsyncRedisStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn counter_next<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        self.run(self.layout.counter_next(counter))
    }

    fn counter_claim<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Claim>> {
        self.run(self.layout.counter_claim(counter, id))
    }

    fn counter_index_of<'a>(&'a self, counter: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        self.run(self.layout.counter_index_of(counter, id))
    }

    fn counter_peek<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<u64>> {
        self.run(self.layout.counter_peek(counter))
    }

    fn counter_set<'a>(&'a self, counter: &'a str, next: u64) -> BoxFuture<'a, Result<()>> {
        self.run(self.layout.counter_set(counter, next))
    }

    fn counter_reset<'a>(&'a self, counter: &'a str) -> BoxFuture<'a, Result<()>> {
        self.run(self.layout.counter_reset(counter))
    }

    fn guard_mark<'a>(
        &'a self,
        guard: &'a str,
        stream: &'a str,
        position: u32,
        retention_ms: u64,
    ) -> BoxFuture<'a, Result<MarkOutcome>> {
        // A request id per call: a host that resends it (after a lost reply) gets the same answer.
        match crate::store::request_id() {
            Ok(id) => {
                self.run(self.layout.guard_mark(guard, stream, position, retention_ms, self.now(), &id))
            }
            Err(err) => self.run(Step::Done(Err(err))),
        }
    }

    fn guard_marked<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<u32>> {
        self.run(self.layout.guard_marked(guard, stream, self.now()))
    }

    fn guard_forget<'a>(&'a self, guard: &'a str, stream: &'a str) -> BoxFuture<'a, Result<bool>> {
        self.run(self.layout.guard_forget(guard, stream, self.now()))
    }

    fn lease_try_grant<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        // Read before the request: the deadline this handle reports is never later than the server's.
        match crate::store::request_id() {
            Ok(id) => self.run(self.layout.lease_try_grant(lock, key, ttl_ms, self.now(), &id)),
            Err(err) => self.run(Step::Done(Err(err))),
        }
    }

    fn lease_renew<'a>(
        &'a self,
        lock: &'a str,
        key: &'a str,
        token: u64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<u64>> {
        self.run(self.layout.lease_renew(lock, key, token, ttl_ms, self.now()))
    }

    fn lease_release<'a>(&'a self, lock: &'a str, key: &'a str, token: u64) -> BoxFuture<'a, Result<()>> {
        self.run(self.layout.lease_release(lock, key, token, self.now()))
    }

    fn lease_holder<'a>(&'a self, lock: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<LeaseGrant>>> {
        self.run(self.layout.lease_holder(lock, key, self.now()))
    }

    fn record_get<'a>(&'a self, space: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>>> {
        self.run(self.layout.record_get(space, key))
    }

    fn record_put<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: &'a Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> BoxFuture<'a, Result<u64>> {
        self.run(self.layout.record_put(space, key, value, expected_version, fencing_token))
    }

    fn record_delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool>> {
        self.run(self.layout.record_delete(space, key, expected_version))
    }

    fn sweep(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let removed = self.run(self.layout.sweep(self.now())).await?;
            self.expired_swept.fetch_add(removed, Ordering::Relaxed);
            Ok(removed)
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        Box::pin(async move {
            let entries = self.run(self.layout.entries()).await?;
            Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
        })
    }

    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>> {
        self.run(self.layout.inspect(self.now()))
    }
}
