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

#[derive(Debug, Clone, Default)]
pub struct Timers {
    of: Map<CompactString, DateTime<Utc>>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, CompactString)>>,
}

impl PartialEq for Timers {
    fn eq(&self, other: &Timers) -> bool {
        self.of == other.of
    }
}

impl Serialize for Timers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.of.iter().collect::<BTreeMap<_, _>>().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timers, D::Error> {
        let of: Map<CompactString, DateTime<Utc>> = Deserialize::deserialize(d)?;
        let mut t = Timers {
            of,
            heap: BinaryHeap::new(),
        };
        t.rebuild();
        Ok(t)
    }
}

impl Timers {
    /// Files `customer` under `next` (or nowhere), replacing what it was filed under.
    pub fn set(&mut self, customer: &str, next: Option<DateTime<Utc>>) {
        if self.of.get(customer) == next.as_ref() {
            return;
        }
        match next {
            Some(t) => {
                let customer = CompactString::from(customer);
                self.of.insert(customer.clone(), t);
                self.heap.push(Reverse((t, customer)));
                if self.heap.len() > 2 * self.of.len() + 64 {
                    self.rebuild();
                }
            }
            None => {
                self.of.remove(customer);
            }
        }
    }

    /// Removes and returns, in instant then name order, everyone filed strictly before `now`.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<CompactString> {
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
        let mut timers = Timers::default();
        timers.set("b", Some(t(10)));
        timers.set("a", Some(t(10)));
        timers.set("c", Some(t(20)));
        timers.set("c", Some(t(5)));
        assert_eq!(timers.take_due(t(10)), ["c"]);
        assert_eq!(timers.take_due(t(11)), ["a", "b"]);
        assert!(timers.take_due(t(100)).is_empty());
        timers.set("d", Some(t(1)));
        timers.set("d", None);
        assert!(timers.take_due(t(100)).is_empty());
        // Moved away and back: due once.
        timers.set("e", Some(t(200)));
        timers.set("e", Some(t(300)));
        timers.set("e", Some(t(200)));
        assert_eq!(timers.take_due(t(1000)), ["e"]);
    }

    #[test]
    fn heavy_refiling_keeps_the_heap_bounded_and_the_state_canonical() {
        let mut a = Timers::default();
        let mut b = Timers::default();
        for i in 0..10_000i64 {
            a.set(&format!("c{}", i % 10), Some(t(1000 + i)));
        }
        for i in 9_990..10_000i64 {
            b.set(&format!("c{}", i % 10), Some(t(1000 + i)));
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
