//! `rapport eval-warnings`: how good the early-warning detector is, measured on seeded
//! scenarios, against the rule industry tools use. See `docs/early-warning.md`.
//!
//! A scenario is a community of customers (communities, referrals) with:
//! - **background** complaints from independent customers on many keys, with a weekly
//!   rhythm (busier on Mondays, quieter at weekends), in English and Chinese;
//! - **cascades** (the positives): a complaint that spreads along community and referral
//!   ties within hours, with "me too" echoes and paraphrased text, sizes 3 to 50; a
//!   third of them name no common subject (only their text links them);
//! - **hard negatives**: unconnected bursts (an outage: many unrelated customers on one
//!   store within hours), thinly spread connected complaints (one every 10–20 days) and
//!   noisy repeat complainers;
//! - mixed traffic (purchases, posts) so the speed figure is for a realistic stream.
//!
//! Everything is folded by the real projections in-process (no store), in event-time
//! order, so the figures are the detector's, not the IO's.

use std::{collections::BTreeMap, time::Instant};

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rapport_events::{EventType, FoldEvent, RecordedEvent};
use rapport_projections::{
    warnings::{Kind, Level, WarningConfig, Warnings},
    Customers, Projection,
};
use serde_json::{json, Value};

/// Where background complaints come from.
#[derive(Clone)]
pub enum Background {
    /// Generated: many keys with a weekly rhythm, templated English and Chinese text.
    Synthetic,
    /// The real CFPB complaints (company, product, issue, narrative), in their own order,
    /// spread over the scenario's days and given to random customers of the scenario.
    Cfpb(Vec<(serde_json::Value, String)>),
}

impl Background {
    /// Reads the CFPB sample through the importer (`shared/data/cfpb/complaints_sample.csv`).
    pub fn cfpb(shared_data: &std::path::Path) -> anyhow::Result<Background> {
        let file = shared_data.join("cfpb/complaints_sample.csv");
        anyhow::ensure!(
            file.is_file(),
            "{} not found (set --shared-data or RAPPORT_SHARED_DATA to the shared/data folder)",
            file.display()
        );
        let (ndjson, _) = crate::importers::cfpb::convert(&[file])?;
        let mut rows: Vec<(String, serde_json::Value, String)> = ndjson
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                Some((
                    v["occurred_at"].as_str()?.to_owned(),
                    v["data"]["about"].clone(),
                    v["data"]["text"].as_str()?.to_owned(),
                ))
            })
            .collect();
        // In the order they were received (ties by their own order).
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Background::Cfpb(
            rows.into_iter()
                .map(|(_, about, text)| (about, text))
                .collect(),
        ))
    }
}

pub struct EvalOptions {
    pub background: Background,
    pub seeds: Vec<u64>,
    pub customers: usize,
    pub days: i64,
    pub cascades: usize,
    pub config: WarningConfig,
}

/// Ground truth of one complaint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Truth {
    Background,
    Cascade(usize),
    Burst(usize),
    Thin,
    Repeat,
}

/// Days at the start of a scenario that only build baselines (both detectors need
/// history: 28 days plus the 2-day guard); no cascade is injected and nothing raised in
/// them is scored, as in the outbreak-detection literature's baseline period.
pub const WARM_UP_DAYS: i64 = 30;

pub struct Scenario {
    /// The end of the warm-up.
    warm_up_end: DateTime<Utc>,
    pub events: Vec<RecordedEvent>,
    truth: BTreeMap<String, Truth>,
    /// Cascade → its complaint ids in time order.
    cascades: Vec<Vec<String>>,
    bursts: usize,
    background: usize,
}

