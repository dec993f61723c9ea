//! Rule-based segments: definitions folded from `segment_defined`/`segment_retired`
//! events, membership kept incrementally, and the feed of membership changes.
//!
//! ## When membership is evaluated
//!
//! - When a segment is defined (or redefined), every known customer is evaluated.
//! - After every customer event, the customers it touched are evaluated (its customer,
//!   and for a referral the referee, for a post the authors it replies to or echoes and the
//!   customers it mentions, for a resolution the complainant).
//! - **Time passing.** Conditions such as `days_since_last_purchase >= 90` or lifecycle
//!   states change without any event. Each evaluation also computes the earliest instant at
//!   which the customer's answer *could* change (from their purchase, contact and activity
//!   times and the day counts in the rules) and files the customer under that instant. The
//!   projection's clock is the latest `occurred_at` of any customer event (operator events
//!   never move it); whenever an event moves the clock past filed instants, those customers
//!   are evaluated at the new clock, before the event's own changes. So the same log always
//!   gives the same changes, in the same order, at the same positions, and no wall clock is
//!   involved. (An instant exactly equal to the clock is picked up by the next event that
//!   moves the clock further.)
//!
//! Every condition is evaluated at the clock: `now` is the clock's value.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use rapport_events::{
    segment::{Condition, Field, Kind, Op, Operand, Rule},
    EventType, Facts, FoldEvent,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    customers::{Moment, Money3},
    lifecycle::{LifecycleConfig, Relationship},
    Customers, Profile,
};

/// Membership changes kept for the feed; a reader further behind re-reads the members.
pub const CHANGES_KEPT_MAX: usize = crate::feed::FEED_KEPT_MAX;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDef {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// The rule as defined (JSON, in the condition language).
    pub rule: Value,
    /// `occurred_at` of the defining event (when staff defined it).
    pub defined_at: DateTime<Utc>,
    pub defined_position: u64,
    /// 1 for the first definition, +1 for each redefinition.
    pub revision: u32,
    #[serde(skip)]
    compiled: Option<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Entered,
    Exited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The event at `position` changed the customer's profile.
    Event,
    /// Time passed: the event at `position` moved the clock past the instant the answer
    /// could change.
    Time,
    /// The segment was defined or redefined by the event at `position`.
    Definition,
    /// The segment was retired by the event at `position`.
    Retired,
}

/// One membership change: the feed's item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Gapless sequence number from 1: the feed's cursor (`after=`).
    pub seq: u64,
    pub segment: String,
    pub customer: String,
    pub change: ChangeKind,
    pub cause: Cause,
    /// The event that caused it.
    pub position: u64,
    pub event_id: Uuid,
    /// The projection clock when it happened (event time).
    pub at: DateTime<Utc>,
}

impl crate::feed::FeedItem for Change {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Segments {
    config: LifecycleConfig,
    defs: BTreeMap<String, SegmentDef>,
    members: BTreeMap<String, BTreeSet<String>>,
    /// Customers by the instant their answer could change.
    timers: crate::timers::Timers,
    clock: Option<DateTime<Utc>>,
    changes: crate::feed::Feed<Change>,
}

struct Ctx<'a> {
    customers: &'a Customers,
    cfg: &'a LifecycleConfig,
    now: DateTime<Utc>,
}

