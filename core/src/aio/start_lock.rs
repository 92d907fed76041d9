//! [`crate::StartLock`] and its [`Lease`] as futures, with grants that survive their caller.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::SharedStore;
use crate::acquisition::Acquisition;
use crate::error::{Error, Result};
use crate::start_lock::LockStatsInner;
use crate::store::LeaseGrant;
use crate::validate;
use crate::LockStats;

/// [`crate::StartLock`] whose operations are futures: the same leases, tokens, methods and errors.
///
/// A grant is finished by a task of its own on a remote store, so that a caller dropped while
/// its grant is in flight leaves no lease behind (see [`try_start`](StartLock::try_start)).
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// use std::time::Duration;
/// let store = racefree::aio::open("memory://").await?;
/// let tasks = racefree::aio::StartLock::new(&store, "tasks")?;
/// let lease = tasks.acquire("report:7", Duration::from_secs(30), Duration::from_secs(1)).await?;
/// assert!(tasks.is_held("report:7").await?);
/// lease.release().await?;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))] fn main() {} // the example needs tokio's runtime
/// ```
#[derive(Clone)]
pub struct StartLock {
    store: SharedStore,
    name: Arc<str>,
    stats: Arc<LockStatsInner>,
}

impl fmt::Debug for StartLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartLock").field("name", &self.name).finish_non_exhaustive()
    }
}

impl StartLock {
    /// As [`crate::StartLock::new`].
    ///
    /// # Errors
    /// As [`crate::StartLock::new`].
    pub fn new(store: &SharedStore, name: &str) -> Result<Self> {
        validate::key("lock name", name)?;
        let stats = Arc::new(LockStatsInner::new(name, store.backend()));
        Ok(Self { store: Arc::clone(store), name: name.into(), stats })
    }

    /// The lock's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// As [`crate::StartLock::acquisition`].
    ///
    /// # Errors
    /// As [`Acquisition::new`].
    pub fn acquisition(
        &self,
        ttl: Duration,
        timeout: Option<Duration>,
        now: Duration,
    ) -> Result<Acquisition> {
        Ok(Acquisition::new(ttl, timeout, now)?.counted_by(Arc::clone(&self.stats)))
    }

    /// As [`crate::StartLock::keeper`].
    #[must_use]
    pub fn keeper(
        &self,
        options: &crate::KeeperOptions,
        key: &str,
        token: u64,
        requested_at: Duration,
    ) -> crate::LeaseKeeper {
        options.keep(key, token, requested_at).counted_by(Arc::clone(&self.stats))
    }

    /// As [`crate::StartLock::try_start`].
    ///
    /// # Errors
    /// As [`crate::StartLock::try_start`].
    ///
    /// # Cancel safety
    /// Cancel-safe. On a remote store the grant runs in a task of its own (the store's
    /// [`spawner`](super::Store::spawner): `tokio::spawn` on tokio): if this future is dropped
    /// before it takes the lease, the task releases it at once. If the runtime shuts down first,
    /// the lease expires at its TTL.
    pub async fn try_start(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        Ok(self.try_grant(key, ttl).await?.map(|grant| self.lease(key, grant)))
    }

    /// As [`crate::StartLock::try_grant`].
    ///
    /// # Errors
    /// As [`crate::StartLock::try_grant`].
    ///
    /// # Cancel safety
    /// As [`try_start`](StartLock::try_start).
    pub async fn try_grant(&self, key: &str, ttl: Duration) -> Result<Option<LeaseGrant>> {
        validate::key("lease key", key)?;
        let ttl_ms = validate::ttl_ms("ttl", ttl)?;
        let grant = if self.store.runs_to_completion() {
            // Never dropped half-way: a grant always reaches this caller.
            self.store.lease_try_grant(&self.name, key, ttl_ms).await
        } else {
            self.grant_in_own_task(key, ttl_ms).await
        };
        self.stats.count_grant(grant)
    }

    async fn grant_in_own_task(&self, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let spawn = self.store.spawner();
        let unclaimed = Unclaimed {
            store: Arc::clone(&self.store),
            lock: Arc::clone(&self.name),
            key: key.to_owned(),
            spawn: Arc::clone(&spawn),
        };
        spawn(Box::pin(async move {
            let granted = unclaimed.store.lease_try_grant(&unclaimed.lock, &unclaimed.key, ttl_ms).await;
            // A grant travels wrapped: dropped unread (its receiver gone, now or later), it is released.
            let _ =
                reply.send(granted.map(|grant| grant.map(|grant| Wrapped { grant: Some(grant), unclaimed })));
        }));
        match answer.await {
            Ok(granted) => Ok(granted?.map(Wrapped::take)),
            Err(_) => Err(Error::unavailable("the task granting the lease ended without a result")),
        }
    }

    /// As [`crate::StartLock::renew_token`].
    ///
    /// # Errors
    /// As [`crate::StartLock::renew_token`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a renewal dropped after it applied only extended the lease; renewing again
    /// extends it again.
    pub async fn renew_token(&self, key: &str, token: u64, ttl: Duration) -> Result<u64> {
        validate::key("lease key", key)?;
        renew(&self.store, &self.name, key, token, ttl, &self.stats).await
    }

    /// As [`crate::StartLock::release_token`].
    ///
    /// # Errors
    /// As [`crate::StartLock::release_token`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a release dropped after it applied is answered `not_owner` when repeated.
    pub async fn release_token(&self, key: &str, token: u64) -> Result<()> {
        validate::key("lease key", key)?;
        self.stats.count_release(self.store.lease_release(&self.name, key, token).await)
    }

