//! `rapport eval-agents`: how well pyramid risk tells pyramids from healthy agent
//! programmes, on seeded firms whose truth is known.
//!
//! Each firm runs many agent networks, interleaved in time:
//! - **healthy**: agents sell to end customers (several retail sales each), some buy a
//!   sample, commissions are mostly on retail with small recruitment bonuses and team
//!   overrides; few levels; from a handful of agents to several hundred.
//! - **healthy, recruiting hard**: the same with large recruitment bonuses (a third or so
//!   of commissions), the case a crude rule gets wrong.
//! - **pyramid, fast or slow**: agents pay to join, buy stock from their upline, sell
//!   little, are paid mostly for recruiting, and some leave holding stock; recruits join
//!   within hours (fast) or days (slow).
//! - **degenerating**: a healthy network that, after 20 to 60 agents, starts selling
//!   places and stock.
//!
//! A pyramid's legal crossing is the first of its events at which it has at least 30
//! participants over at least 3 levels and behaves as a pyramid. Scored per network:
//! flagged means a `pyramid_risk` alert at `warning` or above; the delay is how many of
//! the network's events after its crossing came before the flag, as a share of all its
//! events after the crossing. The events are folded by the real projections in process.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rapport_events::{EventType, Facts, FoldEvent};
use rapport_projections::{
    warnings::{Kind, Level},
    LifecycleConfig, Projection, ReadState,
};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    Healthy,
    HealthyRecruiting,
    PyramidFast,
    PyramidSlow,
    Degenerating,
}

impl Shape {
    fn is_pyramid(self) -> bool {
        matches!(
            self,
            Shape::PyramidFast | Shape::PyramidSlow | Shape::Degenerating
        )
    }
}

/// One network's truth and what the detector made of it.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkResult {
    pub root: String,
    pub shape: Shape,
    pub agents: usize,
    pub events: usize,
    pub flagged: Option<Level>,
    /// Events of the network after its legal crossing, and how many came before the flag.
    pub events_after_crossing: Option<usize>,
    pub events_to_flag: Option<usize>,
    /// Its figures at the end: share of commissions for recruiting, own purchases ÷
    /// retail, share of agents who paid to join.
    pub recruitment_share: Option<f64>,
    pub loading: Option<f64>,
    pub paid_entry_share: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentsScore {
    pub seed: u64,
    pub networks: usize,
    pub pyramids: usize,
    pub events: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// Healthy networks raised at `watch` (not counted as flagged).
    pub healthy_watched: usize,
    pub precision: f64,
    pub recall: f64,
    /// Of the pyramids flagged, the share flagged within the first 10% of their events
    /// after the crossing, and the largest share any needed.
    pub within_tenth: f64,
    pub delay_share_max: f64,
    pub delay_share_median: f64,
    pub events_per_second: f64,
    /// Agents of pyramids (from their first agent) whose influence reaches the detector's `influence_critical` (which
    /// makes any group complaint they are in critical), by the influence formula (recruits
    /// count by the end-customer purchases they bring) and by the formula before it (3 per
    /// referee who bought anything, 1 per other).
    pub pyramid_agents_influential: usize,
    pub pyramid_agents_influential_before: usize,
    pub results: Vec<NetworkResult>,
}

struct Gen {
    rng: StdRng,
    t0: DateTime<Utc>,
    /// (time, network, pyramid phase, type, customer, data)
    out: Vec<(DateTime<Utc>, usize, bool, EventType, String, Value)>,
    orders: u64,
}

impl Gen {
    fn push(
        &mut self,
        at: DateTime<Utc>,
        net: usize,
        phase: bool,
        ty: EventType,
        who: &str,
        data: Value,
    ) {
        self.out.push((at, net, phase, ty, who.to_owned(), data));
    }

    fn money(&mut self, lo: u32, hi: u32) -> String {
        format!("{}.00", self.rng.gen_range(lo..=hi))
    }

    fn order(&mut self) -> String {
        self.orders += 1;
        format!("o-{}", self.orders)
    }

