//! One shard of the memory store: its tables, and the heap of deadlines that expires its leases
//! and marks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hashbrown::HashTable;
use serde_json::Value;

use super::now::Now;
use super::pair_table::PairTable;
use super::HashMap;
use crate::store::LeaseGrant;

/// Picks shards: seeded per store, so chosen keys cannot force collisions — except in the loom
/// model, whose replays need every run to lock the same shards.
#[cfg(not(loom))]
pub(super) type ShardHasher = foldhash::fast::RandomState;
#[cfg(loom)]
pub(super) type ShardHasher = foldhash::fast::FixedState;

pub(super) fn shard_hasher() -> ShardHasher {
    #[cfg(not(loom))]
    return foldhash::fast::RandomState::default();
    #[cfg(loom)]
    return foldhash::fast::FixedState::with_seed(0x5EED);
}

/// Number of independently locked shards; a power of two (4 in the loom model, to keep its
/// state space small; the code paths are the same).
pub(super) const SHARDS: usize = if cfg!(loom) { 4 } else { 64 };

/// Keeps each shard's mutex on its own cache lines, so threads on distinct shards don't share them.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

#[derive(Debug, Default)]
pub(super) struct Shard {
    /// Counters by key, in a table addressed by the store's own hash (computed once per call).
    pub(super) counters: HashTable<CounterState>,
    pub(super) marks: PairTable<MarkState>,
    pub(super) leases: PairTable<LeaseGrant>,
    pub(super) records: HashMap<String, HashMap<String, RecordState>>,
    /// Deadlines of leases and marks, earliest first; entries may be stale (renewed, released).
    pub(super) expiries: BinaryHeap<Reverse<Expiry>>,
    /// Live leases and marks in this shard, to tell when `expiries` is mostly stale.
    pub(super) expiring: usize,
}

/// Aligned to 128 bytes so that a counter's `next`, written on every call, never shares a cache
/// line with anything another thread touches — not even a neighbouring allocation.
#[derive(Debug)]
#[repr(align(128))]
pub(super) struct CounterState {
    pub(super) key: String,
    pub(super) next: u64,
    pub(super) claims: HashMap<String, u64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct MarkState {
    pub(super) marked: u32,
    pub(super) expires_at: u64,
}

/// A record, or with no value its tombstone: the largest fencing token it accepted before it was
/// deleted (kept only when there was one).
#[derive(Debug)]
pub(super) struct RecordState {
    pub(super) value: Option<Value>,
    pub(super) version: u64,
    pub(super) fence: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ExpiryKind {
    Lease,
    Mark,
}

/// A deadline in a shard's heap: the entry is found again by its hash. Any entry of that hash
/// whose deadline is still `at` (and past) has expired, whichever pair it is, so the heap needs
/// neither the names nor an allocation.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Expiry {
    pub(super) at: u64,
    pub(super) kind: ExpiryKind,
    pub(super) hash: u64,
}

impl Shard {
    /// Removes up to `limit` entries whose deadline is at or before `now`; returns how many.
    pub(super) fn expire(&mut self, now: &Now<'_>, limit: usize) -> u64 {
        let mut removed = 0;
        let mut examined = 0;
        while examined < limit {
            match self.expiries.peek() {
                Some(Reverse(next)) if now.reached(next.at) => {}
                _ => break,
            }
            let Some(Reverse(expiry)) = self.expiries.pop() else {
                break;
            };
            examined += 1;
            // A renewed lease or refreshed mark has a later deadline: then this heap entry is stale.
            let at = expiry.at;
            let found = match expiry.kind {
                ExpiryKind::Lease => self.leases.remove_expired(expiry.hash, |l| l.deadline_ms == at),
                ExpiryKind::Mark => self.marks.remove_expired(expiry.hash, |m| m.expires_at == at),
            };
            if found {
                self.expiring -= 1;
                removed += 1;
            }
        }
        removed
    }

    pub(super) fn push_expiry(&mut self, at: u64, kind: ExpiryKind, hash: u64) {
        self.expiries.push(Reverse(Expiry { at, kind, hash }));
        if self.expiries.len() > 64 && self.expiries.len() > 4 * self.expiring {
            self.compact_expiries();
        }
    }

    /// Rebuilds the heap from live entries, dropping stale ones (released or renewed leases).
    pub(super) fn compact_expiries(&mut self) {
        if self.expiries.len() == self.expiring {
            return;
        }
        let leases =
            self.leases.hashes().map(|(hash, l)| Expiry { at: l.deadline_ms, kind: ExpiryKind::Lease, hash });
        let marks =
            self.marks.hashes().map(|(hash, m)| Expiry { at: m.expires_at, kind: ExpiryKind::Mark, hash });
        self.expiries = leases.chain(marks).map(Reverse).collect();
    }
}

/// The shard of a hash: its middle bits (the table inside a shard uses the low and top bits).
#[inline]
pub(super) fn shard_index(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
}

/// Removes `outer[name][key]`, and `outer[name]` once it is empty; returns the removed value.
pub(super) fn remove_nested<V>(
    outer: &mut HashMap<String, HashMap<String, V>>,
    name: &str,
    key: &str,
) -> Option<V> {
    let inner = outer.get_mut(name)?;
    let removed = inner.remove(key);
    if inner.is_empty() {
        outer.remove(name);
    }
    removed
}

pub(super) fn get_nested<'a, V>(
    outer: &'a HashMap<String, HashMap<String, V>>,
    name: &str,
    key: &str,
) -> Option<&'a V> {
    outer.get(name)?.get(key)
}

pub(super) fn get_nested_mut<'a, V>(
    outer: &'a mut HashMap<String, HashMap<String, V>>,
    name: &str,
    key: &str,
) -> Option<&'a mut V> {
    outer.get_mut(name)?.get_mut(key)
}

pub(super) fn insert_nested<V>(
    outer: &mut HashMap<String, HashMap<String, V>>,
    name: &str,
    key: &str,
    value: V,
) {
    outer.entry(name.to_owned()).or_default().insert(key.to_owned(), value);
}
