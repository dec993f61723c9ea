//! Folding is deterministic: the same events give byte-identical state, and a fold resumed
//! from a snapshot equals a fold from the first event. Seeded; a failure names its seed.

use chrono::{DateTime, Duration, Utc};
use rapport_events::{EventType, Facts, FoldEvent, RecordedEvent};
use rapport_projections::{Customers, Projection};
use serde_json::json;

/// A small deterministic generator (no external RNG needed in this crate).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn events(seed: u64, n: usize) -> Vec<RecordedEvent> {
    let mut rng = Lcg(seed);
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    (0..n)
        .map(|i| {
            let c = format!("c-{}", rng.next(30));
            let other = format!("c-{}", rng.next(30));
            // Occurred times jitter backwards sometimes: late-arriving events.
            let at = t0 + Duration::hours(i as i64) - Duration::hours(rng.next(48) as i64);
            let (ty, data) = match rng.next(9) {
                0 => (EventType::CustomerRegistered, json!({"region": "north", "tags": ["t"]})),
                1 | 2 => (EventType::Purchase, json!({"order_id": format!("o-{i}"), "amount": format!("{}.{:02}", rng.next(500), rng.next(100)), "currency": if rng.next(5) == 0 { "EUR" } else { "CNY" },
                    "items": [{"sku": format!("s-{}", rng.next(5)), "quantity": 1 + rng.next(3), "unit_price": "1.00"}]})),
                3 => (EventType::Refund, json!({"order_id": "o-x", "amount": "1.50"})),
                4 => (EventType::Referral, json!({"referee": other})),
                5 => (EventType::Complaint, json!({"complaint_id": format!("k-{}", rng.next(10)), "about": {"sku": "s-1"}})),
                6 => (EventType::Post, json!({"post_id": format!("p-{i}"), "community": "g", "reply_to": format!("p-{}", rng.next(i as u64 + 1)), "echoes": format!("k-{}", rng.next(10)), "mentions": [other]})),
                7 => (EventType::CommunityJoined, json!({"community": format!("g-{}", rng.next(3))})),
                _ => (EventType::Contacted, json!({"channel": "sms", "campaign": "spring"})),
            };
            RecordedEvent {
                position: i as u64 + 1,
                stream: format!("customer-{c}"),
                stream_version: 0,
                recorded_at: t0,
                id: uuid::Uuid::from_u128(i as u128 + 1),
                event_type: ty,
                version: 1,
                customer: c,
                subject: None,
                occurred_at: at,
                data,
                metadata: Default::default(),
                personal: None,
            }
        })
        .collect()
}

/// What a fold reads of an event. The store decodes the payload from its stored text; the
/// view must be the same as the one read from the API's JSON value.
fn to_fold(e: &RecordedEvent) -> FoldEvent {
    let fold = FoldEvent::from_recorded(e).unwrap();
    let from_text = Facts::decode(e.event_type, &e.data.to_string()).unwrap();
    assert_eq!(fold.data, from_text, "{e:?}");
    fold
}

fn fold(evs: &[RecordedEvent]) -> Customers {
    let mut c = Customers::default();
    for e in evs {
        c.apply(&to_fold(e));
    }
    c
}

#[test]
fn the_same_events_give_byte_identical_state() {
    for seed in 1..=20 {
        let evs = events(seed, 400);
        assert_eq!(
            fold(&evs).snapshot_bytes(),
            fold(&evs).snapshot_bytes(),
            "seed {seed}"
        );
    }
}

#[test]
fn resuming_from_a_snapshot_equals_folding_from_the_first_event() {
    for seed in 1..=20 {
        let evs = events(seed, 400);
        let whole = fold(&evs).snapshot_bytes();
        let cut = Lcg(seed).next(400) as usize;
        let snapshot = fold(&evs[..cut]).snapshot_bytes();
        let mut resumed = Customers::from_snapshot_bytes(&snapshot, 2).unwrap();
        for e in &evs[cut..] {
            resumed.apply(&to_fold(e));
        }
        assert_eq!(
            resumed.snapshot_bytes(),
            whole,
            "seed {seed}, snapshot after {cut} events"
        );
    }
}

