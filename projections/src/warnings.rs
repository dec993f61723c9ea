//! Early warning: complaints turning into a group complaint, and why.
//!
//! A projection like the others: online, event by event, on event time (the clock is the
//! latest `occurred_at` of a customer event), with bounded state (everything older than the
//! windows is swept out), fixed hashing and fixed tie-breaks, so a replay gives the
//! identical alert stream. `docs/early-warning.md` explains it for support staff.
//!
//! 1. **Keys.** Each complaint is filed under what it is about (`product:`, `sku:`,
//!    `batch:`, `store:`, `topic:`) and, when its text is readable, under a text cluster
//!    (`text:<first complaint>`): MinHash over character n-grams (3-grams for mostly-ASCII
//!    text, 2-grams otherwise, so Chinese needs no word segmenter) with LSH banding finds
//!    earlier complaints whose estimated Jaccard similarity is at least
//!    `text_similarity`. An echo (`post.echoes`, or a reply to such a post) joins the
//!    echoed complaint's keys as a "me too".
//! 2. **Connectivity.** Inside `window_hours`, the customers on a key are linked when they
//!    share a community, one referred the other, or one replied to, mentioned or echoed
//!    the other within `tie_window_days`. Components are found with union-find.
//! 3. **Baseline.** Per key, distinct complainants per day over `baseline_days`, ending
//!    `guard_days` before today (a starting surge cannot inflate its own baseline), and at
//!    least `prior_daily_rate`. Expected in the window: λ = rate × window. The statistic
//!    is the Poisson z-score `(observed − λ) / √λ` (the EARS C2/C3 family).
//! 4. **Levels.** `watch`: at least two connected customers, or an echo. `warning`: a
//!    connected component of at least `min_count` customers whose z ≥ `threshold`.
//!    `critical`: a warning that is large (`critical_size`), spans `critical_communities`
//!    communities, or involves a customer with influence ≥ `influence_critical`. A
//!    **spike** is different in kind: at least `spike_min` distinct complainants on a key
//!    with z ≥ `threshold` whose largest connected component is under half of them
//!    (unrelated customers hitting the same outage). One customer complaining many times
//!    counts once everywhere (distinct customers), so it is never a group.
//!
//! An alert's id is a hash of its kind and its first complaint, so it survives replays;
//! a growing cluster updates its alert (and escalates its level) rather than raising new
//! ones. Staff act on alerts with `alert_acknowledged` / `alert_resolved` events; an alert
//! resolved while its cluster keeps growing is reopened.
//!
//! Personal data: the detector reads complaint text while folding (the read model opens
//! complaint events for it) but keeps only MinHash signatures, never text; a customer's
//! signatures are dropped when their data is erased, and a replay after an erasure sees
//! no text for them (their complaints then join clusters by subject keys only).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use rapport_events::{fold as facts, EventType, Facts, FoldEvent};
use serde::{Deserialize, Serialize};

use crate::{Customers, Profile};

/// Thresholds and windows, configurable (`rapport serve --config`); the defaults are
/// documented in `docs/early-warning.md`; a missing field keeps its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarningConfig {
    pub window_hours: i64,
    pub tie_window_days: i64,
    pub baseline_days: i64,
    pub guard_days: i64,
    /// Distinct complainants per day expected on a key with no history.
    pub prior_daily_rate: f64,
    pub min_count: usize,
    /// z-score threshold for `warning` and `spike`.
    pub threshold: f64,
    pub critical_size: usize,
    pub critical_communities: usize,
    pub influence_critical: u64,
    pub spike_min: usize,
    pub text_similarity: f64,
}

impl Default for WarningConfig {
    fn default() -> Self {
        WarningConfig {
            window_hours: 72,
            tie_window_days: 180,
            baseline_days: 28,
            guard_days: 2,
            prior_daily_rate: 0.1,
            min_count: 3,
            threshold: 3.0,
            critical_size: 10,
            critical_communities: 3,
            influence_critical: 15,
            spike_min: 6,
            text_similarity: 0.3,
        }
    }
}

/// Most customers tracked on one key inside the window (the oldest leave first).
pub const KEY_ENTRIES_MAX: usize = 400;
/// Ties, evidence lines and timeline entries shown per alert.
pub const EVIDENCE_LINES_MAX: usize = 12;
pub const TIMELINE_MAX: usize = 30;
/// Customers whose ties are described in an alert's evidence.
pub const EVIDENCE_CUSTOMERS_MAX: usize = 100;
/// Alert changes kept for the feed.
pub const ALERT_CHANGES_KEPT_MAX: usize = crate::feed::FEED_KEPT_MAX;
const MINHASH_K: usize = 128;
/// Characters of a complaint's text that its signature reads (long narratives are cut).
const SIGNATURE_CHARS_MAX: usize = 1_000;
/// 64 bands of 2 rows: a pair with Jaccard similarity 0.3 becomes a candidate with
/// probability 1 − (1 − 0.3²)⁶⁴ ≈ 0.998; candidates are then checked against the estimate.
const LSH_BANDS: usize = 64;
/// Signatures kept per text cluster (paraphrases chain through them).
const CLUSTER_SIGNATURES_MAX: usize = 8;
const LSH_ROWS: usize = MINHASH_K / LSH_BANDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Watch,
    Warning,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    GroupComplaint,
    Spike,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub position: u64,
    /// `complaint` or `echo`.
    pub what: String,
    pub customer: String,
    /// The complaint id (for an echo, the echoed complaint).
    pub complaint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Sentences built from projection state: shared communities, referral, reply,
    /// mention and echo ties inside the cluster.
    pub ties: Vec<String>,
    /// Distinct customers in the cluster (or on the key, for a spike).
    pub observed: usize,
    /// Expected distinct complainants on the key in the window (λ).
    pub expected: f64,
    /// The Poisson z-score `(observed − λ) / √λ`.
    pub statistic: f64,
    pub threshold: f64,
    /// Customers in the largest connected component / distinct customers on the key.
    pub connected: usize,
    pub on_key: usize,
    /// Communities the cluster's customers are in (sorted).
    pub communities: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// `acknowledged`, `resolved` or `reopened`.
    pub action: String,
    pub position: u64,
    pub at: DateTime<Utc>,
    pub by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub kind: Kind,
    pub level: Level,
    pub status: Status,
    pub keys: BTreeSet<String>,
    pub complaints: BTreeSet<String>,
    pub customers: BTreeSet<String>,
    pub echoes: BTreeSet<String>,
    pub first_complaint_at: DateTime<Utc>,
    /// Event time of the event that raised it.
    pub raised_at: DateTime<Utc>,
    pub raised_at_position: u64,
    pub updated_at_position: u64,
    /// (level, position) each time the level rose.
    pub levels: Vec<(Level, u64)>,
    pub evidence: Evidence,
    /// Staff actions, from `alert_*` events.
    pub actions: Vec<Action>,
    /// Log positions of the complaints (to read their text for shared phrases).
    pub complaint_positions: BTreeSet<u64>,
}

