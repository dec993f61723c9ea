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
//! 2. **Connectivity.** Inside `window_hours`, the customers on a key are linked when one
//!    referred the other, one replied to, mentioned or echoed the other within
//!    `tie_window_days`, or they share a community that is small or holds far more of the
//!    key's customers than chance would (`graph.rs`). Components are found with
//!    union-find.
//! 3. **Baseline.** Per key, distinct complainants per day over `baseline_days`, ending
//!    `guard_days` before today (a starting surge cannot inflate its own baseline), and at
//!    least `prior_daily_rate`. Expected in the window: λ = rate × window. The statistic
//!    is the Poisson z-score `(observed − λ) / √λ` (the EARS C2/C3 family).
//! 4. **Levels.** `watch`: at least two connected customers, or an echo, with z ≥
//!    `watch_threshold`. `warning`: a connected component with at least `min_count`
//!    customers who complained themselves (echoes do not count) whose z ≥ `threshold`.
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
use rapport_events::{fold as facts, Facts, FoldEvent};
use serde::{Deserialize, Serialize};

use crate::Customers;

mod alert;
mod config;
mod detector;
mod graph;
mod pyramid;
mod text;
mod workflow;

pub use alert::*;
pub use config::*;
use detector::*;
use graph::FastMap;
pub use pyramid::network_alert_id;
use text::*;
pub use text::{shared_phrases, signature, similarity};
pub use workflow::{Problem, ProblemStatus, VerdictCounts, VerdictSummary};

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
/// Days of event time between the passes that free ties gone out of their window.
const TIE_SWEEP_DAYS: i64 = 7;

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
    /// (Hashed: every complaint on a busy key looks up each of its customers here.)
    #[serde(serialize_with = "sorted")]
    ties: FastMap<String, BTreeMap<String, (String, DateTime<Utc>)>>,
    /// Ties last seen at or before this are out of the tie window (freed in a later pass).
    tie_cutoff: Option<DateTime<Utc>>,
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
    /// The latest customer event's or tick's time: what deadlines pass on.
    deadline_clock: Option<DateTime<Utc>>,
    /// (deadline, alert) for every deadline not yet passed, met or superseded.
    due: BTreeSet<(DateTime<Utc>, String)>,
    problems: BTreeMap<String, Problem>,
}

