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

    /// Removes an entry of `hash` for which `expired` holds (see [`Expiry`]). The probe meets
    /// entries of other hashes that share the slot and tag, so the hash is compared too: without
    /// it, a sweep removed a neighbour that expired at the same time and left this one behind.
    ///
    /// [`Expiry`]: super::shard::Expiry
    pub(super) fn remove_expired(&mut self, hash: u64, expired: impl Fn(&V) -> bool) -> bool {
        let found = self.table.find_entry(hash, |e| e.hash == hash && expired(&e.value));
        found.map(|found| drop(found.remove())).is_ok()
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

#[cfg(test)]
mod tests {
    use super::PairTable;

    /// Two hashes that start their probe at the same slot and share the control tag (the top 7
    /// bits), so the table's probe for either meets both entries.
    const FIRST: u64 = 0x0000_0000_0000_0005;
    const SECOND: u64 = 0x0000_0000_0010_0005;

    #[test]
    fn remove_expired_removes_only_the_entry_of_that_hash() {
        let mut table = PairTable::default();
        table.set(FIRST, "locks", "a", 7_u64);
        table.set(SECOND, "locks", "b", 7_u64);
        // Both have expired at 7; the heap entry of SECOND must remove SECOND's entry.
        assert!(table.remove_expired(SECOND, |&at| at == 7));
        assert_eq!(table.get(SECOND, "locks", "b"), None, "the entry of the swept hash is still there");
        assert_eq!(table.get(FIRST, "locks", "a"), Some(&7), "another hash's entry was removed instead");
        assert!(table.remove_expired(FIRST, |&at| at == 7));
        assert!(!table.remove_expired(FIRST, |&at| at == 7));
        assert_eq!(table.iter().count(), 0);
    }
}