/// One change of an alert: the feed's item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    pub seq: u64,
    pub alert: String,
    /// `raised`, `updated`, `escalated`, `acknowledged`, `resolved`, `reopened`.
    pub change: String,
    pub level: Level,
    pub position: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    customer: String,
    at: DateTime<Utc>,
    position: u64,
    complaint: String,
    /// The echoing post, for a "me too".
    echo: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct KeyState {
    entries: Vec<Entry>,
    /// day number → distinct complainants that day.
    days: BTreeMap<i64, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ComplaintInfo {
    customer: String,
    at: DateTime<Utc>,
    position: u64,
    keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TextCluster {
    id: String,
    signatures: Vec<Vec<u32>>,
    last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warnings {
    config: WarningConfig,
    clock: Option<DateTime<Utc>>,
    swept_day: i64,
    keys: BTreeMap<String, KeyState>,
    complaints: BTreeMap<String, ComplaintInfo>,
    /// post id → the complaint it echoes (directly or by replying to an echo).
    echo_posts: BTreeMap<String, (String, DateTime<Utc>)>,
    /// customer → tied customer → (tie kind from the first's side, when last seen); both
    /// directions are stored.
    ties: BTreeMap<String, BTreeMap<String, (String, DateTime<Utc>)>>,
    /// Text clusters by LSH band bucket (`bucket_key`).
    buckets: BTreeMap<u64, Vec<String>>,
    clusters: BTreeMap<String, TextCluster>,
    /// customer → text clusters they contributed a signature to (dropped on erasure).
    signatures_of: BTreeMap<String, BTreeSet<String>>,
    alerts: BTreeMap<String, Alert>,
    /// position of a complaint → alert id.
    alert_of: BTreeMap<u64, String>,
    /// key → the spike alert last raised or updated on it.
    spike_of: BTreeMap<String, String>,
    changes: crate::feed::Feed<AlertChange>,
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings::new(WarningConfig::default())
    }
}

fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// FNV-1a, 64 bits: fixed, so signatures and ids are the same on every run.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// MinHash signature of `text` over character n-grams; `None` for text too short.
pub fn signature(text: &str) -> Option<Vec<u32>> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(|c| c.to_lowercase())
        .take(SIGNATURE_CHARS_MAX)
        .collect();
    let ascii = chars.iter().filter(|c| c.is_ascii()).count();
    let n = if ascii * 2 >= chars.len() { 3 } else { 2 };
    if chars.len() < n + 1 {
        return None;
    }
    let mut sig = vec![u32::MAX; MINHASH_K];
    let mut buf = String::new();
    for w in chars.windows(n) {
        buf.clear();
        buf.extend(w);
        // The k hash functions are h1 + i·h2 (Kirsch–Mitzenmacher): two mixes per shingle.
        let base = fnv(buf.as_bytes());
        let (h1, h2) = (mix(base), mix(base ^ 0x5bd1_e995_5bd1_e995) | 1);
        let mut h = h1;
        for slot in sig.iter_mut() {
            let v = (h >> 32) as u32;
            if v < *slot {
                *slot = v;
            }
            h = h.wrapping_add(h2);
        }
    }
    Some(sig)
}

pub fn similarity(a: &[u32], b: &[u32]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// The bucket of a signature's band: the band number in the top 6 bits, its hash below.
fn band_hash(sig: &[u32], band: usize) -> u64 {
    let mut bytes = Vec::with_capacity(LSH_ROWS * 4);
    for v in &sig[band * LSH_ROWS..(band + 1) * LSH_ROWS] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    ((band as u64) << 58) | (fnv(&bytes) >> 6)
}

fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn alert_id(kind: Kind, first_complaint: &str) -> String {
    let k = match kind {
        Kind::GroupComplaint => "g",
        Kind::Spike => "s",
    };
    format!("al-{k}-{:016x}", mix(fnv(first_complaint.as_bytes())))
}

/// Union-find over indices.
struct Dsu(Vec<usize>);

impl Dsu {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut x = x;
        while self.0[x] != r {
            let next = self.0[x];
            self.0[x] = r;
            x = next;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Fixed tie-break: the smaller index is the root.
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

impl Warnings {
    pub fn new(config: WarningConfig) -> Warnings {
        Warnings {
            config,
            clock: None,
            swept_day: i64::MIN,
            keys: BTreeMap::new(),
            complaints: BTreeMap::new(),
            echo_posts: BTreeMap::new(),
            ties: BTreeMap::new(),
            buckets: BTreeMap::new(),
            clusters: BTreeMap::new(),
            signatures_of: BTreeMap::new(),
            alerts: BTreeMap::new(),
            alert_of: BTreeMap::new(),
            spike_of: BTreeMap::new(),
            changes: Default::default(),
        }
    }

    pub fn config(&self) -> &WarningConfig {
        &self.config
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id)
    }

    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock
    }

    pub fn last_seq(&self) -> u64 {
        self.changes.last_seq()
    }

    /// Alert changes with `seq > after`, at most `limit`; `Err(oldest kept)` if too old.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<&AlertChange>, u64> {
        self.changes.after(after, limit)
    }

    fn window(&self) -> Duration {
        Duration::hours(self.config.window_hours)
    }

    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        match ev.event_type {
            EventType::AlertAcknowledged | EventType::AlertResolved => return self.act(ev),
            t if t.is_operator() => return,
            _ => {}
        }
        if ev.event_type.records_business_time() && self.clock.is_none_or(|c| ev.occurred_at > c) {
            self.clock = Some(ev.occurred_at);
            self.sweep();
        }
        match &ev.data {
            Facts::Complaint(d) => self.complaint(ev, d, customers),
            Facts::Post(d) => {
                let author = &ev.customer;
                let echoed = d.echoes.clone().or_else(|| {
                    d.reply_to
                        .as_deref()
                        .and_then(|r| self.echo_posts.get(r))
                        .map(|(c, _)| c.clone())
                });
                if let Some(author_of) =
                    d.reply_to.as_deref().and_then(|r| customers.post_author(r))
                {
                    self.tie(author, author_of, "replied to", ev.occurred_at);
                }
                for m in &d.mentions {
                    self.tie(author, m, "mentioned", ev.occurred_at);
                }
                if let Some(complaint) = echoed {
                    if let Some(post) = &d.post_id {
                        self.echo_posts
                            .insert(post.clone(), (complaint.clone(), ev.occurred_at));
                    }
                    self.echo(ev, d, &complaint, customers);
                }
            }
            Facts::PersonalDataErased => {
                // Drop the customer's text signatures; their text is gone from the log.
                for cluster in self.signatures_of.remove(&ev.customer).unwrap_or_default() {
                    self.drop_cluster(&cluster);
                }
            }
            _ => {}
        }
    }

    /// Records that `a` replied to, mentioned or echoed `b`: stored both ways, the label
    /// read from the key's side ("~" marks the reverse direction).
    fn tie(&mut self, a: &str, b: &str, kind: &str, at: DateTime<Utc>) {
        if a != b {
            self.ties
                .entry(a.to_owned())
                .or_default()
                .insert(b.to_owned(), (kind.to_owned(), at));
            self.ties
                .entry(b.to_owned())
                .or_default()
                .insert(a.to_owned(), (format!("~{kind}"), at));
        }
    }

    fn drop_cluster(&mut self, id: &str) {
        let Some(c) = self.clusters.remove(id) else {
            return;
        };
        for sig in &c.signatures {
            for band in 0..LSH_BANDS {
                let k = band_hash(sig, band);
                if let Some(v) = self.buckets.get_mut(&k) {
                    v.retain(|x| x != id);
                    if v.is_empty() {
                        self.buckets.remove(&k);
                    }
                }
            }
        }
    }

    /// Evicts everything older than the windows, once per day of event time.
    fn sweep(&mut self) {
        let Some(now) = self.clock else { return };
        let today = day_of(now);
        if today == self.swept_day {
            return;
        }
        self.swept_day = today;
        let window_start = now - self.window();
        let keep_days = self.config.baseline_days + self.config.guard_days + 4;
        self.keys.retain(|_, k| {
            k.entries.retain(|e| e.at > window_start);
            k.days.retain(|d, _| *d > today - keep_days);
            !k.entries.is_empty() || !k.days.is_empty()
        });
        self.complaints.retain(|_, c| c.at > window_start);
        self.echo_posts.retain(|_, (_, at)| *at > window_start);
        let tie_start = now - Duration::days(self.config.tie_window_days);
        self.ties.retain(|_, m| {
            m.retain(|_, (_, at)| *at > tie_start);
            !m.is_empty()
        });
        let stale: Vec<String> = self
            .clusters
            .values()
            .filter(|c| c.last_at <= window_start)
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            self.drop_cluster(&id);
        }
        let clusters = &self.clusters;
        self.signatures_of.retain(|_, set| {
            set.retain(|c| clusters.contains_key(c));
            !set.is_empty()
        });
        let keys = &self.keys;
        self.spike_of.retain(|k, _| keys.contains_key(k));
        let alerts = &self.alerts;
        let kept: BTreeSet<u64> = self.complaints.values().map(|c| c.position).collect();
        self.alert_of
            .retain(|p, a| kept.contains(p) && alerts.contains_key(a));
    }

    fn text_key(&mut self, ev: &FoldEvent, text: Option<&str>, complaint: &str) -> Option<String> {
        let text = text?;
        let sig = signature(text)?;
        let mut candidates = BTreeSet::new();
        for band in 0..LSH_BANDS {
            if let Some(ids) = self.buckets.get(&band_hash(&sig, band)) {
                candidates.extend(ids.iter().cloned());
            }
        }
        // The most similar earlier cluster above the threshold; ties by cluster id.
        let best = candidates
            .iter()
            .filter_map(|id| self.clusters.get(id))
            .map(|c| {
                let best = c
                    .signatures
                    .iter()
                    .map(|s| similarity(s, &sig))
                    .fold(0.0, f64::max);
                (best, c.id.clone())
            })
            .filter(|(s, _)| *s >= self.config.text_similarity)
            .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(&a.1)));
        let id = match best {
            Some((_, id)) => id,
            None => {
                let id = complaint.to_owned();
                self.clusters.insert(
                    id.clone(),
                    TextCluster {
                        id: id.clone(),
                        signatures: vec![],
                        last_at: ev.occurred_at,
                    },
                );
                id
            }
        };
        let c = self.clusters.get_mut(&id).expect("found or inserted");
        c.last_at = c.last_at.max(ev.occurred_at);
        if c.signatures.len() < CLUSTER_SIGNATURES_MAX {
            for band in 0..LSH_BANDS {
                let ids = self.buckets.entry(band_hash(&sig, band)).or_default();
                if !ids.contains(&id) {
                    ids.push(id.clone());
                }
            }
            c.signatures.push(sig);
        }
        self.signatures_of
            .entry(ev.customer.clone())
            .or_default()
            .insert(id.clone());
        Some(format!("text:{id}"))
    }

    fn complaint(&mut self, ev: &FoldEvent, d: &facts::Complaint, customers: &Customers) {
        let Some(id) = d.complaint_id.as_deref() else {
            return;
        };
        if self.complaints.contains_key(id) {
            return;
        }
        let mut keys: Vec<String> = d.about.fields().map(|(f, v)| format!("{f}:{v}")).collect();
        keys.extend(self.text_key(ev, d.text.as_deref(), id));
        self.complaints.insert(
            id.to_owned(),
            ComplaintInfo {
                customer: ev.customer.clone(),
                at: ev.occurred_at,
                position: ev.position,
                keys: keys.clone(),
            },
        );
        let entry = Entry {
            customer: ev.customer.clone(),
            at: ev.occurred_at,
            position: ev.position,
            complaint: id.to_owned(),
            echo: None,
        };
        for k in keys {
            self.add(&k, entry.clone(), ev, customers);
        }
    }

    fn echo(&mut self, ev: &FoldEvent, post: &facts::Post, complaint: &str, customers: &Customers) {
        let Some(info) = self.complaints.get(complaint).cloned() else {
            return;
        };
        self.tie(&ev.customer, &info.customer, "echoed", ev.occurred_at);
        let entry = Entry {
            customer: ev.customer.clone(),
            at: ev.occurred_at,
            position: ev.position,
            complaint: complaint.to_owned(),
            echo: post.post_id.clone(),
        };
        for k in info.keys {
            self.add(&k, entry.clone(), ev, customers);
        }
    }

    /// For each of `people`, the indices of the others it is tied to: shared community,
    /// referral, or a reply / mention / echo tie. Built from buckets, not pairs, so a key
    /// with many unrelated customers costs about one lookup per customer.
    fn adjacency(&self, people: &[&str], customers: &Customers) -> Vec<Vec<usize>> {
        use std::collections::HashMap;
        let index: HashMap<&str, usize> = people.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let profiles: Vec<Option<&Profile>> = people.iter().map(|p| customers.get(p)).collect();
        let mut by_community: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut adjacency: Vec<Vec<usize>> = vec![Vec::new(); people.len()];
        for (i, p) in profiles.iter().enumerate() {
            let Some(p) = p else { continue };
            for g in customers.names_of(&p.communities) {
                by_community.entry(g).or_default().push(i);
            }
            if let Some(&j) = customers.referred_by(p).and_then(|r| index.get(r)) {
                adjacency[i].push(j);
                adjacency[j].push(i);
            }
        }
        for members in by_community.values() {
            if members.len() > 1 {
                for &i in members {
                    adjacency[i].extend(members.iter().copied().filter(|j| *j != i));
                }
            }
        }
        for (i, a) in people.iter().enumerate() {
            if let Some(m) = self.ties.get(*a) {
                // Walk the smaller side: the key's people or this customer's ties.
                if m.len() < people.len() {
                    adjacency[i].extend(m.keys().filter_map(|b| index.get(b.as_str()).copied()));
                } else {
                    adjacency[i].extend(
                        people
                            .iter()
                            .enumerate()
                            .filter(|(j, b)| *j != i && m.contains_key(**b))
                            .map(|(j, _)| j),
                    );
                }
            }
        }
        for next in &mut adjacency {
            next.sort_unstable();
            next.dedup();
        }
        adjacency
    }

    /// Files `entry` under key `k`, then raises or updates what the key now shows.
    fn add(&mut self, k: &str, entry: Entry, ev: &FoldEvent, customers: &Customers) {
        let now = self.clock.unwrap_or(ev.occurred_at);
        let window_start = now - self.window();
        let cfg = self.config.clone();
        let today = day_of(now);
        let ks = self.keys.entry(k.to_owned()).or_default();
        ks.entries.retain(|e| e.at > window_start);
        if entry.at <= window_start {
            return; // a late event older than the window changes nothing now
        }
        ks.days
            .entry(day_of(entry.at))
            .or_default()
            .insert(entry.customer.clone());
        ks.entries.push(entry.clone());
        if ks.entries.len() > KEY_ENTRIES_MAX {
            let drop = ks.entries.len() - KEY_ENTRIES_MAX;
            ks.entries.drain(..drop);
        }
        // Baseline: distinct complainants per day before the guard gap.
        let from = today - cfg.guard_days - cfg.baseline_days;
        let to = today - cfg.guard_days;
        let total: usize = ks.days.range(from..to).map(|(_, s)| s.len()).sum();
        let rate = (total as f64 / cfg.baseline_days as f64).max(cfg.prior_daily_rate);
        let expected = rate * cfg.window_hours as f64 / 24.0;
        let ks = &self.keys[k];
        // Distinct customers on the key, in first-seen order (a fixed order).
        let mut people: Vec<&str> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for e in &ks.entries {
            if seen.insert(&e.customer) {
                people.push(&e.customer);
            }
        }
        let z = |observed: usize| (observed as f64 - expected) / expected.sqrt();
        let adjacency = self.adjacency(&people, customers);
        // The new entry's connected component, by breadth-first search over the ties.
        let me = people
            .iter()
            .position(|p| *p == entry.customer)
            .expect("just added");
        let mut in_component = vec![false; people.len()];
        in_component[me] = true;
        let mut queue = vec![me];
        while let Some(i) = queue.pop() {
            for &j in &adjacency[i] {
                if !in_component[j] {
                    in_component[j] = true;
                    queue.push(j);
                }
            }
        }
        let component: BTreeSet<&str> = (0..people.len())
            .filter(|i| in_component[*i])
            .map(|i| people[i])
            .collect();
        let size = component.len();
        let zt = z(people.len());
        // The largest component (union-find over every tie) only when a spike is possible.
        let spike_possible = people.len() >= cfg.spike_min && zt >= cfg.threshold;
        let largest = if spike_possible {
            let mut dsu = Dsu((0..people.len()).collect());
            for (i, next) in adjacency.iter().enumerate() {
                for &j in next {
                    dsu.union(i, j);
                }
            }
            let mut sizes = vec![0usize; people.len()];
            for i in 0..people.len() {
                let r = dsu.find(i);
                sizes[r] += 1;
            }
            sizes.into_iter().max().unwrap_or(0)
        } else {
            size
        };
        let entries = &ks.entries;
        let has_echo = entries
            .iter()
            .any(|e| e.echo.is_some() && component.contains(e.customer.as_str()));
        let communities: BTreeSet<String> = component
            .iter()
            .filter_map(|c| customers.get(c))
            .flat_map(|p| {
                customers
                    .names_of(&p.communities)
                    .into_iter()
                    .map(str::to_owned)
            })
            .collect();
        // Communities shared by at least two of the cluster's customers.
        let shared_communities = communities
            .iter()
            .filter(|g| {
                component
                    .iter()
                    .filter(|c| {
                        customers
                            .get(c)
                            .is_some_and(|p| customers.has_name(&p.communities, g))
                    })
                    .count()
                    >= 2
            })
            .count();
        let influential = || {
            component.iter().any(|c| {
                customers
                    .get(c)
                    .is_some_and(|p| customers.influence(p, now) >= cfg.influence_critical)
            })
        };
        let zc = z(size);
        let group_level = if size >= cfg.min_count && zc >= cfg.threshold {
            if size >= cfg.critical_size
                || shared_communities >= cfg.critical_communities
                || influential()
            {
                Some(Level::Critical)
            } else {
                Some(Level::Warning)
            }
        } else if size >= 2 || has_echo {
            Some(Level::Watch)
        } else {
            None
        };
        let on_key = people.len();
        let group = group_level.map(|level| {
            let members: Vec<Entry> = entries
                .iter()
                .filter(|e| component.contains(e.customer.as_str()))
                .cloned()
                .collect();
            (level, members)
        });
        // A spike already raised on this key (still on the key's entries) is updated with the
        // new entry alone; a new one takes every entry on the key.
        let spike = (spike_possible && largest * 2 < on_key).then(|| {
            match self.spike_of.get(k).filter(|id| {
                self.alerts.get(*id).is_some_and(|a| {
                    entries
                        .iter()
                        .any(|e| a.complaint_positions.contains(&e.position))
                })
            }) {
                Some(id) => (Some(id.clone()), vec![entry.clone()]),
                None => (None, entries.clone()),
            }
        });
        if let Some((level, members)) = group {
            let members: Vec<&Entry> = members.iter().collect();
            self.upsert(
                Kind::GroupComplaint,
                level,
                k,
                &members,
                ev,
                customers,
                (size, expected, zc, size, on_key),
            );
        }
        if let Some((known, all)) = spike {
            let all: Vec<&Entry> = all.iter().collect();
            let id = self.upsert_as(
                known,
                Kind::Spike,
                Level::Warning,
                k,
                &all,
                ev,
                customers,
                (on_key, expected, zt, largest, on_key),
            );
            self.spike_of.insert(k.to_owned(), id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upsert(
        &mut self,
        kind: Kind,
        level: Level,
        key: &str,
        members: &[&Entry],
        ev: &FoldEvent,
        customers: &Customers,
        stats: (usize, f64, f64, usize, usize),
    ) -> String {
        self.upsert_as(None, kind, level, key, members, ev, customers, stats)
    }

    /// Raises or updates the alert of `members`: the `known` one, else one of this kind
    /// that holds one of their complaints, else a new one named by the first complaint.
    #[allow(clippy::too_many_arguments)]
    fn upsert_as(
        &mut self,
        known: Option<String>,
        kind: Kind,
        level: Level,
        key: &str,
        members: &[&Entry],
        ev: &FoldEvent,
        customers: &Customers,
        (observed, expected, statistic, connected, on_key): (usize, f64, f64, usize, usize),
    ) -> String {
        let first = members
            .iter()
            .filter(|e| e.echo.is_none())
            .min_by(|a, b| a.at.cmp(&b.at).then_with(|| a.complaint.cmp(&b.complaint)))
            .or_else(|| members.first())
            .expect("a cluster has members");
        // An existing alert of this kind holding one of these complaints is updated.
        let existing = known.or_else(|| {
            members
                .iter()
                .filter(|e| e.echo.is_none())
                .filter_map(|e| self.alert_of.get(&e.position))
                .filter(|id| self.alerts.get(*id).is_some_and(|a| a.kind == kind))
                // The first raised in business time (a `valid_at` fold visits positions
                // out of order), then by position.
                .min_by_key(|id| {
                    self.alerts
                        .get(*id)
                        .map(|a| (a.raised_at, a.raised_at_position))
                })
                .cloned()
        });
        let id = existing.unwrap_or_else(|| alert_id(kind, &first.complaint));
        let now = self.clock.unwrap_or(ev.occurred_at);
        let cfg_threshold = self.config.threshold;
        let is_new = !self.alerts.contains_key(&id);
        let alert = self.alerts.entry(id.clone()).or_insert_with(|| Alert {
            id: id.clone(),
            kind,
            level,
            status: Status::Open,
            keys: BTreeSet::new(),
            complaints: BTreeSet::new(),
            customers: BTreeSet::new(),
            echoes: BTreeSet::new(),
            first_complaint_at: first.at,
            raised_at: ev.occurred_at,
            raised_at_position: ev.position,
            updated_at_position: ev.position,
            levels: vec![(level, ev.position)],
            evidence: Evidence {
                ties: vec![],
                observed: 0,
                expected: 0.0,
                statistic: 0.0,
                threshold: cfg_threshold,
                connected: 0,
                on_key: 0,
                communities: vec![],
                timeline: vec![],
            },
            actions: vec![],
            complaint_positions: BTreeSet::new(),
        });
        let before = (
            alert.complaints.len(),
            alert.customers.len(),
            alert.echoes.len(),
            alert.level,
        );
        alert.keys.insert(key.to_owned());
        // Only what the alert does not hold yet (a growing cluster is offered whole).
        let mut new_complaints: Vec<u64> = Vec::new();
        let mut added = false;
        for e in members {
            let held = match &e.echo {
                Some(p) => alert.echoes.contains(p),
                None => alert.complaint_positions.contains(&e.position),
            };
            if held {
                continue;
            }
            added = true;
            alert.customers.insert(e.customer.clone());
            match &e.echo {
                Some(p) => {
                    alert.echoes.insert(p.clone());
                }
                None => {
                    alert.complaints.insert(e.complaint.clone());
                    alert.complaint_positions.insert(e.position);
                    new_complaints.push(e.position);
                }
            }
            alert.first_complaint_at = alert.first_complaint_at.min(e.at);
            let what = if e.echo.is_some() {
                "echo"
            } else {
                "complaint"
            };
            alert.evidence.timeline.push(TimelineEntry {
                at: e.at,
                position: e.position,
                what: what.into(),
                customer: e.customer.clone(),
                complaint: e.complaint.clone(),
            });
        }
        if added {
            alert
                .evidence
                .timeline
                .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.position.cmp(&b.position)));
        }
        if alert.evidence.timeline.len() > TIMELINE_MAX {
            // Keep the start of the story and its latest turns.
            let n = alert.evidence.timeline.len();
            alert
                .evidence
                .timeline
                .drain(TIMELINE_MAX / 2..n - TIMELINE_MAX / 2);
        }
        let grew = (
            alert.complaints.len(),
            alert.customers.len(),
            alert.echoes.len(),
        ) != (before.0, before.1, before.2);
        let escalated = level > alert.level;
        if escalated {
            alert.level = level;
            alert.levels.push((level, ev.position));
        }
        if observed >= alert.evidence.observed || escalated {
            alert.evidence.observed = observed;
            alert.evidence.expected = (expected * 1000.0).round() / 1000.0;
            alert.evidence.statistic = (statistic * 1000.0).round() / 1000.0;
            alert.evidence.connected = connected;
            alert.evidence.on_key = on_key;
        }
        let mut reopened = false;
        if grew || escalated || is_new {
            alert.updated_at_position = ev.position;
            if alert.status == Status::Resolved && grew {
                alert.status = Status::Open;
                alert.actions.push(Action {
                    action: "reopened".into(),
                    position: ev.position,
                    at: ev.occurred_at,
                    by: None,
                    note: None,
                });
                reopened = true;
            }
        }
        let level_now = alert.level;
        if grew || is_new {
            // Evidence is about the first customers (in id order); the sets hold them all.
            let people: Vec<String> = alert
                .customers
                .iter()
                .take(EVIDENCE_CUSTOMERS_MAX)
                .cloned()
                .collect();
            let (ties, communities) = self.describe(&people, customers, now);
            let alert = self.alerts.get_mut(&id).expect("inserted above");
            alert.evidence.ties = ties;
            alert.evidence.communities = communities;
        }
        for p in new_complaints {
            self.alert_of.insert(p, id.clone());
        }
        let change = if is_new {
            Some("raised")
        } else if reopened {
            Some("reopened")
        } else if escalated {
            Some("escalated")
        } else if grew {
            Some("updated")
        } else {
            None
        };
        if let Some(change) = change {
            self.push_change(&id, change, level_now, ev.position);
        }
        id
    }

    fn push_change(&mut self, alert: &str, change: &str, level: Level, position: u64) {
        self.changes.push(|seq| AlertChange {
            seq,
            alert: alert.to_owned(),
            change: change.to_owned(),
            level,
            position,
        });
    }

    /// The evidence sentences, from projection state only.
    fn describe(
        &self,
        people: &[String],
        customers: &Customers,
        _now: DateTime<Utc>,
    ) -> (Vec<String>, Vec<String>) {
        let mut lines = Vec::new();
        let mut per_community: BTreeMap<&str, usize> = BTreeMap::new();
        for c in people {
            if let Some(p) = customers.get(c) {
                for g in customers.names_of(&p.communities) {
                    *per_community.entry(g).or_default() += 1;
                }
            }
        }
        let mut shared: Vec<(&str, usize)> = per_community
            .iter()
            .filter(|(_, n)| **n >= 2)
            .map(|(g, n)| (*g, *n))
            .collect();
        shared.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        for (g, n) in shared.iter().take(3) {
            lines.push(format!("{n} of {} in community {g}", people.len()));
        }
        for a in people {
            if let Some(p) = customers.get(a) {
                if let Some(r) = customers.referred_by(p) {
                    if people.iter().any(|x| x == r) {
                        lines.push(format!("{r} referred {a}"));
                    }
                }
            }
        }
        for (i, a) in people.iter().enumerate() {
            for b in &people[i + 1..] {
                let (x, y) = ordered(a, b);
                if let Some((label, _)) = self.ties.get(x).and_then(|m| m.get(y)) {
                    let (x, y) = (x.to_owned(), y.to_owned());
                    lines.push(match label.strip_prefix('~') {
                        Some(l) => format!("{y} {l} {x}"),
                        None => format!("{x} {label} {y}"),
                    });
                }
            }
        }
        lines.truncate(EVIDENCE_LINES_MAX);
        let communities = per_community.keys().map(|g| g.to_string()).collect();
        (lines, communities)
    }

    fn act(&mut self, ev: &FoldEvent) {
        let Some(id) = ev.subject.as_deref() else {
            return;
        };
        let Some(alert) = self.alerts.get_mut(id) else {
            return;
        };
        let (status, action, done) = match &ev.data {
            Facts::AlertAcknowledged(a) => (Status::Acknowledged, "acknowledged", Some(a)),
            Facts::AlertResolved(a) => (Status::Resolved, "resolved", Some(a)),
            _ => (Status::Resolved, "resolved", None),
        };
        alert.status = status;
        alert.actions.push(Action {
            action: action.into(),
            position: ev.position,
            at: ev.occurred_at,
            by: done.and_then(|a| a.requested_by.clone()),
            note: done.and_then(|a| a.note.clone()),
        });
        let level = alert.level;
        self.push_change(id, action, level, ev.position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Projection;
    use serde_json::{json, Value};
    use uuid::Uuid;

    struct World {
        events: Vec<FoldEvent>,
        hour: i64,
    }

    impl World {
        fn new() -> World {
            World {
                events: vec![],
                hour: 0,
            }
        }
        fn at(&self, hours: i64) -> DateTime<Utc> {
            DateTime::from_timestamp(1_767_225_600, 0).unwrap() + Duration::hours(hours)
        }
        fn push(&mut self, ty: EventType, who: &str, data: Value) -> u64 {
            self.hour += 1;
            let position = self.events.len() as u64 + 1;
            let operator = ty.is_operator();
            self.events.push(FoldEvent {
                position,
                id: Uuid::from_u128(position as u128),
                event_type: ty,
                customer: if operator { String::new() } else { who.into() },
                subject: operator.then(|| who.into()),
                occurred_at: self.at(self.hour),
                data: Facts::from_value(ty, &data).expect("a payload of its type"),
            });
            position
        }
        fn join(&mut self, who: &str, g: &str) {
            self.push(EventType::CommunityJoined, who, json!({"community": g}));
        }
        fn complain(&mut self, who: &str, id: &str, about: Value, text: &str) -> u64 {
            self.push(
                EventType::Complaint,
                who,
                json!({"complaint_id": id, "about": about, "text": text}),
            )
        }
        fn fold(&self) -> Warnings {
            let mut c = Customers::default();
            let mut w = Warnings::default();
            for e in &self.events {
                c.apply(e);
                w.apply(e, &c);
            }
            w
        }
    }

    fn group(w: &Warnings) -> Vec<&Alert> {
        w.alerts()
            .filter(|a| a.kind == Kind::GroupComplaint)
            .collect()
    }

    #[test]
    fn three_friends_complaining_about_one_batch_is_a_warning_with_evidence() {
        let mut w = World::new();
        for c in ["a", "b", "c"] {
            w.join(c, "g-12");
        }
        w.push(EventType::Referral, "a", json!({"referee": "c"}));
        w.complain(
            "a",
            "k1",
            json!({"batch": "L0421"}),
            "the tea smells of mould",
        );
        let second = w.complain("b", "k2", json!({"batch": "L0421"}), "mouldy tea again");
        let st = w.fold();
        let alerts = group(&st);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].level, Level::Watch, "two connected customers");
        assert_eq!(alerts[0].raised_at_position, second);
        let third = w.complain("c", "k3", json!({"batch": "L0421"}), "tea has mould");
        let st = w.fold();
        let a = group(&st)[0];
        assert_eq!(a.level, Level::Warning);
        assert_eq!(a.updated_at_position, third);
        assert_eq!(a.complaints.iter().collect::<Vec<_>>(), ["k1", "k2", "k3"]);
        assert!(a.keys.contains("batch:L0421"));
        assert!(
            a.evidence
                .ties
                .contains(&"3 of 3 in community g-12".to_owned()),
            "{:?}",
            a.evidence.ties
        );
        assert!(a.evidence.ties.contains(&"a referred c".to_owned()));
        assert!(a.evidence.statistic >= a.evidence.threshold);
        assert_eq!(
            a.id,
            alert_id(Kind::GroupComplaint, "k1"),
            "named by its first complaint"
        );
    }

    #[test]
    fn unconnected_customers_hitting_one_outage_are_a_spike_not_a_group() {
        let mut w = World::new();
        for i in 0..8 {
            w.complain(
                &format!("u{i}"),
                &format!("k{i}"),
                json!({"store": "s-9"}),
                &format!("store app down {i}"),
            );
        }
        let st = w.fold();
        assert!(group(&st).iter().all(|a| a.level == Level::Watch) && group(&st).is_empty());
        let spikes: Vec<&Alert> = st.alerts().filter(|a| a.kind == Kind::Spike).collect();
        assert_eq!(spikes.len(), 1);
        assert_eq!(spikes[0].evidence.connected, 1);
    }

    #[test]
    fn one_customer_complaining_many_times_is_not_a_group() {
        let mut w = World::new();
        for i in 0..10 {
            w.complain(
                "noisy",
                &format!("k{i}"),
                json!({"sku": "X"}),
                "still broken",
            );
        }
        assert_eq!(w.fold().alerts().count(), 0);
    }

    #[test]
    fn similar_chinese_text_without_a_common_subject_joins_one_cluster() {
        let mut w = World::new();
        for c in ["a", "b", "c"] {
            w.join(c, "g-1");
        }
        w.complain(
            "a",
            "k1",
            json!({"store": "s-1"}),
            "这批茶叶有一股霉味，喝了肚子不舒服",
        );
        w.complain(
            "b",
            "k2",
            json!({"store": "s-2"}),
            "茶叶有霉味，喝了以后肚子不舒服",
        );
        w.complain(
            "c",
            "k3",
            json!({"store": "s-3"}),
            "我买的茶叶也有霉味，肚子不舒服",
        );
        let st = w.fold();
        let a = group(&st);
        assert_eq!(
            a.len(),
            1,
            "{:?}",
            st.alerts().map(|a| &a.keys).collect::<Vec<_>>()
        );
        assert!(a[0].keys.iter().any(|k| k.starts_with("text:")));
        assert_eq!(a[0].level, Level::Warning);
    }

    #[test]
    fn echoes_count_as_me_too_and_staff_actions_are_recorded() {
        let mut w = World::new();
        w.join("a", "g");
        w.join("b", "g");
        w.complain("a", "k1", json!({"sku": "S"}), "broken lid");
        w.push(
            EventType::Post,
            "b",
            json!({"post_id": "p1", "community": "g", "text": "me too", "echoes": "k1"}),
        );
        let st = w.fold();
        let a = group(&st)[0].clone();
        assert_eq!(a.level, Level::Watch);
        assert_eq!(a.echoes.iter().collect::<Vec<_>>(), ["p1"]);
        w.push(
            EventType::AlertAcknowledged,
            &a.id,
            json!({"note": "checking"}),
        );
        w.push(EventType::AlertResolved, &a.id, json!({"note": "replaced"}));
        let st = w.fold();
        let a = st.get(&a.id).unwrap();
        assert_eq!(a.status, Status::Resolved);
        assert_eq!(a.actions.len(), 2);
        let changes: Vec<&str> = st
            .changes_after(0, 10)
            .unwrap()
            .iter()
            .map(|c| c.change.as_str())
            .collect();
        assert_eq!(changes, ["raised", "acknowledged", "resolved"]);
    }

    #[test]
    fn thin_connected_complaints_months_apart_raise_nothing_above_watch() {
        let mut w = World::new();
        for c in ["a", "b", "c", "d"] {
            w.join(c, "g");
        }
        for (i, c) in ["a", "b", "c", "d"].iter().enumerate() {
            w.hour += 24 * 20;
            w.complain(
                c,
                &format!("k{i}"),
                json!({"topic": "delivery"}),
                "late again",
            );
        }
        assert!(w.fold().alerts().next().is_none());
    }

    #[test]
    fn replay_gives_the_identical_alert_stream_and_state() {
        let mut w = World::new();
        for i in 0..40 {
            w.join(&format!("c{i}"), &format!("g{}", i % 4));
        }
        for i in 0..120 {
            w.complain(
                &format!("c{}", (i * 7) % 40),
                &format!("k{i}"),
                json!({"batch": format!("B{}", i % 5)}),
                "bad taste",
            );
        }
        let a = serde_json::to_vec(&w.fold()).unwrap();
        let b = serde_json::to_vec(&w.fold()).unwrap();
        assert_eq!(a, b);
        // Resumed from a snapshot halfway.
        let mut c = Customers::default();
        let mut st = Warnings::default();
        for e in &w.events[..80] {
            c.apply(e);
            st.apply(e, &c);
        }
        let mut resumed: Warnings =
            serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
        for e in &w.events[80..] {
            c.apply(e);
            resumed.apply(e, &c);
        }
        assert_eq!(serde_json::to_vec(&resumed).unwrap(), a);
    }
}

