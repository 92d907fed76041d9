//! Idempotent, ordered lifecycle events: each event once per stream, never before its predecessor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::metrics::{names, Labels, Tally};
use crate::short_key::same;
use crate::store::{MarkOutcome, SharedStore};
use crate::validate;

/// The default time marks are kept after a stream's last new event: one hour.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// The most events a guard can declare.
pub const MAX_EVENTS: usize = 64;

/// What [`EventGuard::mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mark {
    /// This caller marked the event: it is the one that delivers it.
    First,
    /// The event was marked before: suppress it.
    Duplicate,
}

impl Mark {
    /// `true` for [`Mark::First`].
    #[must_use]
    pub fn is_first(self) -> bool {
        self == Mark::First
    }
}

/// Options for an [`EventGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardOptions {
    /// How long a stream's marks are kept after its last new event (default [`DEFAULT_RETENTION`]).
    pub retention: Duration,
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self { retention: DEFAULT_RETENTION }
    }
}

impl GuardOptions {
    /// Options with the given retention.
    #[must_use]
    pub fn retention(retention: Duration) -> Self {
        Self { retention }
    }
}

/// Declares a stream's ordered lifecycle events and lets each be delivered exactly once, in order.
///
/// It ends duplicate `stream_ended` events from several code paths and `ended` overtaking
/// `started`: of any number of concurrent callers marking the same event exactly one gets
/// [`Mark::First`]; marking an event whose predecessor is not marked is
/// [`Error::OutOfOrder`] and records nothing. Marks are forgotten after the retention period, so
/// the tracking cannot grow without bound.
///
/// ```
/// use racefree::{Error, EventGuard, Mark, MemoryStore, SharedStore};
/// use std::sync::Arc;
///
/// let store: SharedStore = Arc::new(MemoryStore::new());
/// let guard = EventGuard::new(&store, "streams", &["started", "ended"])?;
/// assert!(matches!(guard.mark("s1", "ended"), Err(Error::OutOfOrder { .. })));
/// assert_eq!(guard.mark("s1", "started")?, Mark::First);
/// assert_eq!(guard.mark("s1", "ended")?, Mark::First);
/// assert_eq!(guard.mark("s1", "ended")?, Mark::Duplicate);
/// # Ok::<(), racefree::Error>(())
/// ```
pub struct EventGuard {
    store: SharedStore,
    declared: Declared,
}

/// A guard's name, events and retention as validated, and its handle's counts: everything but
/// the store, shared by the blocking and the async guard.
pub(crate) struct Declared {
    pub(crate) name: String,
    pub(crate) events: Vec<String>,
    pub(crate) retention_ms: u64,
    stats: Arc<GuardStatsInner>,
}

#[derive(Debug)]
struct GuardStatsInner {
    labels: Labels,
    delivered: Tally,
    duplicates_suppressed: Tally,
    out_of_order: Tally,
}

impl GuardStatsInner {
    fn new(name: &str, backend: &'static str) -> Self {
        let labels = Labels::new("event_guard", Some(name), backend);
        Self {
            delivered: Tally::new(&labels, names::MARKS, Some("first")),
            duplicates_suppressed: Tally::new(&labels, names::MARKS, Some("duplicate")),
            out_of_order: Tally::new(&labels, names::MARKS, Some("out_of_order")),
            labels,
        }
    }
}