const EN_DEFECTS: &[&[&str]] = &[
    &[
        "the tea smells of mould",
        "my tea has a mouldy smell",
        "mould smell in the tea leaves",
        "tea leaves smell mouldy and stale",
    ],
    &[
        "the lid of the jar is cracked",
        "jar lid arrived cracked",
        "cracked lid on the jar again",
        "the jar's lid is cracked and leaks",
    ],
    &[
        "the cream gave me a rash",
        "got a red rash after the cream",
        "this cream causes a rash on my skin",
        "rash on my face from the cream",
    ],
    &[
        "the charger gets very hot",
        "charger overheating badly",
        "my charger is getting too hot to touch",
        "the charger overheats and smells",
    ],
];
const ZH_DEFECTS: &[&[&str]] = &[
    &[
        "这批茶叶有一股霉味",
        "茶叶有霉味，不敢喝",
        "买的茶叶发霉了有霉味",
        "茶叶打开就是霉味",
    ],
    &[
        "面膜用了脸上过敏起红疹",
        "用了面膜以后过敏红疹",
        "面膜导致皮肤过敏起疹子",
        "敷完面膜脸上起红疹过敏",
    ],
    &[
        "奶粉冲开有结块和异味",
        "奶粉有异味还结块",
        "这罐奶粉结块有异味",
        "奶粉结块，闻着有异味",
    ],
];
const BACKGROUND_EN: &[&str] = &[
    "delivery was two days late",
    "the parcel arrived damaged",
    "wrong size sent",
    "refund has not arrived yet",
    "customer service did not answer",
    "the colour is different from the photo",
    "missing item in my order",
    "coupon did not apply at checkout",
];
const BACKGROUND_ZH: &[&str] = &[
    "快递太慢了",
    "包装破损",
    "发错颜色了",
    "退款还没到账",
    "客服一直不回复",
    "少发了一件",
    "优惠券用不了",
    "和图片不一样",
];
const TOPICS: &[&str] = &[
    "delivery",
    "packaging",
    "refund",
    "service",
    "quality",
    "size",
    "billing",
    "app",
];

struct Gen {
    rng: StdRng,
    t0: DateTime<Utc>,
    events: Vec<(DateTime<Utc>, EventType, String, Value)>,
    truth: BTreeMap<String, Truth>,
    next_complaint: u64,
    next_post: u64,
}

impl Gen {
    fn push(&mut self, at: DateTime<Utc>, ty: EventType, who: &str, data: Value) {
        self.events.push((at, ty, who.to_owned(), data));
    }

    fn complaint(
        &mut self,
        at: DateTime<Utc>,
        who: &str,
        about: Value,
        text: &str,
        truth: Truth,
    ) -> String {
        self.next_complaint += 1;
        let id = format!("k-{}", self.next_complaint);
        self.truth.insert(id.clone(), truth);
        self.push(
            at,
            EventType::Complaint,
            who,
            json!({"complaint_id": id, "about": about, "text": text}),
        );
        id
    }

    fn post(
        &mut self,
        at: DateTime<Utc>,
        who: &str,
        community: &str,
        text: &str,
        echoes: Option<&str>,
    ) {
        self.next_post += 1;
        let mut data = json!({"post_id": format!("p-{}", self.next_post), "community": community, "text": text});
        if let Some(c) = echoes {
            data["echoes"] = json!(c);
        }
        self.push(at, EventType::Post, who, data);
    }
}

/// Poisson-ish count with mean `m` (sum of Bernoulli trials; fine for small means).
fn count(rng: &mut StdRng, m: f64) -> usize {
    let n = (m * 4.0).ceil() as usize + 1;
    (0..n).filter(|_| rng.gen::<f64>() < m / n as f64).count()
}

