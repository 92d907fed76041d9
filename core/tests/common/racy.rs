//! A deliberately broken store: every check-then-act is two critical sections with a window
//! between them — exactly the hand-rolled code racefree replaces. The concurrency scenarios must
//! catch it; `tests/racy_store.rs` proves they do.

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use parking_lot::Mutex;
use racefree::{
    Claim, Inventory, LeaseGrant, MarkOutcome, Result, SharedClock, Store, StoreStats, Versioned,
};
use serde_json::Value;

#[derive(Debug)]
pub struct RacyStore {
    clock: SharedClock,
    counters: Mutex<HashMap<String, u64>>,
    claims: Mutex<HashMap<(String, String), u64>>,
    marks: Mutex<HashMap<(String, String), u32>>,
    leases: Mutex<HashMap<(String, String), LeaseGrant>>,
    tokens: Mutex<u64>,
    records: Mutex<HashMap<(String, String), (Value, u64)>>,
}

impl RacyStore {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            counters: Mutex::default(),
            claims: Mutex::default(),
            marks: Mutex::default(),
            leases: Mutex::default(),
            tokens: Mutex::default(),
            records: Mutex::default(),
        }
    }
}

/// The window between the check and the act that hand-rolled code leaves open: against a real
/// backend, a round trip. A sleep, not a yield: a thread that only yields can keep its core
/// through a whole time slice on a busy machine, and a scenario then met no race (a CI run
/// missed one in `claims_are_unique_and_stable`); a sleeping one always lets the others in.
fn window() {
    thread::sleep(Duration::from_micros(20));
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

impl Store for RacyStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        ""
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        let current = self.counters.lock().get(counter).copied().unwrap_or(0);
        window();
        self.counters.lock().insert(counter.to_owned(), current + 1);
        Ok(current)
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        if let Some(&index) = self.claims.lock().get(&pair(counter, id)) {
            return Ok(Claim { index, is_new: false });
        }
        window();
        let index = self.counter_next(counter)?;
        self.claims.lock().insert(pair(counter, id), index);
        Ok(Claim { index, is_new: true })
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        Ok(self.claims.lock().get(&pair(counter, id)).copied())
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        Ok(self.counters.lock().get(counter).copied().unwrap_or(0))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        self.counters.lock().insert(counter.to_owned(), next);
        Ok(())
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        self.counters.lock().remove(counter);
        self.claims.lock().retain(|(c, _), _| c != counter);
        Ok(())
    }

    fn guard_mark(
        &self,
        guard: &str,
        stream: &str,
        position: u32,
        _retention_ms: u64,
    ) -> Result<MarkOutcome> {
        let marked = self.marks.lock().get(&pair(guard, stream)).copied().unwrap_or(0);
        if position < marked {
            return Ok(MarkOutcome::Duplicate);
        }
        if position > marked {
            return Ok(MarkOutcome::OutOfOrder { marked });
        }
        thread::sleep(Duration::from_millis(1));
        self.marks.lock().insert(pair(guard, stream), marked + 1);
        Ok(MarkOutcome::First)
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        Ok(self.marks.lock().get(&pair(guard, stream)).copied().unwrap_or(0))
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        Ok(self.marks.lock().remove(&pair(guard, stream)).is_some())
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        let now = self.clock.now_ms();
        if self.leases.lock().get(&pair(lock, key)).is_some_and(|l| l.deadline_ms > now) {
            return Ok(None);
        }
        // Like `if key not in tasks: ... create_task(...)` with an await in between.
        thread::sleep(Duration::from_millis(1));
        let token = {
            let mut tokens = self.tokens.lock();
            *tokens += 1;
            *tokens
        };
        let grant = LeaseGrant { token, deadline_ms: now + ttl_ms };
        self.leases.lock().insert(pair(lock, key), grant);
        Ok(Some(grant))
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        let deadline = self.clock.now_ms() + ttl_ms;
        match self.leases.lock().get_mut(&pair(lock, key)) {
            Some(lease) if lease.token == token => {
                lease.deadline_ms = deadline;
                Ok(deadline)
            }
            _ => Err(racefree::Error::NotOwner { key: key.to_owned(), token }),
        }
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        let mut leases = self.leases.lock();
        match leases.get(&pair(lock, key)) {
            Some(lease) if lease.token == token => {
                leases.remove(&pair(lock, key));
                Ok(())
            }
            _ => Err(racefree::Error::NotOwner { key: key.to_owned(), token }),
        }
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        let now = self.clock.now_ms();
        Ok(self.leases.lock().get(&pair(lock, key)).copied().filter(|l| l.deadline_ms > now))
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        let records = self.records.lock();
        Ok(records
            .get(&pair(space, key))
            .map(|(value, version)| Versioned { value: value.clone(), version: *version }))
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        _fencing_token: Option<u64>,
    ) -> Result<u64> {
        let current = self.records.lock().get(&pair(space, key)).map(|(_, v)| *v);
        if current != expected_version {
            return Err(racefree::Error::Conflict { key: key.to_owned(), current_version: current });
        }
        window();
        let version = current.unwrap_or(0) + 1;
        self.records.lock().insert(pair(space, key), (value.clone(), version));
        Ok(version)
    }

    fn record_delete(&self, space: &str, key: &str, _expected_version: Option<u64>) -> Result<bool> {
        Ok(self.records.lock().remove(&pair(space, key)).is_some())
    }

    fn sweep(&self) -> Result<u64> {
        Ok(0)
    }

    fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats::default())
    }

    fn inspect(&self) -> Result<Inventory> {
        Ok(Inventory::default())
    }
}