impl Segments {
    pub fn new(config: LifecycleConfig) -> Segments {
        Segments {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    /// Compiles the rules after loading from a snapshot (rules are kept as JSON).
    pub fn compile(&mut self) {
        for d in self.defs.values_mut() {
            d.compiled = Rule::parse(&d.rule).ok();
        }
    }

    pub fn defs(&self) -> impl Iterator<Item = &SegmentDef> {
        self.defs.values()
    }

    pub fn get(&self, id: &str) -> Option<&SegmentDef> {
        self.defs.get(id)
    }

    /// Members of a segment, in customer-id order.
    pub fn members(&self, id: &str) -> Option<&BTreeSet<String>> {
        self.members.get(id)
    }

    pub fn is_member(&self, segment: &str, customer: &str) -> bool {
        self.members
            .get(segment)
            .is_some_and(|m| m.contains(customer))
    }

    /// Changes with `seq > after`, at most `limit`; `Err(oldest kept)` when `after` is
    /// older than what is kept.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<&Change>, u64> {
        self.changes.after(after, limit)
    }

    pub fn last_seq(&self) -> u64 {
        self.changes.last_seq()
    }

    /// The feed of changes (for the service's outbox).
    pub fn feed(&self) -> &crate::feed::Feed<Change> {
        &self.changes
    }

    pub fn feed_mut(&mut self) -> &mut crate::feed::Feed<Change> {
        &mut self.changes
    }

    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock
    }

