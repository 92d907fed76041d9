//! Start locks and leases: one winner per key, TTL expiry, fencing tokens.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::acquisition::Acquisition;
use crate::error::{Error, Result};
use crate::metrics::{names, Labels, Tally, Timing};
use crate::store::{LeaseGrant, SharedStore};
use crate::validate;

/// Lets exactly one of any number of concurrent starters run the task for a key.
///
/// It ends duplicate task starts from a non-atomic "is it running? then start it": of N
/// concurrent [`try_start`](StartLock::try_start) calls for one key exactly one gets a
/// [`Lease`]; the rest get `None`. The lease lasts for its TTL unless renewed; once it is
/// released or expires the key can be started again. A holder that dies simply stops renewing,
/// and the next starter wins once the TTL has passed.
///
/// Every lease carries a **fencing token** from one counter per lock (not per key): strictly
/// larger than every token the lock granted before, for any key, across expiry and release (on
/// Redis and PostgreSQL also across a failover that lost the last grants: a token there is never
/// below the server's clock in microseconds; see the README's "Fencing tokens across a failover").
/// Pass it to [`Records::put_fenced`](crate::Records::put_fenced) so a holder that was paused
/// past its TTL cannot overwrite the work of the next one.
///
/// Dropping a [`Lease`] does not release it (a dropped handle and a crashed process look alike
/// to the store); call [`Lease::release`], or let it expire.
///
/// ```
/// use racefree::{MemoryStore, SharedStore, StartLock};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let store: SharedStore = Arc::new(MemoryStore::new());
/// let tasks = StartLock::new(&store, "tasks")?;
/// let lease = tasks.try_start("report:7", Duration::from_secs(30))?.expect("nobody runs it yet");
/// assert!(tasks.try_start("report:7", Duration::from_secs(30))?.is_none()); // already running
/// lease.release()?;
/// let again = tasks.try_start("report:7", Duration::from_secs(30))?.expect("free again");
/// assert!(again.token() > lease.token());
/// # Ok::<(), racefree::Error>(())
/// ```
#[derive(Clone)]
pub struct StartLock {
    store: SharedStore,
    name: Arc<str>,
    stats: Arc<LockStatsInner>,
}

#[derive(Debug)]
pub(crate) struct LockStatsInner {
    labels: Labels,
    granted: Tally,
    contended: Tally,
    renewed: Tally,
    released: Tally,
    renewals_not_owner: Tally,
    releases_not_owner: Tally,
    lost_not_owner: Tally,
    lost_renewals_failed: Tally,
    lost_max_hold: Tally,
    renewal_latency: Timing,
    acquire_granted: Timing,
    acquire_timed_out: Timing,
}

/// What a [`StartLock`] handle and its leases have done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStats {
    /// Leases granted.
    pub granted: u64,
    /// Starts refused because the key was held.
    pub contended: u64,
    /// Successful renewals.
    pub renewed: u64,
    /// Successful releases.
    pub released: u64,
    /// Renewals and releases refused with `not_owner`.
    pub rejected_not_owner: u64,
    /// Kept leases lost because a renewal was refused with `not_owner` (counted by keepers made
    /// with [`StartLock::keeper`], as every coordinator's are).
    pub lost_not_owner: u64,
    /// Kept leases lost because no renewal was confirmed before the safe deadline.
    pub lost_renewals_failed: u64,
    /// Kept leases lost because they were held for their `max_hold`.
    pub lost_max_hold: u64,
}

impl fmt::Debug for StartLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartLock").field("name", &self.name).finish_non_exhaustive()
    }
}

impl StartLock {
    /// The lock named `name` in `store`. Handles with the same name share leases and tokens;
    /// a clone also shares this handle's [`stats`](StartLock::stats).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty or oversized name.
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

    /// Grants a lease on `key` for `ttl` if nobody holds one; `None` if somebody does.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; [`Error::InvalidArgument`] for a TTL under 1 ms or
    /// over 100 years; [`Error::CapacityExceeded`]; backend failures. A rejected call grants nothing.
    ///
    /// # Atomicity
    /// The "is it free?" check, the token increment and the grant are one step: memory, one
    /// critical section; SQLite, one transaction; Redis, one Lua script (the lock's next token,
    /// `HSET` and `PEXPIRE` of the lease); PostgreSQL, one server-side function.
    pub fn try_start(&self, key: &str, ttl: Duration) -> Result<Option<Lease>> {
        Ok(self.try_grant(key, ttl)?.map(|grant| self.lease(key, grant)))
    }

