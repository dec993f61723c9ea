//! Strings numbered in the order they are first added, held in one buffer.
//!
//! A map from a short id to a number cost about 90 bytes an entry as an `IndexMap` of
//! inline strings (the string slot, a stored hash, spare capacity, the index table), and
//! the post authors of a 10 M-event log hold two million of them. Here an entry is its
//! bytes, a 4-byte end offset and a 4-byte slot of the lookup table (about 5 bytes a
//! bucket): the same lookups, exact, in about a third of the memory.
//!
//! Serialized as the sequence of the strings in number order, the same bytes as a
//! `Vec<CompactString>`: the numbering depends only on the order strings were added, never
//! on hashing, and the table is rebuilt when the strings are read back.

use std::{fmt, hash::BuildHasher};

use hashbrown::HashTable;
use serde::{
    de::{SeqAccess, Visitor},
    ser::SerializeSeq,
    Deserialize, Deserializer, Serialize, Serializer,
};

/// A fixed hasher (also for `Customers`' id table): the table's layout never reaches any
/// output, but a fixed seed keeps runs comparable.
const HASHER: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7261_7070);

pub(crate) fn hash(s: &str) -> u64 {
    HASHER.hash_one(s)
}

#[derive(Clone, Default)]
pub struct Interned {
    /// Every string, one after the other.
    text: String,
    /// `ends[n]` is where string `n` ends in `text` (it starts where `n - 1` ends).
    /// 32-bit: the strings of one table stay under 4 GiB in all (two million post ids
    /// take 18 MB).
    ends: Vec<u32>,
    /// Numbers, found by the hash of the string they name.
    table: HashTable<u32>,
}

impl Interned {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// String number `n`, or `""` if there is none.
    pub fn get(&self, n: u32) -> &str {
        if n as usize >= self.ends.len() {
            return "";
        }
        nth(&self.text, &self.ends, n)
    }

    /// The number of `s`, if it was added.
    pub fn find(&self, s: &str) -> Option<u32> {
        self.table.find(hash(s), |&n| self.get(n) == s).copied()
    }

    /// The number of `s`, adding it (as the next number) if it is new.
    pub fn number(&mut self, s: &str) -> u32 {
        let h = hash(s);
        if let Some(&n) = self.table.find(h, |&n| self.get(n) == s) {
            return n;
        }
        let n = u32::try_from(self.ends.len()).expect("fewer than 2^32 strings");
        self.push_unindexed(s);
        let Interned {
            text, ends, table, ..
        } = self;
        table.insert_unique(h, n, |&m| hash(nth(text, ends, m)));
        n
    }

    /// Room for `strings` strings, with no table yet: see [`Interned::index`].
    fn unindexed(strings: usize) -> Interned {
        Interned {
            text: String::new(),
            ends: Vec::with_capacity(strings),
            table: HashTable::new(),
        }
    }

    /// Appends `s` as the next number without looking it up: for loading, which then
    /// calls [`Interned::index`].
    fn push_unindexed(&mut self, s: &str) {
        self.text.push_str(s);
        self.ends
            .push(u32::try_from(self.text.len()).expect("under 4 GiB of strings"));
    }

    /// Builds the table of strings appended by [`Interned::push_unindexed`]; `Err` with
    /// a string that is there twice.
    fn index(&mut self) -> Result<(), String> {
        let Interned { text, ends, table } = self;
        *table = numbered_table(ends.len(), |n| nth(text, ends, n))
            .map_err(|n| nth(text, ends, n).to_owned())?;
        Ok(())
    }

    /// The strings in number order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len() as u32).map(|n| self.get(n))
    }

    /// Gives back spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
        let Interned { text, ends, table } = self;
        table.shrink_to_fit(|&m| hash(nth(text, ends, m)));
    }
}

