//! Seeded scenarios: communities, background complaints, cascades and hard negatives.

use super::*;

/// Ground truth of one complaint.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Truth {
    Background,
    Cascade(usize),
    Burst(usize),
    Thin,
    Repeat,
}

pub struct Scenario {
    /// The end of the warm-up.
    pub(super) warm_up_end: DateTime<Utc>,
    pub events: Vec<RecordedEvent>,
    pub(super) truth: BTreeMap<String, Truth>,
    /// Cascade → its complaint ids in time order.
    pub(super) cascades: Vec<Vec<String>>,
    pub(super) bursts: usize,
    pub(super) background: usize,
}

pub(super) const EN_DEFECTS: &[&[&str]] = &[
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

pub(super) const ZH_DEFECTS: &[&[&str]] = &[
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

pub(super) const BACKGROUND_EN: &[&str] = &[
    "delivery was two days late",
    "the parcel arrived damaged",
    "wrong size sent",
    "refund has not arrived yet",
    "customer service did not answer",
    "the colour is different from the photo",
    "missing item in my order",
    "coupon did not apply at checkout",
];

pub(super) const BACKGROUND_ZH: &[&str] = &[
    "快递太慢了",
    "包装破损",
    "发错颜色了",
    "退款还没到账",
    "客服一直不回复",
    "少发了一件",
    "优惠券用不了",
    "和图片不一样",
];

pub(super) const TOPICS: &[&str] = &[
    "delivery",
    "packaging",
    "refund",
    "service",
    "quality",
    "size",
    "billing",
    "app",
];

pub(super) struct Gen {
    pub(super) rng: StdRng,
    pub(super) t0: DateTime<Utc>,
    pub(super) events: Vec<(DateTime<Utc>, EventType, String, Value)>,
    pub(super) truth: BTreeMap<String, Truth>,
    pub(super) next_complaint: u64,
    pub(super) next_post: u64,
}

impl Gen {
    pub(super) fn push(&mut self, at: DateTime<Utc>, ty: EventType, who: &str, data: Value) {
        self.events.push((at, ty, who.to_owned(), data));
    }

    pub(super) fn complaint(
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

    pub(super) fn post(
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
pub(super) fn count(rng: &mut StdRng, m: f64) -> usize {
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
    finish(g, cascade_ids, bursts)
}

/// The generated events in event-time order (stable for ties), numbered, with the truth.
pub(super) fn finish(mut g: Gen, cascade_ids: Vec<Vec<String>>, bursts: usize) -> Scenario {
    g.events.sort_by_key(|a| a.0);
    let t0 = g.t0;
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
pub(super) fn events_after(
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
