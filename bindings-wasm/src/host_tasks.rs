//! The executor of the hosted stores' operations: each operation one task, polled again the
//! moment the host's client answers the request it waits for.
//!
//! `wasm-bindgen-futures` pays, per awaited JavaScript promise, two closures registered with a
//! `FinalizationRegistry` and a microtask hop, and per operation a task queue and another promise:
//! measured (Node 20, a client whose calls resolve at once, 64 callers), 3.1–3.4 µs of the
//! process's time per `next`, 15% of it in `makeMutClosure` alone; 2.6 µs with this executor.
//! Here the host's call gets the number of a slot for its answer, the JavaScript layer hands the
//! answer back with `hostAnswered`/`hostFailed` (`js/redis_client.ts`, `js/stores.ts`), and the
//! waiting task is polled right there.
//!
//! One thread (wasm32-unknown-unknown without atomics): every table is thread-local, and a task is
//! taken out of its table while it is polled, so a wake during a poll (of it or of another task)
//! only queues it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use js_sys::{Function, Promise};
use slab::Slab;
use wasm_bindgen::prelude::*;

type Work = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

/// A running operation, and the promise it settles (none for a task of the core's own spawner).
struct Task {
    work: Option<Work>,
    waker: Waker,
    settle: Option<(Function, Function)>,
}

/// What a host's promise settled to, or the waker of the task waiting for it.
enum Slot {
    Waiting(Option<Waker>),
    Settled(Result<JsValue, JsValue>),
    /// Its future was dropped first: the answer, when it comes, only frees the slot.
    Abandoned,
}

thread_local! {
    static TASKS: RefCell<Slab<Task>> = const { RefCell::new(Slab::new()) };
    static SLOTS: RefCell<Slab<Slot>> = const { RefCell::new(Slab::new()) };
    static READY: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
    static RUNNING: Cell<bool> = const { Cell::new(false) };
}

/// Wakes a task by its number in `TASKS`.
struct TaskWaker(usize);

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        wake(self.0);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        wake(self.0);
    }
}

fn wake(task: usize) {
    READY.with(|ready| ready.borrow_mut().push_back(task));
    run_ready();
}

/// Polls every woken task, unless a poll is under way (it then polls them when it returns).
fn run_ready() {
    if RUNNING.with(|running| running.replace(true)) {
        return;
    }
    while let Some(task) = READY.with(|ready| ready.borrow_mut().pop_front()) {
        poll(task);
    }
    RUNNING.with(|running| running.set(false));
}

/// Polls `task` once; settles its promise and frees it when it is done.
fn poll(task: usize) {
    let taken = TASKS.with(|tasks| {
        let mut tasks = tasks.borrow_mut();
        let entry = tasks.get_mut(task)?;
        Some((entry.work.take()?, entry.waker.clone()))
    });
    let Some((mut work, waker)) = taken else {
        return; // done already, or woken twice
    };
    let outcome = work.as_mut().poll(&mut Context::from_waker(&waker));
    let settle = TASKS.with(|tasks| {
        let mut tasks = tasks.borrow_mut();
        match outcome {
            Poll::Pending => {
                tasks[task].work = Some(work);
                None
            }
            Poll::Ready(result) => Some((tasks.remove(task).settle, result)),
        }
    });
    if let Some((Some((resolve, reject)), result)) = settle {
        // A call into JavaScript that only queues the promise's reactions: it cannot re-enter.
        let _ = match result {
            Ok(value) => resolve.call1(&JsValue::NULL, &value),
            Err(error) => reject.call1(&JsValue::NULL, &error),
        };
    }
}

fn start(work: Work, settle: Option<(Function, Function)>) {
    let task = TASKS.with(|tasks| {
        let mut tasks = tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let task = entry.key();
        entry.insert(Task { work: Some(work), waker: Waker::from(Arc::new(TaskWaker(task))), settle });
        task
    });
    wake(task);
}

