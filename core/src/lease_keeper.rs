//! Keeping a lease alive, sans-IO: when to renew, how to retry, and when the lease must be
//! treated as lost.
//!
//! [`LeaseKeeper`] decides and never waits or calls a store itself. A driver — the Rust
//! [`Coordinator`](crate::Coordinator)'s keeper thread, Python's asyncio coordinator, JavaScript's
//! timers, and later a tokio task — asks it what to do with [`LeaseKeeper::poll`], sleeps, sends
//! the renewal it asks for, and hands the reply back with [`LeaseKeeper::on_reply`]. Every instant
//! is the driver's own **monotonic** time, as a [`Duration`] since any fixed origin.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::{Error, LossReason, Result};
use crate::start_lock::LockStatsInner;
use crate::validate;

/// How much earlier than "request sent + TTL" a lease is treated as lost: 1% of the TTL for
/// clock-rate drift between this process's monotonic clock and the store's clock (Redis judges
/// expiry by its own), plus 2 ms for the driver to tell the work to stop. Redlock allows the same.
#[must_use]
pub fn safety_margin(ttl: Duration) -> Duration {
    ttl / 100 + Duration::from_millis(2)
}

/// How a lease is kept alive: its TTL, how often it is renewed, and for how long at most.
///
/// ```
/// use racefree::KeeperOptions;
/// use std::time::Duration;
///
/// let options = KeeperOptions::new(Duration::from_secs(30))?;
/// assert_eq!(options.renew_every(), Duration::from_secs(10)); // ttl / 3 by default
/// let bounded = options.with_max_hold(Duration::from_secs(600))?;
/// assert_eq!(bounded.max_hold(), Some(Duration::from_secs(600)));
/// assert!(options.with_renew_every(Duration::from_secs(30)).is_err()); // not below the TTL
/// # Ok::<(), racefree::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeeperOptions {
    ttl: Duration,
    renew_every: Duration,
    max_hold: Option<Duration>,
}

impl KeeperOptions {
    /// Leases of `ttl`, renewed every `ttl / 3`, for as long as the work runs.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a TTL under 1 ms or over [`MAX_TTL`](crate::MAX_TTL).
    pub fn new(ttl: Duration) -> Result<Self> {
        validate::ttl_ms("ttl", ttl)?;
        Ok(Self { ttl, renew_every: ttl / 3, max_hold: None })
    }

    /// Renews every `every` (measured from when the last confirmed renewal was sent).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless `0 < every < ttl`.
    pub fn with_renew_every(self, every: Duration) -> Result<Self> {
        if every.is_zero() || every >= self.ttl {
            return Err(Error::invalid_argument(format!(
                "renew_every must be above zero and below the ttl ({:?}), got {every:?}",
                self.ttl
            )));
        }
        Ok(Self { renew_every: every, ..self })
    }

    /// Stops renewing `max_hold` after the grant was requested and reports the lease lost
    /// ([`LossReason::MaxHoldReached`]): a bound on how long one holder keeps a key.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `max_hold` is below the TTL.
    pub fn with_max_hold(self, max_hold: Duration) -> Result<Self> {
        if max_hold < self.ttl {
            return Err(Error::invalid_argument(format!(
                "max_hold must be at least the ttl ({:?}), got {max_hold:?}",
                self.ttl
            )));
        }
        Ok(Self { max_hold: Some(max_hold), ..self })
    }

    /// The TTL of the grant and of every renewal.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The time between renewals.
    #[must_use]
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// The longest the lease is kept, if bounded.
    #[must_use]
    pub fn max_hold(&self) -> Option<Duration> {
        self.max_hold
    }

    /// A keeper for the lease on `key` with `token`, whose grant request was sent at
    /// `requested_at` (driver's monotonic time, taken *before* the request). It counts nothing:
    /// [`StartLock::keeper`](crate::StartLock::keeper) makes one whose losses and renewal times
    /// the lock's `stats()` and metrics count.
    #[must_use]
    pub fn keep(&self, key: &str, token: u64, requested_at: Duration) -> LeaseKeeper {
        LeaseKeeper {
            key: key.to_owned(),
            token,
            options: *self,
            granted_at: requested_at,
            confirmed_at: requested_at,
            next_renewal_at: requested_at + self.renew_every,
            in_flight: None,
            retries: None,
            last_error: None,
            lost: None,
            counts: None,
        }
    }
}

/// What the driver of a [`LeaseKeeper`] does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperStep {
    /// Send a renewal now (for the options' TTL), then report its reply with
    /// [`LeaseKeeper::on_reply`]. The keeper counts it as sent at the instant of this poll.
    Renew,
    /// Nothing to do before this instant: poll again then, or when a renewal replies.
    WaitUntil(Duration),
    /// The lease must be treated as lost: stop the work now. The error is
    /// [`Error::LeaseLost`]. Final: every later poll says the same.
    Lost(Error),
}

