//! Work run under a kept lease, as tokio tasks: the async host of [`LeaseKeeper`].

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{SharedStore, StartLock};
use crate::error::{Error, Result};
use crate::lease_keeper::{KeeperOptions, KeeperStep, LeaseKeeper};

/// [`crate::Coordinator`] for tokio hosts: at most one work per key at a time — across tasks
/// and processes sharing the store — each work a future run as a task of its own, under a lease
/// kept alive for as long as it runs.
///
/// [`start`](Coordinator::start) grants the lease or returns `None` at once. While the work
/// runs, its task renews the lease when the core's [`LeaseKeeper`] says so. When the work
/// returns, the lease is released. When the lease is lost — a renewal refused, renewals failing
/// until the lease's safe deadline, `max_hold` reached — the work's [`Holding`] is told (its
/// [`wait_lost`](Holding::wait_lost) resolves) and **the work's future is dropped** at once, by
/// the safe deadline: none of its code runs after another holder may have started. Pass
/// [`Holding::token`] to fenced writes all the same (a write already sent is not recalled).
///
/// Time is tokio's (`tokio::time::Instant`): a test on paused time drives it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// use racefree::{aio, KeeperOptions};
/// use std::time::Duration;
///
/// let store = aio::open("memory://").await?;
/// let tasks = aio::Coordinator::new(&store, "tasks", KeeperOptions::new(Duration::from_secs(30))?)?;
/// let run = tasks.start("report:7", |holding| async move { holding.token() }).await?;
/// let run = run.expect("nobody runs report:7");
/// let finished = run.join().await;
/// assert!(finished.value.is_some() && finished.lost.is_none());
/// assert!(!tasks.is_running("report:7").await?); // released when the work returned
/// # Ok(())
/// # }
/// ```
pub struct Coordinator {
    lock: StartLock,
    options: KeeperOptions,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("lock", &self.lock.name())
            .field("options", &self.options)
            .finish()
    }
}

impl Coordinator {
    /// As [`crate::Coordinator::new`].
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty or oversized name.
    pub fn new(store: &SharedStore, name: &str, options: KeeperOptions) -> Result<Self> {
        Ok(Self { lock: StartLock::new(store, name)?, options })
    }

    /// The lock the leases come from.
    #[must_use]
    pub fn lock(&self) -> &StartLock {
        &self.lock
    }

    /// Starts `work` as a task of its own (`tokio::spawn`) under a lease on `key`, unless
    /// somebody holds the key: `None` then.
    ///
    /// # Errors
    /// As [`StartLock::try_start`].
    ///
    /// # Cancel safety
    /// Cancel-safe: dropped before it returns, no work starts, and a lease granted meanwhile is
    /// released (as [`StartLock::try_start`]'s).
    pub async fn start<F, W, T>(&self, key: &str, work: F) -> Result<Option<Running<T>>>
    where
        F: FnOnce(Holding) -> W,
        W: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let requested_at = Instant::now();
        let Some(grant) = self.lock.try_grant(key, self.options.ttl()).await? else { return Ok(None) };
        let (told, _) = watch::channel(None);
        let held = Arc::new(Held {
            key: key.to_owned(),
            token: grant.token,
            origin: requested_at,
            keeper: Mutex::new(self.lock.keeper(&self.options, key, grant.token, Duration::ZERO)),
            told,
        });
        let holding = Holding { held: Arc::clone(&held) };
        let work = CatchUnwind(Box::pin(work(holding.clone())));
        let task = tokio::spawn(keep_while_running(self.lock.clone(), Arc::clone(&held), work));
        Ok(Some(Running { task, holding }))
    }

    /// Whether somebody holds `key` (any process sharing the store).
    ///
    /// # Errors
    /// As [`StartLock::is_held`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn is_running(&self, key: &str) -> Result<bool> {
        self.lock.is_held(key).await
    }
}

/// The work's task: runs the work and the lease's keeping side by side; the first to end
/// decides. Then the lease is released (also after a loss: a `not_owner` then is expected).
async fn keep_while_running<T>(lock: StartLock, held: Arc<Held>, mut work: CatchUnwind<T>) -> Outcome<T> {
    let value = loop {
        let step = held.keeper.lock().poll(held.now());
        match step {
            KeeperStep::Lost(error) => {
                held.told.send_replace(Some(error));
                break None; // the work is dropped below, before anything else runs
            }
            KeeperStep::WaitUntil(at) => {
                tokio::select! {
                    value = &mut work => break Some(value),
                    () = tokio::time::sleep_until(held.origin + at) => {}
                }
            }
            KeeperStep::Renew => {
                let (ttl, lost_at) = {
                    let keeper = held.keeper.lock();
                    (keeper.options().ttl(), keeper.lost_at())
                };
                // A renewal that has not answered by the safe deadline is not waited for.
                let renewal = tokio::time::timeout_at(
                    held.origin + lost_at,
                    lock.renew_token(&held.key, held.token, ttl),
                );
                tokio::select! {
                    value = &mut work => break Some(value),
                    reply = renewal => {
                        let reply = reply.unwrap_or_else(|_| Err(Error::Timeout { waited: ttl }));
                        held.keeper.lock().on_reply(reply, held.now());
                    }
                }
            }
        }
    };
    drop(work); // boxed: dropped here, before the lease is judged and released
    let lost = held.keeper.lock().check(held.now()); // judged as the work ended, before the release
    if let Some(error) = &lost {
        held.told.send_replace(Some(error.clone()));
    }
    let release_error = match lock.release_token(&held.key, held.token).await {
        Ok(()) | Err(Error::NotOwner { .. }) => None,
        Err(error) => Some(error),
    };
    Outcome { value, lost, release_error }
}

