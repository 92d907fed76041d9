//! Noticing `fork()`: a store's connections belong to the process that opened them.

use std::sync::atomic::{AtomicU32, Ordering};

/// The process a store's connections were opened in.
///
/// A child process made by `fork()` inherits the store, connections and all, and must never use
/// them: on a shared socket each reply goes to whichever process reads first (a key started
/// twice, replies of the wrong type), and SQLite forbids using — or even closing — a connection
/// carried across `fork()`. A store checks [`moved`](OpenedIn::moved) before each call and, in a
/// new process, lets go of what it inherited without sending anything on it, then opens its own.
#[derive(Debug)]
pub(crate) struct OpenedIn {
    pid: AtomicU32,
}

impl OpenedIn {
    pub(crate) fn this_process() -> Self {
        Self { pid: AtomicU32::new(std::process::id()) }
    }

    /// `true` for the first call in a process other than the one that opened the connections
    /// (then once per further fork); the caller must let go of what it inherited.
    pub(crate) fn moved(&self) -> bool {
        let now = std::process::id();
        // A plain load on the common path: a swap would make every call a shared write.
        self.pid.load(Ordering::Relaxed) != now && self.pid.swap(now, Ordering::Relaxed) != now
    }
}
