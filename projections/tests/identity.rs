//! Identity resolution, as specifications: given the events, when they are folded, then
//! these ids are one person (or not), and every query sees the person.

use chrono::{DateTime, Duration, Utc};
use rapport_events::{EventType, Facts, FoldEvent};
use rapport_projections::{cohorts, customers::Refusal, Projection, ReadState};
use serde_json::{json, Value};

struct Log {
    events: Vec<FoldEvent>,
}

fn day(d: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap() + Duration::days(d)
}

impl Log {
    fn new() -> Log {
        Log { events: vec![] }
    }

    fn push(&mut self, ty: EventType, who: &str, d: i64, data: Value) -> u64 {
        let position = self.events.len() as u64 + 1;
        let operator = ty.is_operator();
        self.events.push(FoldEvent {
            position,
            id: uuid::Uuid::from_u128(position as u128),
            event_type: ty,
            customer: if operator { String::new() } else { who.into() },
            subject: operator.then(|| who.into()),
            occurred_at: day(d),
            data: Facts::from_value(ty, &data).expect("a payload of its type"),
        });
        position
    }

    fn buy(&mut self, who: &str, d: i64, amount: &str) {
        let order = format!("o-{}", self.events.len());
        self.push(
            EventType::Purchase,
            who,
            d,
            json!({"order_id": order, "amount": amount, "currency": "CNY"}),
        );
    }

    /// `index` stands for the blind index Rapport computes from the value.
    fn identify(&mut self, who: &str, d: i64, kind: &str, index: &str) {
        self.push(
            EventType::IdentifierAdded,
            who,
            d,
            json!({"kind": kind, "index": index}),
        );
    }

    fn merge(&mut self, into: &str, merged: &str, d: i64) {
        self.push(
            EventType::CustomersMerged,
            into,
            d,
            json!({"merged": merged, "reason": "same card", "requested_by": "k1"}),
        );
    }

    fn unmerge(&mut self, a: &str, b: &str, d: i64) {
        self.push(
            EventType::CustomersUnmerged,
            a,
            d,
            json!({"other": b, "reason": "two people"}),
        );
    }

    fn fold(&self) -> ReadState {
        let mut st = ReadState::new(Default::default(), Default::default());
        for e in &self.events {
            st.apply(e);
        }
        st
    }
}

fn person(st: &ReadState, id: &str) -> String {
    st.customers.person_id(id).to_owned()
}

#[test]
fn a_staff_merge_makes_one_profile_whose_first_purchase_is_the_earliest() {
    let mut log = Log::new();
    log.buy("till-7", 40, "30.00");
    log.buy("wx-a", 3, "12.50");
    log.buy("wx-a", 50, "7.50");
    log.merge("till-7", "wx-a", 60);
    let st = log.fold();

    assert_eq!(person(&st, "wx-a"), "till-7");
    let p = st.customers.person("wx-a").unwrap();
    assert_eq!(p.id, "till-7");
    assert_eq!(p.purchases.len(), 3);
    assert_eq!(p.purchases[0].at(), day(3), "the earliest of both ids");
    let people: Vec<&str> = st
        .customers
        .people_sorted()
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(people, ["till-7"], "one person, listed once");
    // The cohort table counts the person once, in the month of the first purchase.
    let table = cohorts::monthly(&st.customers, day(90), cohorts::MONTHS_DEFAULT).cohorts;
    assert_eq!(table.iter().map(|c| c.customers).sum::<usize>(), 1);
    assert_eq!(table[0].cohort, "2026-01");
    // The per-id profile is untouched: events keep the id they were recorded with.
    assert_eq!(st.customers.get("wx-a").unwrap().purchases.len(), 2);
}

#[test]
fn two_ids_sharing_a_phone_number_are_merged_and_the_merge_says_why() {
    let mut log = Log::new();
    log.identify("till-7", 1, "phone", "ix-phone-1");
    log.buy("web-3", 2, "5.00");
    log.identify("web-3", 3, "phone", "ix-phone-1");
    let st = log.fold();
    assert_eq!(
        person(&st, "web-3"),
        "till-7",
        "the earlier holder survives"
    );
    let id = st.customers.identity();
    let members = id.members_of(st.customers.number("web-3").unwrap());
    let link = id.links_of(&members).next().unwrap();
    assert!(
        matches!(&link.cause, rapport_projections::customers::Cause::Shared { index, .. } if index == "ix-phone-1")
    );
    assert_eq!(link.refused, None);
}

