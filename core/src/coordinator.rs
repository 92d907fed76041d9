//! Work run under a kept lease, on threads: the blocking host of [`LeaseKeeper`].

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::lease_keeper::{KeeperOptions, KeeperStep, LeaseKeeper};
use crate::start_lock::StartLock;
use crate::store::SharedStore;

/// Runs at most one work per key at a time — across threads and processes sharing the store —
/// each on its own thread, under a lease kept alive for as long as the work runs.
///
/// [`start`](Coordinator::start) grants the lease or returns `None` at once. While the work
/// runs, the coordinator's one keeper thread renews every lease it started (a
/// [`LeaseKeeper`] decides when); when the work returns, the lease is released and the key can
/// start again. If the lease is lost — a renewal refused, renewals failing until the lease's
/// safe deadline, `max_hold` reached — the work is told through its [`Holding`]: work that
/// checks it between steps stops before another holder can start. Nothing can stop a thread
/// that does not look, so pass [`Holding::token`] to fenced writes as the last line of defence.
///
/// ```
/// use racefree::{Coordinator, KeeperOptions};
/// use std::time::Duration;
///
/// let store = racefree::open("memory://")?;
/// let tasks = Coordinator::new(&store, "tasks", KeeperOptions::new(Duration::from_secs(30))?)?;
/// let (finish, finished_when) = std::sync::mpsc::channel::<()>();
/// let run = tasks.start("report:7", move |holding| {
///     for _step in 0..3 {
///         holding.check()?; // Err(LeaseLost) once the lease is lost: stop here
///         // … one step of the work …
///     }
///     finished_when.recv().ok(); // (here: until the caller lets it finish)
///     Ok::<_, racefree::Error>("done")
/// })?;
/// let run = run.expect("nobody ran report:7");
/// assert!(tasks.start("report:7", |_| ())?.is_none()); // running: a second start is refused
/// finish.send(()).expect("the work waits");
/// let finished = run.join();
/// assert_eq!(finished.value?, "done");
/// assert!(finished.lost.is_none());
/// assert!(tasks.start("report:7", |_| ())?.is_some()); // released: free again
/// # Ok::<(), racefree::Error>(())
/// ```
///
/// Renewals are sent one after another by the keeper thread: a store call that hangs delays the
/// renewals queued behind it (never a loss judgement, which each [`Holding`] makes from the
/// clock). Keep the store's timeout (`timeout_ms`, `busy_timeout_ms`) well below `renew_every`.
pub struct Coordinator {
    lock: StartLock,
    options: KeeperOptions,
    keeper: Arc<Keeper>,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("lock", &self.lock.name())
            .field("options", &self.options)
            .finish()
    }
}

/// The keeper thread's shared state: the leases it keeps, on one monotonic clock.
struct Keeper {
    origin: Instant,
    state: Mutex<KeeperState>,
    wake: Condvar,
}

#[derive(Default)]
struct KeeperState {
    leases: Vec<Arc<Held>>,
    thread_running: bool,
    closed: bool,
}

/// One kept lease, shared by the keeper thread, the work's [`Holding`] and its [`Running`].
struct Held {
    key: String,
    token: u64,
    origin: Instant,
    keeper: Mutex<LeaseKeeper>,
    changed: Condvar,
}

impl Held {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Coordinator {
    /// A coordinator over the lock `name` in `store`, keeping leases by `options`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty or oversized name.
    pub fn new(store: &SharedStore, name: &str, options: KeeperOptions) -> Result<Self> {
        Ok(Self {
            lock: StartLock::new(store, name)?,
            options,
            keeper: Arc::new(Keeper {
                origin: Instant::now(),
                state: Mutex::new(KeeperState::default()),
                wake: Condvar::new(),
            }),
        })
    }

    /// The lock the leases come from.
    #[must_use]
    pub fn lock(&self) -> &StartLock {
        &self.lock
    }

    /// Starts `work` on a new thread under a lease on `key`, unless somebody holds the key;
    /// `None` then, at once.
    ///
    /// # Errors
    /// As [`StartLock::try_start`]; [`Error::BackendUnavailable`] if the OS refuses a thread
    /// (the lease is released first).
    ///
    /// # Atomicity
    /// The grant is one [`StartLock::try_grant`]; every renewal one [`StartLock::renew_token`].
    pub fn start<T, F>(&self, key: &str, work: F) -> Result<Option<Running<T>>>
    where
        F: FnOnce(&Holding) -> T + Send + 'static,
        T: Send + 'static,
    {
        let requested_at = self.keeper.origin.elapsed();
        let Some(grant) = self.lock.try_grant(key, self.options.ttl())? else { return Ok(None) };
        let held = Arc::new(Held {
            key: key.to_owned(),
            token: grant.token,
            origin: self.keeper.origin,
            keeper: Mutex::new(self.lock.keeper(&self.options, key, grant.token, requested_at)),
            changed: Condvar::new(),
        });
        if let Err(error) = self.keep(&held) {
            let _ = self.lock.release_token(key, grant.token);
            return Err(error);
        }
        let holding = Holding { held: Arc::clone(&held) };
        let (lock, keeper) = (self.lock.clone(), Arc::clone(&self.keeper));
        let spawned = std::thread::Builder::new().name("racefree-work".into()).spawn(move || {
            let value = panic::catch_unwind(AssertUnwindSafe(|| work(&holding)));
            let lost = holding.lost(); // judged as the work ended, before the release
            keeper.forget(&holding.held);
            let release_error = match lock.release_token(&holding.held.key, holding.held.token) {
                Ok(()) | Err(Error::NotOwner { .. }) => None,
                Err(error) => Some(error),
            };
            (value, lost, release_error)
        });
        match spawned {
            Ok(thread) => Ok(Some(Running { thread, holding: Holding { held } })),
            Err(error) => {
                self.keeper.forget(&held);
                let _ = self.lock.release_token(key, grant.token);
                Err(Error::unavailable(format!("could not start the work's thread: {error}")))
            }
        }
    }