    /// One network of `n` agents.
    fn network(&mut self, net: usize, shape: Shape, n: usize) {
        let start = self.t0 + Duration::hours(self.rng.gen_range(0..24 * 60));
        let gap_hours = match shape {
            Shape::PyramidFast => 3.0,
            Shape::PyramidSlow => 36.0,
            _ => 30.0,
        };
        let turn = match shape {
            Shape::Degenerating => self.rng.gen_range(20..=60usize).min(n / 2),
            Shape::PyramidFast | Shape::PyramidSlow => 0,
            _ => usize::MAX,
        };
        let mut ids: Vec<String> = vec![];
        let mut depth: Vec<u32> = vec![];
        let mut t = start;
        for i in 0..n {
            let pyramid = i >= turn;
            let gap = if pyramid && shape == Shape::Degenerating {
                6.0
            } else {
                gap_hours
            };
            t += Duration::minutes((self.rng.gen::<f64>() * 2.0 * gap * 60.0) as i64 + 1);
            let me = format!("n{net}-a{i}");
            let up = if i == 0 {
                None
            } else if pyramid {
                // Recruits join under recent agents: chains grow deep.
                let lo = ids.len() * 2 / 3;
                Some(self.rng.gen_range(lo..ids.len()))
            } else {
                // Shallow: under an agent of the top three levels.
                let shallow: Vec<usize> = (0..ids.len()).filter(|&k| depth[k] < 3).collect();
                Some(shallow[self.rng.gen_range(0..shallow.len())])
            };
            let mut join = json!({});
            if let Some(u) = up {
                join["upline"] = json!(ids[u]);
            }
            let fee = pyramid && self.rng.gen_bool(0.85);
            if fee {
                join["fee"] = json!(self.money(299, 999));
                join["currency"] = json!("CNY");
            }
            self.push(t, net, pyramid, EventType::AgentJoined, &me, join);
            depth.push(up.map_or(0, |u| depth[u] + 1));
            ids.push(me.clone());
            let upline = up.map(|u| ids[u].clone());
            if pyramid {
                // Stock from the upline, paid for recruiting up two levels, little retail.
                for _ in 0..self.rng.gen_range(1..=3) {
                    let at = t + Duration::hours(self.rng.gen_range(1..72));
                    let o = self.order();
                    let amount = self.money(1000, 5000);
                    let mut d = json!({"order_id": o, "amount": amount, "currency": "CNY"});
                    if let Some(u) = &upline {
                        d["sold_by"] = json!(u);
                    }
                    self.push(at, net, true, EventType::Purchase, &me, d);
                    if let Some(u) = &upline {
                        let c = self.money(50, 250);
                        self.push(
                            at,
                            net,
                            true,
                            EventType::CommissionPaid,
                            u,
                            json!({"amount": c, "currency": "CNY", "basis": "team", "order_id": o}),
                        );
                    }
                }
                if let Some(u) = &upline {
                    let c = self.money(100, 400);
                    self.push(t + Duration::hours(2), net, true, EventType::CommissionPaid, u,
                        json!({"amount": c, "currency": "CNY", "basis": "recruitment", "recruit": me}));
                }
                for _ in 0..self.rng.gen_range(0..=1) {
                    let at = t + Duration::hours(self.rng.gen_range(24..24 * 30));
                    let o = self.order();
                    let amount = self.money(60, 200);
                    self.push(
                        at,
                        net,
                        true,
                        EventType::Purchase,
                        &format!("e-{net}-{i}-x"),
                        json!({"order_id": o, "amount": amount, "currency": "CNY", "sold_by": me}),
                    );
                }
                if self.rng.gen_bool(0.3) {
                    let at = t + Duration::days(self.rng.gen_range(20..60));
                    self.push(at, net, true, EventType::AgentLeft, &me, json!({}));
                }
            } else {
                let recruiting = shape == Shape::HealthyRecruiting;
                if self.rng.gen_bool(0.3) {
                    let o = self.order();
                    let amount = self.money(50, 150);
                    self.push(
                        t + Duration::hours(1),
                        net,
                        false,
                        EventType::Purchase,
                        &me,
                        json!({"order_id": o, "amount": amount, "currency": "CNY"}),
                    );
                }
                if let Some(u) = &upline {
                    if recruiting || self.rng.gen_bool(0.3) {
                        let c = if recruiting {
                            self.money(40, 100)
                        } else {
                            self.money(20, 60)
                        };
                        self.push(t + Duration::hours(2), net, false, EventType::CommissionPaid, u,
                            json!({"amount": c, "currency": "CNY", "basis": "recruitment", "recruit": me}));
                    }
                }
                for k in 0..self.rng.gen_range(3..=12) {
                    let at = t + Duration::hours(self.rng.gen_range(2..24 * 120));
                    let o = self.order();
                    let amount: u32 = self.rng.gen_range(60..=300);
                    self.push(at, net, false, EventType::Purchase, &format!("e-{net}-{i}-{k}"),
                        json!({"order_id": o, "amount": format!("{amount}.00"), "currency": "CNY", "sold_by": me}));
                    self.push(at, net, false, EventType::CommissionPaid, &me,
                        json!({"amount": format!("{}.00", amount / 10), "currency": "CNY", "basis": "retail", "order_id": o}));
                    if let Some(u) = &upline {
                        if self.rng.gen_bool(0.3) {
                            self.push(at, net, false, EventType::CommissionPaid, u,
                                json!({"amount": format!("{}.00", amount / 30 + 1), "currency": "CNY", "basis": "team", "order_id": o}));
                        }
                    }
                }
            }
        }
    }
}

