//! Waiting for a lease, sans-IO: when to try again and when the wait is over.
//!
//! Every `acquire` — Rust's blocking one, Python's asyncio one, JavaScript's promise — drives an
//! [`Acquisition`], so each language waits by the same schedule and times out with the same error.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::start_lock::LockStatsInner;
use crate::validate;

/// One wait for a lease: its deadline and its retry schedule ([`Backoff::for_acquire`]).
///
/// The driver tries [`StartLock::try_grant`](crate::StartLock::try_grant); while the key is
/// held it asks [`retry_after`](Acquisition::retry_after) how long to sleep, until that says
/// the wait has timed out. Instants are the driver's monotonic time, as a [`Duration`] since any
/// fixed origin.
///
/// ```
/// use racefree::Acquisition;
/// use std::time::Duration;
///
/// let ms = Duration::from_millis;
/// let mut wait = Acquisition::new(ms(30_000), Some(ms(100)), ms(0))?;
/// let pause = wait.retry_after(ms(1))?; // the key was held: try again after `pause`
/// assert!(pause <= ms(1));
/// assert_eq!(wait.retry_after(ms(100)).unwrap_err().code(), "timeout");
/// # Ok::<(), racefree::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Acquisition {
    started_at: Duration,
    timeout: Option<Duration>,
    delays: Backoff,
    /// The lock whose stats time this wait.
    counts: Option<Arc<LockStatsInner>>,
}

impl Acquisition {
    /// A wait that starts at `now` and lasts up to `timeout` (forever when `None`; zero makes
    /// one attempt), for leases of `ttl`. It times nothing:
    /// [`StartLock::acquisition`](crate::StartLock::acquisition) makes one the lock's metrics time.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a TTL that [`StartLock::try_start`](crate::StartLock::try_start)
    /// would refuse: checked here, before anything is granted.
    pub fn new(ttl: Duration, timeout: Option<Duration>, now: Duration) -> Result<Self> {
        validate::ttl_ms("ttl", ttl)?;
        Ok(Self { started_at: now, timeout, delays: Backoff::for_acquire(), counts: None })
    }

    /// This wait, timed by the lock's metrics.
    pub(crate) fn counted_by(self, counts: Arc<LockStatsInner>) -> Self {
        Self { counts: Some(counts), ..self }
    }

    /// The attempt made at `now` was granted: the wait is over (its time is recorded).
    pub fn granted(&self, now: Duration) {
        if let Some(counts) = &self.counts {
            counts.time_acquire(now.saturating_sub(self.started_at), true);
        }
    }

    /// The attempt made at `now` found the key held: how long to sleep before the next one.
    ///
    /// # Errors
    /// [`Error::Timeout`] once the wait has lasted its timeout.
    pub fn retry_after(&mut self, now: Duration) -> Result<Duration> {
        let waited = now.saturating_sub(self.started_at);
        let delay = self.delays.delay();
        match self.timeout {
            None => Ok(delay),
            Some(timeout) => match timeout.checked_sub(waited).filter(|left| !left.is_zero()) {
                Some(left) => Ok(delay.min(left)),
                None => {
                    if let Some(counts) = &self.counts {
                        counts.time_acquire(waited, false);
                    }
                    Err(Error::Timeout { waited })
                }
            },
        }
    }
}