/// What an [`EventGuard`] handle has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GuardStats {
    /// Marks that returned `First`.
    pub delivered: u64,
    /// Marks that returned `Duplicate`.
    pub duplicates_suppressed: u64,
    /// Marks rejected as out of order.
    pub out_of_order: u64,
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
    /// A guard named `name` over `events`, in the order they must happen, with default options.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad name or event name; [`Error::InvalidArgument`] for no
    /// events, more than [`MAX_EVENTS`], or the same event twice.
    pub fn new<S: AsRef<str>>(store: &SharedStore, name: &str, events: &[S]) -> Result<Self> {
        Self::with_options(store, name, events, GuardOptions::default())
    }

    /// [`new`](EventGuard::new) with options.
    ///
    /// # Errors
    /// As [`new`](EventGuard::new), and [`Error::InvalidArgument`] for a zero or huge retention.
    pub fn with_options<S: AsRef<str>>(
        store: &SharedStore,
        name: &str,
        events: &[S],
        options: GuardOptions,
    ) -> Result<Self> {
        Ok(Self {
            store: Arc::clone(store),
            declared: Declared::new(name, events, options, store.backend())?,
        })
    }

    /// The declared events, in order.
    #[must_use]
    pub fn events(&self) -> &[String] {
        &self.declared.events
    }

    /// Marks `event` of `stream`: [`Mark::First`] for the one caller that records it,
    /// [`Mark::Duplicate`] for everyone after.
    ///
    /// # Errors
    /// [`Error::OutOfOrder`] when the event before it is not marked (nothing is recorded);
    /// [`Error::InvalidKey`] for a bad stream id; [`Error::InvalidArgument`] for an undeclared
    /// event; [`Error::CapacityExceeded`] for a new stream past the store's bound.
    ///
    /// # Atomicity
    /// The predecessor check and the mark are one step: memory, one critical section; SQLite, one
    /// transaction; Redis, one Lua script; PostgreSQL, one server-side function.
    pub fn mark(&self, stream: &str, event: &str) -> Result<Mark> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        let outcome =
            self.store.guard_mark(&self.declared.name, stream, position, self.declared.retention_ms);
        self.declared.settle(stream, event, self.declared.errors(outcome)?)
    }

    /// Whether `event` of `stream` is marked (and not yet forgotten).
    ///
    /// # Errors
    /// As [`mark`](EventGuard::mark), without `OutOfOrder`.
    ///
    /// # Atomicity
    /// One read.
    pub fn is_marked(&self, stream: &str, event: &str) -> Result<bool> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        Ok(self.store.guard_marked(&self.declared.name, stream)? > position)
    }

    /// The latest event marked for `stream`, if any.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad stream id; backend failures.
    ///
    /// # Atomicity
    /// One read.
    pub fn last_marked(&self, stream: &str) -> Result<Option<&str>> {
        validate::key("stream id", stream)?;
        Ok(self.declared.last(self.store.guard_marked(&self.declared.name, stream)?))
    }

    /// Forgets `stream`'s marks now instead of at the end of the retention; returns whether it had any.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad stream id; backend failures.
    ///
    /// # Atomicity
    /// One delete.
    pub fn forget(&self, stream: &str) -> Result<bool> {
        validate::key("stream id", stream)?;
        self.store.guard_forget(&self.declared.name, stream)
    }

    /// What this handle has seen.
    #[must_use]
    pub fn stats(&self) -> GuardStats {
        self.declared.stats()
    }
}

impl Declared {
    pub(crate) fn new<S: AsRef<str>>(
        name: &str,
        events: &[S],
        options: GuardOptions,
        backend: &'static str,
    ) -> Result<Self> {
        validate::key("guard name", name)?;
        let retention_ms = validate::ttl_ms("retention", options.retention)?;
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(Error::invalid_argument(format!(
                "a guard declares 1 to {MAX_EVENTS} events, got {}",
                events.len()
            )));
        }
        let mut declared: Vec<String> = Vec::with_capacity(events.len());
        for event in events {
            let event = validate::key("event name", event.as_ref())?;
            if declared.iter().any(|e| e == event) {
                return Err(Error::invalid_argument(format!("event {event:?} is declared twice")));
            }
            declared.push(event.to_owned());
        }
        let stats = Arc::new(GuardStatsInner::new(name, backend));
        Ok(Self { name: name.to_owned(), events: declared, retention_ms, stats })
    }

    /// Inlined, with the error out of line: a `Result` (the size of `Error`) returned from a
    /// call comes back through memory, on every mark.
    #[inline(always)]
    pub(crate) fn position(&self, event: &str) -> Result<u32> {
        match self.events.iter().position(|e| same(e, event)) {
            Some(position) => Ok(position as u32),
            None => Err(self.undeclared(event)),
        }
    }

    #[cold]
    #[inline(never)]
    fn undeclared(&self, event: &str) -> Error {
        Error::invalid_argument(format!("event {event:?} is not one of {:?}", self.events))
    }

    /// Counts `result`'s error (the store's), if it is one.
    pub(crate) fn errors<T>(&self, result: Result<T>) -> Result<T> {
        self.stats.labels.errors(result)
    }

    /// The store's outcome of marking `event` as the caller sees it, counted.
    pub(crate) fn settle(&self, stream: &str, event: &str, outcome: MarkOutcome) -> Result<Mark> {
        match outcome {
            MarkOutcome::First => {
                self.stats.delivered.add(1);
                Ok(Mark::First)
            }
            MarkOutcome::Duplicate => {
                self.stats.duplicates_suppressed.add(1);
                Ok(Mark::Duplicate)
            }
            MarkOutcome::OutOfOrder { marked } => {
                self.stats.out_of_order.add(1);
                Err(Error::OutOfOrder {
                    stream: stream.to_owned(),
                    event: event.to_owned(),
                    missing: self.events[marked as usize].clone(),
                })
            }
        }
    }

    /// The latest event marked when the first `marked` are.
    pub(crate) fn last(&self, marked: u32) -> Option<&str> {
        (marked as usize).checked_sub(1).and_then(|i| self.events.get(i)).map(String::as_str)
    }

    pub(crate) fn stats(&self) -> GuardStats {
        GuardStats {
            delivered: self.stats.delivered.get(),
            duplicates_suppressed: self.stats.duplicates_suppressed.get(),
            out_of_order: self.stats.out_of_order.get(),
        }
    }
}