/// The lifecycle of one kept lease: when to renew it, and when it is lost.
///
/// The rule it keeps: a lease is held until its **safe deadline** — the instant the last
/// confirmed grant or renewal request was *sent*, plus the TTL, minus [`safety_margin`] — and
/// not a moment longer. The store's own deadline is on the store's clock and starts when the
/// request *arrives*, so it is never earlier than that instant by more than the margin allows;
/// after the safe deadline another holder may start, so the work must have been told to stop.
///
/// The lease is also lost at once when a renewal is refused with `not_owner`, when a renewal
/// fails with an error that retrying cannot mend, and at `max_hold`. Retryable failures
/// (`timeout`, `backend_unavailable`, …) are retried on a backoff up to the safe deadline.
///
/// ```
/// use racefree::{KeeperOptions, KeeperStep};
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let mut keeper = KeeperOptions::new(ms(900))?.keep("report:7", 1, ms(0));
/// assert_eq!(keeper.poll(ms(10)), KeeperStep::WaitUntil(ms(300))); // renew every ttl / 3
/// assert_eq!(keeper.poll(ms(300)), KeeperStep::Renew);
/// keeper.on_reply(Ok(0), ms(320)); // confirmed: the lease lasts from 300 ms on
/// assert_eq!(keeper.safe_deadline(), ms(300 + 900 - 11));
/// // No confirmed renewal after that: lost at the safe deadline, whatever the store says later.
/// assert_eq!(keeper.poll(ms(600)), KeeperStep::Renew);
/// assert!(matches!(keeper.poll(ms(1_189)), KeeperStep::Lost(_)));
/// # Ok::<(), racefree::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LeaseKeeper {
    key: String,
    token: u64,
    options: KeeperOptions,
    granted_at: Duration,
    /// When the last confirmed grant or renewal request was sent.
    confirmed_at: Duration,
    next_renewal_at: Duration,
    /// When the renewal awaiting its reply was sent.
    in_flight: Option<Duration>,
    /// The retry schedule while renewals fail.
    retries: Option<Backoff>,
    last_error: Option<Error>,
    lost: Option<LossReason>,
    /// The lock whose stats count this lease's loss and renewal times.
    counts: Option<Arc<LockStatsInner>>,
}

impl LeaseKeeper {
    /// This keeper, counted by the lock's `stats`.
    pub(crate) fn counted_by(self, counts: Arc<LockStatsInner>) -> Self {
        Self { counts: Some(counts), ..self }
    }

    /// Marks the lease lost (once) and counts it.
    fn lose(&mut self, reason: LossReason) {
        if let Some(counts) = &self.counts {
            counts.count_loss(&reason);
        }
        self.lost = Some(reason);
    }

    /// The leased key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease's fencing token.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The options the lease is kept by.
    #[must_use]
    pub fn options(&self) -> &KeeperOptions {
        &self.options
    }

    /// The instant (driver's monotonic time) from which another holder may start the key,
    /// unless a renewal is confirmed before it.
    #[must_use]
    pub fn safe_deadline(&self) -> Duration {
        let ttl = self.options.ttl;
        (self.confirmed_at + ttl).saturating_sub(safety_margin(ttl))
    }

    fn max_hold_at(&self) -> Option<Duration> {
        self.options.max_hold.map(|max| self.granted_at + max)
    }

    /// The instant the lease is lost unless a renewal is confirmed first: the safe deadline, or
    /// `max_hold` after the grant if that comes sooner.
    #[must_use]
    pub fn lost_at(&self) -> Duration {
        let safe = self.safe_deadline();
        self.max_hold_at().map_or(safe, |at| at.min(safe))
    }

    /// Whether the lease is already known to be lost (without looking at the time: see
    /// [`check`](LeaseKeeper::check)).
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.lost.is_some()
    }

    /// The [`Error::LeaseLost`] of a lost lease, judged at `now`; `None` while it is held.
    /// Unlike [`poll`](LeaseKeeper::poll) it never asks for a renewal, so the work itself can
    /// call it at any time.
    pub fn check(&mut self, now: Duration) -> Option<Error> {
        if self.lost.is_none() {
            if self.max_hold_at().is_some_and(|at| now >= at) {
                self.lose(LossReason::MaxHoldReached);
            } else if now >= self.safe_deadline() {
                let last_error = self.last_error.take().map(Box::new);
                self.lose(LossReason::RenewalsFailed { last_error });
            }
        }
        self.lost.as_ref().map(|reason| self.error(reason.clone()))
    }

    /// What to do at `now`: renew, wait, or stop the work.
    pub fn poll(&mut self, now: Duration) -> KeeperStep {
        if let Some(lost) = self.check(now) {
            return KeeperStep::Lost(lost);
        }
        let limit = self.lost_at();
        if self.in_flight.is_some() {
            return KeeperStep::WaitUntil(limit);
        }
        if now >= self.next_renewal_at {
            self.in_flight = Some(now);
            return KeeperStep::Renew;
        }
        KeeperStep::WaitUntil(self.next_renewal_at.min(limit))
    }

    /// The reply to the renewal the last [`KeeperStep::Renew`] asked for, received at `now`:
    /// the store's new deadline, or its error. A reply with no renewal in flight is ignored.
    pub fn on_reply(&mut self, reply: Result<u64>, now: Duration) {
        let Some(sent_at) = self.in_flight.take() else { return };
        if self.check(now).is_some() {
            return; // a reply after the safe deadline: the work was already told to stop
        }
        if let Some(counts) = &self.counts {
            counts.time_renewal(now.saturating_sub(sent_at));
        }
        match reply {
            Ok(_store_deadline) => {
                self.confirmed_at = sent_at;
                self.next_renewal_at = sent_at + self.options.renew_every;
                self.retries = None;
                self.last_error = None;
            }
            Err(Error::NotOwner { .. }) => self.lose(LossReason::NotOwner),
            Err(error) if error.is_retryable() => {
                let every = self.options.renew_every;
                let retries = self
                    .retries
                    .get_or_insert_with(|| Backoff::new((every / 10).max(Duration::from_millis(1)), every));
                self.next_renewal_at = now + retries.delay();
                self.last_error = Some(error);
            }
            Err(error) => self.lose(LossReason::RenewalsFailed { last_error: Some(Box::new(error)) }),
        }
    }

    fn error(&self, reason: LossReason) -> Error {
        Error::LeaseLost { key: self.key.clone(), token: self.token, reason }
    }
}
