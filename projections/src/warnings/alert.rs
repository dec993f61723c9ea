//! Alerts as support staff see them: level, kind, status, evidence, timeline, actions,
//! and the feed of their changes.

use super::*;
use crate::said::Said;

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
    /// An agent network that looks like pyramid selling (`agents`).
    PyramidRisk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
    /// Merged into another alert (`merged_into`), which carries its complaints on.
    Merged,
}

impl Status {
    /// Still to be worked: open or acknowledged.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Open | Status::Acknowledged)
    }
}

/// When the alert must be acknowledged and resolved by (from its level's hours in the
/// configuration, counted from when it reached the level; the earlier deadline wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deadlines {
    pub acknowledge_by: Option<DateTime<Utc>>,
    pub resolve_by: Option<DateTime<Utc>>,
}

/// A deadline that passed with the alert not yet acknowledged or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overdue {
    /// `acknowledge` or `resolve`.
    pub deadline: String,
    pub due: DateTime<Utc>,
    /// The event that moved the clock past it (a customer event or a `clock_ticked`).
    pub position: u64,
}

/// Staff's verdict on the alert (the latest counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub verdict: rapport_events::data::Verdict,
    pub reason: String,
    pub by: Option<String>,
    pub at: DateTime<Utc>,
    pub position: u64,
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
    /// Why it holds its level now.
    #[serde(default)]
    pub support: Support,
    /// `ties` as data (message ids and arguments), for readers in other languages.
    #[serde(default)]
    pub said: Vec<crate::said::Said>,
}

/// Why an alert holds its level. Levels never go down (a group complaint that quietens
/// is still one until staff resolve it); this says whether anything still supports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Support {
    /// `holding`: its cluster has complaints inside the window; `gone`: none of its
    /// complaints is inside the window any more, the level is kept from when it was
    /// reached.
    pub state: String,
    /// The key whose cluster lifted it to its level, the statistic then, and where.
    pub level_key: String,
    pub level_statistic: f64,
    pub level_position: u64,
    /// Event time from which nothing supports it.
    pub gone_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// `acknowledged`, `resolved`, `reopened`, `assigned`, `reviewed`, `merged`,
    /// `linked`, `overdue`.
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
    /// The highest severity (1–5) among its complaints, and their categories.
    pub severity_max: Option<u8>,
    pub categories: BTreeSet<String>,
    /// The API key id of the staff member who owns it.
    pub assignee: Option<String>,
    pub deadlines: Deadlines,
    /// The deadline it is past now, if any.
    pub overdue: Option<Overdue>,
    pub review: Option<Review>,
    /// The problem (root cause) it is linked to.
    pub problem: Option<String>,
    /// Set when it was merged into another alert.
    pub merged_into: Option<String>,
    /// Alerts merged into this one.
    pub merged: BTreeSet<String>,
}

impl Alert {
    /// A new open alert at `level`, raised by `ev`, with no complaints, customers or staff
    /// actions yet; `first_at` is when its story began.
    pub(super) fn new(
        id: String,
        kind: Kind,
        level: Level,
        first_at: DateTime<Utc>,
        ev: &FoldEvent,
        threshold: f64,
    ) -> Alert {
        Alert {
            id,
            kind,
            level,
            status: Status::Open,
            keys: BTreeSet::new(),
            complaints: BTreeSet::new(),
            customers: BTreeSet::new(),
            echoes: BTreeSet::new(),
            first_complaint_at: first_at,
            raised_at: ev.occurred_at,
            raised_at_position: ev.position,
            updated_at_position: ev.position,
            levels: vec![(level, ev.position)],
            evidence: Evidence {
                ties: vec![],
                observed: 0,
                expected: 0.0,
                statistic: 0.0,
                threshold,
                connected: 0,
                on_key: 0,
                communities: vec![],
                timeline: vec![],
                support: Support::default(),
                said: vec![],
            },
            actions: vec![],
            complaint_positions: BTreeSet::new(),
            severity_max: None,
            categories: BTreeSet::new(),
            assignee: None,
            deadlines: Deadlines::default(),
            overdue: None,
            review: None,
            problem: None,
            merged_into: None,
            merged: BTreeSet::new(),
        }
    }
}

/// One change of an alert: the feed's item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    pub seq: u64,
    pub alert: String,
    /// `raised`, `updated`, `escalated`, `acknowledged`, `resolved`, `reopened`,
    /// `assigned`, `reviewed`, `merged`, `linked`, `overdue`.
    pub change: String,
    pub level: Level,
    pub position: u64,
}

impl crate::feed::FeedItem for AlertChange {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn position(&self) -> u64 {
        self.position
    }
}

pub(super) fn alert_id(kind: Kind, first_complaint: &str) -> String {
    let k = match kind {
        Kind::GroupComplaint => "g",
        Kind::Spike => "s",
        Kind::PyramidRisk => "p",
    };
    format!("al-{k}-{:016x}", mix(fnv(first_complaint.as_bytes())))
}

impl Warnings {
    pub(super) fn push_change(&mut self, alert: &str, change: &str, level: Level, position: u64) {
        self.changes.push(|seq| AlertChange {
            seq,
            alert: alert.to_owned(),
            change: change.to_owned(),
            level,
            position,
        });
    }

    /// The evidence sentences, from projection state only; `people` sorted by id.
    pub(super) fn describe(
        &self,
        people: &[String],
        customers: &Customers,
        _now: DateTime<Utc>,
    ) -> (Vec<Said>, Vec<String>) {
        let mut lines = Vec::new();
        let mut per_community: BTreeMap<&str, usize> = BTreeMap::new();
        for c in people {
            if let Some(p) = customers.person(c) {
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
            lines.push(Said::new(
                "in-community",
                &[
                    ("n", n.to_string()),
                    ("of", people.len().to_string()),
                    ("community", g.to_string()),
                ],
            ));
        }
        for a in people {
            if let Some(p) = customers.person(a) {
                if let Some(r) = customers.referred_by(p) {
                    if people.binary_search_by(|x| x.as_str().cmp(r)).is_ok() {
                        lines.push(Said::new(
                            "referred",
                            &[("a", r.to_owned()), ("b", a.clone())],
                        ));
                    }
                }
            }
        }
        // The ties among them, pair by pair in id order (`people` is sorted): each
        // customer's own ties walked once, and no further than the lines shown.
        let among: std::collections::HashSet<&str> = people.iter().map(String::as_str).collect();
        'pairs: for x in people {
            let Some(ties) = self.ties.get(x) else {
                continue;
            };
            for (y, (label, at)) in ties.range::<str, _>((
                std::ops::Bound::Excluded(x.as_str()),
                std::ops::Bound::Unbounded,
            )) {
                if lines.len() >= EVIDENCE_LINES_MAX {
                    break 'pairs;
                }
                if among.contains(y.as_str()) && self.tie_is_live(*at) {
                    let (l, a, b) = match label.strip_prefix('~') {
                        Some(l) => (l, y.as_str(), x.as_str()),
                        None => (label.as_str(), x.as_str(), y.as_str()),
                    };
                    let id = match l {
                        "replied to" => "replied",
                        "mentioned" => "mentioned",
                        _ => "echoed",
                    };
                    lines.push(Said::new(id, &[("a", a.to_owned()), ("b", b.to_owned())]));
                }
            }
        }
        lines.truncate(EVIDENCE_LINES_MAX);
        let communities = per_community.keys().map(|g| g.to_string()).collect();
        (lines, communities)
    }
}
