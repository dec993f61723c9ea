//! Each customer's lifecycle state over event time, and the feed of its changes (what the
//! Kafka outbox publishes on `rapport.customers`).
//!
//! States are the ones [`LifecycleConfig::state`] gives. They change when a purchase
//! arrives, and when time passes (a customer turns at-risk 90 days after the last purchase
//! with no event of theirs). The time is the projection's clock, the latest `occurred_at`
//! of any customer event, exactly as for segments (see `segments.rs`): a customer is filed
//! under the next instant their state could change, and is re-evaluated when an event moves
//! the clock past it. The same log gives the same changes at the same positions.

use chrono::{DateTime, Utc};
use rapport_events::{EventType, Facts, FoldEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{segments::Cause, Customers, Lifecycle, LifecycleConfig};

/// One lifecycle change: the feed's item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleChange {
    /// Gapless sequence number from 1: the feed's cursor.
    pub seq: u64,
    pub customer: String,
    /// `None` when the customer first appears.
    pub from: Option<Lifecycle>,
    pub to: Lifecycle,
    /// `event` (a purchase changed it) or `time` (the clock passed a threshold).
    pub cause: Cause,
    /// The event that caused it (for `time`, the event that moved the clock).
    pub position: u64,
    pub event_id: Uuid,
    /// The projection clock when it happened (event time).
    #[serde(with = "crate::wire::time")]
    pub at: DateTime<Utc>,
}

impl crate::feed::FeedItem for LifecycleChange {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lifecycles {
    config: LifecycleConfig,
    /// By customer number (`Customers::number`): one byte or two a customer.
    states: Vec<Option<Lifecycle>>,
    timers: crate::timers::Timers<u32>,
    #[serde(with = "crate::wire::opt_time")]
    clock: Option<DateTime<Utc>>,
    changes: crate::feed::Feed<LifecycleChange>,
}

impl Lifecycles {
    pub fn new(config: LifecycleConfig) -> Lifecycles {
        Lifecycles {
            config,
            ..Default::default()
        }
    }

    /// The state as of the clock, as the feed last reported it.
    pub fn state(&self, customers: &Customers, customer: &str) -> Option<Lifecycle> {
        self.state_of(customers.number(customer)?)
    }

    fn state_of(&self, number: u32) -> Option<Lifecycle> {
        self.states.get(number as usize).copied().flatten()
    }

    /// Changes with `seq > after`, at most `limit`; `Err(oldest kept)` when some were dropped.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<&LifecycleChange>, u64> {
        self.changes.after(after, limit)
    }

    pub fn last_seq(&self) -> u64 {
        self.changes.last_seq()
    }

    /// The feed of changes (for the service's outbox).
    pub fn feed(&self) -> &crate::feed::Feed<LifecycleChange> {
        &self.changes
    }

    pub fn feed_mut(&mut self) -> &mut crate::feed::Feed<LifecycleChange> {
        &mut self.changes
    }

