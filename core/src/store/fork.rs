//! Noticing `fork()`: a store's connections belong to the process that opened them.

use std::sync::atomic::{AtomicU32, Ordering};

/// The process a store's connections were opened in.
///
/// A child process made by `fork()` inherits the store, connections and all, and must never use
/// them: on a shared socket each reply goes to whichever process reads first (a key started
/// twice, replies of the wrong type), and SQLite forbids using — or even closing — a connection
/// carried across `fork()`. A store checks [`moved`](OpenedIn::moved) before each call and, in a
/// new process, lets go of what it inherited without sending anything on it, opens its own, and
/// only then marks the move [`settled`](OpenedIn::settled).
#[derive(Debug)]
pub(crate) struct OpenedIn {
    pid: AtomicU32,
}

impl OpenedIn {
    pub(crate) fn this_process() -> Self {
        Self { pid: AtomicU32::new(std::process::id()) }
    }

    /// Whether this is another process than the one the connections belong to; after letting
    /// go of what it inherited and opening its own, the caller says so with [`settled`].
    ///
    /// [`settled`]: OpenedIn::settled
    pub(crate) fn moved(&self) -> bool {
        self.pid.load(Ordering::Relaxed) != std::process::id()
    }

    /// The connections now belong to this process (only once the new ones are in place: a
    /// failed reopen must be tried again, never fall back to the inherited connection).
    pub(crate) fn settled(&self) {
        self.pid.store(std::process::id(), Ordering::Relaxed);
    }
}
