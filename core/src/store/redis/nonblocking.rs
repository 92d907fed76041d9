//! The async engine of the Redis store: one multiplexed redis-rs connection on the caller's
//! tokio runtime, carrying the protocol's requests ([`super::protocol`]) as the blocking engine
//! does, without a thread per call. The store itself is [`HostedRedisStore`] over this
//! connection, as it is over a Node service's client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};

use super::blocking::{
    classify, client, command, config_get, fsync_verdict, no_longer_primary, reply, target, with_wait, Target,
};
use super::hosted::{HostedRedisStore, Transport};
use super::protocol::{Reply, Request};
use super::sentinel::{self, SentinelUrl};
use super::RedisOptions;
use crate::aio::{BoxFuture, Spawner};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// The Redis store for tokio hosts ([`racefree::aio::RedisStore`](crate::aio::RedisStore)):
/// the same keys, scripts and answers as [`RedisStore`](super::RedisStore), on one multiplexed
/// connection that every task of the process shares (requests are pipelined on it; none waits
/// for another's reply).
///
/// A connection that fails in transport is dropped, and the next call connects afresh: the
/// store recovers from a server restart without being reopened. Nothing is sent twice: a
/// request whose reply was lost is reported (`timeout` or `backend_unavailable`).
pub type AsyncRedisStore = HostedRedisStore<RedisRsConnection>;

/// The transport of [`AsyncRedisStore`]: one multiplexed redis-rs connection, opened on first
/// use and again after a transport failure.
pub struct RedisRsConnection {
    target: Target,
    /// The options the sentinels' and the primary's clients are made with.
    options: RedisOptions,
    config: AsyncConnectionConfig,
    /// The shared connection, and how many have been opened (to drop only the one that failed).
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    opened: AtomicU64,
    /// Idle connections for writes that wait for replicas: `WAIT` blocks the connection it is
    /// sent on, so each such write has one to itself (taken from here, or opened) and never
    /// holds up the shared one.
    alone: Mutex<Vec<MultiplexedConnection>>,
    timeout: std::time::Duration,
    /// The runtime the store was opened on, where its primitives start their tasks (so that a
    /// call from outside any runtime does not panic looking for one).
    runtime: tokio::runtime::Handle,
}

