//! Customers filed under the event-time instant at which a time-dependent answer about them
//! could next change (see the segment and lifecycle projections). No wall clock: instants
//! fall due only when an event moves a projection's clock past them.
//!
//! The state is the map customer → instant; a min-heap over it finds what falls due
//! without walking everyone. Refiling a customer leaves their old heap entry behind, to be
//! skipped when it surfaces (the map says where they really are); when stale entries
//! outnumber live ones the heap is rebuilt. Only the map is serialized and compared, so
//! the state is the same however it was reached.

use std::{cmp::Reverse, collections::BinaryHeap};

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::Time;

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What timers are keyed by: customer ids (segments) or customer numbers (lifecycles),
/// each with the map that files them.
pub trait TimerKey: Clone + Ord + std::hash::Hash + Serialize + for<'de> Deserialize<'de> {
    type Filed: Filed<Self>;
}

impl TimerKey for CompactString {
    type Filed = Sparse<CompactString>;
}

/// Customer numbers are dense (`0..customers`): filed in a vector by number, 12 bytes a
/// customer where a hash map would take three times that.
impl TimerKey for u32 {
    type Filed = Dense;
}

/// The map key → instant.
pub trait Filed<K>: Default + Clone + std::fmt::Debug {
    fn get(&self, key: &K) -> Option<DateTime<Utc>>;
    fn insert(&mut self, key: K, at: DateTime<Utc>);
    fn remove(&mut self, key: &K);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every entry, in key order.
    fn sorted(&self) -> Vec<(K, DateTime<Utc>)>;
}

#[derive(Debug, Clone)]
pub struct Sparse<K: TimerKey>(Map<K, DateTime<Utc>>);

impl<K: TimerKey> Default for Sparse<K> {
    fn default() -> Self {
        Sparse(Map::default())
    }
}

impl<K: TimerKey + std::fmt::Debug> Filed<K> for Sparse<K> {
    fn get(&self, key: &K) -> Option<DateTime<Utc>> {
        self.0.get(key).copied()
    }
    fn insert(&mut self, key: K, at: DateTime<Utc>) {
        self.0.insert(key, at);
    }
    fn remove(&mut self, key: &K) {
        self.0.remove(key);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn sorted(&self) -> Vec<(K, DateTime<Utc>)> {
        let mut v: Vec<_> = self.0.iter().map(|(k, t)| (k.clone(), *t)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[derive(Debug, Clone, Default)]
pub struct Dense {
    at: Vec<Option<DateTime<Utc>>>,
    live: usize,
}

impl Filed<u32> for Dense {
    fn get(&self, key: &u32) -> Option<DateTime<Utc>> {
        self.at.get(*key as usize).copied().flatten()
    }
    fn insert(&mut self, key: u32, at: DateTime<Utc>) {
        let i = key as usize;
        if self.at.len() <= i {
            self.at.resize(i + 1, None);
        }
        if self.at[i].replace(at).is_none() {
            self.live += 1;
        }
    }
    fn remove(&mut self, key: &u32) {
        if let Some(slot) = self.at.get_mut(*key as usize) {
            if slot.take().is_some() {
                self.live -= 1;
            }
        }
    }
    fn len(&self) -> usize {
        self.live
    }
    fn sorted(&self) -> Vec<(u32, DateTime<Utc>)> {
        (0u32..)
            .zip(&self.at)
            .filter_map(|(k, t)| t.map(|t| (k, t)))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Timers<K: TimerKey = CompactString> {
    of: K::Filed,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, K)>>,
}

impl<K: TimerKey> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            of: K::Filed::default(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: TimerKey> PartialEq for Timers<K> {
    fn eq(&self, other: &Timers<K>) -> bool {
        self.of.len() == other.of.len() && self.of.sorted() == other.of.sorted()
    }
}

/// Serialized as a map in key order (the bytes of a `BTreeMap<K, DateTime<Utc>>`, times as
/// [`crate::wire`] writes them).
impl<K: TimerKey> Serialize for Timers<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.of.sorted().into_iter().map(|(k, t)| (k, Time(t))))
    }
}

impl<'de, K: TimerKey> Deserialize<'de> for Timers<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timers<K>, D::Error> {
        struct V<K>(std::marker::PhantomData<K>);
        impl<'de, K: TimerKey> serde::de::Visitor<'de> for V<K> {
            type Value = K::Filed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of keys to instants")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<K::Filed, A::Error> {
                let mut of = K::Filed::default();
                while let Some((k, Time(t))) = map.next_entry::<K, Time>()? {
                    of.insert(k, t);
                }
                Ok(of)
            }
        }
        let of = d.deserialize_map(V::<K>(std::marker::PhantomData))?;
        let mut t = Timers {
            of,
            heap: BinaryHeap::new(),
        };
        t.rebuild();
        Ok(t)
    }
}

impl<K: TimerKey> Timers<K> {
    /// Files `key` under `next` (or nowhere), replacing what it was filed under.
    pub fn set(&mut self, key: K, next: Option<DateTime<Utc>>) {
        if self.of.get(&key) == next {
            return;
        }
        match next {
            Some(t) => {
                self.of.insert(key.clone(), t);
                self.heap.push(Reverse((t, key)));
                if self.heap.len() > 2 * self.of.len() + 64 {
                    self.rebuild();
                }
            }
            None => {
                self.of.remove(&key);
            }
        }
    }

