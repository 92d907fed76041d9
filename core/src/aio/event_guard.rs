//! [`crate::EventGuard`] as futures.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::SharedStore;
use crate::error::{Error, Result};
use crate::event_guard::Declared;
use crate::store::MarkOutcome;
use crate::validate;
use crate::{GuardOptions, GuardStats, Mark};

/// [`crate::EventGuard`] whose operations are futures: the same marks, methods and errors.
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// use racefree::Mark;
/// let store = racefree::aio::open("memory://").await?;
/// let guard = racefree::aio::EventGuard::new(&store, "streams", &["started", "ended"])?;
/// assert!(guard.mark("s1", "ended").await.is_err()); // out of order
/// assert_eq!(guard.mark("s1", "started").await?, Mark::First);
/// assert_eq!(guard.mark("s1", "started").await?, Mark::Duplicate);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))] fn main() {} // the example needs tokio's runtime
/// ```
pub struct EventGuard {
    store: SharedStore,
    declared: Declared,
    marks: Arc<Mutex<InFlight>>,
}

/// The marks of one handle on their way to a remote store, by stream and event position.
#[derive(Default)]
struct InFlight {
    /// A mark being sent: later marks of the same event wait for its outcome.
    sending: HashMap<(String, u32), Arc<Notify>>,
    /// Marks that were `First` after their caller had gone: the next mark of the event on this
    /// handle is told `First` (it delivers the event), so a dropped mark loses no event.
    undelivered: HashSet<(String, u32)>,
}

impl fmt::Debug for EventGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventGuard")
            .field("name", &self.declared.name)
            .field("events", &self.declared.events)
            .finish_non_exhaustive()
    }
}

impl EventGuard {
    /// As [`crate::EventGuard::new`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::new`].
    pub fn new<S: AsRef<str>>(store: &SharedStore, name: &str, events: &[S]) -> Result<Self> {
        Self::with_options(store, name, events, GuardOptions::default())
    }

    /// As [`crate::EventGuard::with_options`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::with_options`].
    pub fn with_options<S: AsRef<str>>(
        store: &SharedStore,
        name: &str,
        events: &[S],
        options: GuardOptions,
    ) -> Result<Self> {
        Ok(Self {
            store: Arc::clone(store),
            declared: Declared::new(name, events, options, store.backend())?,
            marks: Arc::default(),
        })
    }

    /// The declared events, in order.
    #[must_use]
    pub fn events(&self) -> &[String] {
        &self.declared.events
    }

    /// As [`crate::EventGuard::mark`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::mark`].
    ///
    /// # Cancel safety
    /// Cancel-safe, on this handle: on a remote store the mark runs in a task of its own, and a
    /// mark that lands `First` after its caller was dropped is kept for the next mark of the
    /// same event on this handle, which is told `First` (it delivers the event). A mark of an
    /// event whose earlier mark on this handle is still in flight waits for that one's outcome.
    /// So a mark retried after a drop gives `First` exactly once. (Another handle, or another
    /// process, is told `Duplicate`: the event is marked.)
    pub async fn mark(&self, stream: &str, event: &str) -> Result<Mark> {
        Ok(self.mark_to_deliver(stream, event).await?.deliver())
    }

