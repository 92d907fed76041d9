//! The in-memory store: the default backend, in-process, also in wasm.

mod now;
mod pair_table;
mod shard;

use std::sync::atomic::Ordering;

use serde_json::Value;

use self::now::Now;
use self::shard::{
    get_nested, get_nested_mut, insert_nested, remove_nested, shard_hasher, shard_index, CounterState,
    ExpiryKind, MarkState, Padded, RecordState, Shard, ShardHasher, SHARDS,
};

use super::{
    counter_overflow, decide_mark, decide_record_delete, decide_record_write, Claim, LeaseGrant, MarkOutcome,
    RecordSlot, Store, StoreStats, Versioned,
};
use super::{CounterEntry, Inventory, LeaseEntry, RecordEntry, StreamEntry};
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::short_key::same;
use crate::sync::{Arc, AtomicU64, Mutex, MutexGuard, RwLock};

/// Maps hashed with foldhash: fast, and seeded per map so chosen keys cannot force collisions.
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Expired entries removed per store call on a shard, so expiry costs are spread over calls.
const AMORTIZED_SWEEP: usize = 4;

/// The default bound on entries: enough for most services, small enough to bound memory.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// The in-memory store: one critical section per operation.
///
/// Entries live in 64 shards, each behind its own `parking_lot` mutex, chosen by a hash of the
/// primitive's name and key: operations on distinct keys rarely contend. Every [`Store`] method
/// locks exactly one shard for its whole check-and-act, which is what makes it atomic.
///
/// Expired leases and marks are removed lazily when touched, a few at a time on every call that
/// touches their shard, and all at once by [`Store::sweep`] — no background thread. The store
/// holds at most `max_keys` entries and answers [`Error::CapacityExceeded`] beyond that (after
/// sweeping expired entries once).
///
/// The namespace option is recorded and reported, but each `MemoryStore` is private to the
/// handles cloned from it, so namespaces only matter for the shared backends.
///
/// ```
/// use racefree::{Counter, MemoryStore, SharedStore};
/// use std::sync::Arc;
///
/// let store: SharedStore = Arc::new(MemoryStore::builder().max_keys(10_000).build()?);
/// let counter = Counter::new(&store, "task:1")?;
/// assert_eq!(counter.next()?, 0);
/// # Ok::<(), racefree::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Padded<Mutex<Shard>>]>,
    /// Seeded per store: picks the shard and, for counters, the slot — one hash per call.
    hasher: ShardHasher,
    /// One fencing-token counter per lock; never removed, so tokens never repeat.
    lock_tokens: RwLock<HashMap<String, Arc<AtomicU64>>>,
    /// The largest version each record space has deleted: a new record starts above it. Written
    /// and read with the record's shard locked (shard first, then this), one integer per space.
    record_floors: RwLock<HashMap<String, u64>>,
    clock: SharedClock,
    namespace: String,
    max_keys: u64,
    entries: AtomicU64,
    expired_swept: AtomicU64,
}

/// Builds a [`MemoryStore`] with options.
#[derive(Debug, Default)]
#[must_use]
pub struct MemoryStoreBuilder {
    clock: Option<SharedClock>,
    namespace: String,
    max_keys: Option<usize>,
}