#[test]
fn a_zero_value_order_is_not_a_purchase_and_refunds_reduce_revenue() {
    let mut evs = events(1, 0);
    let t = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    for (i, (ty, data)) in [
        (
            EventType::Purchase,
            json!({"order_id": "o-1", "amount": "0", "currency": "GBP"}),
        ),
        (
            EventType::Purchase,
            json!({"order_id": "o-2", "amount": "10.10", "currency": "GBP"}),
        ),
        (
            EventType::Refund,
            json!({"order_id": "o-2", "amount": "0.10"}),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        evs.push(RecordedEvent {
            position: i as u64 + 1,
            stream: "customer-a".into(),
            stream_version: i as u64,
            recorded_at: t,
            id: uuid::Uuid::from_u128(i as u128 + 1),
            event_type: ty,
            version: 1,
            customer: "a".into(),
            subject: None,
            occurred_at: t,
            data,
            metadata: Default::default(),
            personal: None,
        });
    }
    let c = fold(&evs);
    let p = c.get("a").unwrap();
    assert_eq!(p.orders_until(t), 1);
    assert_eq!(p.net_revenue(t)["GBP"].to_string(), "10.00");
}

#[test]
fn favourites_are_the_most_bought_names_with_ties_by_name_and_survive_a_snapshot() {
    let t = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let purchase = |i: u64, customer: &str, items: serde_json::Value| RecordedEvent {
        position: i,
        stream: format!("customer-{customer}"),
        stream_version: 0,
        recorded_at: t,
        id: uuid::Uuid::from_u128(i as u128),
        event_type: EventType::Purchase,
        version: 1,
        customer: customer.into(),
        subject: None,
        occurred_at: t,
        data: json!({"order_id": format!("o-{i}"), "amount": "9.00", "currency": "CNY", "items": items}),
        metadata: Default::default(),
        personal: None,
    };
    let evs = [
        // `b` names Oolong first, so it gets the lower number; names must still win ties.
        purchase(
            1,
            "b",
            json!([{"sku": "S2", "product": "Oolong", "category": "tea", "quantity": 1, "unit_price": "1.00"}]),
        ),
        purchase(
            2,
            "a",
            json!([{"sku": "S1", "product": "Longjing", "category": "tea", "quantity": 2, "unit_price": "1.00"},
                                {"sku": "S2", "product": "Oolong", "category": "tea", "quantity": 2, "unit_price": "1.00"},
                                {"sku": "S3", "category": "cups", "quantity": 3, "unit_price": "1.00"}]),
        ),
        purchase(
            3,
            "a",
            json!([{"sku": "S2", "product": "Oolong", "quantity": 1, "unit_price": "1.00"}]),
        ),
    ];
    let c = fold(&evs);
    let restored = Customers::from_snapshot_bytes(&c.snapshot_bytes(), 1).unwrap();
    for c in [&c, &restored] {
        let a = c.get("a").unwrap();
        assert_eq!(
            c.favourites(&a.products, 5),
            [
                ("Oolong".to_owned(), 3),
                ("S3".to_owned(), 3),
                ("Longjing".to_owned(), 2)
            ],
            "a product without a name counts under its sku"
        );
        assert_eq!(c.favourites(&a.products, 1), [("Oolong".to_owned(), 3)]);
        assert_eq!(
            c.favourites(&a.categories, 5),
            [("tea".to_owned(), 4), ("cups".to_owned(), 3)]
        );
        let b = c.get("b").unwrap();
        assert_eq!(c.favourites(&b.products, 5), [("Oolong".to_owned(), 1)]);
    }
    assert_eq!(restored, c);
}

/// Buyers by lifecycle state at each month end, read once per person, equal the
/// definition: at every month end, every person who had bought by then, in their state
/// then. Seeded over purchases spread across months (late events included).
#[test]
fn lifecycle_by_month_counts_every_buyer_in_their_state_at_each_month_end() {
    use chrono::Datelike;
    use rapport_projections::lifecycle::{by_month::by_month, Lifecycle, LifecycleConfig};
    use std::collections::BTreeMap;
    let lc = LifecycleConfig::default();
    for seed in 1..=8u64 {
        // Hours become days here, so the states move through every threshold.
        let evs: Vec<RecordedEvent> = events(seed, 400)
            .into_iter()
            .map(|mut e| {
                let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
                e.occurred_at = t0 + (e.occurred_at - t0) * 24;
                e
            })
            .collect();
        let c = fold(&evs);
        let as_of = evs.iter().map(|e| e.occurred_at).max().unwrap() + Duration::days(200);
        let got = by_month(&c, &lc, as_of, rapport_projections::cohorts::MONTHS_MAX);
        assert!(!got.is_empty(), "seed {seed}");
        for (month, states) in &got {
            let (y, m): (i32, u32) = (month[..4].parse().unwrap(), month[5..].parse().unwrap());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            }
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
            let end = (next - Duration::seconds(1)).min(as_of);
            assert_eq!((end.year(), end.month()), (y, m));
            let mut want: BTreeMap<Lifecycle, usize> = BTreeMap::new();
            for p in c.people_sorted() {
                if p.orders_until(end) > 0 {
                    *want.entry(lc.state(p, end)).or_default() += 1;
                }
            }
            assert_eq!(states, &want, "seed {seed}, {month}");
        }
    }
}