#[test]
fn a_blocked_value_links_nobody() {
    let mut log = Log::new();
    log.identify("a", 1, "member", "ix-0000");
    log.identify("b", 2, "member", "ix-0000");
    assert_eq!(
        person(&log.fold(), "b"),
        "a",
        "without the block: one person"
    );

    let mut blocked = Log::new();
    blocked.push(
        EventType::IdentityRulesDefined,
        "identity",
        0,
        json!({"blocked": [{"kind": "member", "index": "ix-0000"}]}),
    );
    blocked
        .events
        .extend(log.events.iter().cloned().map(|mut e| {
            e.position += 1;
            e
        }));
    assert_eq!(person(&blocked.fold(), "b"), "b");
    // Blocking it later splits the people it had linked.
    log.push(
        EventType::IdentityRulesDefined,
        "identity",
        3,
        json!({"blocked": [{"kind": "member", "index": "ix-0000"}]}),
    );
    let st = log.fold();
    assert_eq!(person(&st, "b"), "b");
    assert_eq!(st.customers.people_sorted().len(), 2);
}

#[test]
fn a_tighter_limit_defined_later_splits_people() {
    let mut log = Log::new();
    log.identify("a", 1, "email", "ix-e1");
    log.identify("b", 2, "email", "ix-e2");
    log.identify("a", 3, "phone", "ix-p");
    log.identify("b", 4, "phone", "ix-p");
    assert_eq!(
        person(&log.fold(), "b"),
        "a",
        "two e-mails are within the default limit"
    );
    log.push(
        EventType::IdentityRulesDefined,
        "identity",
        5,
        json!({"kinds": {"email": {"merge": true, "limit": 1, "priority": 3}}}),
    );
    assert_eq!(person(&log.fold(), "b"), "b");
}

#[test]
fn a_family_phone_does_not_merge_two_people_with_their_own_member_numbers() {
    // Mother and son each have a member card (limit: one per person) and share the phone.
    let mut log = Log::new();
    log.identify("mum", 1, "member", "ix-m1");
    log.identify("son", 1, "member", "ix-m2");
    log.identify("mum", 2, "phone", "ix-family");
    log.identify("son", 3, "phone", "ix-family");
    let st = log.fold();
    assert_eq!(person(&st, "son"), "son");
    let id = st.customers.identity();
    let son = [st.customers.number("son").unwrap()];
    let link = id.links_of(&son).next();
    assert!(matches!(
        link.and_then(|l| l.refused.clone()),
        Some(Refusal::Limit { limit: 1, .. })
    ));
    // A third id with only that phone is ambiguous (two people hold it): merged with no one.
    let mut log2 = log;
    log2.identify("wx-x", 4, "phone", "ix-family");
    assert_eq!(person(&log2.fold(), "wx-x"), "wx-x");
}

#[test]
fn a_member_number_learnt_after_the_phone_splits_the_person_again() {
    let mut log = Log::new();
    log.identify("mum", 1, "member", "ix-m1");
    log.identify("mum", 2, "phone", "ix-family");
    log.identify("son", 3, "phone", "ix-family");
    assert_eq!(
        person(&log.fold(), "son"),
        "mum",
        "nothing told them apart yet"
    );
    log.buy("son", 4, "9.00");
    log.identify("son", 5, "member", "ix-m2");
    let st = log.fold();
    assert_eq!(person(&st, "son"), "son", "two member numbers: two people");
    assert_eq!(st.customers.person("mum").unwrap().purchases.len(), 0);
    assert_eq!(st.customers.person("son").unwrap().purchases.len(), 1);
}

#[test]
fn stronger_kinds_are_linked_first_when_a_person_is_worked_out_again() {
    // wx-1 and wx-2 share a unionid (one person); a family phone links wx-2 to dad
    // first, in log order. When a second member number forces the person apart, the
    // unionid link is made before the phone's, so wx-1 and wx-2 stay together.
    let mut log = Log::new();
    log.identify("dad", 1, "member", "ix-m-dad");
    log.identify("dad", 1, "phone", "ix-home");
    log.identify("wx-2", 2, "phone", "ix-home");
    log.identify("wx-1", 3, "wechat_unionid", "ix-u1");
    log.identify("wx-2", 4, "wechat_unionid", "ix-u1");
    let st = log.fold();
    assert_eq!(
        person(&st, "dad"),
        person(&st, "wx-1"),
        "one person, for now"
    );
    log.identify("wx-1", 5, "member", "ix-m-kid");
    let st = log.fold();
    assert_eq!(person(&st, "wx-1"), person(&st, "wx-2"));
    assert_ne!(person(&st, "wx-1"), person(&st, "dad"));
}