    /// As [`crate::StartLock::acquire`]: waits up to `timeout` for a lease on `key`, retrying on
    /// the same schedule, sleeping with `tokio::time::sleep` (so paused time drives it in tests).
    ///
    /// # Errors
    /// As [`crate::StartLock::acquire`].
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`try_start`](StartLock::try_start): dropped while it sleeps it holds
    /// nothing; dropped while a grant is in flight, that grant is released.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn acquire(&self, key: &str, ttl: Duration, timeout: Duration) -> Result<Lease> {
        let origin = tokio::time::Instant::now();
        let mut wait = self.acquisition(ttl, Some(timeout), Duration::ZERO)?;
        loop {
            if let Some(lease) = self.try_start(key, ttl).await? {
                wait.granted(origin.elapsed());
                return Ok(lease);
            }
            tokio::time::sleep(wait.retry_after(origin.elapsed())?).await;
        }
    }

    /// As [`crate::StartLock::is_held`].
    ///
    /// # Errors
    /// As [`crate::StartLock::is_held`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn is_held(&self, key: &str) -> Result<bool> {
        Ok(self.holder(key).await?.is_some())
    }

    /// As [`crate::StartLock::holder`].
    ///
    /// # Errors
    /// As [`crate::StartLock::holder`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn holder(&self, key: &str) -> Result<Option<LeaseGrant>> {
        validate::key("lease key", key)?;
        self.store.lease_holder(&self.name, key).await
    }

    /// What this handle and its leases have done.
    #[must_use]
    pub fn stats(&self) -> LockStats {
        self.stats.snapshot()
    }

    fn lease(&self, key: &str, grant: LeaseGrant) -> Lease {
        Lease {
            store: Arc::clone(&self.store),
            lock: Arc::clone(&self.name),
            key: key.to_owned(),
            token: grant.token,
            deadline_ms: AtomicU64::new(grant.deadline_ms),
            stats: Arc::clone(&self.stats),
        }
    }
}

/// Where a grant in flight was asked for, to release it if nobody takes it.
struct Unclaimed {
    store: SharedStore,
    lock: Arc<str>,
    key: String,
    spawn: super::Spawner,
}

/// A grant on its way to its caller: released when dropped without [`take`](Wrapped::take).
struct Wrapped {
    grant: Option<LeaseGrant>,
    unclaimed: Unclaimed,
}

impl Wrapped {
    fn take(mut self) -> LeaseGrant {
        self.grant.take().expect("taken once")
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            let Unclaimed { store, lock, key, .. } = &self.unclaimed;
            let (store, lock, key) = (Arc::clone(store), Arc::clone(lock), key.clone());
            // Nobody will hold this lease: the key is free again now rather than at its TTL.
            (self.unclaimed.spawn)(Box::pin(async move {
                let _ = store.lease_release(&lock, &key, grant.token).await;
            }));
        }
    }
}

/// [`crate::Lease`] whose renewal and release are futures.
///
/// Dropping it does not release it (a dropped handle and a crashed process look alike to the
/// store); call [`Lease::release`], or let it expire.
pub struct Lease {
    store: SharedStore,
    lock: Arc<str>,
    key: String,
    token: u64,
    deadline_ms: AtomicU64,
    stats: Arc<LockStatsInner>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("lock", &self.lock)
            .field("key", &self.key)
            .field("token", &self.token)
            .field("deadline_ms", &self.deadline_ms.load(Ordering::Relaxed))
            .finish()
    }
}

impl Lease {
    /// The leased key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The fencing token: larger than every token the lock granted before this lease.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The deadline on the store's clock, in milliseconds, as of the last grant or renewal.
    #[must_use]
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms.load(Ordering::Relaxed)
    }

    /// Time left until the deadline by the store's clock (zero once passed).
    #[must_use]
    pub fn time_left(&self) -> Duration {
        Duration::from_millis(self.deadline_ms().saturating_sub(self.store.clock().now_ms()))
    }

    /// As [`crate::Lease::renew`].
    ///
    /// # Errors
    /// As [`crate::Lease::renew`].
    ///
    /// # Cancel safety
    /// Cancel-safe: dropped after it applied, the lease was extended but
    /// [`deadline_ms`](Lease::deadline_ms) still shows the earlier deadline (never a later one).
    pub async fn renew(&self, ttl: Duration) -> Result<()> {
        let deadline = renew(&self.store, &self.lock, &self.key, self.token, ttl, &self.stats).await?;
        self.deadline_ms.store(deadline, Ordering::Relaxed);
        Ok(())
    }

    /// As [`crate::Lease::release`].
    ///
    /// # Errors
    /// As [`crate::Lease::release`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a release dropped after it applied is answered `not_owner` when repeated.
    pub async fn release(&self) -> Result<()> {
        self.stats.count_release(self.store.lease_release(&self.lock, &self.key, self.token).await)
    }
}

async fn renew(
    store: &SharedStore,
    lock: &str,
    key: &str,
    token: u64,
    ttl: Duration,
    stats: &LockStatsInner,
) -> Result<u64> {
    let ttl_ms = validate::ttl_ms("ttl", ttl)?;
    stats.count_renewal(store.lease_renew(lock, key, token, ttl_ms).await)
}
