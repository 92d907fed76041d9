//! The blocking engine of the Redis store: options, a pool of synchronous connections, TLS, and
//! the carrying of the protocol's requests ([`super::protocol`]) over them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{Client, Connection, ConnectionLike, RedisError};
use serde_json::Value;

use super::cluster::{self, Carry, Carrying, SlotMap};
use super::cluster_url::{Cluster, ClusterUrl};
use super::protocol::{Command, Layout, Now, Replication, Reply, Request, Script, Step, Wait};
use super::sentinel::{self, SentinelUrl};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::fork::OpenedIn;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, Store, StoreStats, Versioned};

/// Connections kept open for reuse; more are opened under load and closed when returned.
const MAX_IDLE: usize = 64;

/// Options of a [`RedisStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefixes every key: stores with different namespaces share a server without sharing keys.
    pub namespace: String,
    /// How long connecting, or one request, may take before failing with `timeout`.
    pub timeout: Duration,
    /// Refuse to open unless the server runs `appendonly yes` with `appendfsync always`: every
    /// acknowledged index and token is on disk before the reply, so a server crash can't issue
    /// one twice. With `everysec` (Redis' default for AOF) a crash can lose the last second and a
    /// counter can go backwards. Off by default: the server's configuration is the operator's call.
    pub require_fsync: bool,
    /// `rediss://` only: the CA certificate (PEM file) to verify the server with, instead of the
    /// system's trust store.
    pub tls_ca: Option<std::path::PathBuf>,
    /// `rediss://` only: a client certificate and its key (PEM files), for servers that
    /// authenticate clients (`tls-auth-clients yes`, Redis' default).
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Replicas that must acknowledge each write (`WAIT`) before it counts; 0 (the default)
    /// waits for none. See [`Replication`] for what a write fewer acknowledged returns.
    pub replicas: u32,
    /// How long a write waits for its replicas (default 1 s; below `timeout`).
    pub replicas_timeout: Duration,
}

impl RedisOptions {
    /// These options with the given namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// These options with the given connect and request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options requiring (or not) a server that fsyncs every write.
    #[must_use]
    pub fn with_require_fsync(mut self, require: bool) -> Self {
        self.require_fsync = require;
        self
    }

    /// These options with each write waiting until `replicas` replicas acknowledged it, for up
    /// to `timeout` (checked when the store opens: at least 1 ms, below the request timeout).
    #[must_use]
    pub fn with_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replicas = replicas;
        self.replicas_timeout = timeout;
        self
    }

    /// What each write waits for, if anything.
    pub(super) fn replication(&self) -> Option<Replication> {
        (self.replicas > 0).then(|| Replication {
            replicas: self.replicas,
            timeout_ms: u64::try_from(self.replicas_timeout.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            timeout: crate::validate::DEFAULT_SERVER_TIMEOUT,
            require_fsync: false,
            tls_ca: None,
            tls_client: None,
            replicas: 0,
            replicas_timeout: Duration::from_millis(Replication::DEFAULT_TIMEOUT_MS),
        }
    }
}

/// The Redis store. Cheap to share between threads: each call borrows one pooled connection
/// (opening one when none is idle), so N threads make N concurrent requests.
pub struct RedisStore {
    target: Target,
    idle: Mutex<Vec<Connection>>,
    /// A child after `fork()` drops the inherited connections and opens its own (see [`OpenedIn`]).
    opened_in: OpenedIn,
    clock: SharedClock,
    /// Deadlines are judged by `clock` (passed to each script) instead of the server's `TIME`.
    judge_by_clock: bool,
    options: RedisOptions,
    /// The keys of this namespace, and the requests of every operation on them.
    layout: Layout,
    expired_swept: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.target)
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.judge_by_clock)
            .finish_non_exhaustive()
    }
}