/// The cohort and lifecycle tables span the latest months asked for, whatever dates the
/// log holds; the cohorts before are counted, not shown.
#[test]
fn cohort_and_lifecycle_tables_span_the_months_asked_for_and_count_the_rest() {
    use rapport_projections::{
        cohorts::{monthly, MONTHS_MAX},
        lifecycle::{by_month::by_month, LifecycleConfig},
    };
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let evs: Vec<RecordedEvent> = events(7, 400)
        .into_iter()
        .map(|mut e| {
            e.occurred_at = t0 + (e.occurred_at - t0) * 24;
            e
        })
        .collect();
    let c = fold(&evs);
    let as_of = evs.iter().map(|e| e.occurred_at).max().unwrap();
    let full = monthly(&c, as_of, MONTHS_MAX);
    assert!(
        full.cohorts.len() > 3,
        "the log spans more than three months"
    );
    assert_eq!(full.earlier_customers, 0);
    // A window that holds the latest cohort but not the first.
    use chrono::Datelike;
    let index = |label: &str| {
        label[..4].parse::<i32>().unwrap() * 12 + label[5..].parse::<i32>().unwrap() - 1
    };
    let now = as_of.year() * 12 + as_of.month0() as i32;
    let k = (now - index(&full.cohorts.last().unwrap().cohort) + 1) as u32;
    assert!(now - index(&full.cohorts[0].cohort) + 1 > k as i32);
    let latest = monthly(&c, as_of, k);
    assert_eq!(latest.months, k);
    assert!(!latest.cohorts.is_empty());
    let shown: Vec<_> = full
        .cohorts
        .iter()
        .filter(|co| latest.cohorts.iter().any(|x| x.cohort == co.cohort))
        .cloned()
        .collect();
    assert_eq!(
        latest.cohorts, shown,
        "the latest cohorts, as the full table has them"
    );
    assert!(latest
        .cohorts
        .iter()
        .all(|co| co.periods.len() <= k as usize));
    let before: usize = full
        .cohorts
        .iter()
        .filter(|co| !shown.contains(co))
        .map(|co| co.customers)
        .sum();
    assert_eq!(latest.earlier_customers, before);
    let lc = LifecycleConfig::default();
    let all_months = by_month(&c, &lc, as_of, MONTHS_MAX);
    let three = by_month(&c, &lc, as_of, 3);
    assert_eq!(three, all_months[all_months.len() - 3..]);
    assert!(all_months.len() > 3);
}