/// A hash map serialized in key order, so equal states serialize alike.
fn sorted<S: serde::Serializer, K: Ord + Serialize, V: Serialize>(
    map: &FastMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    map.iter().collect::<BTreeMap<&K, &V>>().serialize(s)
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings::new(WarningConfig::default())
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
            ties: FastMap::default(),
            tie_cutoff: None,
            buckets: BTreeMap::new(),
            clusters: BTreeMap::new(),
            signatures_of: BTreeMap::new(),
            alerts: BTreeMap::new(),
            alert_of: BTreeMap::new(),
            spike_of: BTreeMap::new(),
            changes: Default::default(),
            deadline_clock: None,
            due: BTreeSet::new(),
            problems: BTreeMap::new(),
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

    /// The alerts, their changes in order and the problems, serialized: what the detector
    /// told its users, without the state it keeps to tell it.
    pub fn alert_stream_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            &self.alerts,
            self.changes.after(0, usize::MAX).ok(),
            &self.problems,
        ))
        .expect("alerts serialize")
    }

    /// The feed of changes (for the service's outbox).
    pub fn feed(&self) -> &crate::feed::Feed<AlertChange> {
        &self.changes
    }

    pub fn feed_mut(&mut self) -> &mut crate::feed::Feed<AlertChange> {
        &mut self.changes
    }

    /// Alert changes with `seq > after`, at most `limit`; `Err(oldest kept)` if too old.
    pub fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<&AlertChange>, u64> {
        self.changes.after(after, limit)
    }

    fn window(&self) -> Duration {
        Duration::hours(self.config.window_hours)
    }

    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        if ev.event_type.is_operator() {
            return self.staff(ev);
        }
        if ev.event_type.records_business_time() && self.clock.is_none_or(|c| ev.occurred_at > c) {
            self.clock = Some(ev.occurred_at);
            self.sweep();
            self.pass_deadlines(ev.occurred_at, ev.position);
        }
        // One person is counted once: what any of its ids does is filed under the person.
        let as_person;
        let files = matches!(ev.data, Facts::Complaint(_) | Facts::Post(_));
        let person = if files {
            customers.person_id(&ev.customer)
        } else {
            &ev.customer
        };
        let ev = match person {
            p if p != ev.customer => {
                as_person = FoldEvent {
                    customer: p.to_owned(),
                    ..ev.clone()
                };
                &as_person
            }
            _ => ev,
        };
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
                    let author_of = customers.person_id(author_of);
                    self.tie(author, author_of, "replied to", ev.occurred_at);
                }
                for m in &d.mentions {
                    self.tie(author, customers.person_id(m), "mentioned", ev.occurred_at);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Projection;
    use rapport_events::{data::Verdict, EventType};
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
        /// `n` other customers, known from the start (they move no clock hour).
        fn populate(&mut self, n: usize) {
            let hour = self.hour;
            for i in 0..n {
                self.hour = 0;
                self.push(
                    EventType::CustomerRegistered,
                    &format!("pop-{i}"),
                    json!({}),
                );
            }
            self.hour = hour;
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
    fn a_tie_older_than_the_tie_window_no_longer_connects() {
        for (gap_days, connected) in [(10, true), (200, false)] {
            let mut w = World::new();
            w.push(
                EventType::Post,
                "a",
                json!({"post_id": "p1", "text": "see you there", "mentions": ["b"]}),
            );
            w.hour += gap_days * 24;
            w.complain("a", "k1", json!({"batch": "L1"}), "the tea smells of mould");
            w.complain("b", "k2", json!({"batch": "L1"}), "mouldy tea again");
            let st = w.fold();
            assert_eq!(
                !group(&st).is_empty(),
                connected,
                "a mention {gap_days} days before"
            );
        }
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

    /// Three connected customers complaining about one batch: a warning, raised at hour 6.
    fn cascade(w: &mut World) -> String {
        for c in ["a", "b", "c"] {
            w.join(c, "g-1");
        }
        for (i, c) in ["a", "b", "c"].iter().enumerate() {
            w.complain(c, &format!("k{i}"), json!({"batch": "L1"}), "mouldy tea");
        }
        let st = w.fold();
        let a = group(&st)[0];
        assert_eq!(a.level, Level::Warning);
        a.id.clone()
    }

    fn changes(st: &Warnings) -> Vec<String> {
        st.changes_after(0, 100)
            .unwrap()
            .iter()
            .map(|c| c.change.clone())
            .collect()
    }

    #[test]
    fn a_warning_gets_deadlines_from_its_level_and_is_overdue_when_event_time_passes_them() {
        let mut w = World::new();
        let id = cascade(&mut w);
        let st = w.fold();
        let a = st.get(&id).unwrap();
        // Counted from when it became a warning (the third complaint, at hour 6).
        let warned = w.at(6);
        assert_eq!(
            a.deadlines.acknowledge_by,
            Some(warned + Duration::hours(8))
        );
        assert_eq!(a.deadlines.resolve_by, Some(warned + Duration::hours(72)));
        assert_eq!(st.next_deadline(), a.deadlines.acknowledge_by);
        assert!(a.overdue.is_none());
        // Nine hours later, with no customer event: a tick moves the deadline clock.
        w.hour += 8;
        let tick = w.push(EventType::ClockTicked, "deadlines", json!({}));
        let st = w.fold();
        let a = st.get(&id).unwrap();
        let overdue = a
            .overdue
            .as_ref()
            .expect("past the deadline to acknowledge");
        assert_eq!(
            (overdue.deadline.as_str(), overdue.position),
            ("acknowledge", tick)
        );
        assert_eq!(changes(&st).last().unwrap(), "overdue");
        // Acknowledging clears it; the deadline to resolve is still ahead.
        w.push(EventType::AlertAcknowledged, &id, json!({}));
        let st = w.fold();
        let a = st.get(&id).unwrap();
        assert!(a.overdue.is_none());
        assert_eq!(st.next_deadline(), a.deadlines.resolve_by);
        // A customer event three days on passes the deadline to resolve.
        w.hour += 72;
        w.join("z", "g-9");
        let st = w.fold();
        assert_eq!(
            st.get(&id).unwrap().overdue.as_ref().unwrap().deadline,
            "resolve"
        );
        assert_eq!(st.next_deadline(), None);
    }

    #[test]
    fn a_watch_has_no_deadline_and_an_acknowledged_alert_is_never_overdue_to_acknowledge() {
        let mut w = World::new();
        w.join("a", "g");
        w.join("b", "g");
        w.complain("a", "k1", json!({"sku": "S"}), "broken lid");
        w.complain("b", "k2", json!({"sku": "S"}), "broken lid too");
        let st = w.fold();
        assert_eq!(group(&st)[0].level, Level::Watch);
        assert_eq!(group(&st)[0].deadlines, Deadlines::default());
        assert_eq!(st.next_deadline(), None);

        let mut w = World::new();
        let id = cascade(&mut w);
        w.push(EventType::AlertAcknowledged, &id, json!({}));
        w.hour += 20;
        w.push(EventType::ClockTicked, "deadlines", json!({}));
        assert!(w.fold().get(&id).unwrap().overdue.is_none());
    }

    #[test]
    fn assignment_and_review_are_recorded_with_who_and_why() {
        let mut w = World::new();
        let id = cascade(&mut w);
        w.push(
            EventType::AlertAssigned,
            &id,
            json!({"assignee": "k7", "requested_by": "k3"}),
        );
        let at = w.push(
            EventType::AlertReviewed,
            &id,
            json!({"verdict": "confirmed", "reason": "damp warehouse", "requested_by": "k7"}),
        );
        let st = w.fold();
        let a = st.get(&id).unwrap();
        assert_eq!(a.assignee.as_deref(), Some("k7"));
        let r = a.review.as_ref().unwrap();
        assert_eq!(
            (r.verdict, r.reason.as_str(), r.position),
            (Verdict::Confirmed, "damp warehouse", at)
        );
        assert_eq!(r.by.as_deref(), Some("k7"));
        let actions: Vec<&str> = a.actions.iter().map(|a| a.action.as_str()).collect();
        assert_eq!(actions, ["assigned", "reviewed"]);
        assert_eq!(
            &changes(&st)[changes(&st).len() - 2..],
            ["assigned", "reviewed"]
        );
    }

    #[test]
    fn a_severe_or_food_safety_complaint_makes_a_warning_critical_and_shows_on_it() {
        let mut w = World::new();
        for c in ["a", "b", "c"] {
            w.join(c, "g-1");
        }
        w.complain("a", "k0", json!({"batch": "L1"}), "mouldy tea");
        w.complain("b", "k1", json!({"batch": "L1"}), "mouldy tea");
        w.push(
            EventType::Complaint,
            "c",
            json!({"complaint_id": "k2", "about": {"batch": "L1"}, "text": "sick after drinking",
                   "category": "food_safety", "severity": 5}),
        );
        let st = w.fold();
        let a = group(&st)[0];
        assert_eq!(a.level, Level::Critical);
        assert_eq!(a.severity_max, Some(5));
        assert_eq!(a.categories.iter().collect::<Vec<_>>(), ["food_safety"]);
        // Critical deadlines are shorter.
        assert_eq!(
            a.deadlines.acknowledge_by,
            Some(w.at(6) + Duration::hours(2))
        );
    }

    #[test]
    fn merging_moves_complaints_and_later_complaints_into_the_surviving_alert() {
        let mut w = World::new();
        let first = cascade(&mut w);
        for c in ["d", "e", "f"] {
            w.join(c, "g-2");
        }
        for (i, c) in ["d", "e", "f"].iter().enumerate() {
            w.complain(
                c,
                &format!("m{i}"),
                json!({"store": "s-1"}),
                "wrong change given",
            );
        }
        let st = w.fold();
        let second = group(&st)
            .iter()
            .find(|a| a.id != first)
            .unwrap()
            .id
            .clone();
        w.push(
            EventType::AlertMerged,
            &second,
            json!({"into": first, "note": "same cause"}),
        );
        w.join("g", "g-2");
        w.complain("g", "m9", json!({"store": "s-1"}), "wrong change again");
        let st = w.fold();
        let gone = st.get(&second).unwrap();
        assert_eq!(
            (gone.status, gone.merged_into.as_deref()),
            (Status::Merged, Some(first.as_str()))
        );
        let kept = st.get(&first).unwrap();
        assert_eq!(kept.complaints.len(), 7, "{:?}", kept.complaints);
        assert!(kept.merged.contains(&second));
        assert!(kept.keys.contains("store:s-1") && kept.keys.contains("batch:L1"));
        assert_eq!(kept.overdue.as_ref().unwrap().deadline, "acknowledge");
        assert_eq!(
            st.next_deadline(),
            kept.deadlines.resolve_by,
            "the merged one's deadlines went"
        );
    }

    #[test]
    fn resolving_a_problem_resolves_its_alerts_and_a_later_link_resolves_at_once() {
        let mut w = World::new();
        let id = cascade(&mut w);
        w.push(
            EventType::ProblemOpened,
            "pr-1",
            json!({"title": "Damp batch"}),
        );
        w.push(EventType::ProblemLinked, "pr-1", json!({"alert": id}));
        w.push(
            EventType::ProblemLinked,
            "pr-1",
            json!({"complaint": "k-other"}),
        );
        w.push(
            EventType::ProblemResolved,
            "pr-1",
            json!({"note": "recalled"}),
        );
        let st = w.fold();
        let p = st.problem("pr-1").unwrap();
        assert_eq!(p.status, ProblemStatus::Resolved);
        assert_eq!(p.alerts.iter().collect::<Vec<_>>(), [&id]);
        assert_eq!(p.complaints.iter().collect::<Vec<_>>(), ["k-other"]);
        let a = st.get(&id).unwrap();
        assert_eq!(
            (a.status, a.problem.as_deref()),
            (Status::Resolved, Some("pr-1"))
        );
        assert_eq!(
            st.next_deadline(),
            None,
            "a resolved alert has no deadline to pass"
        );
    }

    #[test]
    fn verdicts_measure_precision_per_level_on_staffs_own_judgement() {
        let mut w = World::new();
        let id = cascade(&mut w);
        w.join("x", "g-x");
        w.join("y", "g-x");
        w.complain("x", "n1", json!({"sku": "Z"}), "late parcel");
        w.complain("y", "n2", json!({"sku": "Z"}), "late parcel too");
        let st = w.fold();
        let watch = group(&st)
            .iter()
            .find(|a| a.level == Level::Watch)
            .unwrap()
            .id
            .clone();
        w.push(
            EventType::AlertReviewed,
            &id,
            json!({"verdict": "confirmed", "reason": "damp"}),
        );
        w.push(
            EventType::AlertReviewed,
            &watch,
            json!({"verdict": "not_group_complaint", "reason": "chance"}),
        );
        let v = w.fold().verdicts();
        let row = |l: &str| v.levels.get(l).cloned().unwrap_or_default();
        assert_eq!(
            (
                row("warning").raised,
                row("warning").confirmed,
                row("warning").precision
            ),
            (1, 1, Some(1.0))
        );
        assert_eq!(
            (row("watch").reviewed, row("watch").precision),
            (1, Some(0.0))
        );
        assert_eq!(row("warning_or_above").raised, 1);
        assert_eq!(row("critical").raised, 0);
    }

    #[test]
    fn the_workflow_replays_identically_and_from_a_snapshot() {
        let mut w = World::new();
        let id = cascade(&mut w);
        w.push(EventType::AlertAssigned, &id, json!({"assignee": "k7"}));
        w.hour += 9;
        w.push(EventType::ClockTicked, "deadlines", json!({}));
        w.push(EventType::ProblemOpened, "pr-1", json!({"title": "Damp"}));
        w.push(EventType::ProblemLinked, "pr-1", json!({"alert": id}));
        w.push(EventType::ProblemResolved, "pr-1", json!({}));
        let whole = serde_json::to_vec(&w.fold()).unwrap();
        assert_eq!(whole, serde_json::to_vec(&w.fold()).unwrap());
        for cut in 1..w.events.len() {
            let mut c = Customers::default();
            let mut st = Warnings::default();
            for e in &w.events[..cut] {
                c.apply(e);
                st.apply(e, &c);
            }
            let mut resumed: Warnings =
                serde_json::from_slice(&serde_json::to_vec(&st).unwrap()).unwrap();
            for e in &w.events[cut..] {
                c.apply(e);
                resumed.apply(e, &c);
            }
            assert_eq!(
                serde_json::to_vec(&resumed).unwrap(),
                whole,
                "resumed at {cut}"
            );
        }
    }

    #[test]
    fn one_person_complaining_from_two_ids_is_counted_once() {
        let three = |merged: bool| {
            let mut w = World::new();
            for c in ["a", "b", "c"] {
                w.join(c, "g-12");
            }
            w.push(EventType::Referral, "a", json!({"referee": "b"}));
            if merged {
                w.push(
                    EventType::CustomersMerged,
                    "a",
                    json!({"merged": "c", "reason": "same member card"}),
                );
            }
            w.complain(
                "a",
                "k1",
                json!({"batch": "L0421"}),
                "the tea smells of mould",
            );
            w.complain("b", "k2", json!({"batch": "L0421"}), "mouldy tea again");
            w.complain("c", "k3", json!({"batch": "L0421"}), "tea has mould");
            group(&w.fold()).iter().map(|a| a.level).collect::<Vec<_>>()
        };
        assert_eq!(three(false), [Level::Warning], "three people");
        assert_eq!(three(true), [Level::Watch], "two people, one of them twice");
    }

    #[test]
    fn ids_found_to_be_one_person_after_complaining_count_once() {
        let run = |merged: bool| {
            let mut w = World::new();
            for c in ["a", "b", "c"] {
                w.join(c, "g-12");
            }
            w.push(EventType::Referral, "a", json!({"referee": "b"}));
            w.complain(
                "a",
                "k1",
                json!({"batch": "L0421"}),
                "the tea smells of mould",
            );
            w.complain("c", "k3", json!({"batch": "L0421"}), "tea has mould");
            if merged {
                w.push(
                    EventType::CustomersMerged,
                    "a",
                    json!({"merged": "c", "reason": "same member card"}),
                );
            }
            w.complain("b", "k2", json!({"batch": "L0421"}), "mouldy tea again");
            group(&w.fold()).iter().map(|a| a.level).collect::<Vec<_>>()
        };
        assert_eq!(run(false), [Level::Warning], "three people");
        assert_eq!(
            run(true),
            [Level::Watch],
            "a and c were one person all along"
        );
    }

    #[test]
    fn an_isolated_echo_and_two_ordinary_complaints_stay_below_warning() {
        let mut w = World::new();
        for c in ["a", "b", "c"] {
            w.join(c, "g-1");
        }
        w.complain("a", "k1", json!({"sku": "S"}), "lid cracked");
        w.push(
            EventType::Post,
            "c",
            json!({"post_id": "p1", "community": "g-1", "text": "+1", "echoes": "k1"}),
        );
        w.complain("b", "k2", json!({"sku": "S"}), "lid cracked too");
        let st = w.fold();
        let levels: Vec<Level> = group(&st).iter().map(|a| a.level).collect();
        assert_eq!(
            levels,
            [Level::Watch],
            "two complainants and a +1 are no warning"
        );
        // A third complainant makes it one.
        w.complain("c", "k3", json!({"sku": "S"}), "cracked lid here");
        assert_eq!(group(&w.fold())[0].level, Level::Warning);
    }

    #[test]
    fn sharing_a_community_of_hundreds_is_chance_but_sharing_it_far_beyond_chance_is_not() {
        // 2,000 customers; a community of 300; complainants of one batch.
        let mut w = World::new();
        w.populate(2_000);
        for i in 0..300 {
            w.join(&format!("pop-{i}"), "big");
        }
        // Three of them complain: three in 300 of 2,000 is what chance gives among the
        // batch's complainants (eleven of them, the others outside the community).
        for i in 0..8 {
            w.complain(
                &format!("pop-{}", 1_000 + i),
                &format!("o{i}"),
                json!({"batch": "B1"}),
                "bad",
            );
        }
        for i in 0..3 {
            w.complain(
                &format!("pop-{i}"),
                &format!("k{i}"),
                json!({"batch": "B1"}),
                "bad",
            );
        }
        assert!(
            group(&w.fold()).iter().all(|a| a.level < Level::Warning),
            "{:?}",
            group(&w.fold())
                .iter()
                .map(|a| (&a.level, &a.evidence.ties))
                .collect::<Vec<_>>()
        );
        // Nine more of the community: far beyond chance, a group complaint.
        for i in 3..12 {
            w.complain(
                &format!("pop-{i}"),
                &format!("k{i}"),
                json!({"batch": "B1"}),
                "bad",
            );
        }
        assert!(group(&w.fold()).iter().any(|a| a.level >= Level::Warning));
    }

    #[test]
    fn the_poisson_tail_is_the_probability_of_at_least_k() {
        assert_eq!(graph::poisson_tail(0, 2.0), 1.0);
        assert!((graph::poisson_tail(1, 2.0) - (1.0 - (-2.0f64).exp())).abs() < 1e-12);
        let p3 = 1.0 - (-0.5f64).exp() * (1.0 + 0.5 + 0.125);
        assert!((graph::poisson_tail(3, 0.5) - p3).abs() < 1e-12);
        assert!(graph::poisson_tail(40, 0.01) < 1e-100);
    }

    #[test]
    fn a_warning_keeps_its_level_and_says_when_nothing_supports_it_any_more() {
        let mut w = World::new();
        let id = cascade(&mut w);
        let st = w.fold();
        let s = &st.get(&id).unwrap().evidence.support;
        assert_eq!(
            (s.state.as_str(), s.level_key.as_str()),
            ("holding", "batch:L1")
        );
        assert!(s.level_statistic >= 3.0);
        // Four days on, every complaint has left the 72-hour window.
        w.hour += 96;
        w.join("z", "g-9");
        let st = w.fold();
        let a = st.get(&id).unwrap();
        assert_eq!(a.level, Level::Warning, "levels never go down");
        assert_eq!(a.evidence.support.state, "gone");
        assert_eq!(
            a.evidence.support.gone_since,
            Some(w.at(6) + Duration::hours(72))
        );
    }
}