/// A table of the numbers `0..len`, each found by the hash of its key (`key(n)`), as
/// loading a snapshot rebuilds it; `Err` with a number whose key an earlier one has.
///
/// The numbers go in in the order of the bucket their key hashes to, so the table is
/// written front to back. Inserted in number order, each insert was a cache miss
/// somewhere in a table of millions, and that was a third of loading a 10 M-event state.
pub(crate) fn numbered_table<'k>(
    len: usize,
    key: impl Fn(u32) -> &'k str,
) -> Result<HashTable<u32>, u32> {
    let mut table = HashTable::with_capacity(len);
    // hashbrown starts probing at `hash & (buckets - 1)`, and keeps 7/8 of its buckets
    // usable. Were this off, the order would only be slower, never wrong.
    let mask = (table.capacity() / 7 * 8).next_power_of_two() as u64 - 1;
    let len = u32::try_from(len).expect("fewer than 2^32 keys");
    let mut order: Vec<(u64, u32)> = (0..len).map(|n| (hash(key(n)), n)).collect();
    // By bucket, then by the whole hash: a key there twice hashes the same both times, so
    // its two numbers end up next to each other, and only such neighbours are compared.
    // Nothing else reads a key again: a read in bucket order is a cache miss each time.
    order.sort_unstable_by_key(|&(h, _)| (h & mask, h));
    for (i, &(h, n)) in order.iter().enumerate() {
        let twice = order[..i]
            .iter()
            .rev()
            .take_while(|&&(g, _)| g == h)
            .any(|&(_, m)| key(m) == key(n));
        if twice {
            return Err(n);
        }
        table.insert_unique(h, n, |&m| hash(key(m)));
    }
    Ok(table)
}

fn nth<'a>(text: &'a str, ends: &[u32], n: u32) -> &'a str {
    let n = n as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] };
    &text[start as usize..ends[n] as usize]
}

impl PartialEq for Interned {
    fn eq(&self, other: &Interned) -> bool {
        self.text == other.text && self.ends == other.ends
    }
}

impl fmt::Debug for Interned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Interned {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for s in self.iter() {
            seq.serialize_element(s)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Interned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Interned, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Interned;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of distinct strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Interned, A::Error> {
                let mut out = Interned::unindexed(seq.size_hint().unwrap_or(0));
                while let Some(s) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                    out.push_unindexed(&s);
                }
                out.index().map_err(|s| {
                    serde::de::Error::custom(format!("the string {s:?} is numbered twice"))
                })?;
                out.shrink_to_fit();
                Ok(out)
            }
        }
        deserializer.deserialize_seq(V)
    }
}

/// Strings numbered as in [`Interned`], each with a value: a map kept in insertion order
/// (a later insert of the same key replaces its value and keeps its place).
///
/// Serialized as a map in that order: the same bytes as an `IndexMap<CompactString, V>`.
#[derive(Clone, Default, PartialEq)]
pub struct InternedMap<V> {
    keys: Interned,
    values: Vec<V>,
}

impl<V: Copy> InternedMap<V> {
    pub fn get(&self, key: &str) -> Option<V> {
        self.keys.find(key).map(|n| self.values[n as usize])
    }

    pub fn insert(&mut self, key: &str, value: V) {
        let n = self.keys.number(key) as usize;
        if n == self.values.len() {
            self.values.push(value);
        } else {
            self.values[n] = value;
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, V)> + '_ {
        self.keys.iter().zip(self.values.iter().copied())
    }
}