/// Generates a firm of `networks` networks, folds it, and scores pyramid risk.
pub fn evaluate(seed: u64, networks: usize) -> AgentsScore {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        t0: DateTime::from_timestamp(1_735_689_600, 0).expect("2025-01-01"),
        out: vec![],
        orders: 0,
    };
    let mut shapes = vec![];
    for net in 0..networks {
        let shape = match net % 5 {
            0 | 1 => Shape::Healthy,
            2 => Shape::HealthyRecruiting,
            3 if net % 2 == 0 => Shape::PyramidFast,
            3 => Shape::PyramidSlow,
            _ => Shape::Degenerating,
        };
        let n = match shape {
            Shape::Healthy if net % 3 == 0 => g.rng.gen_range(5..30),
            Shape::Healthy | Shape::HealthyRecruiting => g.rng.gen_range(40..400),
            _ => g.rng.gen_range(60..300),
        };
        g.network(net, shape, n);
        shapes.push((shape, n));
    }
    let mut raw = std::mem::take(&mut g.out);
    raw.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let events: Vec<(FoldEvent, usize, bool)> = raw
        .into_iter()
        .enumerate()
        .map(|(i, (at, net, phase, ty, who, data))| {
            let position = i as u64 + 1;
            let ev = FoldEvent {
                position,
                id: uuid::Uuid::from_u128(u128::from(position)),
                event_type: ty,
                customer: who,
                subject: None,
                occurred_at: at,
                data: Facts::from_value(ty, &data).expect("a payload of its type"),
            };
            (ev, net, phase)
        })
        .collect();
    let mut st = ReadState::new(LifecycleConfig::default(), Default::default());
    let started = std::time::Instant::now();
    for (ev, _, _) in &events {
        st.apply(ev);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The truth, replayed per network: participants, levels, and the crossing.
    let mut per_net: BTreeMap<usize, Vec<(u64, bool)>> = BTreeMap::new();
    for (ev, net, phase) in &events {
        per_net.entry(*net).or_default().push((ev.position, *phase));
    }
    let mut results = vec![];
    for (net, (shape, n)) in shapes.iter().enumerate() {
        let root = format!("n{net}-a0");
        let evs = &per_net[&net];
        let crossing = shape.is_pyramid().then(|| crossing(&events, net)).flatten();
        let alert = st
            .warnings
            .get(&rapport_projections::warnings::network_alert_id(&root))
            .filter(|a| a.kind == Kind::PyramidRisk);
        let flagged = alert.map(|a| a.level);
        let flag_at = alert.and_then(|a| {
            a.levels
                .iter()
                .find(|(l, _)| *l >= Level::Warning)
                .map(|(_, p)| *p)
        });
        let (after, to_flag) = match crossing {
            Some(c) => {
                let after = evs.iter().filter(|(p, _)| *p >= c).count();
                let to_flag =
                    flag_at.map(|f| evs.iter().filter(|(p, _)| *p >= c && *p < f).count());
                (Some(after), to_flag)
            }
            None => (None, None),
        };
        let figures = st.agents.network(&root);
        let cfg = st.agents.config();
        results.push(NetworkResult {
            recruitment_share: figures.and_then(|f| f.unrelated_share(cfg)),
            loading: figures.and_then(|f| f.loading()).filter(|l| l.is_finite()),
            paid_entry_share: figures.map_or(0.0, |f| {
                f64::from(f.paid_entry) / f64::from(f.participants.max(1))
            }),
            root,
            shape: *shape,
            agents: *n,
            events: evs.len(),
            flagged,
            events_after_crossing: after,
            events_to_flag: to_flag,
        });
    }
    let flagged = |r: &NetworkResult| r.flagged >= Some(Level::Warning);
    let tp = results
        .iter()
        .filter(|r| r.shape.is_pyramid() && flagged(r))
        .count();
    let fp = results
        .iter()
        .filter(|r| !r.shape.is_pyramid() && flagged(r))
        .count();
    let pyramids = results.iter().filter(|r| r.shape.is_pyramid()).count();
    let healthy_watched = results
        .iter()
        .filter(|r| !r.shape.is_pyramid() && r.flagged == Some(Level::Watch))
        .count();
    let mut shares: Vec<f64> = results
        .iter()
        .filter(|r| r.shape.is_pyramid() && flagged(r))
        .filter_map(|r| match (r.events_to_flag, r.events_after_crossing) {
            (Some(t), Some(a)) if a > 0 => Some(t as f64 / a as f64),
            _ => None,
        })
        .collect();
    shares.sort_by(f64::total_cmp);
    // Pyramids from their first agent (a degenerating network's early agents sold).
    let pyramid_nets: std::collections::BTreeSet<String> = results
        .iter()
        .filter(|r| matches!(r.shape, Shape::PyramidFast | Shape::PyramidSlow))
        .map(|r| r.root.clone())
        .collect();
    let in_pyramid = |id: &str| {
        st.agents
            .agent(id)
            .is_some_and(|a| pyramid_nets.contains(&a.root))
    };
    let now = st.agents.clock().unwrap_or(g.t0);
    let c = &st.customers;
    let critical = rapport_projections::warnings::WarningConfig::default().influence_critical;
    let influential = |score: &dyn Fn(&rapport_projections::Profile) -> u64| {
        c.people_sorted()
            .into_iter()
            .filter(|p| in_pyramid(&p.id) && score(p) >= critical)
            .count()
    };
    let influential_now = influential(&|p| c.influence(p, now));
    let influential_before = influential(&|p| {
        let bought = c.referees_who_bought(p, now) as u64;
        3 * bought
            + (p.referees.len() as u64 - bought)
            + 2 * u64::from(p.echoes_received)
            + u64::from(p.replies_received)
            + u64::from(p.mentions_received)
    });
    let within = shares.iter().filter(|s| **s <= 0.10).count();
    AgentsScore {
        seed,
        networks,
        pyramids,
        events: events.len(),
        true_positives: tp,
        false_positives: fp,
        false_negatives: pyramids - tp,
        healthy_watched,
        precision: if tp + fp == 0 {
            1.0
        } else {
            tp as f64 / (tp + fp) as f64
        },
        recall: if pyramids == 0 {
            1.0
        } else {
            tp as f64 / pyramids as f64
        },
        within_tenth: if shares.is_empty() {
            0.0
        } else {
            within as f64 / shares.len() as f64
        },
        delay_share_max: shares.last().copied().unwrap_or(0.0),
        delay_share_median: shares.get(shares.len() / 2).copied().unwrap_or(0.0),
        events_per_second: events.len() as f64 / elapsed.max(1e-9),
        pyramid_agents_influential: influential_now,
        pyramid_agents_influential_before: influential_before,
        results,
    }
}

