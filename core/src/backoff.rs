//! Retry delays shared by every waiting loop (lease `acquire`, record `update`) in every language.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Exponential backoff with jitter: each delay doubles from `initial` up to `max`, and is then
/// drawn uniformly from its upper half so that waiters woken together spread out.
///
/// The bindings' async loops (Python asyncio, JavaScript promises) take their delays from this
/// same schedule, so every language waits alike.
///
/// ```
/// use racefree::Backoff;
/// use std::time::Duration;
///
/// let delays: Vec<Duration> = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).take(4).collect();
/// assert!(delays[0] >= Duration::from_millis(5) && delays[0] <= Duration::from_millis(10));
/// assert!(delays[3] >= Duration::from_millis(20) && delays[3] <= Duration::from_millis(40));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    /// A schedule starting at `initial` and capped at `max`.
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Self {
        static SEEDS: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
        let seed = SEEDS.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed) | 1;
        Self { next: initial.min(max), max, seed }
    }

    /// The schedule `acquire` waits by: from 1 ms up to 50 ms.
    #[must_use]
    pub fn for_acquire() -> Self {
        Self::new(Duration::from_millis(1), Duration::from_millis(50))
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter, and no dependency.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The next delay. The schedule never ends: past `max` every delay is drawn from
    /// `max / 2 ..= max`.
    pub fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 { 0 } else { self.random() % (nanos + 1) };
        step - half + Duration::from_nanos(jitter)
    }
}

/// The delays of [`Backoff::delay`], without end.
impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.delay())
    }
}
