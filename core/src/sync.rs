//! The memory store's synchronization primitives: parking_lot's and std's atomics normally, and
//! loom's under `--cfg loom`, so that the loom model (`core/tests/loom.rs`) checks the store's
//! real code rather than a copy of it.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Mutex, MutexGuard, RwLock};
#[cfg(not(loom))]
pub(crate) use std::sync::{atomic::AtomicU64, Arc};

#[cfg(loom)]
pub(crate) use loom::sync::{atomic::AtomicU64, Arc, MutexGuard};

/// loom's mutex with parking_lot's signature (no poisoning to unwrap at every call).
#[cfg(loom)]
#[derive(Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().expect("a thread panicked while holding the lock")
    }
}

#[cfg(loom)]
impl<T> std::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mutex")
    }
}

/// loom's read-write lock with parking_lot's signature.
#[cfg(loom)]
#[derive(Default)]
pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

#[cfg(loom)]
impl<T> RwLock<T> {
    pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
        self.0.read().expect("a thread panicked while holding the lock")
    }

    pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
        self.0.write().expect("a thread panicked while holding the lock")
    }
}

#[cfg(loom)]
impl<T> std::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RwLock")
    }
}