    /// [`mark`](EventGuard::mark), for a host that hands the outcome on to its own caller (a
    /// binding's event loop): a `First` stays this handle's until [`ToDeliver::deliver`] says it
    /// reached its caller. Dropped undelivered, it is kept for the next mark of the event on
    /// this handle, which waits for it and is told `First`.
    ///
    /// # Errors
    /// As [`mark`](EventGuard::mark).
    ///
    /// # Cancel safety
    /// As [`mark`](EventGuard::mark).
    pub async fn mark_to_deliver(&self, stream: &str, event: &str) -> Result<ToDeliver> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        let mut sent = if self.store.runs_to_completion() {
            // Never dropped half-way: no First can be left undelivered by this call, so none is
            // waited for (concurrent marks of one event are told apart by the store itself).
            let event = (stream.to_owned(), position);
            // Emptiness first: most marks find nothing kept, and hashing the event costs.
            let taken = {
                let mut marks = self.marks.lock();
                !marks.undelivered.is_empty() && marks.undelivered.remove(&event)
            };
            let outcome = if taken {
                MarkOutcome::First
            } else {
                let marked = self
                    .store
                    .guard_mark(&self.declared.name, stream, position, self.declared.retention_ms)
                    .await;
                self.declared.errors(marked)?
            };
            let done = Arc::new(Notify::new()); // not in `sending`: nobody waits on a local mark
            Sent { marks: Arc::clone(&self.marks), event, done, outcome: Some(Ok(outcome)) }
        } else {
            self.declared.errors(self.mark_in_own_task(stream, position).await)?
        };
        // Taken while it is settled: an error or an out-of-order mark leaves nothing to keep.
        let outcome = match sent.outcome.take() {
            Some(Ok(outcome)) => outcome,
            Some(Err(err)) => return self.declared.errors(Err(err)),
            None => return self.declared.errors(Err(Error::unavailable("the mark was not sent"))),
        };
        let mark = self.declared.settle(stream, event, outcome)?;
        sent.outcome = Some(Ok(outcome));
        Ok(ToDeliver { mark, sent })
    }

    /// Keeps a `First` that [`ToDeliver::deliver`] handed to a caller who was gone before it saw
    /// it (a host's task cancelled after its future got the mark): the next mark of the event on
    /// this handle is told `First`. Only for a `First` this handle delivered.
    ///
    /// # Errors
    /// `invalid_key` or `invalid_argument`, as [`mark`](EventGuard::mark).
    pub fn keep_undelivered(&self, stream: &str, event: &str) -> Result<()> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        self.marks.lock().undelivered.insert((stream.to_owned(), position));
        Ok(())
    }

    async fn mark_in_own_task(&self, stream: &str, position: u32) -> Result<Sent> {
        let event = (stream.to_owned(), position);
        // Wait for an earlier mark of this event on this handle; take its First if it was dropped.
        let done = loop {
            let earlier = {
                let mut marks = self.marks.lock();
                if marks.undelivered.remove(&event) {
                    // Taken over: this call now holds the First, in flight to its own caller.
                    let done = Arc::new(Notify::new());
                    marks.sending.insert(event.clone(), Arc::clone(&done));
                    drop(marks);
                    return Ok(Sent {
                        marks: Arc::clone(&self.marks),
                        event,
                        done,
                        outcome: Some(Ok(MarkOutcome::First)),
                    });
                }
                match marks.sending.get(&event) {
                    Some(earlier) => Arc::clone(earlier),
                    None => {
                        let done = Arc::new(Notify::new());
                        marks.sending.insert(event.clone(), Arc::clone(&done));
                        break done;
                    }
                }
            };
            let notified = earlier.notified();
            let still_sending =
                self.marks.lock().sending.get(&event).is_some_and(|now| Arc::ptr_eq(now, &earlier));
            if still_sending {
                notified.await;
            }
        };
        let sent = Sent { marks: Arc::clone(&self.marks), event, done, outcome: None };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let (store, guard, retention_ms) =
            (Arc::clone(&self.store), self.declared.name.clone(), self.declared.retention_ms);
        let spawn = self.store.spawner();
        spawn(Box::pin(async move {
            let mut sent = sent;
            sent.outcome = Some(store.guard_mark(&guard, &sent.event.0, position, retention_ms).await);
            // Dropped unread (its receiver gone, now or later), a First is kept for the next mark.
            let _ = reply.send(sent);
        }));
        answer.await.map_err(|_| Error::unavailable("the task marking the event ended without a result"))
    }

    /// As [`crate::EventGuard::is_marked`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::is_marked`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn is_marked(&self, stream: &str, event: &str) -> Result<bool> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        Ok(self.store.guard_marked(&self.declared.name, stream).await? > position)
    }

    /// As [`crate::EventGuard::last_marked`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::last_marked`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn last_marked(&self, stream: &str) -> Result<Option<&str>> {
        validate::key("stream id", stream)?;
        Ok(self.declared.last(self.store.guard_marked(&self.declared.name, stream).await?))
    }

    /// As [`crate::EventGuard::forget`].
    ///
    /// # Errors
    /// As [`crate::EventGuard::forget`].
    ///
    /// # Cancel safety
    /// Cancel-safe: forgetting again finds nothing more to forget.
    pub async fn forget(&self, stream: &str) -> Result<bool> {
        validate::key("stream id", stream)?;
        self.store.guard_forget(&self.declared.name, stream).await
    }

    /// What this handle has seen.
    #[must_use]
    pub fn stats(&self) -> GuardStats {
        self.declared.stats()
    }
}

/// The outcome of [`EventGuard::mark_to_deliver`], on its way to whoever asked for the mark.
#[derive(Debug)]
#[must_use = "dropped undelivered, a First is kept for the next mark of the event on this handle"]
pub struct ToDeliver {
    mark: Mark,
    sent: Sent,
}

impl ToDeliver {
    /// The mark, without delivering it.
    pub fn mark(&self) -> Mark {
        self.mark
    }

    /// Says the mark reached its caller, and returns it: a later mark of the event on this
    /// handle goes on.
    pub fn deliver(mut self) -> Mark {
        self.sent.outcome = None;
        self.mark
    }
}

/// A mark's outcome on its way to its caller. Read, it lets later marks of its event go on;
/// dropped unread, a `First` is kept for the next mark of the event on the handle.
struct Sent {
    marks: Arc<Mutex<InFlight>>,
    event: (String, u32),
    done: Arc<Notify>,
    outcome: Option<Result<MarkOutcome>>,
}

impl fmt::Debug for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent").field("event", &self.event).finish_non_exhaustive()
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        let mut marks = self.marks.lock();
        if let Some(Ok(MarkOutcome::First)) = self.outcome {
            marks.undelivered.insert(self.event.clone());
        }
        if marks.sending.get(&self.event).is_some_and(|sending| Arc::ptr_eq(sending, &self.done)) {
            marks.sending.remove(&self.event);
        }
        drop(marks);
        self.done.notify_waiters();
    }
}
