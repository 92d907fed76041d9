//! [`crate::EventGuard`] as futures.

use std::fmt;
use std::sync::Arc;

use super::SharedStore;
use crate::error::Result;
use crate::event_guard::Declared;
use crate::validate;
use crate::{GuardOptions, GuardStats, Mark};

/// [`crate::EventGuard`] whose operations are futures: the same marks, methods and errors.
///
/// ```
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
/// ```
pub struct EventGuard {
    store: SharedStore,
    declared: Declared,
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
        Ok(Self { store: Arc::clone(store), declared: Declared::new(name, events, options)? })
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
    /// Dropped after its request was sent, the event may be marked without anyone told `First`:
    /// marking it again answers `Duplicate`. Drop a mark only where that event may go undelivered.
    pub async fn mark(&self, stream: &str, event: &str) -> Result<Mark> {
        validate::key("stream id", stream)?;
        let position = self.declared.position(event)?;
        let outcome =
            self.store.guard_mark(&self.declared.name, stream, position, self.declared.retention_ms).await?;
        self.declared.settle(stream, event, outcome)
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