/// The checks of `url` and `options` that need no server: namespace, timeout, TLS options only
/// with `rediss://`, and a URL the client can read.
pub(crate) fn check_options(url: &str, options: &RedisOptions) -> Result<()> {
    use redis::IntoConnectionInfo as _;

    crate::validate::server_options("redis", &options.namespace, options.timeout)?;
    if options.replicas > 0
        && (options.replicas_timeout < Duration::from_millis(1)
            || options.replicas_timeout >= options.timeout)
    {
        return Err(Error::invalid_argument(format!(
            "redis: replicas_timeout_ms must be at least 1 and below timeout_ms ({} ms), got {} ms \
             (a write waits that long for its replicas, within one request)",
            options.timeout.as_millis(),
            options.replicas_timeout.as_millis()
        )));
    }
    let tls = url.starts_with("rediss://")
        || url.starts_with("rediss+sentinel://")
        || url.starts_with("rediss+cluster://");
    if !tls && (options.tls_ca.is_some() || options.tls_client.is_some()) {
        return Err(Error::invalid_argument(
            "TLS options need a rediss://, rediss+sentinel:// or rediss+cluster:// URL",
        ));
    }
    if SentinelUrl::parse(url)?.is_some() || ClusterUrl::parse(url)?.is_some() {
        return Ok(());
    }
    url.into_connection_info().map_err(|e| Error::invalid_argument(format!("bad redis URL {url:?}: {e}")))?;
    Ok(())
}

/// Where a Redis store's connections go: one server, the primary its sentinels name (asked anew
/// for every new connection, see [`super::sentinel`]), or the primaries of a cluster.
pub(super) enum Target<P = Vec<Connection>> {
    Server(Client),
    Sentinel(SentinelUrl),
    /// A cluster, with the connections `P` each engine keeps per node.
    Cluster(Cluster<P>),
}

impl<P> std::fmt::Debug for Target<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Server(client) => write!(f, "{}", client.get_connection_info().addr()),
            Target::Sentinel(url) => write!(f, "{:?} through sentinels {:?}", url.master, url.sentinels),
            Target::Cluster(cluster) => write!(f, "{cluster:?}"),
        }
    }
}

/// The target of `url`: a server, a Sentinel group, or a cluster.
pub(super) fn target<P>(url: &str, options: &RedisOptions) -> Result<Target<P>> {
    check_options(url, options)?;
    if let Some(url) = ClusterUrl::parse(url)? {
        return Ok(Target::Cluster(Cluster::new(url)));
    }
    Ok(match SentinelUrl::parse(url)? {
        Some(sentinels) => Target::Sentinel(sentinels),
        None => Target::Server(client(url, options)?),
    })
}

/// Whether a reply says the server stopped being the primary (`READONLY`: demoted to a replica
/// by a failover; `MASTERDOWN`: a replica cut off from its primary). The request did not run;
/// the store drops its connections so that the next one finds the primary.
pub(super) fn no_longer_primary(reply: &Reply) -> bool {
    matches!(reply, Reply::Error { code, .. } if code == "READONLY" || code == "MASTERDOWN")
}

/// A request that failed in transport as a racefree error: `timeout` when the server did not
/// answer in time, `backend_unavailable` for everything else (refused, dropped). (A server's
/// error reply is a [`Reply::Error`], decoded by the protocol.)
pub(super) fn classify(err: &RedisError, timeout: Duration) -> Error {
    if err.is_timeout() {
        Error::Timeout { waited: timeout }
    } else {
        Error::unavailable_because(format!("redis: {err}"), err.clone())
    }
}

/// A request written (or handed to a connection that may have written it) whose reply never
/// came, sent at `started`: `timeout`, the outcome unknown, whatever the client's error.
pub(super) fn unanswered(started: Instant) -> Error {
    Error::Timeout { waited: started.elapsed() }
}