/// `work` as a `Promise`: its value, or its error as the rejection.
pub(crate) fn promise(work: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let mut work: Option<Work> = Some(Box::pin(work));
    Promise::new(&mut |resolve, reject| {
        if let Some(work) = work.take() {
            start(work, Some((resolve, reject)));
        }
    })
}

/// Runs `work` to its end, nobody waiting for it (the core's spawner).
pub(crate) fn spawn(work: impl Future<Output = ()> + 'static) {
    start(
        Box::pin(async move {
            work.await;
            Ok(JsValue::UNDEFINED)
        }),
        None,
    );
}

/// Calls the host (`call`, with the number of a fresh answer slot), which answers the slot with
/// [`host_answered`] or [`host_failed`] exactly once (made sure of by the JavaScript layer:
/// `redis_client.ts` for Redis, `stores.ts` for PostgreSQL): the slot to await, or what the call
/// threw, the slot freed (no answer will come). Dropped before the answer comes, the slot is
/// freed when it does.
pub(crate) fn call_host(
    call: impl FnOnce(&JsValue) -> Result<JsValue, JsValue>,
) -> Result<HostAnswer, JsValue> {
    let slot = SLOTS.with(|slots| slots.borrow_mut().insert(Slot::Waiting(None)));
    match call(&JsValue::from(slot as u32)) {
        Ok(_) => Ok(HostAnswer { slot: Some(slot) }),
        Err(thrown) => {
            SLOTS.with(|slots| slots.borrow_mut().remove(slot));
            Err(thrown)
        }
    }
}

/// `[tasks, slots]`: the operations under way and the host calls they wait for (tests check that
/// none outlives its operation).
#[wasm_bindgen(js_name = hostPending)]
pub fn host_pending() -> Vec<u32> {
    let tasks = TASKS.with(|tasks| tasks.borrow().len());
    let slots = SLOTS.with(|slots| slots.borrow().len());
    vec![tasks as u32, slots as u32]
}

/// The host's call with slot `slot` succeeded: its value.
#[wasm_bindgen(js_name = hostAnswered)]
pub fn host_answered(slot: u32, value: JsValue) {
    settle(slot, Ok(value));
}

/// The host's call with slot `slot` failed: its error.
#[wasm_bindgen(js_name = hostFailed)]
pub fn host_failed(slot: u32, error: JsValue) {
    settle(slot, Err(error));
}

fn settle(slot: u32, result: Result<JsValue, JsValue>) {
    let waiting = SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let entry = slots.get_mut(slot as usize)?;
        match std::mem::replace(entry, Slot::Settled(result)) {
            Slot::Waiting(waker) => waker,
            Slot::Abandoned => {
                slots.remove(slot as usize);
                None
            }
            // Answered twice (a bug of the host's layer): the first answer stands.
            Slot::Settled(first) => {
                *entry = Slot::Settled(first);
                None
            }
        }
    });
    if let Some(waker) = waiting {
        waker.wake();
    }
}

/// The answer to one host call (see [`call_host`]). Dropped before it settles, its slot is freed
/// when the answer comes.
pub(crate) struct HostAnswer {
    /// `None` once the answer was taken.
    slot: Option<usize>,
}

impl Future for HostAnswer {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = self.slot else { return Poll::Pending };
        let answered = SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if let Slot::Waiting(waker) = &mut slots[slot] {
                *waker = Some(cx.waker().clone());
                return None;
            }
            match slots.remove(slot) {
                Slot::Settled(result) => Some(result),
                Slot::Waiting(_) | Slot::Abandoned => unreachable!("a slot is abandoned only by its drop"),
            }
        });
        match answered {
            Some(result) => {
                self.slot = None;
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for HostAnswer {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if matches!(slots[slot], Slot::Settled(_)) {
                slots.remove(slot);
            } else {
                slots[slot] = Slot::Abandoned;
            }
        });
    }
}