impl MemoryStoreBuilder {
    /// The clock judging deadlines (default: [`SystemClock`](crate::SystemClock); required on
    /// `wasm32-unknown-unknown`, which has no system time).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The namespace reported by [`Store::namespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The most entries the store holds (default [`DEFAULT_MAX_KEYS`]).
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = Some(max_keys);
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `max_keys` 0, a namespace over
    /// [`MAX_KEY_BYTES`](crate::MAX_KEY_BYTES), or no clock on a target without system time.
    pub fn build(self) -> Result<MemoryStore> {
        let max_keys = self.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
        if max_keys == 0 {
            return Err(Error::invalid_argument("max_keys must be at least 1"));
        }
        crate::validate::namespace(&self.namespace)?;
        let clock = match self.clock {
            Some(clock) => clock,
            None => default_clock()?,
        };
        Ok(MemoryStore {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            hasher: shard_hasher(),
            lock_tokens: RwLock::default(),
            record_floors: RwLock::default(),
            clock,
            namespace: self.namespace,
            max_keys: max_keys as u64,
            entries: AtomicU64::new(0),
            expired_swept: AtomicU64::new(0),
        })
    }
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
fn default_clock() -> Result<SharedClock> {
    Ok(std::sync::Arc::new(crate::clock::SystemClock))
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
fn default_clock() -> Result<SharedClock> {
    Err(Error::invalid_argument("this target has no system clock: pass one with MemoryStoreBuilder::clock"))
}

impl MemoryStore {
    /// A store with the system clock and default options.
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build().unwrap_or_else(|_| unreachable!("default options are valid"))
    }

    /// Options: clock, namespace, `max_keys`.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// A store with the given clock and default options.
    #[must_use]
    pub fn with_clock(clock: SharedClock) -> Self {
        Self::builder().clock(clock).build().unwrap_or_else(|_| unreachable!("default options are valid"))
    }

    /// The hash of `(name, key)`, seeded per store; [`shard_index`] picks its shard.
    #[inline]
    fn hash(&self, name: &str, key: &str) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        // Two writes, not the tuple's `Hash`: that adds a separator byte per string and a
        // finishing multiply, where foldhash's `write` already folds each string's length in.
        let mut hasher = self.hasher.build_hasher();
        hasher.write(name.as_bytes());
        hasher.write(key.as_bytes());
        hasher.finish()
    }