    /// Whether somebody holds `key` (any process sharing the store).
    ///
    /// # Errors
    /// As [`StartLock::is_held`].
    pub fn is_running(&self, key: &str) -> Result<bool> {
        self.lock.is_held(key)
    }

    /// Hands `held` to the keeper thread, starting the thread if it is not running.
    fn keep(&self, held: &Arc<Held>) -> Result<()> {
        let mut state = self.keeper.state.lock();
        state.leases.push(Arc::clone(held));
        if !state.thread_running {
            let (keeper, lock) = (Arc::clone(&self.keeper), self.lock.clone());
            std::thread::Builder::new()
                .name("racefree-keeper".into())
                .spawn(move || keeper.run(&lock))
                .map_err(|e| Error::unavailable(format!("could not start the keeper thread: {e}")))?;
            state.thread_running = true;
        }
        self.keeper.wake.notify_one();
        Ok(())
    }
}

impl Drop for Coordinator {
    /// The keeper thread goes on renewing the leases of works still running, then ends.
    fn drop(&mut self) {
        self.keeper.state.lock().closed = true;
        self.keeper.wake.notify_one();
    }
}

impl Keeper {
    fn forget(&self, held: &Arc<Held>) {
        self.state.lock().leases.retain(|other| !Arc::ptr_eq(other, held));
        self.wake.notify_one();
    }

    /// The keeper thread: polls every lease, sends the renewals that are due, sleeps until the
    /// next one is. Lost leases are dropped from the list (their works were told).
    fn run(&self, lock: &StartLock) {
        let mut state = self.state.lock();
        loop {
            if state.closed && state.leases.is_empty() {
                state.thread_running = false;
                return;
            }
            let now = self.origin.elapsed();
            let mut due = Vec::new();
            let mut wake_at: Option<Duration> = None;
            state.leases.retain(|held| match held.keeper.lock().poll(now) {
                KeeperStep::Renew => {
                    due.push(Arc::clone(held));
                    true
                }
                KeeperStep::WaitUntil(at) => {
                    wake_at = Some(wake_at.map_or(at, |earliest| earliest.min(at)));
                    true
                }
                KeeperStep::Lost(_) => {
                    held.changed.notify_all();
                    false
                }
            });
            if due.is_empty() {
                match wake_at {
                    Some(at) => {
                        self.wake.wait_until(&mut state, self.origin + at);
                    }
                    None => self.wake.wait(&mut state),
                }
                continue;
            }
            drop(state);
            for held in due {
                let ttl = held.keeper.lock().options().ttl();
                let reply = lock.renew_token(&held.key, held.token, ttl);
                held.keeper.lock().on_reply(reply, held.now());
                held.changed.notify_all();
            }
            state = self.state.lock();
        }
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

    /// The lease's fencing token, for [`Records::put_fenced`](crate::Records::put_fenced) and
    /// other writes that must not land after the lease is lost.
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

    /// `Err(LeaseLost)` once the lease is lost: `holding.check()?` between the work's steps.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] with the reason.
    pub fn check(&self) -> Result<()> {
        self.lost().map_or(Ok(()), Err)
    }

    /// Waits up to `timeout` for the lease to be lost; returns whether it is.
    #[must_use]
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let held = &self.held;
        let give_up = held.now().saturating_add(timeout);
        let mut keeper = held.keeper.lock();
        loop {
            let now = held.now();
            if keeper.check(now).is_some() {
                return true;
            }
            if now >= give_up {
                return false;
            }
            let until = keeper.lost_at().min(give_up);
            held.changed.wait_until(&mut keeper, held.origin + until);
        }
    }
}

/// A work started by [`Coordinator::start`], running on its own thread.
pub struct Running<T> {
    thread: JoinHandle<WorkOutcome<T>>,
    holding: Holding,
}

type WorkOutcome<T> = (std::thread::Result<T>, Option<Error>, Option<Error>);

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

    /// Whether the work has returned.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the work to return and its lease to be released.
    ///
    /// # Panics
    /// Resumes the work's panic, after its lease was released.
    #[must_use]
    pub fn join(self) -> Finished<T> {
        let (value, lost, release_error) = match self.thread.join() {
            Ok(outcome) => outcome,
            Err(payload) => panic::resume_unwind(payload), // the wrapper itself cannot panic
        };
        match value {
            Ok(value) => Finished { value, lost, release_error },
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}

/// How a work ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished<T> {
    /// What the work returned.
    pub value: T,
    /// [`Error::LeaseLost`] if the lease was lost before the work returned: then another holder
    /// may have run the key meanwhile.
    pub lost: Option<Error>,
    /// A release that failed for another reason than a lost lease (a backend failure): the lease
    /// then expires by its TTL.
    pub release_error: Option<Error>,
}