    /// Removes and returns, in instant then key order, every key filed strictly before `now`.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<K> {
        let mut due = Vec::new();
        while let Some(Reverse((t, _))) = self.heap.peek() {
            if *t >= now {
                break;
            }
            let Some(Reverse((t, c))) = self.heap.pop() else {
                break;
            };
            // Only the entry the map points at is live; the rest are left-overs of refiling.
            if self.of.get(&c) == Some(t) {
                self.of.remove(&c);
                due.push(c);
            }
        }
        due
    }

    fn rebuild(&mut self) {
        self.heap = self
            .of
            .sorted()
            .into_iter()
            .map(|(c, t)| Reverse((t, c)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn only_instants_strictly_before_now_fall_due_and_refiling_moves_a_customer() {
        let mut timers: Timers = Timers::default();
        timers.set("b".into(), Some(t(10)));
        timers.set("a".into(), Some(t(10)));
        timers.set("c".into(), Some(t(20)));
        timers.set("c".into(), Some(t(5)));
        assert_eq!(timers.take_due(t(10)), ["c"]);
        assert_eq!(timers.take_due(t(11)), ["a", "b"]);
        assert!(timers.take_due(t(100)).is_empty());
        timers.set("d".into(), Some(t(1)));
        timers.set("d".into(), None);
        assert!(timers.take_due(t(100)).is_empty());
        // Moved away and back: due once.
        timers.set("e".into(), Some(t(200)));
        timers.set("e".into(), Some(t(300)));
        timers.set("e".into(), Some(t(200)));
        assert_eq!(timers.take_due(t(1000)), ["e"]);
    }

    #[test]
    fn heavy_refiling_keeps_the_heap_bounded_and_the_state_canonical() {
        let mut a: Timers = Timers::default();
        let mut b: Timers = Timers::default();
        for i in 0..10_000i64 {
            a.set(format!("c{}", i % 10).into(), Some(t(1000 + i)));
        }
        for i in 9_990..10_000i64 {
            b.set(format!("c{}", i % 10).into(), Some(t(1000 + i)));
        }
        assert!(a.heap.len() <= 2 * a.of.len() + 64);
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        let back: Timers = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        assert_eq!(a.take_due(t(100_000)).len(), 10);
    }

    /// Customer numbers are filed densely; the state and its bytes are those of the same
    /// filings in a map (snapshots written before read back unchanged).
    #[test]
    fn dense_filing_serializes_as_the_sorted_map() {
        let mut dense: Timers<u32> = Timers::default();
        let mut map = std::collections::BTreeMap::new();
        for (k, at) in [
            (7u32, Some(30)),
            (2, Some(10)),
            (7, None),
            (40, Some(5)),
            (2, Some(20)),
        ] {
            dense.set(k, at.map(t));
            match at {
                Some(s) => map.insert(k, Time(t(s))),
                None => map.remove(&k),
            };
        }
        let bytes = postcard::to_stdvec(&dense).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&map).unwrap());
        let mut back: Timers<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, dense);
        assert_eq!(back.take_due(t(21)), [40, 2]);
        assert!(back.take_due(t(1000)).is_empty());
        assert_eq!(back.of.len(), 0);
    }
}
