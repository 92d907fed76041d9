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
    classify, client, command, config_get, fsync_verdict, no_longer_primary, reply, script_load, target,
    unanswered, with_wait, Target,
};
use super::cluster::{self, Carry, Carrying, SlotMap};
use super::cluster_url::Cluster;
use super::hosted::{HostedRedisStore, Transport};
use super::protocol::{Reply, Request, Wait};
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
/// request that failed on a connection is `timeout` (it may have run: the multiplexed
/// connection reports a request its task never wrote, the task having ended with the server's
/// close, and one whose reply the close lost with the same error), one that could not connect
/// is `backend_unavailable`.
pub type AsyncRedisStore = HostedRedisStore<RedisRsConnection>;

/// The transport of [`AsyncRedisStore`]: one multiplexed redis-rs connection, opened on first
/// use and again after a transport failure.
pub struct RedisRsConnection {
    /// For a cluster, each node's multiplexed connection (and its number, as `connection`'s).
    target: Target<(u64, MultiplexedConnection)>,
    /// The options the sentinels' and the primary's clients are made with.
    options: RedisOptions,
    config: AsyncConnectionConfig,
    /// The shared connection, and how many have been opened (to drop only the one that failed).
    connection: Mutex<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    /// A cluster node's connecting, one per node: a frozen or partitioned node, whose connecting
    /// lasts the whole timeout, holds up only the calls that go to it.
    connecting_to: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    opened: AtomicU64,
    /// Idle connections for writes that wait for replicas: `WAIT` blocks the connection it is
    /// sent on, so each such write has one to itself (taken from here, or opened) and never
    /// holds up the shared one.
    alone: Mutex<std::collections::HashMap<String, Vec<MultiplexedConnection>>>,
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
            connecting_to: Mutex::default(),
            opened: AtomicU64::new(0),
            alone: Mutex::default(),
            timeout: options.timeout,
            runtime: tokio::runtime::Handle::current(),
        };
        match &connection.target {
            Target::Cluster(cluster) => connection.read_slots(cluster).await?,
            _ => drop(connection.query(&redis::cmd("PING")).await?),
        }
        if options.require_fsync {
            let setting = |reply: Reply| match reply {
                Reply::Array(pair) => match pair.into_iter().nth(1) {
                    Some(Reply::Data(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                    _ => String::new(),
                },
                _ => String::new(),
            };
            for node in connection.walked().await? {
                let appendonly =
                    setting(connection.query_on(node.as_deref(), &config_get("appendonly")).await?);
                let appendfsync =
                    setting(connection.query_on(node.as_deref(), &config_get("appendfsync")).await?);
                fsync_verdict(&appendonly, &appendfsync)?;
            }
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
        let connection = self.connect(None).await?;
        let open = (self.opened.fetch_add(1, Ordering::Relaxed), connection);
        *self.connection.lock() = Some(open.clone());
        Ok(open)
    }

    /// The shared connection to cluster node `node`, opened on first use and after a transport
    /// failure.
    async fn node_connection(
        &self,
        cluster: &Cluster<(u64, MultiplexedConnection)>,
        node: &str,
    ) -> Result<(u64, MultiplexedConnection)> {
        if let Some(open) = cluster.nodes.lock().get(node).cloned() {
            return Ok(open);
        }
        let connecting = Arc::clone(self.connecting_to.lock().entry(node.to_owned()).or_default());
        let _connecting = connecting.lock().await;
        if let Some(open) = cluster.nodes.lock().get(node).cloned() {
            return Ok(open);
        }
        let open = (self.opened.fetch_add(1, Ordering::Relaxed), self.connect(Some(node)).await?);
        cluster.nodes.lock().insert(node.to_owned(), open.clone());
        Ok(open)
    }

    /// Reads the slot map from the first node that answers: the known primaries, then the seeds.
    async fn read_slots(&self, cluster: &Cluster<(u64, MultiplexedConnection)>) -> Result<()> {
        let mut last = None;
        let slots = command(&SlotMap::request());
        for node in cluster.nodes_to_ask() {
            match self
                .query_node(cluster, &node, &slots, false)
                .await
                .and_then(|reply| cluster.update(&node, reply))
            {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(cluster::no_map(last))
    }

    /// The nodes a walk visits: each primary of a cluster, or the one server (`None`).
    async fn walked(&self) -> Result<Vec<Option<String>>> {
        match &self.target {
            Target::Cluster(cluster) => {
                if cluster.is_stale() {
                    self.read_slots(cluster).await?;
                }
                Ok(cluster.primaries().into_iter().map(Some).collect())
            }
            _ => Ok(vec![None]),
        }
    }

    /// Sends one command to the cluster node `node` (after `ASKING`, in one pipeline, when
    /// `asking`: nothing of another task's comes between them on the shared connection). A
    /// transport failure drops that node's connection and makes the map doubtful.
    async fn query_node(
        &self,
        cluster: &Cluster<(u64, MultiplexedConnection)>,
        node: &str,
        cmd: &redis::Cmd,
        asking: bool,
    ) -> Result<Reply> {
        let (id, mut connection) = self.node_connection(cluster, node).await?;
        let started = std::time::Instant::now();
        let sent = if asking {
            let mut pipe = redis::pipe();
            pipe.cmd("ASKING").add_command(cmd.clone());
            connection
                .send_packed_commands(&pipe, 1, 1)
                .await
                .map(|mut replies| replies.pop().unwrap_or(redis::Value::Nil))
        } else {
            connection.send_packed_command(cmd).await
        };
        match sent {
            Ok(value) => Ok(reply(value)),
            Err(err) => match server_error(&err) {
                Some(reply) => Ok(reply),
                None => {
                    let mut nodes = cluster.nodes.lock();
                    if nodes.get(node).is_some_and(|(open, _)| *open == id) {
                        nodes.remove(node);
                    }
                    drop(nodes);
                    cluster.failed(node);
                    Err(unanswered(started))
                }
            },
        }
    }

    /// Carries one request to the cluster node that serves it, following the replies that prove
    /// it did not run there ([`Carrying`]); a script the node lacks is loaded there and the
    /// request sent again. A transport failure is returned, never sent again.
    async fn carry(
        &self,
        cluster: &Cluster<(u64, MultiplexedConnection)>,
        request: &Request,
        walked: Option<&str>,
    ) -> Result<Reply> {
        let started = tokio::time::Instant::now();
        let mut carrying = Carrying::new();
        loop {
            let (node, asking) = match carrying.redirected() {
                Some(to) => to,
                None => {
                    if cluster.map_needed(request, walked) {
                        self.read_slots(cluster).await?;
                    }
                    (cluster.node_for(request, walked)?, false)
                }
            };
            let mut reply = self.carry_to(cluster, &node, request, asking).await?;
            if let Some(script) = request.missing_script(&reply) {
                self.query_node(cluster, &node, &script_load(script), false).await?.into_result()?;
                reply = self.carry_to(cluster, &node, request, asking).await?;
            }
            match carrying.on_reply(request, &reply, started.elapsed(), self.timeout) {
                Carry::Answered => return Ok(reply),
                Carry::SendAgain { read_map } => {
                    if read_map {
                        cluster.doubt();
                    }
                }
                Carry::PauseThenSendAgain(pause) => tokio::time::sleep(pause).await,
                Carry::GiveUp(err) => return Err(err),
            }
        }
    }

    /// One sending of `request` to `node`: on the node's shared connection, or with its `WAIT` on
    /// one of its own.
    async fn carry_to(
        &self,
        cluster: &Cluster<(u64, MultiplexedConnection)>,
        node: &str,
        request: &Request,
        asking: bool,
    ) -> Result<Reply> {
        match &request.wait {
            None => self.query_node(cluster, node, &command(request), asking).await,
            Some(wait) => {
                let mut pipe = with_wait(&command(request), wait);
                if asking {
                    let mut asked = redis::pipe();
                    asked.cmd("ASKING");
                    for cmd in pipe.cmd_iter() {
                        asked.add_command(cmd.clone());
                    }
                    pipe = asked;
                }
                self.query_alone(Some(node), &pipe, usize::from(asking))
                    .await
                    .inspect_err(|_| cluster.failed(node))
            }
        }
    }

    /// A new connection to the server, to the primary the sentinels name, or to the cluster
    /// node `node`.
    async fn connect(&self, node: Option<&str>) -> Result<MultiplexedConnection> {
        match &self.target {
            Target::Server(client) => self.connect_to(client).await,
            Target::Cluster(cluster) => {
                let node =
                    node.ok_or_else(|| Error::unavailable("redis cluster: a request routed to no node"))?;
                self.connect_to(&client(&cluster.node_url(node), &self.options)?)
                    .await
                    .inspect_err(|_| cluster.failed(node))
            }
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

    /// Sends a request with its marker write and `WAIT` on a connection no other call uses
    /// meanwhile, and reads their replies. Dropped before the replies (the call cancelled), the
    /// connection is closed with it, never given back with replies still due.
    async fn query_alone(&self, node: Option<&str>, pipe: &redis::Pipeline, skip: usize) -> Result<Reply> {
        let pool = node.unwrap_or_default().to_owned();
        let idle = self.alone.lock().get_mut(&pool).and_then(Vec::pop);
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect(node).await?,
        };
        let started = std::time::Instant::now();
        match connection.send_packed_commands(pipe, skip, Wait::REPLIES).await {
            Ok(replies) => {
                let replies: Vec<Reply> = replies.into_iter().map(reply).collect();
                if replies.first().is_some_and(no_longer_primary) {
                    self.drop_every_connection();
                } else {
                    let mut alone = self.alone.lock();
                    let idle = alone.entry(pool).or_default();
                    if idle.len() < MAX_IDLE_ALONE {
                        idle.push(connection);
                    }
                }
                Ok(Reply::Array(replies))
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
                Err(unanswered(started))
            }
        }
    }

    /// Drops the shared connection and the idle ones: the next call connects afresh.
    fn drop_every_connection(&self) {
        *self.connection.lock() = None;
        self.alone.lock().clear();
        if let Target::Cluster(cluster) = &self.target {
            cluster.nodes.lock().clear();
            cluster.doubt();
        }
    }

    /// Sends one command and reads its reply; a transport failure, or a server that is no
    /// longer the primary, drops the connection it happened on, so the next call connects
    /// afresh.
    /// [`query`](Self::query) on the cluster node `node`, or on the one server for `None`.
    async fn query_on(&self, node: Option<&str>, cmd: &redis::Cmd) -> Result<Reply> {
        match (&self.target, node) {
            (Target::Cluster(cluster), Some(node)) => self.query_node(cluster, node, cmd, false).await,
            _ => self.query(cmd).await,
        }
    }

    async fn query(&self, cmd: &redis::Cmd) -> Result<Reply> {
        let (id, mut connection) = self.connection().await?;
        let started = std::time::Instant::now();
        let reply = match connection.send_packed_command(cmd).await {
            Ok(value) => reply(value),
            Err(err) => match server_error(&err) {
                Some(reply) => reply,
                None => {
                    if err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error() {
                        self.drop_connection(id);
                    }
                    return Err(unanswered(started));
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
        self.send_to(None, request)
    }

    fn send_to<'a>(&'a self, node: Option<&'a str>, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            if let Target::Cluster(cluster) = &self.target {
                return self.carry(cluster, request, node).await;
            }
            match &request.wait {
                None => self.query(&command(request)).await,
                Some(wait) => self.query_alone(None, &with_wait(&command(request), wait), 0).await,
            }
        })
    }

    fn walked_nodes(&self) -> BoxFuture<'_, Result<Vec<Option<String>>>> {
        Box::pin(self.walked())
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
