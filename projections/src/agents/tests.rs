//! Agent networks as specifications: a healthy programme is never flagged, however large;
//! a programme that sells places and stock is, with the figures that show it.

use chrono::{DateTime, Duration, Utc};
use rapport_events::{EventType, Facts, FoldEvent};
use serde_json::{json, Value};
use uuid::Uuid;

use super::PyramidConfig;
use crate::{warnings::Level, LifecycleConfig, Projection, ReadState};

struct Log {
    events: Vec<FoldEvent>,
}

impl Log {
    fn new() -> Log {
        Log { events: vec![] }
    }
    fn push(&mut self, ty: EventType, who: &str, data: Value) {
        let position = self.events.len() as u64 + 1;
        let at = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap()
            + Duration::hours(position as i64);
        let operator = ty.is_operator();
        self.events.push(FoldEvent {
            position,
            id: Uuid::from_u128(position as u128),
            event_type: ty,
            customer: if operator { String::new() } else { who.into() },
            subject: operator.then(|| who.into()),
            occurred_at: at,
            data: Facts::from_value(ty, &data).expect("a payload of its type"),
        });
    }
    fn join(&mut self, who: &str, upline: Option<&str>, fee: Option<&str>) {
        let mut d = json!({});
        if let Some(u) = upline {
            d["upline"] = json!(u);
        }
        if let Some(f) = fee {
            d["fee"] = json!(f);
            d["currency"] = json!("CNY");
        }
        self.push(EventType::AgentJoined, who, d);
    }
    fn buy(&mut self, who: &str, amount: &str, sold_by: Option<&str>) {
        let n = self.events.len();
        let mut d = json!({"order_id": format!("o-{n}"), "amount": amount, "currency": "CNY"});
        if let Some(s) = sold_by {
            d["sold_by"] = json!(s);
        }
        self.push(EventType::Purchase, who, d);
    }
    fn commission(&mut self, who: &str, amount: &str, basis: &str) {
        self.push(
            EventType::CommissionPaid,
            who,
            json!({"amount": amount, "currency": "CNY", "basis": basis}),
        );
    }
    fn fold(&self) -> ReadState {
        let mut st = ReadState::new(LifecycleConfig::default(), Default::default());
        for e in &self.events {
            st.apply(e);
        }
        st
    }
}

/// A tree of `n` agents, `width` recruits each, breadth first: agent i's upline is
/// agent (i − 1) / width.
fn tree(log: &mut Log, n: usize, width: usize, fee: Option<&str>) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("a-{i}")).collect();
    for i in 0..n {
        let up = (i > 0).then(|| ids[(i - 1) / width].as_str());
        log.join(&ids[i], up, fee);
    }
    ids
}

#[test]
fn a_large_healthy_programme_that_sells_to_end_customers_is_never_flagged() {
    let mut log = Log::new();
    // 200 agents over 4 levels, no fee; each sells to end customers far more than it buys.
    let ids = tree(&mut log, 200, 8, None);
    for (i, a) in ids.iter().enumerate() {
        log.buy(a, "100.00", None);
        for k in 0..4 {
            log.buy(&format!("end-{i}-{k}"), "150.00", Some(a));
            log.commission(a, "15.00", "retail");
        }
        if i > 0 {
            log.commission(&ids[(i - 1) / 8], "5.00", "recruitment");
        }
    }
    let st = log.fold();
    let net = st.agents.network("a-0").expect("one network");
    assert_eq!(net.participants, 200);
    assert!(net.levels() >= 3);
    let signs = net.signs(st.agents.config());
    assert!(
        signs.scale && !signs.recruitment_pay && !signs.loading,
        "{signs:?}"
    );
    assert_eq!(net.level, None);
    assert!(st
        .warnings
        .alerts()
        .all(|a| a.kind != crate::warnings::Kind::PyramidRisk));
}

