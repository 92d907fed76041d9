//! The native half of `racefree.asyncio`: the core's async primitives (`racefree::aio`) on a tokio
//! runtime of this extension's own, each call an asyncio future of the caller's event loop.
//!
//! No thread per call and no GIL on the runtime: a finished call is queued in its loop's
//! [`Completions`] and one byte on a pipe wakes the loop, which sets the results of everything
//! queued (`drain`) on its own thread. A cancelled future aborts its call, which the core's
//! async primitives are written to survive (a grant that lands anyway is released, a mark keeps
//! its first delivery for the next caller); a grant that finished but was never delivered is
//! released here.

use std::future::Future;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use racefree::aio;
use racefree::SharedClock;

use crate::errors::{internal, to_py};

/// The runtime of every async call: one per process, with one worker (the event loop's thread is
/// the other core's work). A forked child builds its own: the parent's worker threads do not
/// exist in it. Its blocking pool, where SQLite's calls run, is small: an SQLite store has one
/// connection, so a thread per waiting call would only wait on its lock.
fn runtime() -> PyResult<tokio::runtime::Handle> {
    static RUNTIME: Mutex<Option<(u32, tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock();
    if let Some((owner, runtime)) = &*slot {
        if *owner == pid {
            return Ok(runtime.handle().clone());
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // Dropping it would wait for worker threads that only the parent has.
        std::mem::forget(inherited);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("racefree-aio")
        .enable_all()
        .build()
        .map_err(|e| internal(&format!("cannot start the runtime of async calls: {e}")))?;
    let handle = runtime.handle().clone();
    *slot = Some((pid, runtime));
    Ok(handle)
}

/// What to do with a finished call on the loop's thread: its result for the future, or, when the
/// future is already done (cancelled), `None` after giving back what nobody will own.
type Deliver = Box<dyn FnOnce(Python<'_>, bool) -> Option<PyResult<Py<PyAny>>> + Send>;

struct Queue {
    finished: Mutex<Vec<(Py<PyAny>, Deliver)>>,
    wake: std::fs::File,
}

impl Queue {
    fn push(&self, future: Py<PyAny>, deliver: Deliver) {
        let was_empty = {
            let mut finished = self.finished.lock();
            finished.push((future, deliver));
            finished.len() == 1
        };
        // One byte per batch: the loop drains everything queued when it wakes. A full pipe
        // already holds a wake-up, so a failed write loses nothing.
        if was_empty {
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// The finished calls of one event loop, and the pipe that wakes it. Made by
/// `racefree.asyncio`, which reads the pipe's other end with `loop.add_reader` and then calls
/// `drain`. It holds no reference to the loop (the loop's reader holds it).
#[pyclass(module = "racefree._native", frozen)]
pub struct Completions {
    queue: Arc<Queue>,
}

#[pymethods]
impl Completions {
    /// `wake_fd`: the write end of a non-blocking pipe, owned (and closed) by this object.
    #[new]
    fn new(wake_fd: RawFd) -> PyResult<Self> {
        if wake_fd < 0 {
            return Err(internal("wake_fd must be an open file descriptor"));
        }
        // SAFETY: the caller hands over an open descriptor it no longer uses (documented above).
        #[allow(unsafe_code)]
        let wake = unsafe { std::fs::File::from_raw_fd(wake_fd) };
        Ok(Self { queue: Arc::new(Queue { finished: Mutex::new(Vec::new()), wake }) })
    }

    /// Sets the result or exception of every finished call (on the loop's thread).
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        let finished = std::mem::take(&mut *self.queue.finished.lock());
        for (future, deliver) in finished {
            let future = future.bind(py);
            let wanted = !future.call_method0("done")?.is_truthy()?;
            match deliver(py, wanted) {
                Some(Ok(value)) => {
                    future.call_method1("set_result", (value,))?;
                }
                Some(Err(error)) => {
                    future.call_method1("set_exception", (error.into_value(py),))?;
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// Aborts a call whose future was cancelled (its done callback).
#[pyclass(module = "racefree._native", frozen)]
struct AbortOnCancel(tokio::task::AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

/// What to do, on the loop's thread, with a result whose future was cancelled after the call
/// finished: nobody will see it (a lease to release on the runtime, a first mark to keep).
pub type GiveBack<T> = Box<dyn FnOnce(T, &tokio::runtime::Handle) + Send>;

/// What cancelling a call's future does to the call.
pub enum OnCancel<T> {
    /// Drops it where it waits: the core's async primitives are cancel-safe. A result that was
    /// already on its way goes to `give_back`, if any.
    Abort { give_back: Option<GiveBack<T>> },
    /// Lets it finish (a release: the caller meant it to happen).
    Finish,
}

/// Aborted on cancellation, with nothing to give back.
pub fn abort<T>() -> OnCancel<T> {
    OnCancel::Abort { give_back: None }
}

/// `asyncio.get_running_loop`, looked up once.
static GET_RUNNING_LOOP: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// Runs `call` on the runtime; returns a future of the running event loop (whose `completions`
/// these are) that gets the `convert`ed result, or the error as racefree's exception.
pub fn spawn<T, F>(
    py: Python<'_>,
    completions: &Completions,
    call: F,
    convert: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    on_cancel: OnCancel<T>,
) -> PyResult<Py<PyAny>>
where
    F: Future<Output = racefree::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let runtime = runtime()?;
    let get_running_loop = GET_RUNNING_LOOP
        .get_or_try_init(py, || py.import("asyncio")?.getattr("get_running_loop").map(Bound::unbind))?;
    let future = get_running_loop.call0(py)?.call_method0(py, "create_future")?;
    let (queue, target) = (Arc::clone(&completions.queue), future.clone_ref(py));
    let on_runtime = runtime.clone();
    let abortable = matches!(on_cancel, OnCancel::Abort { .. });
    let task = runtime.spawn(async move {
        let outcome = call.await;
        let deliver: Deliver = Box::new(move |py, wanted| match (outcome, wanted) {
            (Ok(value), true) => Some(convert(py, value)),
            (Err(error), true) => Some(Err(to_py(error))),
            (Ok(value), false) => {
                if let OnCancel::Abort { give_back: Some(give_back) } = on_cancel {
                    give_back(value, &on_runtime);
                }
                None
            }
            (Err(_), false) => None,
        });
        queue.push(target, deliver);
    });
    if abortable {
        future.call_method1(py, "add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    }
    Ok(future)
}

/// The async store of a `racefree.Store`: the blocking store itself (inline when local, else on
/// the runtime's blocking pool) for memory and SQLite, which share its state; for Redis and
/// PostgreSQL the core's async store, connected on first use in each process.
pub fn async_store(
    url: &str,
    blocking: &racefree::SharedStore,
    clock: Option<SharedClock>,
) -> aio::SharedStore {
    use racefree::store::StoreUrl;
    match StoreUrl::parse(url) {
        Ok(StoreUrl::Redis { .. } | StoreUrl::Postgres { .. }) => Arc::new(OpenedPerProcess {
            url: url.to_owned(),
            backend: blocking.backend(),
            clock: clock.unwrap_or_else(|| blocking.clock().clone()),
            namespace: blocking.namespace().to_owned(),
            opened: Mutex::new(None),
        }),
        _ => aio::from_blocking(Arc::clone(blocking)),
    }
}

/// A Redis or PostgreSQL async store, opened on first use in each process (a forked child opens
/// its own connections: one socket read by two processes would cross their replies).
struct OpenedPerProcess {
    url: String,
    /// The blocking store's, which the opened one is of (the metrics' `backend` label).
    backend: &'static str,
    clock: SharedClock,
    namespace: String,
    opened: Mutex<Option<(u32, Arc<tokio::sync::OnceCell<aio::SharedStore>>)>>,
}

impl std::fmt::Debug for OpenedPerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedPerProcess").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl OpenedPerProcess {
    async fn store(&self) -> racefree::Result<aio::SharedStore> {
        let pid = std::process::id();
        let cell = {
            let mut opened = self.opened.lock();
            match &*opened {
                Some((owner, cell)) if *owner == pid => Arc::clone(cell),
                _ => {
                    if let Some(inherited) = opened.take() {
                        // The parent's connections: never read, never closed from here.
                        std::mem::forget(inherited);
                    }
                    let cell = Arc::new(tokio::sync::OnceCell::new());
                    *opened = Some((pid, Arc::clone(&cell)));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| aio::open_with_clock(&self.url, Arc::clone(&self.clock))).await.cloned()
    }
}

/// Each method: the opened store's.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name<'a>(&'a self, $($arg: $ty),*) -> aio::BoxFuture<'a, racefree::Result<$out>> {
            Box::pin(async move { self.store().await?.$name($($arg),*).await })
        })*
    };
}

impl aio::Store for OpenedPerProcess {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn backend(&self) -> &'static str {
        self.backend
    }

    forward! {
        counter_next(counter: &'a str) -> u64;
        counter_claim(counter: &'a str, id: &'a str) -> racefree::Claim;
        counter_index_of(counter: &'a str, id: &'a str) -> Option<u64>;
        counter_peek(counter: &'a str) -> u64;
        counter_set(counter: &'a str, next: u64) -> ();
        counter_reset(counter: &'a str) -> ();
        guard_mark(guard: &'a str, stream: &'a str, position: u32, retention_ms: u64) -> racefree::store::MarkOutcome;
        guard_marked(guard: &'a str, stream: &'a str) -> u32;
        guard_forget(guard: &'a str, stream: &'a str) -> bool;
        lease_try_grant(lock: &'a str, key: &'a str, ttl_ms: u64) -> Option<racefree::store::LeaseGrant>;
        lease_renew(lock: &'a str, key: &'a str, token: u64, ttl_ms: u64) -> u64;
        lease_release(lock: &'a str, key: &'a str, token: u64) -> ();
        lease_holder(lock: &'a str, key: &'a str) -> Option<racefree::store::LeaseGrant>;
        record_get(space: &'a str, key: &'a str) -> Option<racefree::Versioned>;
        record_put(space: &'a str, key: &'a str, value: &'a serde_json::Value, expected_version: Option<u64>, fencing_token: Option<u64>) -> u64;
        record_delete(space: &'a str, key: &'a str, expected_version: Option<u64>) -> bool;
    }

    fn sweep(&self) -> aio::BoxFuture<'_, racefree::Result<u64>> {
        Box::pin(async move { self.store().await?.sweep().await })
    }

    fn stats(&self) -> aio::BoxFuture<'_, racefree::Result<racefree::store::StoreStats>> {
        Box::pin(async move { self.store().await?.stats().await })
    }

    fn inspect(&self) -> aio::BoxFuture<'_, racefree::Result<racefree::store::Inventory>> {
        Box::pin(async move { self.store().await?.inspect().await })
    }
}