pub fn scenario(
    seed: u64,
    customers: usize,
    days: i64,
    cascades: usize,
    source: &Background,
) -> Scenario {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        t0: DateTime::from_timestamp(1_767_225_600, 0).expect("valid"),
        events: Vec::new(),
        truth: BTreeMap::new(),
        next_complaint: 0,
        next_post: 0,
    };
    let t0 = g.t0;
    let ids: Vec<String> = (0..customers).map(|i| format!("c-{i}")).collect();
    let n_comm = (customers / 30).max(4);
    // Communities and referrals, before everything else.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_comm];
    let mut comm_of: Vec<Vec<usize>> = vec![Vec::new(); customers];
    for c in 0..customers {
        let k = match g.rng.gen_range(0..10) {
            0..=3 => 0,
            4..=8 => 1,
            _ => 2,
        };
        for _ in 0..k {
            let m = g.rng.gen_range(0..n_comm);
            if !comm_of[c].contains(&m) {
                comm_of[c].push(m);
                members[m].push(c);
                let at = t0 - Duration::days(30) + Duration::minutes(g.rng.gen_range(0..40_000));
                g.push(
                    at,
                    EventType::CommunityJoined,
                    &ids[c],
                    json!({"community": format!("g-{m}")}),
                );
            }
        }
    }
    let mut referees: Vec<Vec<usize>> = vec![Vec::new(); customers];
    for c in 0..customers {
        if g.rng.gen_bool(0.15) {
            if let Some(&m) = comm_of[c].first() {
                let r = members[m][g.rng.gen_range(0..members[m].len())];
                if r != c {
                    referees[r].push(c);
                    let at =
                        t0 - Duration::days(20) + Duration::minutes(g.rng.gen_range(0..20_000));
                    g.push(at, EventType::Referral, &ids[r], json!({"referee": ids[c]}));
                }
            }
        }
    }
    let neighbours = |c: usize| -> Vec<usize> {
        let mut n: Vec<usize> = comm_of[c]
            .iter()
            .flat_map(|m| members[*m].iter().copied())
            .collect();
        n.extend(&referees[c]);
        n.sort_unstable();
        n.dedup();
        n.retain(|x| *x != c);
        n
    };
    // Background: ~0.012 complaints per customer per day, weekly rhythm.
    let products = 40;
    let stores = 30;
    for day in 0..days {
        let weekday = (day + 4) % 7; // 2026-01-01 is a Thursday
        let rhythm = [1.3, 1.1, 1.0, 1.0, 1.0, 0.7, 0.6][weekday as usize];
        let n = match source {
            Background::Synthetic => count(&mut g.rng, customers as f64 * 0.012 * rhythm),
            Background::Cfpb(_) => 0,
        };
        for _ in 0..n {
            let c = g.rng.gen_range(0..customers);
            // Zipf-like product popularity.
            let p = ((g.rng.gen::<f64>().powi(2)) * products as f64) as usize;
            let batch = format!("B{p}-{}", (day / 14) * 3 + g.rng.gen_range(0..3));
            let at = t0 + Duration::days(day) + Duration::minutes(g.rng.gen_range(0..1440));
            let zh = g.rng.gen_bool(0.5);
            let text = if zh {
                BACKGROUND_ZH[g.rng.gen_range(0..BACKGROUND_ZH.len())]
            } else {
                BACKGROUND_EN[g.rng.gen_range(0..BACKGROUND_EN.len())]
            };
            let about = match g.rng.gen_range(0..4) {
                0 => json!({"product": format!("P{p}"), "batch": batch}),
                1 => json!({"store": format!("S{}", g.rng.gen_range(0..stores))}),
                2 => json!({"topic": TOPICS[g.rng.gen_range(0..TOPICS.len())]}),
                _ => {
                    json!({"product": format!("P{p}"), "topic": TOPICS[g.rng.gen_range(0..TOPICS.len())]})
                }
            };
            g.complaint(at, &ids[c], about, text, Truth::Background);
        }
        // Mixed traffic: purchases and ordinary posts.
        for _ in 0..count(&mut g.rng, customers as f64 * 0.1) {
            let c = g.rng.gen_range(0..customers);
            let at = t0 + Duration::days(day) + Duration::minutes(g.rng.gen_range(0..1440));
            let order = format!("o-{day}-{}", g.rng.gen::<u32>());
            g.push(
                at,
                EventType::Purchase,
                &ids[c],
                json!({"order_id": order, "amount": "25.00", "currency": "CNY"}),
            );
        }
        for _ in 0..count(&mut g.rng, customers as f64 * 0.02) {
            let c = g.rng.gen_range(0..customers);
            if let Some(&m) = comm_of[c].first() {
                let at = t0 + Duration::days(day) + Duration::minutes(g.rng.gen_range(0..1440));
                g.post(at, &ids[c], &format!("g-{m}"), "hello everyone", None);
            }
        }
    }
    if let Background::Cfpb(rows) = source {
        // The real complaints, in order, spread evenly over the days.
        for (i, (about, text)) in rows.iter().enumerate() {
            let c = g.rng.gen_range(0..customers);
            let at = t0
                + Duration::minutes((i as i64 * days * 1440) / rows.len().max(1) as i64)
                + Duration::minutes(g.rng.gen_range(0..60));
            g.complaint(at, &ids[c], about.clone(), text, Truth::Background);
        }
    }
    // Cascades.
    let mut cascade_ids = Vec::new();
    for k in 0..cascades {
        let size = (3.0 * (50.0f64 / 3.0).powf(g.rng.gen::<f64>())).round() as usize;
        let start = t0
            + Duration::days(g.rng.gen_range(WARM_UP_DAYS..days - 3))
            + Duration::minutes(g.rng.gen_range(0..1440));
        let seed_c = loop {
            let c = g.rng.gen_range(0..customers);
            if !neighbours(c).is_empty() {
                break c;
            }
        };
        let zh = g.rng.gen_bool(0.5);
        let defects = if zh { ZH_DEFECTS } else { EN_DEFECTS };
        let phrases = defects[g.rng.gen_range(0..defects.len())];
        let text_only = k % 3 == 2;
        let product = format!("P{}", g.rng.gen_range(0..products));
        let batch = format!("L{:04}", 1000 + k);
        let mut reached = vec![seed_c];
        let mut complaints = Vec::new();
        let mut at = start;
        let mut first_complaint: Option<String> = None;
        while complaints.len() < size {
            let c = if complaints.is_empty() {
                seed_c
            } else {
                // Spread from someone already reached to one of their ties.
                let from = reached[g.rng.gen_range(0..reached.len())];
                let n = neighbours(from);
                let fresh: Vec<usize> = n.into_iter().filter(|x| !reached.contains(x)).collect();
                if fresh.is_empty() {
                    if reached.len() > 200 {
                        break;
                    }
                    // Stuck: someone new who shares a community with a reached customer.
                    let any = reached[g.rng.gen_range(0..reached.len())];
                    let n = neighbours(any);
                    if n.is_empty() {
                        break;
                    }
                    n[g.rng.gen_range(0..n.len())]
                } else {
                    fresh[g.rng.gen_range(0..fresh.len())]
                }
            };
            if !reached.contains(&c) {
                reached.push(c);
            }
            at += Duration::minutes(g.rng.gen_range(10..180));
            let text = phrases[g.rng.gen_range(0..phrases.len())];
            let about = if text_only {
                json!({"store": format!("S{}", g.rng.gen_range(0..stores))})
            } else {
                json!({"product": product, "batch": batch})
            };
            let id = g.complaint(at, &ids[c], about, text, Truth::Cascade(k));
            first_complaint.get_or_insert(id.clone());
            complaints.push(id);
            // "Me too" echoes by a tie, sometimes.
            if g.rng.gen_bool(0.3) {
                let n = neighbours(c);
                if !n.is_empty() {
                    let e = n[g.rng.gen_range(0..n.len())];
                    if let Some(&m) = comm_of[e].first() {
                        let me_too = if zh { "我也是！" } else { "same here!" };
                        let target = complaints.last().cloned().unwrap_or_default();
                        g.post(
                            at + Duration::minutes(5),
                            &ids[e],
                            &format!("g-{m}"),
                            me_too,
                            Some(&target),
                        );
                    }
                }
            }
        }
        cascade_ids.push(complaints);
    }
    // Hard negatives: unconnected bursts (an outage at one store).
    let bursts = (cascades / 3).max(2);
    for b in 0..bursts {
        let start = t0 + Duration::days(g.rng.gen_range(WARM_UP_DAYS..days - 1));
        let store = format!("S-out-{b}");
        let n = g.rng.gen_range(8..25);
        let mut used: Vec<usize> = Vec::new();
        while used.len() < n {
            let c = g.rng.gen_range(0..customers);
            // Unrelated: no tie to anyone already in the burst.
            if used.iter().all(|u| !neighbours(*u).contains(&c)) && !used.contains(&c) {
                used.push(c);
            }
        }
        for c in used {
            let at = start + Duration::minutes(g.rng.gen_range(0..180));
            g.complaint(
                at,
                &ids[c],
                json!({"store": store}),
                "the app shows an error at checkout",
                Truth::Burst(b),
            );
        }
    }
    // Hard negatives: connected complaints spread thin over months.
    for _ in 0..(cascades / 3).max(2) {
        let c0 = g.rng.gen_range(0..customers);
        let mut group = vec![c0];
        group.extend(neighbours(c0).into_iter().take(5));
        let mut at = t0 + Duration::days(g.rng.gen_range(0..20));
        let topic = TOPICS[g.rng.gen_range(0..TOPICS.len())];
        for c in group {
            at += Duration::days(g.rng.gen_range(10..20));
            g.complaint(
                at,
                &ids[c],
                json!({"topic": topic}),
                "not happy with this again",
                Truth::Thin,
            );
        }
    }
    // Hard negatives: noisy repeat complainers.
    for _ in 0..(cascades / 6).max(1) {
        let c = g.rng.gen_range(0..customers);
        let start = t0 + Duration::days(g.rng.gen_range(WARM_UP_DAYS..days - 2));
        for i in 0..15 {
            let at = start + Duration::minutes(i * 150);
            g.complaint(
                at,
                &ids[c],
                json!({"sku": "SKU-9"}),
                "still broken, fix it",
                Truth::Repeat,
            );
        }
    }
    // Event-time order (stable for ties), then positions.
    g.events.sort_by_key(|a| a.0);
    let warm_up_end = t0 + Duration::days(WARM_UP_DAYS);
    // Background counted for false-alarm rates: after the warm-up only.
    let background = events_after(&g.events, warm_up_end, &g.truth);
    let events = g
        .events
        .into_iter()
        .enumerate()
        .map(|(i, (at, ty, who, data))| RecordedEvent {
            position: i as u64 + 1,
            stream: rapport_events::stream_for(&who),
            stream_version: 0,
            recorded_at: at,
            id: uuid::Uuid::from_u128(i as u128 + 1),
            event_type: ty,
            version: 1,
            customer: who,
            subject: None,
            occurred_at: at,
            data,
            metadata: Default::default(),
            personal: None,
        })
        .collect();
    Scenario {
        warm_up_end,
        events,
        truth: g.truth,
        cascades: cascade_ids,
        bursts,
        background,
    }
}