    /// Applies one event, after `customers` has applied it.
    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        match ev.event_type {
            EventType::SegmentDefined => return self.define(ev, customers),
            EventType::SegmentRetired => return self.retire(ev),
            // New identity rules may split people: their ids are evaluated again below.
            t if t.is_operator() && t != EventType::IdentityRulesDefined => return,
            _ => {}
        }
        // An erasure still counts for membership (`erased` is a field), but it is stamped
        // with the wall clock and moves no business clock.
        let moved =
            ev.event_type.records_business_time() && self.clock.is_none_or(|c| ev.occurred_at > c);
        if moved {
            self.clock = Some(ev.occurred_at);
        }
        // Without a business clock no customer can be evaluated yet: in business order an
        // erasure (which applies at every time) can come before the first business event.
        // Whoever it touched is evaluated when their events arrive.
        let Some(now) = self.clock.filter(|_| !self.defs.is_empty()) else {
            return;
        };
        // Membership is the person's: what touched one id is evaluated on its person, and
        // ids whose person changed are evaluated again (an id merged into another leaves).
        let mut who: Vec<String> = customers
            .touched(ev)
            .iter()
            .map(|c| customers.person_id(c).to_owned())
            .collect();
        who.extend(
            customers
                .identity()
                .changed()
                .iter()
                .filter_map(|&n| customers.by_number(n))
                .map(|p| p.id.to_string()),
        );
        who.sort();
        who.dedup();
        for c in who {
            self.evaluate(&c, customers, ev, Cause::Event, now);
        }
        if moved {
            // Everyone whose answer could have changed by now (strictly before `now`).
            for c in self.timers.take_due(now) {
                self.evaluate(&c, customers, ev, Cause::Time, now);
            }
        }
    }

    fn define(&mut self, ev: &FoldEvent, customers: &Customers) {
        let Some(id) = ev.subject.clone() else { return };
        let Facts::SegmentDefined(d) = &ev.data else {
            return;
        };
        let Ok(rule) = Rule::parse(&d.rule) else {
            return; // validated at append; an unreadable rule defines nothing
        };
        let revision = self.defs.get(&id).map_or(1, |d| d.revision + 1);
        self.defs.insert(
            id.clone(),
            SegmentDef {
                id: id.clone(),
                name: d.name.clone().unwrap_or_default(),
                description: d.description.clone(),
                rule: d.rule.clone(),
                defined_at: ev.occurred_at,
                defined_position: ev.position,
                revision,
                compiled: Some(rule),
            },
        );
        self.members.entry(id).or_default();
        let Some(now) = self.clock else { return };
        for p in customers.people_sorted() {
            let id = p.id.clone();
            self.evaluate(&id, customers, ev, Cause::Definition, now);
        }
    }

    fn retire(&mut self, ev: &FoldEvent) {
        let Some(id) = ev.subject.as_deref() else {
            return;
        };
        if self.defs.remove(id).is_none() {
            return;
        }
        let at = self.clock.unwrap_or(ev.occurred_at);
        for c in self.members.remove(id).unwrap_or_default() {
            self.record(id, &c, ChangeKind::Exited, Cause::Retired, ev, at);
        }
    }

    fn record(
        &mut self,
        segment: &str,
        customer: &str,
        change: ChangeKind,
        cause: Cause,
        ev: &FoldEvent,
        at: DateTime<Utc>,
    ) {
        self.changes.push(|seq| Change {
            seq,
            segment: segment.to_owned(),
            customer: customer.to_owned(),
            change,
            cause,
            position: ev.position,
            event_id: ev.id,
            at,
        });
    }

    /// Evaluates one customer against every segment at `now`, records the changes and
    /// files the customer under the next instant their answer could change.
    fn evaluate(
        &mut self,
        customer: &str,
        customers: &Customers,
        ev: &FoldEvent,
        cause: Cause,
        now: DateTime<Utc>,
    ) {
        let Some(n) = customers.number(customer) else {
            return;
        };
        // An id merged into another person is a member of nothing: its person is.
        let absorbed = customers.person_number(n) != n;
        let Some(p) = customers.person_by_number(n) else {
            return;
        };
        let ctx = Ctx {
            customers,
            cfg: &self.config,
            now,
        };
        let mut flips = Vec::new();
        let mut next: Option<DateTime<Utc>> = None;
        for d in self.defs.values() {
            let Some(rule) = &d.compiled else { continue };
            let is_in = !absorbed && eval(rule, p, &ctx);
            let was_in = self
                .members
                .get(&d.id)
                .is_some_and(|m| m.contains(customer));
            if is_in != was_in {
                flips.push((d.id.clone(), is_in));
            }
            for c in rule.conditions().into_iter().filter(|_| !absorbed) {
                if let Some(t) = next_change(c, p, &ctx) {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        for (segment, is_in) in flips {
            let m = self.members.entry(segment.clone()).or_default();
            let kind = if is_in {
                m.insert(customer.to_owned());
                ChangeKind::Entered
            } else {
                m.remove(customer);
                ChangeKind::Exited
            };
            self.record(&segment, customer, kind, cause, ev, now);
        }
        self.timers.set(customer.into(), next);
    }
}

/// Whether `p` satisfies `rule` at `ctx.now`.
pub fn matches(
    rule: &Rule,
    p: &Profile,
    customers: &Customers,
    cfg: &LifecycleConfig,
    now: DateTime<Utc>,
) -> bool {
    eval(
        rule,
        p,
        &Ctx {
            customers,
            cfg,
            now,
        },
    )
}

fn eval(rule: &Rule, p: &Profile, ctx: &Ctx) -> bool {
    match rule {
        Rule::All(rs) => rs.iter().all(|r| eval(r, p, ctx)),
        Rule::Any(rs) => rs.iter().any(|r| eval(r, p, ctx)),
        Rule::Not(r) => !eval(r, p, ctx),
        Rule::Condition(c) => condition(c, p, ctx),
    }
}

/// The entries of a time-sorted list in the condition's window, up to `now`.
fn window<'a>(list: &'a [Money3], c: &Condition, now: DateTime<Utc>) -> &'a [Money3] {
    let until = Moment::from(now);
    let end = list.partition_point(|m| m.moment() <= until);
    let start = match c.within_days {
        Some(d) => {
            let from = Moment::from(now - Duration::days(d as i64));
            list[..end].partition_point(|m| m.moment() <= from)
        }
        None => 0,
    };
    &list[start..end]
}

fn relationship_str(r: Relationship) -> &'static str {
    match r {
        Relationship::Prospect => "prospect",
        Relationship::Customer => "customer",
        Relationship::User => "user",
    }
}