/// The reactivation ranking's reach, read by number, is what its definition says: the
/// referrer and referees who are active at `as_of`, and the active members of the
/// candidate's communities (at most 20). Seeded, with referrals and community joins.
#[test]
fn reactivation_reach_counts_the_active_people_around_each_candidate() {
    use rapport_projections::{
        lifecycle::{Lifecycle, LifecycleConfig},
        reactivation::candidates,
    };
    let lc = LifecycleConfig::default();
    let active = |s: Lifecycle| {
        matches!(
            s,
            Lifecycle::New | Lifecycle::Active | Lifecycle::Reactivated
        )
    };
    let mut checked = 0;
    for seed in 1..=6u64 {
        let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
        let evs: Vec<RecordedEvent> = events(seed, 600)
            .into_iter()
            .map(|mut e| {
                e.occurred_at = t0 + (e.occurred_at - t0) * 12;
                e
            })
            .collect();
        let c = fold(&evs);
        let as_of = evs.iter().map(|e| e.occurred_at).max().unwrap() + Duration::days(120);
        let state = |id: &str| c.person(id).map(|p| lc.state(p, as_of));
        for cand in candidates(&c, &lc, as_of, "CNY") {
            let p = c.person(&cand.customer).unwrap();
            let referrer = c.referred_by(p).filter(|r| state(r).is_some_and(active));
            assert_eq!(cand.active_referrer.as_deref(), referrer, "seed {seed}");
            let referees = c
                .referees(p)
                .filter(|r| state(r).is_some_and(active))
                .count();
            assert_eq!(cand.active_referees, referees, "seed {seed}");
            let co: usize = c
                .names_of(&p.communities)
                .iter()
                .map(|g| {
                    c.people_sorted()
                        .iter()
                        .filter(|q| c.has_name(&q.communities, g) && active(lc.state(q, as_of)))
                        .count()
                })
                .sum();
            assert_eq!(cand.active_co_members, co.min(20), "seed {seed}");
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} candidates checked");
}

/// The lifecycle rules on packed times give what the rules say in calendar time, at
/// random instants and exactly on every threshold (seeded).
#[test]
fn lifecycle_states_on_packed_times_equal_the_rules_in_calendar_time() {
    use rapport_projections::lifecycle::{Lifecycle, LifecycleConfig};
    let lc = LifecycleConfig::default();
    let rules = |p: &rapport_projections::Profile, as_of: DateTime<Utc>| {
        let n = p.orders_until(as_of);
        if n == 0 {
            return Lifecycle::Prospect;
        }
        let (first, last) = (p.purchases[0].at(), p.purchases[n - 1].at());
        let since = as_of - last;
        if as_of - first <= Duration::days(lc.new_days) {
            Lifecycle::New
        } else if since <= Duration::days(lc.active_days) {
            if n >= 2 && last - p.purchases[n - 2].at() > Duration::days(lc.dormant_days) {
                Lifecycle::Reactivated
            } else {
                Lifecycle::Active
            }
        } else if since <= Duration::days(lc.dormant_days) {
            Lifecycle::AtRisk
        } else if since <= Duration::days(lc.churned_days) {
            Lifecycle::Dormant
        } else {
            Lifecycle::Churned
        }
    };
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let mut checked = 0;
    for seed in 1..=5u64 {
        let evs: Vec<RecordedEvent> = events(seed, 500)
            .into_iter()
            .map(|mut e| {
                e.occurred_at =
                    t0 + (e.occurred_at - t0) * 20 + Duration::nanoseconds(seed as i64 * 7);
                e
            })
            .collect();
        let c = fold(&evs);
        for p in c.people_sorted() {
            let mut instants: Vec<DateTime<Utc>> =
                (0..40).map(|d| t0 + Duration::days(d * 11)).collect();
            for x in &p.purchases {
                for d in [
                    0,
                    lc.new_days,
                    lc.active_days,
                    lc.dormant_days,
                    lc.churned_days,
                ] {
                    let at = x.at() + Duration::days(d);
                    instants.extend([
                        at - Duration::nanoseconds(1),
                        at,
                        at + Duration::nanoseconds(1),
                    ]);
                }
            }
            for at in instants {
                assert_eq!(
                    lc.state(p, at),
                    rules(p, at),
                    "seed {seed}, {} at {at}",
                    p.id
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000);
}