/// Background complaints that occurred at or after `from`.
fn events_after(
    events: &[(DateTime<Utc>, EventType, String, Value)],
    from: DateTime<Utc>,
    truth: &BTreeMap<String, Truth>,
) -> usize {
    events
        .iter()
        .filter(|(at, ty, _, d)| {
            *ty == EventType::Complaint
                && *at >= from
                && d["complaint_id"]
                    .as_str()
                    .and_then(|id| truth.get(id))
                    .is_some_and(|t| *t == Truth::Background)
        })
        .count()
}

/// What one detector configuration achieved on one scenario.
#[derive(Debug, Clone, Default)]
pub struct Score {
    pub cascades: usize,
    pub detected: usize,
    pub alerts: usize,
    pub true_alerts: usize,
    /// Per detected cascade: (complaints up to detection, hours from its first complaint).
    pub delays: Vec<(usize, f64)>,
    pub background: usize,
    pub bursts: usize,
    pub bursts_as_spike: usize,
    pub bursts_as_group: usize,
    /// False alarms by the kind of their first key (`product`, `store`, `text` …).
    pub false_by_key: BTreeMap<String, usize>,
}

impl Score {
    fn empty(s: &Scenario) -> Score {
        Score {
            cascades: s.cascades.len(),
            background: s.background,
            bursts: s.bursts,
            ..Default::default()
        }
    }

