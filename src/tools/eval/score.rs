//! Scoring a detector on a scenario: recall, precision, delay and false alarms.

use super::*;

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
    pub(super) fn empty(s: &Scenario) -> Score {
        Score {
            cascades: s.cascades.len(),
            background: s.background,
            bursts: s.bursts,
            ..Default::default()
        }
    }

    pub(super) fn add(&mut self, o: &Score) {
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
    pub(super) fn quantile(v: &[f64], q: f64) -> f64 {
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

pub(super) fn position_of(s: &Scenario) -> BTreeMap<String, (u64, DateTime<Utc>)> {
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
pub(super) fn delays(
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
