//! Customers filed under the event-time instant at which a time-dependent answer about them
//! could next change (see the segment and lifecycle projections). No wall clock: instants
//! fall due only when an event moves a projection's clock past them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timers {
    at: BTreeMap<DateTime<Utc>, BTreeSet<String>>,
    of: BTreeMap<String, DateTime<Utc>>,
}

impl Timers {
    /// Files `customer` under `next` (or nowhere), replacing what it was filed under.
    pub fn set(&mut self, customer: &str, next: Option<DateTime<Utc>>) {
        if let Some(old) = self.of.remove(customer) {
            if let Some(set) = self.at.get_mut(&old) {
                set.remove(customer);
                if set.is_empty() {
                    self.at.remove(&old);
                }
            }
        }
        if let Some(t) = next {
            self.at.entry(t).or_default().insert(customer.to_owned());
            self.of.insert(customer.to_owned(), t);
        }
    }

    /// Removes and returns, in instant then name order, everyone filed strictly before `now`.
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let later = self.at.split_off(&now);
        let due = std::mem::replace(&mut self.at, later);
        let due: Vec<String> = due.into_values().flatten().collect();
        for c in &due {
            self.of.remove(c);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instants_strictly_before_now_fall_due_and_refiling_moves_a_customer() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
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
    }
}