    fn add(&mut self, o: &Score) {
        self.cascades += o.cascades;
        self.detected += o.detected;
        self.alerts += o.alerts;
        self.true_alerts += o.true_alerts;
        self.delays.extend(o.delays.iter().copied());
        self.background += o.background;
        self.bursts += o.bursts;
        self.bursts_as_spike += o.bursts_as_spike;
        self.bursts_as_group += o.bursts_as_group;
        for (k, n) in &o.false_by_key {
            *self.false_by_key.entry(k.clone()).or_default() += n;
        }
    }
    pub fn recall(&self) -> f64 {
        self.detected as f64 / self.cascades.max(1) as f64
    }
    pub fn precision(&self) -> f64 {
        if self.alerts == 0 {
            1.0
        } else {
            self.true_alerts as f64 / self.alerts as f64
        }
    }
    pub fn false_per_10k(&self) -> f64 {
        (self.alerts - self.true_alerts) as f64 * 10_000.0 / self.background.max(1) as f64
    }
    fn quantile(v: &[f64], q: f64) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
    pub fn delay_complaints(&self, q: f64) -> f64 {
        Score::quantile(
            &self.delays.iter().map(|d| d.0 as f64).collect::<Vec<_>>(),
            q,
        )
    }
    pub fn delay_hours(&self, q: f64) -> f64 {
        Score::quantile(&self.delays.iter().map(|d| d.1).collect::<Vec<_>>(), q)
    }
}

