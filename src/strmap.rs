//! A map from short strings (customer and stream ids) to values, for the maps that hold
//! one entry per customer: the entries in one vector, in insertion order, and a lookup
//! table of their numbers.
//!
//! An entry costs its 24-byte inline key, the value and about 5 bytes of table. A
//! `HashMap` of the same entries rounds its capacity up to a power of two for the whole
//! entry, not for a 4-byte number, and cost about twice as much for a million customers.
//! Entries are never removed.

use std::hash::BuildHasher;

use compact_str::CompactString;
use hashbrown::HashTable;

/// The table's layout reaches no output; a fixed seed keeps runs comparable.
const HASHER: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7374_726d);

fn hash(s: &str) -> u64 {
    HASHER.hash_one(s)
}

pub struct StrMap<V> {
    entries: Vec<(CompactString, V)>,
    table: HashTable<u32>,
}

impl<V> Default for StrMap<V> {
    fn default() -> StrMap<V> {
        StrMap {
            entries: Vec::new(),
            table: HashTable::new(),
        }
    }
}

impl<V> StrMap<V> {
    fn find(&self, key: &str, h: u64) -> Option<usize> {
        let entries = &self.entries;
        self.table
            .find(h, |&n| entries[n as usize].0 == key)
            .map(|&n| n as usize)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        let n = self.find(key, hash(key))?;
        Some(&self.entries[n].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let n = self.find(key, hash(key))?;
        Some(&mut self.entries[n].1)
    }

    /// The value of `key`, adding `new()` first if the key is new.
    pub fn get_or_insert_with(&mut self, key: &str, new: impl FnOnce() -> V) -> &mut V {
        let h = hash(key);
        let n = match self.find(key, h) {
            Some(n) => n,
            None => {
                let n = self.entries.len();
                let number = u32::try_from(n).expect("fewer than 2^32 entries");
                self.entries.push((key.into(), new()));
                let entries = &self.entries;
                self.table
                    .insert_unique(h, number, |&m| hash(&entries[m as usize].0));
                n
            }
        };
        &mut self.entries[n].1
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Gives back spare room (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        let entries = &self.entries;
        self.table.shrink_to_fit(|&m| hash(&entries[m as usize].0));
    }
}

#[cfg(test)]
mod tests {
    use super::StrMap;

    #[test]
    fn keys_are_found_exactly_and_kept_in_insertion_order() {
        let mut m = StrMap::default();
        *m.get_or_insert_with("c-2", || 0) += 5;
        *m.get_or_insert_with("a-customer-id-longer-than-24-bytes", || 1) += 1;
        *m.get_or_insert_with("c-2", || 100) += 1;
        assert_eq!(m.get("c-2"), Some(&6));
        assert_eq!(m.get("c-20"), None);
        *m.get_mut("a-customer-id-longer-than-24-bytes").unwrap() *= 10;
        m.shrink_to_fit();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [("c-2", &6), ("a-customer-id-longer-than-24-bytes", &20)]
        );
        assert_eq!(m.len(), 2);
        for i in 0..1000 {
            m.get_or_insert_with(&format!("k-{i}"), || i);
        }
        assert!((0..1000).all(|i| m.get(&format!("k-{i}")) == Some(&i)));
    }
}
