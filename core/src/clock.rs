//! Time, injected: stores read the time from a [`Clock`] so tests can move it by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A source of the current time in milliseconds.
///
/// Lease deadlines, mark retention and cache expiry are all judged by the store's clock. The
/// epoch is the clock's own; only differences matter, except that stores shared by several
/// processes need a clock all of them agree on ([`SystemClock`], milliseconds since the Unix epoch).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time in milliseconds.
    fn now_ms(&self) -> u64;

    /// A cheaper reading for decisions far from any deadline, if the clock has one: never later
    /// than [`now_ms`](Clock::now_ms), and at most [`LAG_BOUND_MS`] earlier. Stores judge a
    /// deadline more than `LAG_BOUND_MS` after it to be in the future without reading `now_ms`,
    /// so decisions are the ones `now_ms` would give. The default, `None`, makes them read
    /// `now_ms` (once per call).
    fn lagging_now_ms(&self) -> Option<u64> {
        None
    }

    /// Whether this is the machine's wall clock. A networked store (Redis) judges deadlines by
    /// its server's clock when handed the wall clock, and by this clock otherwise (tests that
    /// move time by hand).
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// How far [`Clock::lagging_now_ms`] may be behind [`Clock::now_ms`].
pub const LAG_BOUND_MS: u64 = 1_000;

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock: milliseconds since the Unix epoch.
///
/// Not available on `wasm32-unknown-unknown`, which has no system time; inject a clock there
/// (the JavaScript binding passes one that reads `Date.now()`).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or(Duration::ZERO);
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    /// `CLOCK_REALTIME_COARSE` on Linux: the wall clock as of the last timer tick (1–10 ms
    /// behind, never ahead), read in a few nanoseconds where `now_ms` can take 40 ns (a virtual
    /// machine's clock read).
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // one libc call; std has no coarse clock
    fn lagging_now_ms(&self) -> Option<u64> {
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a valid, writable timespec; the call only writes it.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &raw mut now) } != 0 {
            return None;
        }
        let (Ok(secs), Ok(nanos)) = (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) else {
            return None;
        };
        Some(secs.saturating_mul(1_000).saturating_add(nanos / 1_000_000))
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to: for tests and deterministic scenarios.
///
/// ```
/// use racefree::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now_ms(), 1_250);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start_ms` until advanced.
    #[must_use]
    pub fn new(start_ms: u64) -> Self {
        Self { now_ms: AtomicU64::new(start_ms) }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ =
            self.now_ms.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| Some(now.saturating_add(by)));
    }

    /// Sets the clock to `now_ms`. Moving it backwards is allowed, as real clocks do.
    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The wall clock keeps its promise: the cheap reading is never ahead of the exact one read
    /// after it, and never further behind than the bound the stores rely on.
    #[test]
    fn the_lagging_wall_clock_stays_within_its_bound() {
        let clock = SystemClock;
        let mut largest_lag = 0;
        for _ in 0..200_000 {
            let lagging = clock.lagging_now_ms().expect("a coarse clock on Linux");
            let exact = clock.now_ms();
            assert!(lagging <= exact, "lagging reading {lagging} is ahead of {exact}");
            largest_lag = largest_lag.max(exact - lagging);
        }
        assert!(largest_lag <= LAG_BOUND_MS, "lagged {largest_lag} ms");
    }
}