    /// [`try_start`](StartLock::try_start) for callers that keep the token themselves instead of
    /// a [`Lease`] (a binding's own lease object, a process that stores it): the grant's token
    /// and deadline, then [`renew_token`](StartLock::renew_token) and
    /// [`release_token`](StartLock::release_token).
    ///
    /// # Errors
    /// As [`try_start`](StartLock::try_start).
    ///
    /// # Atomicity
    /// As [`try_start`](StartLock::try_start).
    pub fn try_grant(&self, key: &str, ttl: Duration) -> Result<Option<LeaseGrant>> {
        validate::key("lease key", key)?;
        let ttl_ms = validate::ttl_ms("ttl", ttl)?;
        self.stats.count_grant(self.store.lease_try_grant(&self.name, key, ttl_ms))
    }

    /// [`Lease::renew`] by key and token: extends the lease to `ttl` from now if `token` still
    /// holds `key`; returns the new deadline (store clock, milliseconds).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; as [`Lease::renew`].
    ///
    /// # Atomicity
    /// As [`Lease::renew`].
    pub fn renew_token(&self, key: &str, token: u64, ttl: Duration) -> Result<u64> {
        validate::key("lease key", key)?;
        renew(&self.store, &self.name, key, token, ttl, &self.stats)
    }

    /// [`Lease::release`] by key and token: releases the lease if `token` still holds `key`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; as [`Lease::release`].
    ///
    /// # Atomicity
    /// As [`Lease::release`].
    pub fn release_token(&self, key: &str, token: u64) -> Result<()> {
        validate::key("lease key", key)?;
        release(&self.store, &self.name, key, token, &self.stats)
    }

    /// Waits up to `timeout` for a lease on `key`, retrying on the [`Backoff::for_acquire`]
    /// schedule (an [`Acquisition`], as every language's `acquire`).
    ///
    /// ```
    /// # let store: racefree::SharedStore = std::sync::Arc::new(racefree::MemoryStore::new());
    /// use std::time::Duration;
    /// let lock = racefree::StartLock::new(&store, "jobs")?;
    /// let held = lock.acquire("k", Duration::from_secs(5), Duration::from_secs(1))?;
    /// let err = lock.acquire("k", Duration::from_secs(5), Duration::from_millis(20)).unwrap_err();
    /// assert_eq!(err.code(), "timeout");
    /// # Ok::<(), racefree::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Timeout`] when no lease was granted in time; as [`try_start`](StartLock::try_start).
    ///
    /// # Atomicity
    /// Each attempt is one [`try_start`](StartLock::try_start).
    ///
    /// [`Backoff::for_acquire`]: crate::Backoff::for_acquire
    /// [`Acquisition`]: crate::Acquisition
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    pub fn acquire(&self, key: &str, ttl: Duration, timeout: Duration) -> Result<Lease> {
        let origin = std::time::Instant::now();
        let mut wait = self.acquisition(ttl, Some(timeout), Duration::ZERO)?;
        loop {
            if let Some(lease) = self.try_start(key, ttl)? {
                wait.granted(origin.elapsed());
                return Ok(lease);
            }
            std::thread::sleep(wait.retry_after(origin.elapsed())?);
        }
    }

    /// An [`Acquisition`] (a wait for a lease of this lock) whose time this lock's metrics record
    /// (`racefree_acquire_wait_seconds`): what a driver of its own (an event loop) waits by.
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

    /// A [`LeaseKeeper`](crate::LeaseKeeper) for this lock's lease on `key` with `token`, whose
    /// losses (by reason) this lock's [`stats`](StartLock::stats) and metrics count, and whose
    /// renewal times they record: what a driver of its own keeps a lease by.
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

    /// Whether somebody holds an unexpired lease on `key`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; backend failures.
    ///
    /// # Atomicity
    /// One read.
    pub fn is_held(&self, key: &str) -> Result<bool> {
        Ok(self.holder(key)?.is_some())
    }