fn condition(c: &Condition, p: &Profile, ctx: &Ctx) -> bool {
    let now = ctx.now;
    let number = |n: Decimal| match &c.value {
        Operand::Number(v) => c.op.compare(n, *v),
        _ => false,
    };
    let count = |n: usize| number(Decimal::from(n as u64));
    let days = |anchor: Option<DateTime<Utc>>| match anchor {
        Some(a) => number(Decimal::from((now - a).num_days())),
        None => false,
    };
    let text = |v: Option<&str>| match (&c.value, c.op) {
        (Operand::Text(t), Op::Eq) => v == Some(t.as_str()),
        (Operand::Text(t), Op::Ne) => v != Some(t.as_str()),
        (Operand::Texts(ts), Op::In) => {
            v.is_some_and(|v| ts.binary_search_by(|t| t.as_str().cmp(v)).is_ok())
        }
        _ => false,
    };
    let set = |s: &crate::customers::NameSet| match (&c.value, c.op) {
        (Operand::Text(t), Op::Contains) => ctx.customers.has_name(s, t),
        _ => count(s.len()),
    };
    match c.field {
        Field::Orders => count(window(&p.purchases, c, now).len()),
        Field::Refunds => count(window(&p.refunds, c, now).len()),
        Field::Revenue => {
            let cur = c.currency.as_deref().unwrap_or("");
            let sum = |l: &[Money3]| -> Decimal {
                window(l, c, now)
                    .iter()
                    .filter(|m| m.currency() == cur)
                    .map(|m| m.amount())
                    .sum()
            };
            number(sum(&p.purchases) - sum(&p.refunds))
        }
        Field::DaysSinceLastPurchase => days(p.last_purchase_until(now)),
        Field::DaysSinceFirstPurchase => days(p.purchases.first().map(|m| m.at())),
        Field::DaysSinceLastSeen => days(p.last_seen),
        Field::DaysSinceLastContact => days(p.last_contacted_at()),
        Field::Contacts => count(p.contacts() as usize),
        Field::ComplaintsOpen => count(p.complaints_open.len()),
        Field::ComplaintsResolved => count(p.complaints_resolved as usize),
        Field::Posts => count(p.posts as usize),
        Field::Referrals => count(p.referees.len()),
        Field::RefereesWhoBought => count(ctx.customers.referees_who_bought(p, now)),
        Field::RepliesReceived => count(p.replies_received as usize),
        Field::EchoesReceived => count(p.echoes_received as usize),
        Field::MentionsReceived => count(p.mentions_received as usize),
        Field::Influence => number(Decimal::from(ctx.customers.influence(p, now))),
        Field::Communities => set(&p.communities),
        Field::Tags => set(&p.tags),
        Field::Lifecycle => text(Some(ctx.cfg.state(p, now).as_str())),
        Field::Relationship => text(Some(relationship_str(ctx.cfg.relationship(p, now)))),
        Field::Region => text(ctx.customers.region(p)),
        Field::Channel => text(ctx.customers.channel(p)),
        Field::Customer => text(Some(&p.id)),
        Field::LastCampaign => text(p.last_campaign()),
        Field::LastOutcome => text(p.last_outcome()),
        Field::Erased => match (&c.value, c.op) {
            (Operand::Bool(b), Op::Eq) => p.erased == *b,
            (Operand::Bool(b), Op::Ne) => p.erased != *b,
            _ => false,
        },
    }
}

