//! Customers filed under the event-time instant at which a time-dependent answer about them
//! could next change (see the segment and lifecycle projections). No wall clock: instants
//! fall due only when an event moves a projection's clock past them.
//!
//! The state is the map customer → instant; a min-heap over it finds what falls due
//! without walking everyone. Refiling a customer leaves their old heap entry behind, to be
//! skipped when it surfaces (the map says where they really are); when stale entries
//! outnumber live ones the heap is rebuilt. Only the map is serialized and compared, so
//! the state is the same however it was reached.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
};

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What timers are keyed by: customer ids (segments) or customer numbers (lifecycles).
pub trait TimerKey: Clone + Ord + std::hash::Hash + Serialize + for<'de> Deserialize<'de> {}
impl<K: Clone + Ord + std::hash::Hash + Serialize + for<'de> Deserialize<'de>> TimerKey for K {}

#[derive(Debug, Clone)]
pub struct Timers<K: TimerKey = CompactString> {
    of: Map<K, DateTime<Utc>>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, K)>>,
}

impl<K: TimerKey> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            of: Map::default(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: TimerKey> PartialEq for Timers<K> {
    fn eq(&self, other: &Timers<K>) -> bool {
        self.of == other.of
    }
}

impl<K: TimerKey> Serialize for Timers<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.of.iter().collect::<BTreeMap<_, _>>().serialize(s)
    }
}

impl<'de, K: TimerKey> Deserialize<'de> for Timers<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timers<K>, D::Error> {
        let of: Map<K, DateTime<Utc>> = Deserialize::deserialize(d)?;
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
        if self.of.get(&key) == next.as_ref() {
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
            if self.of.get(&c) == Some(&t) {
                self.of.remove(&c);
                due.push(c);
            }
        }
        due
    }

    fn rebuild(&mut self) {
        self.heap = self
            .of
            .iter()
            .map(|(c, t)| Reverse((*t, c.clone())))
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
}
