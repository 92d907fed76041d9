//! A table of entries keyed by `(primitive name, key)`, for the memory store's leases and marks.

use hashbrown::HashTable;

use crate::short_key::same_bytes;

/// Entries keyed by `(primitive name, key)` in one table, addressed by the store's hash of the
/// pair — computed once per call, also to pick the shard — so a lookup is one probe.
#[derive(Debug)]
pub(super) struct PairTable<V> {
    pub(super) table: HashTable<Paired<V>>,
}

#[derive(Debug)]
pub(super) struct Paired<V> {
    pub(super) hash: u64,
    /// The name, then the key, in one allocation: a lookup follows one pointer, not two.
    pub(super) joined: Box<str>,
    pub(super) name_len: usize,
    pub(super) value: V,
}

impl<V> Paired<V> {
    pub(super) fn new(hash: u64, name: &str, key: &str, value: V) -> Self {
        Self { hash, joined: [name, key].concat().into_boxed_str(), name_len: name.len(), value }
    }

    /// The name and the key.
    pub(super) fn parts(&self) -> (&str, &str) {
        self.joined.split_at(self.name_len)
    }

    /// Compares bytes: a `str` split would check for a character boundary on every lookup.
    pub(super) fn is(&self, name: &str, key: &str) -> bool {
        let (stored_name, stored_key) = self.joined.as_bytes().split_at(self.name_len);
        same_bytes(stored_name, name.as_bytes()) && same_bytes(stored_key, key.as_bytes())
    }
}

impl<V> Default for PairTable<V> {
    fn default() -> Self {
        Self { table: HashTable::new() }
    }
}

impl<V> PairTable<V> {
    pub(super) fn get(&self, hash: u64, name: &str, key: &str) -> Option<&V> {
        self.table.find(hash, |e| e.is(name, key)).map(|e| &e.value)
    }

    pub(super) fn get_mut(&mut self, hash: u64, name: &str, key: &str) -> Option<&mut V> {
        self.table.find_mut(hash, |e| e.is(name, key)).map(|e| &mut e.value)
    }

    /// Sets the pair's value, adding the pair if it is new.
    pub(super) fn set(&mut self, hash: u64, name: &str, key: &str, value: V) {
        match self.get_mut(hash, name, key) {
            Some(slot) => *slot = value,
            None => {
                let entry = Paired::new(hash, name, key, value);
                self.table.insert_unique(hash, entry, |e| e.hash);
            }
        }
    }

    pub(super) fn remove(&mut self, hash: u64, name: &str, key: &str) -> Option<V> {
        let found = self.table.find_entry(hash, |e| e.is(name, key)).ok()?;
        Some(found.remove().0.value)
    }

    /// Removes an entry of `hash` for which `expired` holds (see [`Expiry`]).
    pub(super) fn remove_expired(&mut self, hash: u64, expired: impl Fn(&V) -> bool) -> bool {
        self.table.find_entry(hash, |e| expired(&e.value)).map(|found| drop(found.remove())).is_ok()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &str, &V)> {
        self.table.iter().map(|e| {
            let (name, key) = e.parts();
            (name, key, &e.value)
        })
    }

    pub(super) fn hashes(&self) -> impl Iterator<Item = (u64, &V)> {
        self.table.iter().map(|e| (e.hash, &e.value))
    }
}