/// The position at which network `net` first has 30 participants over 3 levels while
/// behaving as a pyramid (its own agents, as the generator made them).
fn crossing(events: &[(FoldEvent, usize, bool)], net: usize) -> Option<u64> {
    let mut depth: BTreeMap<&str, u32> = BTreeMap::new();
    let mut levels = 0;
    for (ev, n, phase) in events {
        if *n != net {
            continue;
        }
        if let Facts::AgentJoined(j) = &ev.data {
            let d = j
                .upline
                .as_deref()
                .and_then(|u| depth.get(u))
                .map_or(0, |d| d + 1);
            depth.insert(&ev.customer, d);
            levels = levels.max(d + 1);
        }
        if *phase && depth.len() >= 30 && levels >= 3 {
            return Some(ev.position);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_seeded_firm_is_scored_and_pyramids_are_told_from_healthy_programmes() {
        let s = super::evaluate(11, 20);
        assert_eq!((s.networks, s.pyramids), (20, 8));
        assert!(
            s.precision >= 0.95 && s.recall >= 0.95,
            "{:?}",
            (s.precision, s.recall)
        );
        // Every pyramid's crossing was found, and the delay is a share of its events.
        assert!(s
            .results
            .iter()
            .filter(|r| r.shape.is_pyramid())
            .all(|r| r.events_after_crossing.is_some()));
        assert!((0.0..=1.0).contains(&s.delay_share_max));
    }
}
