//! The Redis store for an async host that carries the protocol's requests with a client of its
//! own (a Node service's ioredis or node-redis): the host sends bytes, the core plans and decodes.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::protocol::{Layout, Now, Replication, Reply, Request, Step};
use crate::aio::{BoxFuture, Spawner};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::{Claim, Inventory, LeaseGrant, MarkOutcome, StoreStats, Versioned};

/// How a host sends one request with its own client.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` — `EVALSHA <sha1> <keys> <args>` for a script, else the plain command
    /// with its keys and arguments — and returns its reply. A server's error reply is
    /// [`Reply::Error`] (so `NOSCRIPT` reaches the store, which loads the script and sends the
    /// request again); a failure of the transport is an `Err`: `backend_unavailable`, or
    /// `timeout` when the request may have run.
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply>>;

    /// How the host starts a task of its own (see [`crate::aio::Store::spawner`]).
    fn spawner(&self) -> Spawner;

    /// Whether the host runs every operation's future to its end (see
    /// [`crate::aio::Store::runs_to_completion`]; a JavaScript event loop). Default `false`.
    fn runs_to_completion(&self) -> bool {
        false
    }

    /// The nodes a walk of the whole namespace (`sweep`, `stats`, `inspect`) visits, each as
    /// [`send_to`](Transport::send_to) takes it: a cluster's primaries; one server's `[None]`
    /// (the default).
    fn walked_nodes(&self) -> BoxFuture<'_, Result<Vec<Option<String>>>> {
        Box::pin(async { Ok(vec![None]) })
    }

    /// [`send`](Transport::send), with a request that has no key (a walk's `SCAN`) sent to
    /// `node`, one of [`walked_nodes`](Transport::walked_nodes). The default sends it as `send`.
    fn send_to<'a>(&'a self, node: Option<&'a str>, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        let _ = node;
        self.send(request)
    }
}

/// The Redis store over a host's [`Transport`]: every operation the protocol's requests, with the
/// same keys, scripts and replies as [`crate::RedisStore`], so processes in any language share
/// one namespace.
pub struct HostedRedisStore<T> {
    transport: T,
    layout: Layout,
    namespace: String,
    clock: SharedClock,
    expired_swept: AtomicU64,
}

impl<T> std::fmt::Debug for HostedRedisStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedRedisStore").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl<T: Transport> HostedRedisStore<T> {
    /// A store in `namespace` over `transport`. `clock` is what deadlines are reported on: with
    /// a wall clock ([`crate::Clock::is_wall_clock`]) the scripts judge by the server's `TIME`,
    /// as with `redis://` URLs; any other clock (a test's manual one) judges them itself.
    ///
    /// # Errors
    /// `invalid_argument` for a namespace that is not a valid key.
    pub fn new(transport: T, namespace: &str, clock: SharedClock) -> Result<Self> {
        if !namespace.is_empty() {
            crate::validate::key("namespace", namespace)?;
        }
        Ok(Self {
            transport,
            layout: Layout::new(namespace),
            namespace: namespace.to_owned(),
            clock,
            expired_swept: AtomicU64::new(0),
        })
    }

    /// Sends one request; a script the server does not have (`NOSCRIPT`: after a restart or a
    /// failover its cache is empty) is loaded and the request sent again.
    async fn send(&self, walked: Option<&str>, request: &Request) -> Result<Reply> {
        let reply = self.transport.send_to(walked, request).await?;
        match request.missing_script(&reply) {
            Some(script) => {
                self.transport.send_to(walked, &Request::script_load(script)).await?.into_result()?;
                self.transport.send_to(walked, request).await
            }
            None => Ok(reply),
        }
    }

    /// This store with every write waiting for `replication` ([`Layout::with_replication`]); the
    /// transport must then carry what follows each write as [`Request::wait`] says.
    #[must_use]
    pub fn with_replication(mut self, replication: Option<Replication>) -> Self {
        self.layout = self.layout.with_replication(replication);
        self
    }

    /// Runs an operation to its end: each request the protocol plans is sent, and its reply
    /// handed back to it.
    fn run<R: Send + 'static>(&self, step: Step<R>) -> BoxFuture<'_, Result<R>> {
        self.run_on(None, step)
    }

    /// [`run`](Self::run) of the operation `plan` makes with a request id of its own: a client
    /// that resends its request (ioredis after a reconnect, a cluster client after a closed
    /// connection) gets the same answer.
    fn run_identified<R: Send + 'static>(
        &self,
        plan: impl FnOnce(&str) -> Step<R>,
    ) -> BoxFuture<'_, Result<R>> {
        self.run(crate::store::request_id().map_or_else(|err| Step::Done(Err(err)), |id| plan(&id)))
    }

    /// [`run`](Self::run) with the requests that have no key sent to the walked node `walked`.
    fn run_on<'a, R: Send + 'static>(
        &'a self,
        walked: Option<&'a str>,
        mut step: Step<R>,
    ) -> BoxFuture<'a, Result<R>> {
        Box::pin(async move {
            loop {
                match step {
                    Step::Done(result) => return result,
                    Step::Send(request, then) => step = then(self.send(walked, &request).await?),
                }
            }
        })
    }

    /// Runs a walk of the whole namespace on every node the transport names, and combines what
    /// each found.
    async fn run_everywhere<R: Send + 'static>(
        &self,
        walk: impl Fn() -> Step<R>,
        combine: impl Fn(R, R) -> R,
    ) -> Result<R> {
        let mut total: Option<R> = None;
        for node in self.transport.walked_nodes().await? {
            let found = self.run_on(node.as_deref(), walk()).await?;
            total = Some(match total {
                Some(so_far) => combine(so_far, found),
                None => found,
            });
        }
        total.ok_or_else(|| crate::error::Error::unavailable("redis: no node to walk"))
    }

    fn now(&self) -> Now {
        Now { local_ms: self.clock.now_ms(), judge_by_local: !self.clock.is_wall_clock() }
    }
}

impl<T: Transport> crate::aio::Store for HostedRedisStore<T> {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn spawner(&self) -> Spawner {
        self.transport.spawner()
    }

    fn runs_to_completion(&self) -> bool {
        self.transport.runs_to_completion()
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
        self.run_identified(|id| {
            self.layout.guard_mark(guard, stream, position, retention_ms, self.now(), id)
        })
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
        self.run_identified(|id| self.layout.lease_try_grant(lock, key, ttl_ms, self.now(), id))
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
        self.run_identified(|id| {
            self.layout.record_put(space, key, value, expected_version, fencing_token, id)
        })
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
            let now = self.now();
            let removed = self.run_everywhere(|| self.layout.sweep(now), |a, b| a + b).await?;
            self.expired_swept.fetch_add(removed, Ordering::Relaxed);
            Ok(removed)
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<StoreStats>> {
        Box::pin(async move {
            let entries = self.run_everywhere(|| self.layout.entries(), |a, b| a + b).await?;
            Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
        })
    }

    fn inspect(&self) -> BoxFuture<'_, Result<Inventory>> {
        Box::pin(async move {
            let now = self.now();
            self.run_everywhere(|| self.layout.inspect(now), Inventory::merge).await
        })
    }
}