fn position_of(s: &Scenario) -> BTreeMap<String, (u64, DateTime<Utc>)> {
    s.events
        .iter()
        .filter(|e| e.event_type == EventType::Complaint)
        .filter_map(|e| {
            e.data["complaint_id"]
                .as_str()
                .map(|id| (id.to_owned(), (e.position, e.occurred_at)))
        })
        .collect()
}

/// Per detected cascade (cascade → position of detection): complaints of the cascade up to
/// that position, and hours from its first complaint.
fn delays(
    s: &Scenario,
    pos: &BTreeMap<String, (u64, DateTime<Utc>)>,
    detected_at: &BTreeMap<usize, u64>,
) -> Vec<(usize, f64)> {
    detected_at
        .iter()
        .map(|(k, at)| {
            let complaints = &s.cascades[*k];
            let upto = complaints
                .iter()
                .filter(|c| pos.get(*c).is_some_and(|p| p.0 <= *at))
                .count();
            let first = complaints.first().and_then(|c| pos.get(c)).map(|p| p.1);
            let when = s.events[(*at - 1) as usize].occurred_at;
            (
                upto,
                first.map_or(0.0, |f| (when - f).num_minutes() as f64 / 60.0),
            )
        })
        .collect()
}

/// Scores the detector (group complaints at level ≥ warning) on a scenario.
pub fn score_detector(s: &Scenario, config: &WarningConfig) -> (Score, f64) {
    let mut customers = Customers::default();
    let mut w = Warnings::new(config.clone());
    let events: Vec<FoldEvent> = s
        .events
        .iter()
        .map(|e| FoldEvent::from_recorded(e).expect("generated payloads are of their type"))
        .collect();
    let started = Instant::now();
    for e in &events {
        customers.apply(e);
        w.apply(e, &customers);
    }
    let rate = s.events.len() as f64 / started.elapsed().as_secs_f64();
    let pos = position_of(s);
    let mut score = Score::empty(s);
    let mut detected_at: BTreeMap<usize, u64> = BTreeMap::new();
    let mut burst_spike = vec![false; s.bursts];
    let mut burst_group = vec![false; s.bursts];
    for a in w.alerts().filter(|a| a.raised_at >= s.warm_up_end) {
        let mut per: BTreeMap<Truth, usize> = BTreeMap::new();
        for c in &a.complaints {
            if let Some(t) = s.truth.get(c) {
                *per.entry(*t).or_default() += 1;
            }
        }
        let (best, n) = per
            .iter()
            .filter(|(t, _)| matches!(t, Truth::Cascade(_)))
            .max_by_key(|(_, n)| **n)
            .map(|(t, n)| (Some(*t), *n))
            .unwrap_or((None, 0));
        for t in per.keys() {
            if let Truth::Burst(b) = t {
                match a.kind {
                    Kind::Spike => burst_spike[*b] = true,
                    Kind::GroupComplaint if a.level >= Level::Warning => burst_group[*b] = true,
                    _ => {}
                }
            }
        }
        if a.kind != Kind::GroupComplaint || a.level < Level::Warning {
            continue;
        }
        score.alerts += 1;
        let matched = match best {
            Some(Truth::Cascade(k)) if n * 2 >= a.complaints.len() => Some(k),
            _ => None,
        };
        let Some(k) = matched else {
            let kind = a
                .keys
                .iter()
                .next()
                .and_then(|k| k.split(':').next())
                .unwrap_or("?");
            *score.false_by_key.entry(kind.to_owned()).or_default() += 1;
            continue;
        };
        score.true_alerts += 1;
        let warned_at = a
            .levels
            .iter()
            .find(|(l, _)| *l >= Level::Warning)
            .map(|(_, p)| *p)
            .unwrap_or(a.raised_at_position);
        let e = detected_at.entry(k).or_insert(warned_at);
        *e = (*e).min(warned_at);
    }
    score.delays = delays(s, &pos, &detected_at);
    score.detected = detected_at.len();
    score.bursts_as_spike = burst_spike.iter().filter(|b| **b).count();
    score.bursts_as_group = burst_group.iter().filter(|b| **b).count();
    (score, rate)
}