#[test]
fn a_programme_selling_places_and_stock_is_flagged_with_its_figures() {
    let mut log = Log::new();
    let ids = tree(&mut log, 42, 3, Some("399.00"));
    for (i, a) in ids.iter().enumerate() {
        log.buy(a, "2000.00", Some("a-0"));
        if i % 4 == 0 {
            log.buy(&format!("end-{i}"), "90.00", Some(a));
            log.commission(a, "9.00", "retail");
        }
        if i > 0 {
            log.commission(&ids[(i - 1) / 3], "200.00", "recruitment");
        }
    }
    let st = log.fold();
    let net = st.agents.network("a-0").unwrap();
    assert_eq!((net.participants, net.levels()), (42, 5));
    assert_eq!(net.level, Some(Level::Critical));
    let alert = st
        .warnings
        .alerts()
        .find(|a| a.kind == crate::warnings::Kind::PyramidRisk)
        .expect("a pyramid_risk alert");
    assert_eq!(alert.level, Level::Critical);
    assert_eq!(alert.evidence.observed, 42);
    let evidence = alert.evidence.ties.join("; ");
    assert!(
        evidence.contains("42 agents over 5 levels under a-0"),
        "{evidence}"
    );
    assert!(
        evidence.contains("% of commissions paid for recruitment"),
        "{evidence}"
    );
    assert!(
        evidence.contains("times what they sold to end customers"),
        "{evidence}"
    );
    assert!(
        evidence.contains("42 of 42 agents paid to join"),
        "{evidence}"
    );
    // It was flagged where it reached the legal scale, not before.
    assert!(net.flagged_at >= net.scale_at && net.scale_at.is_some());
    // The alert's levels rose in order, never fell.
    assert!(alert.levels.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_top_agent_joining_under_another_brings_its_network_and_a_cycle_is_refused() {
    let mut log = Log::new();
    log.join("b", None, None);
    log.join("b1", Some("b"), None);
    log.join("b2", Some("b1"), None);
    // `a` recruited `x` before joining itself; then `b` joins under `x`.
    log.join("x", Some("a"), None);
    log.join("b", Some("x"), None);
    // `a` naming `b2` (in its own network) as upline would make a cycle.
    log.join("a", Some("b2"), None);
    let st = log.fold();
    let ag = &st.agents;
    assert_eq!(ag.network("b"), None);
    let net = ag.network("a").unwrap();
    assert_eq!((net.participants, net.levels()), (5, 5));
    assert_eq!(net.per_level, vec![1, 1, 1, 1, 1]);
    let b2 = ag.agent_view("b2").unwrap();
    assert_eq!(b2.upline_chain, ["b1", "b", "x", "a"]);
    assert_eq!(b2.level, 5);
    assert_eq!(ag.agent("a").unwrap().downline, 4);
    assert_eq!(ag.agent("a").unwrap().upline_refused.as_deref(), Some("b2"));
    assert_eq!(ag.members("a"), ["a", "x", "b", "b1", "b2"]);
}

#[test]
fn purchases_are_own_purchases_for_agents_and_retail_for_the_agent_who_sold() {
    let mut log = Log::new();
    log.join("a", None, None);
    log.buy("a", "300.00", None);
    log.buy("c", "50.00", Some("a"));
    log.buy("c", "20.00", Some("not-an-agent"));
    log.buy("d", "70.00", None);
    log.push(EventType::AgentLeft, "a", json!({}));
    // After leaving, a purchase is a customer's.
    log.buy("a", "10.00", None);
    let st = log.fold();
    let v = st.agents.agent_view("a").unwrap();
    assert_eq!(v.own_purchases, json!({"CNY": "300.00"}));
    assert_eq!(v.retail_sales, json!({"CNY": "50.00"}));
    assert_eq!(v.sell_through, Some(0.167));
    assert!(v.left_at.is_some() && v.stocked_and_gone);
    let net = st.agents.network("a").unwrap();
    assert_eq!((net.left, net.stocked_and_left), (1, 1));
}

#[test]
fn agents_replay_identically_and_from_a_snapshot() {
    let mut log = Log::new();
    let ids = tree(&mut log, 40, 3, Some("99.00"));
    for a in &ids {
        log.buy(a, "500.00", None);
        log.commission(a, "50.00", "recruitment");
    }
    let st = log.fold();
    let again = log.fold();
    assert_eq!(st.snapshot_bytes(), again.snapshot_bytes());
    let back = ReadState::from_snapshot_bytes(&st.snapshot_bytes(), 1).unwrap();
    assert_eq!(back.agents, st.agents);
}

#[test]
fn a_team_commission_on_stock_an_agent_bought_is_pay_unrelated_to_retail() {
    let mut log = Log::new();
    log.join("a", None, None);
    log.join("b", Some("a"), None);
    // o-2 is b's own purchase (stock); o-3 a sale to an end customer.
    log.buy("b", "1000.00", Some("a"));
    log.buy("end", "100.00", Some("b"));
    for order in ["o-2", "o-3"] {
        log.push(
            EventType::CommissionPaid,
            "a",
            json!({"amount": "50.00", "currency": "CNY", "basis": "team", "order_id": order}),
        );
    }
    let st = log.fold();
    let net = st.agents.network("a").unwrap();
    assert_eq!(net.recruitment_share(), Some(0.0));
    assert_eq!(net.unrelated_share(st.agents.config()), Some(0.5));
}

#[test]
fn influence_counts_recruits_and_referees_by_the_end_customer_purchases_they_bring() {
    let mut log = Log::new();
    log.join("boss", None, None);
    // Three recruits who only buy stock, one who sells to an end customer.
    for r in ["r1", "r2", "r3", "seller"] {
        log.join(r, Some("boss"), Some("399.00"));
        log.buy(r, "2000.00", Some("boss"));
    }
    log.buy("end-1", "80.00", Some("seller"));
    // A plain referral of someone who bought, and of someone who never did.
    log.push(EventType::Referral, "boss", json!({"referee": "friend"}));
    log.buy("friend", "30.00", None);
    log.push(EventType::Referral, "boss", json!({"referee": "idle"}));
    let st = log.fold();
    let c = &st.customers;
    let boss = c.get("boss").unwrap();
    let now = st.agents.clock().unwrap();
    assert_eq!(
        c.referees(boss).count(),
        6,
        "recruits are referrals of their upline"
    );
    assert_eq!(c.referees_bringing_end_customers(boss, now), 2);
    assert_eq!(c.influence(boss, now), 6);
}

#[test]
fn windows_of_any_length_in_the_configuration_never_stop_the_fold() {
    let mut log = Log::new();
    log.join("a", None, None);
    log.buy("a", "10.00", None);
    for days in [i64::MAX, i64::MIN, 0] {
        let cfg = PyramidConfig {
            entry_days: days,
            quiet_days: days,
            ..PyramidConfig::default()
        };
        let mut agents = super::Agents::new(cfg);
        for e in &log.events {
            agents.apply(e);
        }
        assert!(agents.agent_view("a").is_some());
    }
}

/// Random programmes: joins under random uplines (cycles among them), rejoins, leaves,
/// purchases credited to anyone, commissions on any order, in shuffled business time.
fn random_log(seed: u64, n: usize) -> Log {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let mut log = Log::new();
    for i in 0..n {
        let who = format!("a-{}", next(40));
        let other = format!("a-{}", next(40));
        match next(6) {
            0 => {
                let up = (next(4) > 0).then_some(other.as_str());
                let fee = (next(2) == 0).then_some("99.00");
                log.join(&who, up, fee);
            }
            1 => log.push(EventType::AgentLeft, &who, json!({})),
            2 => log.commission(&who, "7.00", ["retail", "recruitment", "team"][next(3) as usize]),
            3 => log.push(
                EventType::CommissionPaid,
                &who,
                json!({"amount": "3.00", "currency": "CNY", "basis": "team", "order_id": format!("o-{}", next(i as u64 + 1))}),
            ),
            _ => log.buy(&who, "50.00", (next(2) == 0).then_some(other.as_str())),
        }
        // Business time jitters backwards: late events.
        let back = Duration::hours(next(72) as i64);
        let last = log.events.last_mut().expect("pushed above");
        last.occurred_at -= back;
    }
    log
}

#[test]
fn random_programmes_fold_the_same_however_often_and_from_a_snapshot() {
    for seed in 0..12 {
        let log = random_log(seed, 600);
        let whole = log.fold();
        assert_eq!(
            whole.snapshot_bytes(),
            log.fold().snapshot_bytes(),
            "seed {seed}"
        );
        // Half, through a snapshot, then the rest.
        let mut st = ReadState::new(LifecycleConfig::default(), Default::default());
        for e in &log.events[..300] {
            st.apply(e);
        }
        let mut st = ReadState::from_snapshot_bytes(&st.snapshot_bytes(), 1).unwrap();
        for e in &log.events[300..] {
            st.apply(e);
        }
        assert_eq!(st.snapshot_bytes(), whole.snapshot_bytes(), "seed {seed}");
        // Every agent is in exactly one network, and the networks count them all.
        let ag = &whole.agents;
        let counted: u32 = ag.networks().map(|n| n.participants).sum();
        assert_eq!(counted as usize, ag.len(), "seed {seed}");
        for n in ag.networks() {
            assert_eq!(
                ag.members(&n.root).len() as u32,
                n.participants,
                "seed {seed}"
            );
            assert_eq!(
                n.per_level.iter().sum::<u32>(),
                n.participants,
                "seed {seed}"
            );
            let top = ag.agent(&n.root).unwrap();
            assert_eq!(top.downline + 1, n.participants, "seed {seed}");
        }
    }
}