/// Phrases shared by at least half of `texts` (and at least two), longest and most shared
/// first, none inside another: what support staff read as "they all say …". Works on
/// characters, so Chinese and English alike.
pub fn shared_phrases(texts: &[&str], max: usize) -> Vec<String> {
    const LEN_MIN: usize = 4;
    const LEN_MAX: usize = 24;
    let docs: Vec<Vec<char>> = texts
        .iter()
        .map(|t| {
            let mut out: Vec<char> = Vec::new();
            for c in t.chars().flat_map(char::to_lowercase) {
                let c = if c.is_alphanumeric() { c } else { ' ' };
                if !(c == ' ' && out.last() == Some(&' ')) {
                    out.push(c);
                }
            }
            out
        })
        .collect();
    let need = docs.len().div_ceil(2).max(2);
    if docs.len() < 2 {
        return vec![];
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in &docs {
        let mut seen = BTreeSet::new();
        for n in LEN_MIN..=LEN_MAX.min(d.len()) {
            for w in d.windows(n) {
                let s: String = w.iter().collect();
                let t = s.trim();
                if t.chars().filter(|c| *c != ' ').count() >= LEN_MIN - 1 && t.len() == s.len() {
                    seen.insert(s);
                }
            }
        }
        for s in seen {
            *counts.entry(s).or_default() += 1;
        }
    }
    let mut cands: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n >= need).collect();
    cands.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.0.chars().count().cmp(&a.0.chars().count()))
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut out: Vec<String> = Vec::new();
    for (s, _) in cands {
        if out.len() >= max {
            break;
        }
        if !out.iter().any(|o| o.contains(&s) || s.contains(o.as_str())) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod phrase_tests {
    #[test]
    fn shared_phrases_are_found_in_chinese_and_english() {
        let p = super::shared_phrases(
            &[
                "这批茶叶有霉味，肚子不舒服",
                "茶叶有霉味",
                "我的茶叶也有霉味",
            ],
            3,
        );
        assert_eq!(p[0], "茶叶有霉味", "{p:?}");
        let p = super::shared_phrases(
            &["the lid is broken", "Lid is broken again!", "broken lid"],
            2,
        );
        assert!(p.iter().any(|x| x.contains("broken")), "{p:?}");
    }
}