    /// The unexpired lease on `key` as the store knows it (token and deadline), if any.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; backend failures.
    ///
    /// # Atomicity
    /// One read.
    pub fn holder(&self, key: &str) -> Result<Option<LeaseGrant>> {
        validate::key("lease key", key)?;
        self.store.lease_holder(&self.name, key)
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

/// A granted lease: proof of being the one starter of a key, until release or expiry.
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

    /// Extends the lease to `ttl` from now.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the lease was released or has expired (nothing changes);
    /// [`Error::InvalidArgument`] for a bad TTL; backend failures.
    ///
    /// # Atomicity
    /// The holder check and the extension are one step: memory, one critical section; SQLite, one
    /// transaction; Redis, one Lua script (`HSET` and `PEXPIRE`); PostgreSQL, one `UPDATE`.
    pub fn renew(&self, ttl: Duration) -> Result<()> {
        let deadline = renew(&self.store, &self.lock, &self.key, self.token, ttl, &self.stats)?;
        self.deadline_ms.store(deadline, Ordering::Relaxed);
        Ok(())
    }

    /// Releases the lease: the key can be started again at once.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the lease was already released or has expired (nothing changes);
    /// backend failures.
    ///
    /// # Atomicity
    /// The holder check and the delete are one step: memory, one critical section; SQLite, one
    /// transaction; Redis, one Lua script; PostgreSQL, one `DELETE`.
    pub fn release(&self) -> Result<()> {
        release(&self.store, &self.lock, &self.key, self.token, &self.stats)
    }
}

fn renew(
    store: &SharedStore,
    lock: &str,
    key: &str,
    token: u64,
    ttl: Duration,
    stats: &LockStatsInner,
) -> Result<u64> {
    let ttl_ms = validate::ttl_ms("ttl", ttl)?;
    stats.count_renewal(store.lease_renew(lock, key, token, ttl_ms))
}

fn release(store: &SharedStore, lock: &str, key: &str, token: u64, stats: &LockStatsInner) -> Result<()> {
    stats.count_release(store.lease_release(lock, key, token))
}

impl LockStatsInner {
    /// The counts of lock `name` on `backend`.
    pub(crate) fn new(name: &str, backend: &'static str) -> Self {
        let labels = Labels::new("start_lock", Some(name), backend);
        Self {
            granted: Tally::new(&labels, names::STARTS, Some("granted")),
            contended: Tally::new(&labels, names::STARTS, Some("refused")),
            renewed: Tally::new(&labels, names::RENEWALS, Some("renewed")),
            renewals_not_owner: Tally::new(&labels, names::RENEWALS, Some("not_owner")),
            released: Tally::new(&labels, names::RELEASES, Some("released")),
            releases_not_owner: Tally::new(&labels, names::RELEASES, Some("not_owner")),
            lost_not_owner: Tally::labelled(&labels, names::LEASES_LOST, Some(("reason", "not_owner"))),
            lost_renewals_failed: Tally::labelled(
                &labels,
                names::LEASES_LOST,
                Some(("reason", "renewals_failed")),
            ),
            lost_max_hold: Tally::labelled(&labels, names::LEASES_LOST, Some(("reason", "max_hold_reached"))),
            renewal_latency: Timing::new(&labels, names::RENEWAL_SECONDS, None),
            acquire_granted: Timing::new(&labels, names::ACQUIRE_WAIT_SECONDS, Some("granted")),
            acquire_timed_out: Timing::new(&labels, names::ACQUIRE_WAIT_SECONDS, Some("timed_out")),
            labels,
        }
    }

    pub(crate) fn count_grant(&self, grant: Result<Option<LeaseGrant>>) -> Result<Option<LeaseGrant>> {
        match &grant {
            Ok(Some(_)) => self.granted.add(1),
            Ok(None) => self.contended.add(1),
            Err(err) => self.labels.error(err),
        }
        grant
    }

    pub(crate) fn count_renewal(&self, outcome: Result<u64>) -> Result<u64> {
        Self::count(&self.labels, outcome, &self.renewed, &self.renewals_not_owner)
    }

    pub(crate) fn count_release(&self, outcome: Result<()>) -> Result<()> {
        Self::count(&self.labels, outcome, &self.released, &self.releases_not_owner)
    }

    /// Counts a renewal or release: a success, a `not_owner` refusal, or another error.
    fn count<T>(labels: &Labels, outcome: Result<T>, success: &Tally, not_owner: &Tally) -> Result<T> {
        match &outcome {
            Ok(_) => success.add(1),
            Err(Error::NotOwner { .. }) => not_owner.add(1),
            Err(err) => labels.error(err),
        }
        outcome
    }

    pub(crate) fn snapshot(&self) -> LockStats {
        LockStats {
            granted: self.granted.get(),
            contended: self.contended.get(),
            renewed: self.renewed.get(),
            released: self.released.get(),
            rejected_not_owner: self.renewals_not_owner.get() + self.releases_not_owner.get(),
            lost_not_owner: self.lost_not_owner.get(),
            lost_renewals_failed: self.lost_renewals_failed.get(),
            lost_max_hold: self.lost_max_hold.get(),
        }
    }

    /// Counts a kept lease lost for `reason`.
    pub(crate) fn count_loss(&self, reason: &crate::LossReason) {
        match reason {
            crate::LossReason::NotOwner => self.lost_not_owner.add(1),
            crate::LossReason::RenewalsFailed { .. } => self.lost_renewals_failed.add(1),
            crate::LossReason::MaxHoldReached => self.lost_max_hold.add(1),
        }
    }

    /// Records how long a keeper's renewal took to be answered.
    pub(crate) fn time_renewal(&self, took: Duration) {
        self.renewal_latency.record(took);
    }

    /// Records how long an `acquire` waited, and whether it ended with a grant.
    pub(crate) fn time_acquire(&self, waited: Duration, granted: bool) {
        if granted { &self.acquire_granted } else { &self.acquire_timed_out }.record(waited);
    }
}