/// The client's value as the protocol's reply (RESP3's richer types folded into RESP2's).
pub(super) fn reply(value: redis::Value) -> Reply {
    use redis::Value as V;
    match value {
        V::Nil => Reply::Nil,
        V::Int(n) => Reply::Int(n),
        V::BulkString(bytes) => Reply::Data(bytes),
        V::SimpleString(text) => Reply::Status(text),
        V::Okay => Reply::Status("OK".to_owned()),
        V::Array(items) | V::Set(items) => Reply::Array(items.into_iter().map(reply).collect()),
        V::Map(pairs) => Reply::Array(pairs.into_iter().flat_map(|(k, v)| [reply(k), reply(v)]).collect()),
        V::Boolean(b) => Reply::Int(i64::from(b)),
        V::ServerError(error) => Reply::Error {
            code: error.code().to_owned(),
            message: error.details().unwrap_or_default().to_owned(),
        },
        other => Reply::Data(format!("{other:?}").into_bytes()),
    }
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS) and checks that it answers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL, namespace or unreadable certificate file;
    /// [`Error::BackendUnavailable`] when the server cannot be reached or its certificate is not
    /// trusted; [`Error::Timeout`] when it does not answer within the timeout.
    pub fn open(url: &str, clock: SharedClock, options: RedisOptions) -> Result<Self> {
        let store = Self {
            target: target(url, &options)?,
            idle: Mutex::new(Vec::new()),
            opened_in: OpenedIn::this_process(),
            judge_by_clock: !clock.is_wall_clock(),
            clock,
            layout: Layout::new(&options.namespace).with_replication(options.replication()),
            options,
            expired_swept: AtomicU64::new(0),
        };
        match &store.target {
            Target::Cluster(cluster) => store.read_slots(cluster)?,
            _ => store.call(|conn| Ok(redis::cmd("PING").query::<()>(conn)?))?,
        }
        if store.options.require_fsync {
            store.check_fsync()?;
        }
        Ok(store)
    }

    /// Every primary's fsync settings (a cluster's each; one server's).
    fn check_fsync(&self) -> Result<()> {
        for node in self.primaries()? {
            let config = |name: &'static str| {
                self.call_on(node.as_deref(), |conn| Ok(config_get(name).query::<Vec<String>>(conn)?))
                    .map(|pair| pair.get(1).cloned().unwrap_or_default())
            };
            fsync_verdict(&config("appendonly")?, &config("appendfsync")?)?;
        }
        Ok(())
    }

    /// The nodes a walk of the whole namespace visits: each primary of a cluster (`Some`), or
    /// the one server (`None`).
    fn primaries(&self) -> Result<Vec<Option<String>>> {
        match &self.target {
            Target::Cluster(cluster) => {
                if cluster.is_stale() {
                    self.read_slots(cluster)?;
                }
                Ok(cluster.primaries().into_iter().map(Some).collect())
            }
            _ => Ok(vec![None]),
        }
    }

    /// Reads the slot map from the first node that answers: the known primaries, then the seeds.
    fn read_slots(&self, cluster: &Cluster<Vec<Connection>>) -> Result<()> {
        let mut last = None;
        for node in cluster.nodes_to_ask() {
            let reply = self.call_on(Some(&node), |conn| send(conn, &SlotMap::request()));
            match reply.and_then(|reply| cluster.update(&node, reply)) {
                Ok(()) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        Err(cluster::no_map(last))
    }

    /// Runs one request on a pooled connection. A connection that failed at the transport level
    /// is dropped with every idle one (after a server restart they are all dead); the next call
    /// connects afresh, so the store recovers without being reopened.
    fn call<T>(&self, request: impl FnOnce(&mut Connection) -> Carried<T>) -> Result<T> {
        self.call_on(None, request)
    }

    /// [`call`](RedisStore::call) on a connection to the cluster node `node` (`host:port`), or,
    /// for `None`, to the one server or primary.
    fn call_on<T>(
        &self,
        node: Option<&str>,
        request: impl FnOnce(&mut Connection) -> Carried<T>,
    ) -> Result<T> {
        if self.opened_in.moved() {
            // Dropping closes this process's copies of the sockets and sends nothing: the sync
            // connection has no goodbye of its own, rustls sends no close_notify unasked, and
            // the parent still holds the sockets, so not even a FIN goes out.
            drop(std::mem::take(&mut *self.idle.lock()));
            if let Target::Cluster(cluster) = &self.target {
                drop(std::mem::take(&mut *cluster.nodes.lock()));
            }
            self.opened_in.settled();
        }
        let idle = match (node, &self.target) {
            (Some(node), Target::Cluster(cluster)) => cluster.nodes.lock().get_mut(node).and_then(Vec::pop),
            _ => self.idle.lock().pop(),
        };
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect(node).inspect_err(|_| {
                if let (Some(node), Target::Cluster(cluster)) = (node, &self.target) {
                    // The node is down or gone (failed over): read the map again.
                    cluster.failed(node);
                }
            })?,
        };
        let started = Instant::now();
        match request(&mut conn) {
            Ok(value) => {
                self.give_back(node, conn);
                Ok(value)
            }
            Err(failure) => {
                let (err, written) = match failure {
                    Failure::NotSent(err) => (err, false),
                    Failure::Unanswered(err) => (err, true),
                };
                if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || !conn.is_open() {
                    match (node, &self.target) {
                        (Some(node), Target::Cluster(cluster)) => {
                            cluster.nodes.lock().remove(node);
                            // The node may be gone for good (failed over): read the map again.
                            cluster.failed(node);
                        }
                        _ => self.idle.lock().clear(),
                    }
                } else {
                    self.give_back(node, conn);
                }
                if written && !err.is_timeout() {
                    // The request is on the wire and its reply is lost (a reset, an EOF): it may
                    // have run, as after any timeout. A pooled connection the server closed
                    // while idle ends here too on its first request: the client cannot tell
                    // that close from one after the write.
                    return Err(unanswered(started));
                }
                Err(classify(&err, self.options.timeout))
            }
        }
    }

    fn give_back(&self, node: Option<&str>, conn: Connection) {
        if let (Some(node), Target::Cluster(cluster)) = (node, &self.target) {
            let mut pools = cluster.nodes.lock();
            let idle = pools.entry(node.to_owned()).or_default();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn connect(&self, node: Option<&str>) -> Result<Connection> {
        match &self.target {
            Target::Server(client) => self.connect_to(client),
            Target::Cluster(cluster) => {
                let node =
                    node.ok_or_else(|| Error::unavailable("redis cluster: a request routed to no node"))?;
                self.connect_to(&client(&cluster.node_url(node), &self.options)?)
            }
            Target::Sentinel(url) => {
                let mut last = None;
                for sentinel in &url.sentinels {
                    match self.primary_through(url, sentinel) {
                        Ok(conn) => return Ok(conn),
                        Err(err) => last = Some(err),
                    }
                }
                Err(sentinel::no_primary(url, last))
            }
        }
    }

    fn connect_to(&self, client: &Client) -> Result<Connection> {
        let timeout = self.options.timeout;
        let conn = client.get_connection_with_timeout(timeout).map_err(|e| classify(&e, timeout))?;
        conn.set_read_timeout(Some(timeout)).map_err(|e| classify(&e, timeout))?;
        conn.set_write_timeout(Some(timeout)).map_err(|e| classify(&e, timeout))?;
        Ok(conn)
    }

    /// A connection to the primary `sentinel` names, once it says itself that it is one.
    fn primary_through(&self, url: &SentinelUrl, sentinel: &str) -> Result<Connection> {
        let timeout = self.options.timeout;
        let mut asked = self.connect_to(&client(sentinel, &self.options)?)?;
        let reply = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&url.master)
            .query::<redis::Value>(&mut asked)
            .map_err(|e| classify(&e, timeout))?;
        let Some((host, port)) = sentinel::primary_address(&reply)? else {
            return Err(Error::unavailable(format!("{sentinel} monitors no master named {:?}", url.master)));
        };
        let mut conn = self.connect_to(&client(&url.primary_url(&host, port), &self.options)?)?;
        let role = redis::cmd("ROLE").query::<redis::Value>(&mut conn).map_err(|e| classify(&e, timeout))?;
        if !sentinel::is_primary(&role) {
            return Err(Error::unavailable(format!(
                "{sentinel} names {host}:{port}, which is not a primary"
            )));
        }
        Ok(conn)
    }

    /// Runs an operation to its end on one pooled connection: each request the protocol plans
    /// is sent, and its reply handed back to it.
    fn run<T>(&self, step: Step<T>) -> Result<T> {
        self.run_on(None, step)
    }

    /// [`run`](RedisStore::run) with the requests that have no key (a walk's `SCAN`) sent to the
    /// cluster node `walked`; on one server, `None`.
    fn run_on<T>(&self, walked: Option<&str>, mut step: Step<T>) -> Result<T> {
        if let Target::Cluster(cluster) = &self.target {
            loop {
                match step {
                    Step::Done(result) => return result,
                    Step::Send(request, then) => step = then(self.carry(cluster, &request, walked)?),
                }
            }
        }
        loop {
            match step {
                Step::Done(result) => return result,
                Step::Send(request, then) => {
                    let reply = self.call(|conn| send(conn, &request))?;
                    if request.own_reply(&reply).is_some_and(no_longer_primary) {
                        self.idle.lock().clear();
                    }
                    step = then(reply);
                }
            }
        }
    }

    /// Carries one request to the cluster node that serves it, following the replies that prove
    /// it did not run there ([`cluster::redirection`]); a transport failure is returned, never
    /// sent again (its outcome is unknown).
    fn carry(
        &self,
        cluster: &Cluster<Vec<Connection>>,
        request: &Request,
        walked: Option<&str>,
    ) -> Result<Reply> {
        let started = Instant::now();
        let mut carrying = Carrying::new();
        loop {
            let (node, asking) = match carrying.redirected() {
                Some(to) => to,
                None => (self.route(cluster, request, walked)?, false),
            };
            let reply = self.call_on(Some(&node), |conn| {
                if asking {
                    conn.req_command(&redis::cmd("ASKING"))?;
                }
                send(conn, request)
            })?;
            match carrying.on_reply(request, &reply, started.elapsed(), self.options.timeout) {
                Carry::Answered => return Ok(reply),
                Carry::SendAgain { read_map } => {
                    if read_map {
                        cluster.doubt();
                    }
                }
                Carry::PauseThenSendAgain(pause) => std::thread::sleep(pause),
                Carry::GiveUp(err) => return Err(err),
            }
        }
    }

    /// The node `request` goes to: the walked node for a request without keys, otherwise the
    /// primary of its slot (the map read again first when it is doubtful).
    fn route(
        &self,
        cluster: &Cluster<Vec<Connection>>,
        request: &Request,
        walked: Option<&str>,
    ) -> Result<String> {
        if cluster.map_needed(request, walked) {
            self.read_slots(cluster)?;
        }
        cluster.node_for(request, walked)
    }

    /// Runs a walk of the whole namespace on every primary and combines what each found.
    fn run_everywhere<T>(&self, walk: impl Fn() -> Step<T>, combine: impl Fn(T, T) -> T) -> Result<T> {
        let mut total: Option<T> = None;
        for node in self.primaries()? {
            let found = self.run_on(node.as_deref(), walk())?;
            total = Some(match total {
                Some(so_far) => combine(so_far, found),
                None => found,
            });
        }
        total.ok_or_else(|| Error::unavailable("redis: no primary to walk"))
    }

    /// What the scripts judge time by.
    fn now(&self) -> Now {
        Now { local_ms: self.clock.now_ms(), judge_by_local: self.judge_by_clock }
    }
}

/// What a request closure of [`RedisStore::call`] returns.
type Carried<T> = std::result::Result<T, Failure>;

/// A request that failed in transport, and whether it may have run.
enum Failure {
    /// Nothing of the request is known to have reached the server (a failed write, or not one
    /// of the protocol's requests): classified by [`classify`].
    NotSent(RedisError),
    /// Written, then no reply: `timeout` (the outcome unknown), whatever the client's error.
    Unanswered(RedisError),
}

impl From<RedisError> for Failure {
    fn from(err: RedisError) -> Self {
        Failure::NotSent(err)
    }
}

/// Sends one request and reads its reply. A script goes by `EVALSHA`; when the server lacks it
/// (`NOSCRIPT`: a restarted or failed-over server starts with an empty script cache) it is
/// loaded and sent again. A transport failure is the `Err`; a server's error reply is a reply.
///
/// A request with a [`wait`](Request::wait) goes with its [`Wait::requests`] as one pipeline on
/// this connection, which no other caller uses meanwhile; the reply is the array of the three.
///
/// The request is written, then its replies read, so that a failure says whether it may have
/// run: a write the kernel refused sent nothing (one write of a few hundred bytes goes whole or
/// not at all), a failure after it is [`Failure::Unanswered`].
fn send(conn: &mut Connection, request: &Request) -> Carried<Reply> {
    let command = command(request);
    let packed = match &request.wait {
        None => command.get_packed_command(),
        // Sent raw, not by `Pipeline::query`: an error reply stays the write's own item.
        Some(wait) => with_wait(&command, wait).get_packed_pipeline(),
    };
    let carry = |conn: &mut Connection| -> Carried<Reply> {
        conn.send_packed_command(&packed)?;
        match request.wait {
            None => next_reply(conn),
            Some(_) => (0..Wait::REPLIES).map(|_| next_reply(conn)).collect::<Carried<_>>().map(Reply::Array),
        }
    };
    let first = carry(conn)?;
    match request.missing_script(&first) {
        Some(script) => {
            conn.req_command(&script_load(script))?;
            carry(conn)
        }
        None => Ok(first),
    }
}

/// The next reply on `conn`, after a request was written on it.
fn next_reply(conn: &mut Connection) -> Carried<Reply> {
    loop {
        match conn.recv_response().map_err(Failure::Unanswered)? {
            // RESP3 pushes are not replies.
            redis::Value::Push { .. } => {}
            value => return Ok(reply(value)),
        }
    }
}

/// `command`, then the [`Wait::requests`] (a marker write and `WAIT`), as one pipeline.
pub(super) fn with_wait(command: &redis::Cmd, wait: &Wait) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.add_command(command.clone());
    for then in wait.requests() {
        pipe.add_command(self::command(&then));
    }
    pipe
}