    /// Locks the shard of `(name, key)` and removes a few of its expired entries on the way.
    #[inline]
    fn shard(&self, name: &str, key: &str) -> MutexGuard<'_, Shard> {
        self.lock_shard(self.hash(name, key), None)
    }

    /// [`shard`](Self::shard) for operations that have read the clock already (one read per call);
    /// returns the pair's hash too, which addresses its entry in the shard.
    #[inline]
    fn shard_at(&self, name: &str, key: &str, now: &Now<'_>) -> (MutexGuard<'_, Shard>, u64) {
        let hash = self.hash(name, key);
        (self.lock_shard(hash, Some(now)), hash)
    }

    #[inline]
    fn lock_shard(&self, hash: u64, now: Option<&Now<'_>>) -> MutexGuard<'_, Shard> {
        let mut shard = self.shards[shard_index(hash)].0.lock();
        if !shard.expiries.is_empty() {
            let removed = match now {
                Some(now) => shard.expire(now, AMORTIZED_SWEEP),
                None => shard.expire(&self.now(), AMORTIZED_SWEEP),
            };
            self.forget_expired(removed);
        }
        shard
    }

    fn now(&self) -> Now<'_> {
        Now::read(&*self.clock)
    }

    /// Locks the counter's shard; returns it with the counter's hash. Counters never expire, so
    /// the hot path skips the amortized sweep (lease and mark calls on the shard do it).
    #[inline]
    fn counter_shard(&self, counter: &str) -> (MutexGuard<'_, Shard>, u64) {
        let hash = self.hash(counter, "");
        (self.shards[shard_index(hash)].0.lock(), hash)
    }

    /// A claim, in one critical section; [`Store::counter_claim`] runs it through
    /// [`with_room`](Self::with_room), as the other `*_locked` methods are run.
    #[inline(always)]
    fn claim_locked(&self, counter: &str, id: &str) -> Result<Claim> {
        let (mut shard, hash) = self.counter_shard(counter);
        let Some(entry) = shard.counters.find_mut(hash, |e| same(&e.key, counter)) else {
            return self.first_claim(&mut shard, hash, counter, id);
        };
        if let Some(&index) = entry.claims.get(id) {
            return Ok(Claim { index, is_new: false });
        }
        let index = entry.next;
        let after = index.checked_add(1).ok_or_else(|| counter_overflow(counter))?;
        self.reserve(1)?;
        entry.next = after;
        entry.claims.insert(id.to_owned(), index);
        Ok(Claim { index, is_new: true })
    }

    /// A claim on a counter that has no entry yet: once per counter, so kept out of the hot path.
    #[cold]
    #[inline(never)]
    fn first_claim(&self, shard: &mut Shard, hash: u64, counter: &str, id: &str) -> Result<Claim> {
        self.reserve(2)?;
        let claims = HashMap::from_iter([(id.to_owned(), 0)]);
        let entry = CounterState { key: counter.to_owned(), next: 1, claims };
        self.insert_counter(shard, hash, entry);
        Ok(Claim { index: 0, is_new: true })
    }

    /// A mark, in one critical section.
    #[inline(always)]
    fn mark_locked(
        &self,
        guard: &str,
        stream: &str,
        position: u32,
        retention_ms: u64,
    ) -> Result<MarkOutcome> {
        let now = self.now();
        let (mut shard, hash) = self.shard_at(guard, stream, &now);
        let current = shard.marks.get(hash, guard, stream).copied();
        let live = current.filter(|m| !now.reached(m.expires_at));
        let marked = live.map_or(0, |m| m.marked);
        let outcome = decide_mark(marked, position);
        if outcome != MarkOutcome::First {
            return Ok(outcome);
        }
        let expires_at = now.exact().saturating_add(retention_ms);
        match current {
            Some(old) if now.reached(old.expires_at) => {
                self.expired_swept.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                self.reserve(1)?;
                shard.expiring += 1;
            }
        }
        shard.marks.set(hash, guard, stream, MarkState { marked: marked + 1, expires_at });
        shard.push_expiry(expires_at, ExpiryKind::Mark, hash);
        Ok(MarkOutcome::First)
    }

    /// A lease grant, in one critical section.
    #[inline(always)]
    fn grant_locked(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        let now = self.now();
        let (mut shard, hash) = self.shard_at(lock, key, &now);
        let current = shard.leases.get(hash, lock, key).copied();
        if current.is_some_and(|l| !now.reached(l.deadline_ms)) {
            return Ok(None);
        }
        if current.is_none() {
            self.reserve(1)?;
        } else {
            self.expired_swept.fetch_add(1, Ordering::Relaxed);
            shard.expiring -= 1;
        }
        let grant =
            LeaseGrant { token: self.next_token(lock), deadline_ms: now.exact().saturating_add(ttl_ms) };
        shard.leases.set(hash, lock, key, grant);
        shard.expiring += 1;
        shard.push_expiry(grant.deadline_ms, ExpiryKind::Lease, hash);
        Ok(Some(grant))
    }

    fn insert_counter(&self, shard: &mut Shard, hash: u64, entry: CounterState) {
        shard.counters.insert_unique(hash, entry, |e| self.hash(&e.key, ""));
    }

    fn forget_expired(&self, removed: u64) {
        if removed > 0 {
            self.entries.fetch_sub(removed, Ordering::Relaxed);
            self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        }
    }

    /// Reserves room for `n` new entries, or answers `CapacityExceeded`.
    fn reserve(&self, n: u64) -> Result<()> {
        let before = self.entries.fetch_add(n, Ordering::Relaxed);
        if before + n > self.max_keys {
            self.entries.fetch_sub(n, Ordering::Relaxed);
            return Err(Error::CapacityExceeded { max_keys: self.max_keys as usize });
        }
        Ok(())
    }

    fn release_entries(&self, n: u64) {
        if n > 0 {
            self.entries.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// `first` is an operation's result; if the store was full, sweeps expired entries once and
    /// returns `again()`, the operation run again.
    ///
    /// The first run is the caller's own code (an `#[inline(always)]` method), not a closure
    /// called here: a closure used twice stays a function of its own, and its `Result` (the size
    /// of `Error`) came back through memory and was copied out again (measured: a repeated mark
    /// took 62 ns that way, 46 ns this way).
    #[inline(always)]
    fn with_room<T>(&self, first: Result<T>, again: impl FnOnce() -> Result<T>) -> Result<T> {
        match first {
            Err(full @ Error::CapacityExceeded { .. }) => self.after_sweep(full, again),
            other => other,
        }
    }

    /// The retry of [`with_room`](Self::with_room), out of line: it is rare, and an inlined copy
    /// of the operation slowed every call.
    #[cold]
    #[inline(never)]
    fn after_sweep<T>(&self, full: Error, again: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.sweep_now() > 0 {
            again()
        } else {
            Err(full)
        }
    }

    fn sweep_now(&self) -> u64 {
        let now = self.now();
        let mut removed = 0;
        for shard in &*self.shards {
            let mut shard = shard.0.lock();
            removed += shard.expire(&now, usize::MAX);
            shard.compact_expiries();
        }
        self.forget_expired(removed);
        removed
    }

    fn next_token(&self, lock: &str) -> u64 {
        if let Some(counter) = self.lock_tokens.read().get(lock) {
            return counter.fetch_add(1, Ordering::SeqCst) + 1;
        }
        let counter = Arc::clone(self.lock_tokens.write().entry(lock.to_owned()).or_default());
        counter.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        let (mut shard, hash) = self.counter_shard(counter);
        if let Some(entry) = shard.counters.find_mut(hash, |e| same(&e.key, counter)) {
            let index = entry.next;
            entry.next = index.checked_add(1).ok_or_else(|| counter_overflow(counter))?;
            return Ok(index);
        }
        self.reserve(1)?;
        let entry = CounterState { key: counter.to_owned(), next: 1, claims: HashMap::default() };
        self.insert_counter(&mut shard, hash, entry);
        Ok(0)
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        let first = self.claim_locked(counter, id);
        self.with_room(first, || self.claim_locked(counter, id))
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        let (shard, hash) = self.counter_shard(counter);
        Ok(shard.counters.find(hash, |e| same(&e.key, counter)).and_then(|e| e.claims.get(id)).copied())
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        let (shard, hash) = self.counter_shard(counter);
        Ok(shard.counters.find(hash, |e| same(&e.key, counter)).map_or(0, |e| e.next))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        let set = || {
            let (mut shard, hash) = self.counter_shard(counter);
            if let Some(entry) = shard.counters.find_mut(hash, |e| same(&e.key, counter)) {
                entry.next = next;
                return Ok(());
            }
            self.reserve(1)?;
            let entry = CounterState { key: counter.to_owned(), next, claims: HashMap::default() };
            self.insert_counter(&mut shard, hash, entry);
            Ok(())
        };
        self.with_room(set(), set)
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        let (mut shard, hash) = self.counter_shard(counter);
        if let Ok(found) = shard.counters.find_entry(hash, |e| same(&e.key, counter)) {
            let (entry, _) = found.remove();
            self.release_entries(1 + entry.claims.len() as u64);
        }
        Ok(())
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        let first = self.mark_locked(guard, stream, position, retention_ms);
        self.with_room(first, || self.mark_locked(guard, stream, position, retention_ms))
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        let now = self.now();
        let (shard, hash) = self.shard_at(guard, stream, &now);
        Ok(shard
            .marks
            .get(hash, guard, stream)
            .filter(|m| !now.reached(m.expires_at))
            .map_or(0, |m| m.marked))
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        let now = self.now();
        let (mut shard, hash) = self.shard_at(guard, stream, &now);
        let removed = shard.marks.remove(hash, guard, stream);
        if removed.is_some() {
            shard.expiring -= 1;
            self.release_entries(1);
        }
        Ok(removed.is_some_and(|m| !now.reached(m.expires_at)))
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        let first = self.grant_locked(lock, key, ttl_ms);
        self.with_room(first, || self.grant_locked(lock, key, ttl_ms))
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        let now = self.now();
        let deadline = now.exact().saturating_add(ttl_ms);
        let (mut shard, hash) = self.shard_at(lock, key, &now);
        match shard.leases.get_mut(hash, lock, key) {
            Some(lease) if lease.token == token && !now.reached(lease.deadline_ms) => {
                lease.deadline_ms = deadline;
                shard.push_expiry(deadline, ExpiryKind::Lease, hash);
                Ok(deadline)
            }
            _ => Err(Error::NotOwner { key: key.to_owned(), token }),
        }
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        let now = self.now();
        let (mut shard, hash) = self.shard_at(lock, key, &now);
        match shard.leases.get(hash, lock, key) {
            Some(lease) if lease.token == token && !now.reached(lease.deadline_ms) => {
                shard.leases.remove(hash, lock, key);
                shard.expiring -= 1;
                self.release_entries(1);
                Ok(())
            }
            _ => Err(Error::NotOwner { key: key.to_owned(), token }),
        }
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        let now = self.now();
        let (shard, hash) = self.shard_at(lock, key, &now);
        Ok(shard.leases.get(hash, lock, key).copied().filter(|l| !now.reached(l.deadline_ms)))
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        let shard = self.shard(space, key);
        Ok(get_nested(&shard.records, space, key)
            .and_then(|r| Some(Versioned { value: r.value.clone()?, version: r.version })))
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        let put = || {
            let mut shard = self.shard(space, key);
            let record = get_nested_mut(&mut shard.records, space, key);
            let slot = match &record {
                Some(RecordState { value: Some(_), version, fence }) => {
                    RecordSlot::Live { version: *version, fence: *fence }
                }
                tombstone => RecordSlot::Absent {
                    floor: self.record_floors.read().get(space).copied().unwrap_or(0),
                    fence: tombstone.as_ref().map_or(0, |t| t.fence),
                },
            };
            let (version, fence) = decide_record_write(key, slot, expected_version, fencing_token)?;
            let state = RecordState { value: Some(value.clone()), version, fence };
            match record {
                Some(record) => *record = state,
                None => {
                    self.reserve(1)?;
                    insert_nested(&mut shard.records, space, key, state);
                }
            }
            Ok(version)
        };
        self.with_room(put(), put)
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        let mut shard = self.shard(space, key);
        let live = get_nested(&shard.records, space, key).filter(|r| r.value.is_some());
        let (version, fence) = (live.map(|r| r.version), live.map_or(0, |r| r.fence));
        let delete = decide_record_delete(key, version, expected_version)?;
        if let Some(version) = version.filter(|_| delete) {
            let mut floors = self.record_floors.write();
            match floors.get_mut(space) {
                Some(floor) => *floor = (*floor).max(version),
                None => {
                    floors.insert(space.to_owned(), version);
                }
            }
            drop(floors);
            if fence > 0 {
                if let Some(record) = get_nested_mut(&mut shard.records, space, key) {
                    record.value = None;
                }
            } else {
                remove_nested(&mut shard.records, space, key);
                self.release_entries(1);
            }
        }
        Ok(delete)
    }

    fn sweep(&self) -> Result<u64> {
        Ok(self.sweep_now())
    }

    fn inspect(&self) -> Result<Inventory> {
        let now = self.now();
        let mut inventory = Inventory::default();
        // Every shard locked at once (in index order, like sweep) for one consistent snapshot.
        let shards: Vec<_> = self.shards.iter().map(|s| s.0.lock()).collect();
        for shard in &shards {
            for c in shard.counters.iter() {
                inventory.counters.push(CounterEntry {
                    counter: c.key.clone(),
                    next: c.next,
                    claims: c.claims.len() as u64,
                });
            }
            for (lock, key, lease) in shard.leases.iter().filter(|(_, _, l)| !now.reached(l.deadline_ms)) {
                inventory.leases.push(LeaseEntry {
                    lock: lock.to_owned(),
                    key: key.to_owned(),
                    token: lease.token,
                    deadline_ms: lease.deadline_ms,
                });
            }
            for (guard, stream, mark) in shard.marks.iter().filter(|(_, _, m)| !now.reached(m.expires_at)) {
                inventory.streams.push(StreamEntry {
                    guard: guard.to_owned(),
                    stream: stream.to_owned(),
                    marked: mark.marked,
                    expires_at_ms: mark.expires_at,
                });
            }
            for (space, records) in &shard.records {
                for (key, record) in records.iter().filter(|(_, r)| r.value.is_some()) {
                    inventory.records.push(RecordEntry {
                        space: space.clone(),
                        key: key.clone(),
                        version: record.version,
                    });
                }
            }
        }
        drop(shards);
        inventory.sort();
        Ok(inventory)
    }

    fn stats(&self) -> Result<StoreStats> {
        Ok(StoreStats {
            entries: self.entries.load(Ordering::Relaxed),
            expired_swept: self.expired_swept.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_shard() {
        let store = MemoryStore::new();
        let mut seen = [0usize; SHARDS];
        for i in 0..SHARDS * 64 {
            seen[shard_index(store.hash(&format!("task:{i}"), ""))] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "some shard never chosen: {seen:?}");
    }

    #[test]
    fn stale_expiries_are_compacted() {
        let clock = std::sync::Arc::new(crate::ManualClock::new(0));
        let store = MemoryStore::with_clock(clock);
        for _ in 0..1_000 {
            let grant = store.lease_try_grant("lock", "k", 60_000).unwrap().unwrap();
            store.lease_release("lock", "k", grant.token).unwrap();
        }
        let heap: usize = store.shards.iter().map(|s| s.0.lock().expiries.len()).sum();
        assert!(heap <= 65, "released leases left {heap} heap entries behind");
    }
}