    /// Applies one event, after `customers` has applied it.
    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        // Only business events move the clock; an erasure changes no lifecycle either.
        if !ev.event_type.records_business_time() {
            return;
        }
        let moved = self.clock.is_none_or(|c| ev.occurred_at > c);
        let now = if moved {
            ev.occurred_at
        } else {
            self.clock.unwrap_or(ev.occurred_at)
        };
        self.clock = Some(now);
        // Time first: a threshold passed before this event is reported before its effect.
        if moved {
            for n in self.timers.take_due(now) {
                self.evaluate(n, customers, ev, Cause::Time, now);
            }
        }
        // Only a purchase changes a known customer's state; anything else can only make a
        // customer known (their first state).
        let who = std::iter::once(ev.customer.as_str()).chain(match &ev.data {
            Facts::Referral(r) => r.referee.as_deref(),
            _ => None,
        });
        for n in who.filter_map(|c| customers.number(c)) {
            if ev.event_type == EventType::Purchase || self.state_of(n).is_none() {
                self.evaluate(n, customers, ev, Cause::Event, now);
            }
        }
    }

    fn evaluate(
        &mut self,
        number: u32,
        customers: &Customers,
        ev: &FoldEvent,
        cause: Cause,
        now: DateTime<Utc>,
    ) {
        let Some(p) = customers.by_number(number) else {
            return;
        };
        let to = self.config.state(p, now);
        let from = self.state_of(number);
        if from != Some(to) {
            let i = number as usize;
            if self.states.len() <= i {
                self.states.resize(i + 1, None);
            }
            self.states[i] = Some(to);
            self.changes.push(|seq| LifecycleChange {
                seq,
                customer: p.id.to_string(),
                from,
                to,
                cause,
                position: ev.position,
                event_id: ev.id,
                at: now,
            });
        }
        let next = self
            .config
            .state_thresholds(p, now)
            .filter(|t| *t >= now)
            .min();
        self.timers.set(number, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Projection;
    use chrono::Duration;
    use rapport_events::EventType;
    use serde_json::json;

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::days(day)
    }

    fn ev(position: u64, ty: EventType, who: &str, day: i64, data: serde_json::Value) -> FoldEvent {
        FoldEvent {
            position,
            id: Uuid::from_u128(position as u128),
            event_type: ty,
            customer: who.into(),
            subject: None,
            occurred_at: t(day),
            data: Facts::from_value(ty, &data).expect("a payload of its type"),
        }
    }

    fn fold_both(events: &[FoldEvent]) -> (Customers, Lifecycles) {
        let mut customers = Customers::default();
        let mut l = Lifecycles::new(LifecycleConfig::default());
        for e in events {
            customers.apply(e);
            l.apply(e, &customers);
        }
        (customers, l)
    }

    fn fold(events: &[FoldEvent]) -> Lifecycles {
        fold_both(events).1
    }

    fn buy(position: u64, who: &str, day: i64) -> FoldEvent {
        ev(
            position,
            EventType::Purchase,
            who,
            day,
            json!({"order_id": format!("o-{position}"), "amount": "10", "currency": "GBP"}),
        )
    }

    fn path(l: &Lifecycles, who: &str) -> Vec<(Option<Lifecycle>, Lifecycle, Cause, u64)> {
        l.changes_after(0, 100)
            .unwrap()
            .into_iter()
            .filter(|c| c.customer == who)
            .map(|c| (c.from, c.to, c.cause, c.position))
            .collect()
    }

    #[test]
    fn a_customer_goes_quiet_with_time_alone_and_comes_back_with_a_purchase() {
        use Lifecycle::*;
        let events = vec![
            buy(1, "ann", 0),
            buy(2, "bob", 1),
            // Bob keeps the clock moving; Ann buys nothing for a year.
            buy(3, "bob", 35),
            buy(4, "bob", 100),
            buy(5, "bob", 200),
            buy(6, "bob", 300),
            buy(7, "ann", 320),
        ];
        let (customers, l) = fold_both(&events);
        assert_eq!(
            path(&l, "ann"),
            [
                (None, New, Cause::Event, 1),
                (Some(New), Active, Cause::Time, 3),
                (Some(Active), AtRisk, Cause::Time, 4),
                (Some(AtRisk), Dormant, Cause::Time, 5),
                (Some(Dormant), Reactivated, Cause::Event, 7),
            ]
        );
        assert_eq!(l.state(&customers, "ann"), Some(Reactivated));
        // No change is reported twice, and the feed is gapless.
        let seqs: Vec<u64> = l
            .changes_after(0, 100)
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn the_feed_is_the_same_however_the_fold_is_cut_and_resumed() {
        let events: Vec<FoldEvent> = (1..=60u64)
            .map(|i| {
                buy(
                    i,
                    &format!("c{}", i % 7),
                    (i as i64 * 37) % 400 + i as i64 * 3,
                )
            })
            .collect();
        let whole = fold(&events);
        for cut in [1, 17, 59] {
            let mut customers = Customers::default();
            let mut l = Lifecycles::new(LifecycleConfig::default());
            for e in &events[..cut] {
                customers.apply(e);
                l.apply(e, &customers);
            }
            let mut l: Lifecycles =
                serde_json::from_slice(&serde_json::to_vec(&l).unwrap()).unwrap();
            for e in &events[cut..] {
                customers.apply(e);
                l.apply(e, &customers);
            }
            assert_eq!(l, whole, "cut at {cut}");
        }
    }
}