/// The command that carries `request`: `EVALSHA` for a script, the command itself otherwise.
pub(super) fn command(request: &Request) -> redis::Cmd {
    // Sized up front, as redis-rs sizes its own script calls: grown argument by argument, the
    // command's buffers were reallocated several times per call (measured with callgrind).
    let command = |name: &str, head: &[&str]| {
        let parts = 1 + head.len() + request.keys.len() + request.args.len();
        let bytes = name.len()
            + head.iter().map(|part| part.len()).sum::<usize>()
            + request.keys.iter().chain(&request.args).map(String::len).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(parts, bytes);
        cmd.arg(name).arg(head).arg(&request.keys).arg(&request.args);
        cmd
    };
    match request.command {
        Command::Plain(name) => command(name, &[]),
        Command::Script(script) => command("EVALSHA", &[&script.sha1, &request.keys.len().to_string()]),
    }
}

/// `SCRIPT LOAD` of a script the server answered `NOSCRIPT` for.
pub(super) fn script_load(script: &Script) -> redis::Cmd {
    let mut cmd = redis::cmd("SCRIPT");
    cmd.arg("LOAD").arg(&script.text);
    cmd
}

/// `CONFIG GET name`.
pub(super) fn config_get(name: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg(name);
    cmd
}

/// `require_fsync`'s check of the server's `appendonly` and `appendfsync`.
pub(super) fn fsync_verdict(appendonly: &str, appendfsync: &str) -> Result<()> {
    if appendonly == "yes" && appendfsync == "always" {
        return Ok(());
    }
    Err(Error::unavailable(format!(
        "redis: require_fsync needs `appendonly yes` and `appendfsync always`; the server runs \
         appendonly {appendonly:?}, appendfsync {appendfsync:?}"
    )))
}