impl HostedRedisStore<RedisRsConnection> {
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
        let target = target(url, &options)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout));
        let connection = RedisRsConnection {
            target,
            options: options.clone(),
            config,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            opened: AtomicU64::new(0),
            alone: Mutex::new(Vec::new()),
            timeout: options.timeout,
            runtime: tokio::runtime::Handle::current(),
        };
        connection.query(&redis::cmd("PING")).await?;
        if options.require_fsync {
            let setting = |reply: Reply| match reply {
                Reply::Array(pair) => match pair.into_iter().nth(1) {
                    Some(Reply::Data(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            let appendonly = setting(connection.query(&config_get("appendonly")).await?);
            let appendfsync = setting(connection.query(&config_get("appendfsync")).await?);
            fsync_verdict(&appendonly, &appendfsync)?;
        }
        Ok(HostedRedisStore::new(connection, &options.namespace, clock)?
            .with_replication(options.replication()))
    }
}

impl RedisRsConnection {
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
        let connection = self.connect().await?;
        let open = (self.opened.fetch_add(1, Ordering::Relaxed), connection);
        *self.connection.lock() = Some(open.clone());
        Ok(open)
    }

    /// A new connection to the server, or to the primary the sentinels name.
    async fn connect(&self) -> Result<MultiplexedConnection> {
        match &self.target {
            Target::Server(client) => self.connect_to(client).await,
            Target::Sentinel(url) => {
                let mut last = None;
                for sentinel in &url.sentinels {
                    match self.primary_through(url, sentinel).await {
                        Ok(connection) => return Ok(connection),
                        Err(err) => last = Some(err),
                    }
                }
                Err(sentinel::no_primary(url, last))
            }
        }
    }

    async fn connect_to(&self, client: &Client) -> Result<MultiplexedConnection> {
        client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|err| classify(&err, self.timeout))
    }

    /// A connection to the primary `sentinel` names, once it says itself that it is one.
    async fn primary_through(&self, url: &SentinelUrl, sentinel: &str) -> Result<MultiplexedConnection> {
        let mut asked = self.connect_to(&client(sentinel, &self.options)?).await?;
        let lookup = redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(&url.master).clone();
        let reply = asked.send_packed_command(&lookup).await.map_err(|e| classify(&e, self.timeout))?;
        let Some((host, port)) = sentinel::primary_address(&reply)? else {
            return Err(Error::unavailable(format!("{sentinel} monitors no master named {:?}", url.master)));
        };
        let mut connection = self.connect_to(&client(&url.primary_url(&host, port), &self.options)?).await?;
        let role = connection
            .send_packed_command(&redis::cmd("ROLE"))
            .await
            .map_err(|e| classify(&e, self.timeout))?;
        if !sentinel::is_primary(&role) {
            return Err(Error::unavailable(format!(
                "{sentinel} names {host}:{port}, which is not a primary"
            )));
        }
        Ok(connection)
    }

    /// Drops the shared connection `id`, if it is still the shared one: the next call connects
    /// afresh.
    fn drop_connection(&self, id: u64) {
        let mut shared = self.connection.lock();
        if shared.as_ref().is_some_and(|(open, _)| *open == id) {
            *shared = None;
        }
    }

    /// Sends a request and its `WAIT` on a connection no other call uses meanwhile, and reads
    /// the pair's replies. Dropped before the replies (the call cancelled), the connection is
    /// closed with it, never given back with replies still due.
    async fn query_alone(&self, pipe: &redis::Pipeline) -> Result<Reply> {
        let idle = self.alone.lock().pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match connection.send_packed_commands(pipe, 0, 2).await {
            Ok(pair) => {
                let pair: Vec<Reply> = pair.into_iter().map(reply).collect();
                if pair.first().is_some_and(no_longer_primary) {
                    self.drop_every_connection();
                } else {
                    let mut idle = self.alone.lock();
                    if idle.len() < MAX_IDLE_ALONE {
                        idle.push(connection);
                    }
                }
                Ok(Reply::Array(pair))
            }
            Err(err) => {
                // The server went away or failed over: the idle ones are no better.
                if err.is_io_error()
                    || err.is_connection_dropped()
                    || err.is_unrecoverable_error()
                    || err.is_timeout()
                {
                    self.drop_every_connection();
                }
                Err(classify(&err, self.timeout))
            }
        }
    }

    /// Drops the shared connection and the idle ones: the next call connects afresh.
    fn drop_every_connection(&self) {
        *self.connection.lock() = None;
        self.alone.lock().clear();
    }

    /// Sends one command and reads its reply; a transport failure, or a server that is no
    /// longer the primary, drops the connection it happened on, so the next call connects
    /// afresh.
    async fn query(&self, cmd: &redis::Cmd) -> Result<Reply> {
        let (id, mut connection) = self.connection().await?;
        let reply = match connection.send_packed_command(cmd).await {
            Ok(value) => reply(value),
            Err(err) => match server_error(&err) {
                Some(reply) => reply,
                None => {
                    if err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error() {
                        self.drop_connection(id);
                    }
                    return Err(classify(&err, self.timeout));
                }
            },
        };
        if no_longer_primary(&reply) {
            self.drop_connection(id);
        }
        Ok(reply)
    }
}

/// Idle connections kept for writes that wait for replicas (one per such write in flight).
const MAX_IDLE_ALONE: usize = 64;

impl Transport for RedisRsConnection {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            match request.wait {
                None => self.query(&command(request)).await,
                Some(wait) => self.query_alone(&with_wait(&command(request), wait)).await,
            }
        })
    }

    fn spawner(&self) -> Spawner {
        let runtime = self.runtime.clone();
        Arc::new(move |task| drop(runtime.spawn(task)))
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