#[test]
fn an_unmerge_gives_each_id_back_with_what_happened_to_it_since() {
    let mut log = Log::new();
    log.identify("a", 1, "phone", "ix-p");
    log.buy("a", 1, "10.00");
    log.identify("b", 2, "phone", "ix-p");
    log.buy("b", 3, "20.00");
    assert_eq!(person(&log.fold(), "b"), "a");
    log.unmerge("a", "b", 4);
    log.buy("b", 5, "30.00");
    // The shared phone no longer merges them.
    log.identify("b", 6, "email", "ix-e");
    log.identify("a", 6, "email", "ix-e");
    let st = log.fold();
    assert_eq!(person(&st, "b"), "b");
    assert_eq!(person(&st, "a"), "a");
    assert_eq!(st.customers.person("a").unwrap().purchases.len(), 1);
    assert_eq!(st.customers.person("b").unwrap().purchases.len(), 2);
    assert_eq!(st.customers.people_sorted().len(), 2);
    // Staff can merge them again, on purpose.
    log.merge("a", "b", 7);
    assert_eq!(person(&log.fold(), "b"), "a");
}

#[test]
fn an_erased_customer_can_no_longer_be_found_by_an_identifier() {
    let mut log = Log::new();
    log.identify("a", 1, "phone", "ix-p");
    assert_eq!(log.fold().customers.identity().holders("ix-p").len(), 1);
    log.push(
        EventType::PersonalDataErased,
        "a",
        2,
        json!({"key_generation": 1}),
    );
    assert!(log.fold().customers.identity().holders("ix-p").is_empty());
}

#[test]
fn segments_see_the_person_and_the_merged_id_leaves() {
    let mut log = Log::new();
    log.push(
        EventType::SegmentDefined,
        "two-orders",
        0,
        json!({"name": "Two orders", "rule": {"all": [{"field": "orders", "op": ">=", "value": 2}]}}),
    );
    log.buy("a", 1, "1.00");
    log.buy("b", 2, "1.00");
    log.buy("b", 3, "1.00");
    let st = log.fold();
    assert!(st.segments.is_member("two-orders", "b"));
    assert!(!st.segments.is_member("two-orders", "a"));
    log.merge("a", "b", 4);
    let st = log.fold();
    assert!(
        st.segments.is_member("two-orders", "a"),
        "the person has three orders"
    );
    assert!(
        !st.segments.is_member("two-orders", "b"),
        "b is part of a now"
    );
    log.unmerge("a", "b", 5);
    let st = log.fold();
    assert!(st.segments.is_member("two-orders", "b"));
    assert!(!st.segments.is_member("two-orders", "a"));
}

#[test]
fn a_fold_resumed_from_a_snapshot_gives_the_same_people() {
    let mut log = Log::new();
    for i in 0..40 {
        let who = format!("c-{}", i % 7);
        match i % 5 {
            0 => log.identify(&who, i, "phone", &format!("ix-p{}", i % 3)),
            1 => log.identify(&who, i, "member", &format!("ix-m{}", i % 4)),
            2 => log.buy(&who, i, "3.00"),
            3 if i % 10 == 3 => log.unmerge(&who, &format!("c-{}", (i + 1) % 7), i),
            _ => log.merge(&who, &format!("c-{}", (i + 2) % 7), i),
        }
    }
    let whole = log.fold().snapshot_bytes();
    for cut in 0..log.events.len() {
        let mut st = ReadState::new(Default::default(), Default::default());
        for e in &log.events[..cut] {
            st.apply(e);
        }
        let mut resumed = ReadState::from_snapshot_bytes(&st.snapshot_bytes(), 1).unwrap();
        for e in &log.events[cut..] {
            resumed.apply(e);
        }
        assert_eq!(
            resumed.snapshot_bytes(),
            whole,
            "resumed after {cut} events"
        );
        assert_eq!(resumed, log.fold(), "resumed after {cut} events");
    }
}