/// The redis-rs client of `url` (one server), with TLS for `rediss://`.
pub(super) fn client(url: &str, options: &RedisOptions) -> Result<Client> {
    check_options(url, options)?;
    let bad_url = |e: RedisError| Error::invalid_argument(format!("bad redis URL {url:?}: {e}"));
    if url.starts_with("rediss://") {
        crate::store::tls::install_crypto_provider();
        Client::build_with_tls(url, tls_certificates(options)?).map_err(bad_url)
    } else {
        Client::open(url).map_err(bad_url)
    }
}

/// The CA and client certificates named by the options, read from their PEM files.
fn tls_certificates(options: &RedisOptions) -> Result<redis::TlsCertificates> {
    use crate::store::tls::read_file;
    let client_tls = match &options.tls_client {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read_file("tls_cert", cert)?,
            client_key: read_file("tls_key", key)?,
        }),
        None => None,
    };
    let root_cert = options.tls_ca.as_deref().map(|ca| read_file("tls_ca", ca)).transpose()?;
    Ok(redis::TlsCertificates { client_tls, root_cert })
}

impl Store for RedisStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        self.run(self.layout.counter_next(counter))
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        self.run(self.layout.counter_claim(counter, id))
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        self.run(self.layout.counter_index_of(counter, id))
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        self.run(self.layout.counter_peek(counter))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        self.run(self.layout.counter_set(counter, next))
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.run(self.layout.counter_reset(counter))
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        // A request id per call: a host that resends it (after a lost reply) gets the same answer.
        self.run(self.layout.guard_mark(
            guard,
            stream,
            position,
            retention_ms,
            self.now(),
            &crate::store::request_id()?,
        ))
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        self.run(self.layout.guard_marked(guard, stream, self.now()))
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        self.run(self.layout.guard_forget(guard, stream, self.now()))
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        // Read before the request: the deadline this handle reports is never later than the server's.
        self.run(self.layout.lease_try_grant(lock, key, ttl_ms, self.now(), &crate::store::request_id()?))
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        self.run(self.layout.lease_renew(lock, key, token, ttl_ms, self.now()))
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        self.run(self.layout.lease_release(lock, key, token, self.now()))
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        self.run(self.layout.lease_holder(lock, key, self.now()))
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        self.run(self.layout.record_get(space, key))
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        self.run(self.layout.record_put(
            space,
            key,
            value,
            expected_version,
            fencing_token,
            &crate::store::request_id()?,
        ))
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        self.run(self.layout.record_delete(space, key, expected_version))
    }

    fn sweep(&self) -> Result<u64> {
        let now = self.now();
        let removed = self.run_everywhere(|| self.layout.sweep(now), |a, b| a + b)?;
        self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn stats(&self) -> Result<StoreStats> {
        let entries = self.run_everywhere(|| self.layout.entries(), |a, b| a + b)?;
        Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
    }

    fn inspect(&self) -> Result<Inventory> {
        let now = self.now();
        self.run_everywhere(|| self.layout.inspect(now), Inventory::merge)
    }
}
