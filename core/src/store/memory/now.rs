//! The time of one memory-store call, read once.

use crate::clock::{Clock, LAG_BOUND_MS};

/// The time of one store call. The clock's cheap lagging reading settles every deadline more than
/// [`LAG_BOUND_MS`] away (most of them: leases of seconds, marks kept for a day); the precise
/// reading is taken, once, only for a deadline near now or to set a new one. Decisions are the
/// ones the precise clock gives.
pub(super) struct Now<'a> {
    pub(super) clock: &'a dyn Clock,
    pub(super) lagging: u64,
    pub(super) exact: std::cell::Cell<Option<u64>>,
}

impl<'a> Now<'a> {
    pub(super) fn read(clock: &'a dyn Clock) -> Self {
        let (lagging, exact) = match clock.lagging_now_ms() {
            Some(lagging) => (lagging, None),
            None => {
                let now = clock.now_ms();
                (now, Some(now))
            }
        };
        Self { clock, lagging, exact: std::cell::Cell::new(exact) }
    }

    /// The precise time, read on first use.
    pub(super) fn exact(&self) -> u64 {
        if let Some(now) = self.exact.get() {
            return now;
        }
        let now = self.clock.now_ms().max(self.lagging);
        self.exact.set(Some(now));
        now
    }

    /// Whether `deadline` is at or before now.
    pub(super) fn reached(&self, deadline: u64) -> bool {
        deadline <= self.lagging.saturating_add(LAG_BOUND_MS) && deadline <= self.exact()
    }
}