/// One kept lease, shared by its task and the work's [`Holding`].
struct Held {
    key: String,
    token: u64,
    origin: Instant,
    keeper: Mutex<LeaseKeeper>,
    /// Set once, when the lease is lost.
    told: watch::Sender<Option<Error>>,
}

impl Held {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// The work's view of its lease: whether it is still held, and its fencing token.
#[derive(Clone)]
pub struct Holding {
    held: Arc<Held>,
}

impl fmt::Debug for Holding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Holding").field("key", &self.held.key).field("token", &self.held.token).finish()
    }
}

impl Holding {
    /// The leased key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.held.key
    }

    /// The lease's fencing token, for fenced writes that must not land after the lease is lost.
    #[must_use]
    pub fn token(&self) -> u64 {
        self.held.token
    }

    /// Why the lease is lost ([`Error::LeaseLost`]), judged now; `None` while it is held.
    #[must_use]
    pub fn lost(&self) -> Option<Error> {
        self.held.keeper.lock().check(self.held.now())
    }

    /// Whether the lease is lost, judged now.
    #[must_use]
    pub fn is_lost(&self) -> bool {
        self.lost().is_some()
    }

    /// `Err(LeaseLost)` once the lease is lost.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] with the reason.
    pub fn check(&self) -> Result<()> {
        self.lost().map_or(Ok(()), Err)
    }

    /// Resolves when the lease is lost, with [`Error::LeaseLost`]: for tasks the work started
    /// (the work itself is dropped then).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only watches.
    pub async fn wait_lost(&self) -> Error {
        let mut told = self.held.told.subscribe();
        let lost = match told.wait_for(Option::is_some).await {
            Ok(lost) => lost.clone(),
            // The sender lives in `held`, which this handle keeps alive.
            Err(_) => None,
        };
        lost.unwrap_or_else(|| unreachable!("the lease's state outlives its holdings"))
    }
}

/// A work started by [`Coordinator::start`], running as a task of its own. Dropping it leaves
/// the work running (and its lease kept) to its end.
pub struct Running<T> {
    task: tokio::task::JoinHandle<Outcome<T>>,
    holding: Holding,
}

impl<T> fmt::Debug for Running<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running").field("holding", &self.holding).finish_non_exhaustive()
    }
}

impl<T> Running<T> {
    /// The lease the work runs under.
    #[must_use]
    pub fn holding(&self) -> &Holding {
        &self.holding
    }

    /// Whether the work has ended and its lease was released.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the work to end and its lease to be released.
    ///
    /// # Panics
    /// Resumes the work's panic, after its lease was released.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the wait leaves the work running.
    pub async fn join(self) -> Finished<T> {
        let outcome = match self.task.await {
            Ok(outcome) => outcome,
            Err(error) if error.is_panic() => resume_unwind(error.into_panic()),
            Err(error) => {
                // The runtime shut down under the task: the lease expires by its TTL.
                let lost = Error::unavailable(format!("the work's task ended without finishing: {error}"));
                return Finished { value: None, lost: None, release_error: Some(lost) };
            }
        };
        let value = match outcome.value {
            Some(Ok(value)) => Some(value),
            Some(Err(payload)) => resume_unwind(payload),
            None => None,
        };
        Finished { value, lost: outcome.lost, release_error: outcome.release_error }
    }
}

struct Outcome<T> {
    value: Option<std::thread::Result<T>>,
    lost: Option<Error>,
    release_error: Option<Error>,
}

/// How a work ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<T> {
    /// What the work returned; `None` when it was dropped because its lease was lost.
    pub value: Option<T>,
    /// [`Error::LeaseLost`] if the lease was lost before the work returned: then another holder
    /// may have run the key meanwhile.
    pub lost: Option<Error>,
    /// A release that failed for another reason than a lost lease (a backend failure): the lease
    /// then expires by its TTL.
    pub release_error: Option<Error>,
}

/// The work, its panic caught so that its lease is released before the panic goes on.
struct CatchUnwind<T>(Pin<Box<dyn Future<Output = T> + Send>>);

impl<T> Future for CatchUnwind<T> {
    type Output = std::thread::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