/// The rule industry tools use: per key, today's complaints above the previous 7 days'
/// mean + 3 standard deviations. One alert per key per day.
pub fn score_baseline(s: &Scenario) -> Score {
    let pos = position_of(s);
    let mut daily: BTreeMap<String, BTreeMap<i64, usize>> = BTreeMap::new();
    let mut fired: BTreeMap<(String, i64), (String, u64)> = BTreeMap::new();
    for e in s
        .events
        .iter()
        .filter(|e| e.event_type == EventType::Complaint)
    {
        let day = e.occurred_at.timestamp().div_euclid(86_400);
        let id = e.data["complaint_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for f in ["product", "sku", "batch", "store", "topic"] {
            let Some(v) = e.data["about"][f].as_str() else {
                continue;
            };
            let key = format!("{f}:{v}");
            let days = daily.entry(key.clone()).or_default();
            *days.entry(day).or_default() += 1;
            let today = days[&day] as f64;
            let prev: Vec<f64> = (1..=7)
                .map(|d| *days.get(&(day - d)).unwrap_or(&0) as f64)
                .collect();
            let mean = prev.iter().sum::<f64>() / 7.0;
            let sd = (prev.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
            let warm = e.occurred_at >= s.warm_up_end;
            if warm && today > mean + 3.0 * sd && !fired.contains_key(&(key.clone(), day)) {
                fired.insert((key, day), (id.clone(), e.position));
            }
        }
    }
    let mut score = Score::empty(s);
    let mut detected_at: BTreeMap<usize, u64> = BTreeMap::new();
    for (_, (id, at)) in fired {
        score.alerts += 1;
        if let Some(Truth::Cascade(k)) = s.truth.get(&id) {
            score.true_alerts += 1;
            let e = detected_at.entry(*k).or_insert(at);
            *e = (*e).min(at);
        }
    }
    score.delays = delays(s, &pos, &detected_at);
    score.detected = detected_at.len();
    score
}

fn row(name: &str, s: &Score) -> String {
    format!(
        "| {name} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {}/{} |",
        s.recall(),
        s.precision(),
        s.delay_complaints(0.5),
        s.delay_complaints(0.9),
        s.delay_hours(0.5),
        s.delay_hours(0.9),
        s.false_per_10k(),
        s.detected,
        s.cascades,
    )
}

pub fn run(opts: EvalOptions) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = opts
        .seeds
        .iter()
        .map(|s| {
            scenario(
                *s,
                opts.customers,
                opts.days,
                opts.cascades,
                &opts.background,
            )
        })
        .collect();
    let events: usize = scenarios.iter().map(|s| s.events.len()).sum();
    let complaints: usize = scenarios.iter().map(|s| s.truth.len()).sum();
    println!(
        "scenarios ({} background): seeds {:?}, {} customers, {} days, {} cascades each; {events} events, {complaints} complaints, {} background",
        match opts.background {
            Background::Synthetic => "synthetic",
            Background::Cfpb(_) => "CFPB",
        },
        opts.seeds,
        opts.customers,
        opts.days,
        opts.cascades,
        scenarios.iter().map(|s| s.background).sum::<usize>()
    );
    let mut total = Score::default();
    let mut rates = Vec::new();
    for s in &scenarios {
        let (score, rate) = score_detector(s, &opts.config);
        total.add(&score);
        rates.push(rate);
    }
    let mut base = Score::default();
    for s in &scenarios {
        base.add(&score_baseline(s));
    }
    println!();
    println!("| detector | recall | precision | delay p50 (complaints) | p90 | delay p50 (hours) | p90 | false alarms / 10k background | cascades found |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("{}", row("Rapport (group_complaint ≥ warning)", &total));
    println!("{}", row("day count > 7-day mean + 3 sd", &base));
    println!();
    println!(
        "unconnected bursts: {} of {} reported as spike, {} as a group complaint (≥ warning)",
        total.bursts_as_spike, total.bursts, total.bursts_as_group
    );
    if !total.false_by_key.is_empty() {
        let by: Vec<String> = total
            .false_by_key
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "false alarms by the kind of their first key: {}",
            by.join(", ")
        );
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "detector speed (customers + warnings folds, one core, mixed traffic): median {:.0} events/s",
        rates[rates.len() / 2]
    );
    println!();
    println!("AMOC (one setting varied, the others as given):");
    println!(
        "| setting | recall | delay p50 (complaints) | delay p50 (hours) | false alarms / 10k |"
    );
    println!("|---|---|---|---|---|");
    let mut settings: Vec<(String, WarningConfig)> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .map(|t| {
            (
                format!("threshold {t}"),
                WarningConfig {
                    threshold: *t,
                    ..opts.config.clone()
                },
            )
        })
        .collect();
    settings.extend([2, 3, 4, 5].iter().map(|m| {
        (
            format!("min_count {m}"),
            WarningConfig {
                min_count: *m,
                ..opts.config.clone()
            },
        )
    }));
    for (t, cfg) in settings {
        let mut sc = Score::default();
        for s in &scenarios {
            sc.add(&score_detector(s, &cfg).0);
        }
        println!(
            "| {t} | {:.3} | {:.1} | {:.1} | {:.2} |",
            sc.recall(),
            sc.delay_complaints(0.5),
            sc.delay_hours(0.5),
            sc.false_per_10k()
        );
    }
    Ok(())
}