/// The earliest instant at or after `now` at which the condition's answer for `p` could
/// change without a new event; `None` if only an event can change it.
fn next_change(c: &Condition, p: &Profile, ctx: &Ctx) -> Option<DateTime<Utc>> {
    let now = ctx.now;
    let mut best: Option<DateTime<Utc>> = None;
    let mut consider = |t: DateTime<Utc>| {
        if t >= now && best.is_none_or(|b| t < b) {
            best = Some(t);
        }
    };
    let day_values = || -> Vec<i64> {
        match &c.value {
            Operand::Number(v) => {
                let d = v.trunc().to_string().parse::<i64>().unwrap_or(0);
                vec![d, d + 1]
            }
            _ => vec![],
        }
    };
    match (c.field, c.field.kind()) {
        (Field::Orders | Field::Refunds | Field::Revenue, _) => {
            if let Some(d) = c.within_days {
                let d = Duration::days(d as i64);
                for list in [&p.purchases, &p.refunds] {
                    // The oldest entry still in the window leaves it first.
                    if let Some(m) = window(list, c, now).first() {
                        consider(m.at() + d);
                    }
                }
            }
        }
        (field, Kind::Days) => {
            let anchor = match field {
                Field::DaysSinceLastPurchase => p.last_purchase_until(now),
                Field::DaysSinceFirstPurchase => p.purchases.first().map(|m| m.at()),
                Field::DaysSinceLastSeen => p.last_seen,
                Field::DaysSinceLastContact => p.last_contacted_at(),
                _ => None,
            };
            if let Some(a) = anchor {
                for d in day_values() {
                    consider(a + Duration::days(d));
                }
            }
        }
        (Field::Lifecycle | Field::Relationship, _) => {
            let cfg = ctx.cfg;
            cfg.state_thresholds(p, now).for_each(&mut consider);
            let n = p.orders_until(now);
            if n > 0 {
                let window_start = now - Duration::days(cfg.user_window_days);
                if let Some(m) = p.purchases[..n].iter().find(|m| m.at() > window_start) {
                    consider(m.at() + Duration::days(cfg.user_window_days));
                }
            }
        }
        _ => {}
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Projection;
    use serde_json::json;

    struct Log {
        events: Vec<FoldEvent>,
    }

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::days(day)
    }

    impl Log {
        fn push(&mut self, ty: EventType, who: &str, day: i64, data: Value) {
            let position = self.events.len() as u64 + 1;
            let operator = ty.is_operator();
            self.events.push(FoldEvent {
                position,
                id: Uuid::from_u128(position as u128),
                event_type: ty,
                customer: if operator { String::new() } else { who.into() },
                subject: operator.then(|| who.into()),
                occurred_at: t(day),
                data: Facts::from_value(ty, &data).expect("a payload of its type"),
            });
        }
        fn buy(&mut self, who: &str, day: i64) {
            self.push(
                EventType::Purchase,
                who,
                day,
                json!({"order_id": format!("o-{day}"), "amount": "10.00", "currency": "CNY"}),
            );
        }
        fn fold(&self) -> (Customers, Segments) {
            let mut c = Customers::default();
            let mut s = Segments::new(LifecycleConfig::default());
            for e in &self.events {
                c.apply(e);
                s.apply(e, &c);
            }
            (c, s)
        }
    }

    fn lapsed_regulars() -> Value {
        json!({"name": "Lapsed regulars", "rule": {"all": [
            {"field": "days_since_last_purchase", "op": ">=", "value": 90},
            {"field": "orders", "op": ">=", "value": 3},
            {"field": "communities", "op": "contains", "value": "g-1"}
        ]}})
    }

    #[test]
    fn a_customer_enters_when_time_passes_and_exits_when_they_buy_again() {
        let mut log = Log { events: vec![] };
        log.push(
            EventType::CommunityJoined,
            "ann",
            0,
            json!({"community": "g-1"}),
        );
        for d in [1, 5, 10] {
            log.buy("ann", d);
        }
        // Given the segment is defined on day 20 (operator time is ignored by the clock)
        log.push(EventType::SegmentDefined, "lapsed", 400, lapsed_regulars());
        let (_, s) = log.fold();
        assert!(
            !s.is_member("lapsed", "ann"),
            "only 10 days since the last purchase"
        );
        assert_eq!(s.clock(), Some(t(10)));
        // When someone else's event moves the clock to day 101
        log.buy("bob", 101);
        let (_, s) = log.fold();
        // Then Ann entered because time passed (90 days after day 10)
        assert!(s.is_member("lapsed", "ann"));
        let ch = s.changes_after(0, 10).unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(
            (ch[0].change, ch[0].cause),
            (ChangeKind::Entered, Cause::Time)
        );
        assert_eq!(ch[0].position, 6, "the event that moved the clock");
        // When Ann buys again, she exits, caused by that event
        log.buy("ann", 102);
        let (_, s) = log.fold();
        assert!(!s.is_member("lapsed", "ann"));
        let last = s.changes_after(1, 10).unwrap()[0].clone();
        assert_eq!(
            (last.change, last.cause, last.position),
            (ChangeKind::Exited, Cause::Event, 7)
        );
    }

    #[test]
    fn defining_evaluates_everyone_and_retiring_exits_everyone() {
        let mut log = Log { events: vec![] };
        for (who, n) in [("a", 1), ("b", 3), ("c", 4)] {
            for d in 0..n {
                log.buy(who, d);
            }
        }
        log.push(
            EventType::SegmentDefined,
            "repeat",
            0,
            json!({"name": "Repeat", "rule": {"field": "orders", "op": ">=", "value": 3}}),
        );
        let (_, s) = log.fold();
        let members: Vec<&String> = s.members("repeat").unwrap().iter().collect();
        assert_eq!(members, ["b", "c"]);
        assert!(s
            .changes_after(0, 10)
            .unwrap()
            .iter()
            .all(|c| c.cause == Cause::Definition));
        log.push(EventType::SegmentRetired, "repeat", 0, json!({}));
        let (_, s) = log.fold();
        assert!(s.get("repeat").is_none());
        let exits = s.changes_after(2, 10).unwrap();
        assert_eq!(exits.len(), 2);
        assert!(exits
            .iter()
            .all(|c| c.change == ChangeKind::Exited && c.cause == Cause::Retired));
    }

    #[test]
    fn windowed_orders_and_lifecycle_change_with_time_alone() {
        let mut log = Log { events: vec![] };
        log.buy("a", 0);
        log.push(
            EventType::SegmentDefined,
            "recent",
            0,
            json!({"name": "Bought in the last 30 days", "rule": {"field": "orders", "within_days": 30, "op": ">=", "value": 1}}),
        );
        log.push(
            EventType::SegmentDefined,
            "at-risk",
            0,
            json!({"name": "At risk", "rule": {"field": "lifecycle", "op": "=", "value": "at_risk"}}),
        );
        let (_, s) = log.fold();
        assert!(s.is_member("recent", "a"));
        log.buy("z", 31);
        let (_, s) = log.fold();
        assert!(
            !s.is_member("recent", "a"),
            "the order left the 30-day window"
        );
        log.buy("z", 95);
        let (_, s) = log.fold();
        assert!(
            s.is_member("at-risk", "a"),
            "more than 90 days since the last purchase"
        );
        log.buy("z", 200);
        let (_, s) = log.fold();
        assert!(!s.is_member("at-risk", "a"), "dormant after 180 days");
    }

    #[test]
    fn the_fold_is_deterministic_and_resumes_from_a_snapshot() {
        let mut log = Log { events: vec![] };
        log.push(EventType::SegmentDefined, "lapsed", 0, lapsed_regulars());
        for i in 0..300i64 {
            let who = format!("c{}", i % 17);
            if i % 7 == 0 {
                log.push(
                    EventType::CommunityJoined,
                    &who,
                    i,
                    json!({"community": "g-1"}),
                );
            } else {
                log.buy(&who, i * (i % 5));
            }
        }
        let (_, whole) = log.fold();
        let cut = 150;
        let mut c = Customers::default();
        let mut s = Segments::new(LifecycleConfig::default());
        for e in &log.events[..cut] {
            c.apply(e);
            s.apply(e, &c);
        }
        let bytes = serde_json::to_vec(&s).unwrap();
        let mut resumed: Segments = serde_json::from_slice(&bytes).unwrap();
        resumed.compile();
        for e in &log.events[cut..] {
            c.apply(e);
            resumed.apply(e, &c);
        }
        assert_eq!(
            serde_json::to_vec(&resumed).unwrap(),
            serde_json::to_vec(&whole).unwrap()
        );
        assert!(whole.last_seq() > 0);
    }

    #[test]
    fn lifecycle_names_agree_with_the_rule_language() {
        let ours: Vec<&str> = crate::Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(ours, rapport_events::segment::LIFECYCLE_STATES);
    }
}