impl<V: Copy + fmt::Debug> fmt::Debug for InternedMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V: Copy + Serialize> Serialize for InternedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Copy + Deserialize<'de>> Deserialize<'de> for InternedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<InternedMap<V>, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Copy + Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = InternedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from distinct strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<InternedMap<V>, A::Error> {
                let n = map.size_hint().unwrap_or(0);
                let mut out = InternedMap {
                    keys: Interned::unindexed(n),
                    values: Vec::with_capacity(n),
                };
                while let Some((k, v)) = map.next_entry::<std::borrow::Cow<'de, str>, V>()? {
                    out.keys.push_unindexed(&k);
                    out.values.push(v);
                }
                out.keys.index().map_err(|k| {
                    serde::de::Error::custom(format!("the key {k:?} appears twice"))
                })?;
                out.keys.shrink_to_fit();
                out.values.shrink_to_fit();
                Ok(out)
            }
        }
        deserializer.deserialize_map(Vis(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact_str::CompactString;

    #[test]
    fn numbers_follow_first_insertion_and_lookups_are_exact() {
        let mut i = Interned::default();
        assert_eq!(i.number("p-2"), 0);
        assert_eq!(i.number("p-10"), 1);
        assert_eq!(i.number("p-2"), 0);
        assert_eq!(i.number(""), 2);
        assert_eq!(i.find("p-1"), None);
        assert_eq!(i.find("p-10"), Some(1));
        assert_eq!(i.find(""), Some(2));
        assert_eq!(i.iter().collect::<Vec<_>>(), ["p-2", "p-10", ""]);
        assert_eq!(i.get(7), "");
    }

    #[test]
    fn a_map_keeps_first_insertion_order_and_the_latest_value() {
        let mut m = InternedMap::default();
        m.insert("b", 1u32);
        m.insert("a", 2);
        m.insert("b", 3);
        assert_eq!(m.iter().collect::<Vec<_>>(), [("b", 3), ("a", 2)]);
        assert_eq!(m.get("b"), Some(3));
        assert_eq!(m.get("c"), None);
    }

    /// Snapshots written with the types these replace read back unchanged, and the other
    /// way round.
    #[test]
    fn serialized_bytes_are_those_of_a_vector_and_an_index_map() {
        let mut i = Interned::default();
        let mut m = InternedMap::default();
        let mut v: Vec<CompactString> = Vec::new();
        let mut im: indexmap::IndexMap<CompactString, u32> = indexmap::IndexMap::new();
        for (n, s) in ["x", "long-enough-to-leave-the-inline-form-0001", "y", "x"]
            .into_iter()
            .enumerate()
        {
            if i.find(s).is_none() {
                v.push(s.into());
            }
            i.number(s);
            m.insert(s, n as u32);
            im.insert(s.into(), n as u32);
        }
        let bytes = postcard::to_stdvec(&i).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&v).unwrap());
        assert_eq!(postcard::from_bytes::<Interned>(&bytes).unwrap(), i);
        let bytes = postcard::to_stdvec(&m).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&im).unwrap());
        let back: InternedMap<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.get("x"), Some(3));
    }

    #[test]
    fn a_snapshot_naming_a_string_twice_is_refused() {
        let v: Vec<CompactString> = vec!["a".into(), "a".into()];
        let bytes = postcard::to_stdvec(&v).unwrap();
        assert!(postcard::from_bytes::<Interned>(&bytes).is_err());
        // Far apart among many, in a set and in a map.
        let mut v: Vec<CompactString> = (0..5000).map(|i| format!("p-{i}").into()).collect();
        let read = postcard::from_bytes::<Interned>(&postcard::to_stdvec(&v).unwrap()).unwrap();
        assert_eq!(read.len(), 5000);
        assert!((0..5000).all(|i| read.find(&format!("p-{i}")) == Some(i)));
        v.push("p-17".into());
        assert!(postcard::from_bytes::<Interned>(&postcard::to_stdvec(&v).unwrap()).is_err());
        let pairs: Vec<(CompactString, u32)> = v.iter().cloned().zip(0..).collect();
        let bytes = postcard::to_stdvec(&pairs).unwrap();
        let err = postcard::from_bytes::<InternedMap<u32>>(&bytes);
        assert!(err.is_err());
        let map: InternedMap<u32> =
            postcard::from_bytes(&postcard::to_stdvec(&pairs[..5000]).unwrap()).unwrap();
        assert_eq!(map.get("p-4999"), Some(4999));
        assert_eq!(map.get("p-5000"), None);
    }
}
