//! What support staff do with alerts, as a fold of their events: acknowledge, resolve,
//! assign, review (was it right?), merge two alerts into one, link alerts and complaints
//! to a problem and resolve it; and the deadlines each level sets, which pass on event
//! time only (customer events, or `clock_ticked` written by the scheduler when a deadline
//! falls due without customer events), so a replay marks the same alerts overdue at the
//! same positions.

use rapport_events::data::Verdict;

use super::*;

/// Hops followed from a merged alert to the one that carries it on (a chain of merges).
const MERGE_HOPS_MAX: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemStatus {
    Open,
    Resolved,
}

/// A root cause behind alerts and complaints (Zendesk's and Salesforce's problem ticket):
/// resolving it resolves its alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub title: String,
    pub status: ProblemStatus,
    pub opened_at: DateTime<Utc>,
    pub opened_position: u64,
    pub updated_at_position: u64,
    pub alerts: BTreeSet<String>,
    /// Complaints linked one by one (an alert's complaints come with the alert).
    pub complaints: BTreeSet<String>,
    pub actions: Vec<Action>,
}

impl Warnings {
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.values()
    }

    pub fn problem(&self, id: &str) -> Option<&Problem> {
        self.problems.get(id)
    }

    /// The earliest deadline still to pass: when the scheduler must tick the clock if no
    /// customer event moves it first.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.due.first().map(|(t, _)| *t)
    }

    /// The time deadlines are measured against: the latest customer event or tick.
    pub fn deadline_clock(&self) -> Option<DateTime<Utc>> {
        self.deadline_clock
    }

    /// The alert that carries `id` on: itself, or the one it was merged into.
    pub fn live_id(&self, id: &str) -> String {
        let mut id = id.to_owned();
        for _ in 0..MERGE_HOPS_MAX {
            match self.alerts.get(&id).and_then(|a| a.merged_into.clone()) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    /// Operator and clock events.
    pub(super) fn staff(&mut self, ev: &FoldEvent) {
        let Some(subject) = ev.subject.as_deref() else {
            return;
        };
        let by = |r: &Option<String>| r.clone();
        match &ev.data {
            Facts::AlertAcknowledged(a) | Facts::AlertResolved(a) => {
                let resolved = matches!(ev.data, Facts::AlertResolved(_));
                self.act(subject, ev, resolved, by(&a.requested_by), a.note.clone());
            }
            Facts::AlertAssigned(a) => {
                let Some(alert) = self.alerts.get_mut(subject) else {
                    return;
                };
                alert.assignee = a.assignee.clone();
                let action = action("assigned", ev, by(&a.requested_by), a.note.clone());
                self.record(subject, action);
            }
            Facts::AlertReviewed(r) => {
                let (Some(alert), Some(verdict)) = (self.alerts.get_mut(subject), r.verdict) else {
                    return;
                };
                alert.review = Some(Review {
                    verdict,
                    reason: r.reason.clone().unwrap_or_default(),
                    by: by(&r.requested_by),
                    at: ev.occurred_at,
                    position: ev.position,
                });
                let note = Some(match verdict {
                    Verdict::Confirmed => "confirmed".to_owned(),
                    Verdict::NotGroupComplaint => "not a group complaint".to_owned(),
                });
                self.record(subject, action("reviewed", ev, by(&r.requested_by), note));
            }
            Facts::AlertMerged(m) => {
                if let Some(into) = &m.into {
                    self.merge(ev, subject, into, by(&m.requested_by), m.note.clone());
                }
            }
            Facts::ProblemOpened(p) => {
                if self.problems.contains_key(subject) {
                    return;
                }
                self.problems.insert(
                    subject.to_owned(),
                    Problem {
                        id: subject.to_owned(),
                        title: p.title.clone().unwrap_or_default(),
                        status: ProblemStatus::Open,
                        opened_at: ev.occurred_at,
                        opened_position: ev.position,
                        updated_at_position: ev.position,
                        alerts: BTreeSet::new(),
                        complaints: BTreeSet::new(),
                        actions: vec![action("opened", ev, by(&p.requested_by), p.note.clone())],
                    },
                );
            }
            Facts::ProblemLinked(l) => self.link(ev, subject, l),
            Facts::ProblemResolved(a) => self.resolve_problem(ev, subject, a),
            Facts::ClockTicked => self.pass_deadlines(ev.occurred_at, ev.position),
            _ => {}
        }
    }

    /// Appends an action to an alert, marks it updated and tells the feed.
    fn record(&mut self, id: &str, action: Action) {
        let Some(alert) = self.alerts.get_mut(id) else {
            return;
        };
        let (change, position) = (action.action.clone(), action.position);
        alert.actions.push(action);
        alert.updated_at_position = position;
        let level = alert.level;
        self.push_change(id, &change, level, position);
    }

    fn act(
        &mut self,
        id: &str,
        ev: &FoldEvent,
        resolved: bool,
        by: Option<String>,
        note: Option<String>,
    ) {
        let Some(alert) = self.alerts.get_mut(id) else {
            return;
        };
        if alert.status == Status::Merged {
            return;
        }
        let deadlines = alert.deadlines.clone();
        if resolved {
            alert.status = Status::Resolved;
            alert.overdue = None;
            self.forget_due(id, deadlines.acknowledge_by);
            self.forget_due(id, deadlines.resolve_by);
        } else {
            if alert.status == Status::Open {
                alert.status = Status::Acknowledged;
            }
            if alert
                .overdue
                .as_ref()
                .is_some_and(|o| o.deadline == "acknowledge")
            {
                alert.overdue = None;
            }
            self.forget_due(id, deadlines.acknowledge_by);
        }
        let what = if resolved { "resolved" } else { "acknowledged" };
        self.record(id, action(what, ev, by, note));
    }

    fn merge(
        &mut self,
        ev: &FoldEvent,
        from: &str,
        into: &str,
        by: Option<String>,
        note: Option<String>,
    ) {
        let into = self.live_id(into);
        let Some(source) = self.alerts.get(from).cloned() else {
            return;
        };
        if into == from || source.merged_into.is_some() || !self.alerts.contains_key(&into) {
            return;
        }
        let now = self.deadline_clock.unwrap_or(ev.occurred_at);
        let target = self.alerts.get_mut(&into).expect("checked above");
        target.keys.extend(source.keys.iter().cloned());
        target.complaints.extend(source.complaints.iter().cloned());
        target.customers.extend(source.customers.iter().cloned());
        target.echoes.extend(source.echoes.iter().cloned());
        target
            .complaint_positions
            .extend(source.complaint_positions.iter().copied());
        target.categories.extend(source.categories.iter().cloned());
        target.severity_max = target.severity_max.max(source.severity_max);
        target.first_complaint_at = target.first_complaint_at.min(source.first_complaint_at);
        target.merged.insert(from.to_owned());
        target.problem = target.problem.take().or(source.problem.clone());
        let timeline = &mut target.evidence.timeline;
        for t in &source.evidence.timeline {
            if !timeline.contains(t) {
                timeline.push(t.clone());
            }
        }
        timeline.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.position.cmp(&b.position)));
        if timeline.len() > TIMELINE_MAX {
            let n = timeline.len();
            timeline.drain(TIMELINE_MAX / 2..n - TIMELINE_MAX / 2);
        }
        let escalated = source.level > target.level;
        if escalated {
            target.level = source.level;
            target.levels.push((source.level, ev.position));
        }
        let level = target.level;
        if target.status == Status::Resolved {
            target.status = Status::Open;
        }
        for a in self.alert_of.values_mut().chain(self.spike_of.values_mut()) {
            if a == from {
                *a = into.clone();
            }
        }
        let source_alert = self.alerts.get_mut(from).expect("cloned above");
        source_alert.status = Status::Merged;
        source_alert.merged_into = Some(into.clone());
        source_alert.overdue = None;
        self.forget_due(from, source.deadlines.acknowledge_by);
        self.forget_due(from, source.deadlines.resolve_by);
        let into_note = Some(format!("into {into}"));
        self.record(from, action("merged", ev, by.clone(), into_note.or(note)));
        self.record(
            &into,
            action("merged", ev, by, Some(format!("from {from}"))),
        );
        self.set_deadlines(&into, level, now, false);
    }

    fn link(&mut self, ev: &FoldEvent, problem: &str, l: &facts::ProblemLinked) {
        let alert = l.alert.as_deref().map(|a| self.live_id(a));
        let Some(p) = self.problems.get_mut(problem) else {
            return;
        };
        p.updated_at_position = ev.position;
        let by = l.requested_by.clone();
        if let Some(c) = &l.complaint {
            p.complaints.insert(c.clone());
            p.actions.push(action(
                "linked",
                ev,
                by.clone(),
                Some(format!("complaint {c}")),
            ));
        }
        let Some(alert) = alert else { return };
        if !self.alerts.contains_key(&alert) {
            return;
        }
        p.alerts.insert(alert.clone());
        p.actions.push(action(
            "linked",
            ev,
            by.clone(),
            Some(format!("alert {alert}")),
        ));
        let resolved = p.status == ProblemStatus::Resolved;
        self.alerts.get_mut(&alert).expect("checked above").problem = Some(problem.to_owned());
        self.record(
            &alert,
            action("linked", ev, by.clone(), Some(format!("problem {problem}"))),
        );
        if resolved {
            let note = Some(format!("problem {problem} is resolved"));
            self.act(&alert, ev, true, by, note);
        }
    }

    fn resolve_problem(&mut self, ev: &FoldEvent, problem: &str, a: &facts::AlertAction) {
        let Some(p) = self.problems.get_mut(problem) else {
            return;
        };
        if p.status == ProblemStatus::Resolved {
            return;
        }
        p.status = ProblemStatus::Resolved;
        p.updated_at_position = ev.position;
        let by = a.requested_by.clone();
        p.actions
            .push(action("resolved", ev, by.clone(), a.note.clone()));
        let alerts: Vec<String> = p.alerts.iter().cloned().collect();
        for id in alerts {
            let id = self.live_id(&id);
            if self.alerts.get(&id).is_some_and(|a| a.status.is_active()) {
                let note = Some(format!("with problem {problem}"));
                self.act(&id, ev, true, by.clone(), note);
            }
        }
    }

    /// Sets the deadlines of alert `id` at `level` from `from`: the earlier of the current
    /// and the new one, or the new ones outright when `fresh` (a reopened alert).
    pub(super) fn set_deadlines(
        &mut self,
        id: &str,
        level: Level,
        from: DateTime<Utc>,
        fresh: bool,
    ) {
        let (ack, resolve) = (
            self.config.acknowledge_hours.at(level).map(|h| from + h),
            self.config.resolve_hours.at(level).map(|h| from + h),
        );
        let Some(alert) = self.alerts.get_mut(id) else {
            return;
        };
        if !alert.status.is_active() {
            return;
        }
        let old = alert.deadlines.clone();
        let earlier = |old: Option<DateTime<Utc>>, new: Option<DateTime<Utc>>| match (old, new) {
            (Some(o), Some(n)) if !fresh => Some(o.min(n)),
            (o, None) if !fresh => o,
            (_, n) => n,
        };
        let mut new = Deadlines {
            acknowledge_by: earlier(old.acknowledge_by, ack),
            resolve_by: earlier(old.resolve_by, resolve),
        };
        if alert.status == Status::Acknowledged {
            new.acknowledge_by = old.acknowledge_by;
        }
        if fresh {
            alert.overdue = None;
        }
        alert.deadlines = new.clone();
        let acknowledged = alert.status == Status::Acknowledged;
        if new == old && !fresh {
            return;
        }
        self.forget_due(id, old.acknowledge_by);
        self.forget_due(id, old.resolve_by);
        for due in [
            (!acknowledged).then_some(new.acknowledge_by).flatten(),
            new.resolve_by,
        ]
        .into_iter()
        .flatten()
        {
            self.due.insert((due, id.to_owned()));
        }
    }

    fn forget_due(&mut self, id: &str, due: Option<DateTime<Utc>>) {
        if let Some(due) = due {
            self.due.remove(&(due, id.to_owned()));
        }
    }

    /// Moves the deadline clock to `t` (if later) and marks overdue every alert whose
    /// deadline it passes.
    pub(super) fn pass_deadlines(&mut self, t: DateTime<Utc>, position: u64) {
        if self.deadline_clock.is_some_and(|c| c >= t) {
            return;
        }
        self.deadline_clock = Some(t);
        while let Some((due, id)) = self.due.first().cloned() {
            if due > t {
                break;
            }
            self.due.remove(&(due, id.clone()));
            let Some(alert) = self.alerts.get_mut(&id) else {
                continue;
            };
            let deadline = if alert.status.is_active() && alert.deadlines.resolve_by == Some(due) {
                "resolve"
            } else if alert.status == Status::Open && alert.deadlines.acknowledge_by == Some(due) {
                "acknowledge"
            } else {
                continue;
            };
            if alert
                .overdue
                .as_ref()
                .is_some_and(|o| o.deadline == "resolve")
            {
                continue;
            }
            alert.overdue = Some(Overdue {
                deadline: deadline.to_owned(),
                due,
                position,
            });
            let note = Some(format!("the deadline to {deadline} passed ({due})"));
            let overdue = Action {
                action: "overdue".into(),
                position,
                at: t,
                by: None,
                note,
            };
            self.record(&id, overdue);
        }
    }
}

fn action(what: &str, ev: &FoldEvent, by: Option<String>, note: Option<String>) -> Action {
    Action {
        action: what.into(),
        position: ev.position,
        at: ev.occurred_at,
        by,
        note,
    }
}

/// How staff judged the detector's alerts: per level reached, alerts raised, reviewed,
/// confirmed and not group complaints. Merged alerts count in the alert they joined.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictSummary {
    pub levels: BTreeMap<String, VerdictCounts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictCounts {
    pub raised: usize,
    pub reviewed: usize,
    pub confirmed: usize,
    pub not_group_complaint: usize,
    /// confirmed ÷ reviewed, when any was reviewed.
    pub precision: Option<f64>,
}

impl Warnings {
    /// The detector measured on staff's verdicts: what a firm learns about it on its own
    /// customers. Rows: `watch`, `warning`, `critical`, and `warning_or_above`.
    pub fn verdicts(&self) -> VerdictSummary {
        let mut out = VerdictSummary::default();
        for a in self.alerts.values().filter(|a| a.status != Status::Merged) {
            let level = serde_json::to_value(a.level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut rows = vec![level];
            if a.level >= Level::Warning {
                rows.push("warning_or_above".into());
            }
            for row in rows {
                let c = out.levels.entry(row).or_default();
                c.raised += 1;
                if let Some(r) = &a.review {
                    c.reviewed += 1;
                    match r.verdict {
                        Verdict::Confirmed => c.confirmed += 1,
                        Verdict::NotGroupComplaint => c.not_group_complaint += 1,
                    }
                }
            }
        }
        for c in out.levels.values_mut() {
            c.precision = (c.reviewed > 0)
                .then(|| (c.confirmed as f64 / c.reviewed as f64 * 1000.0).round() / 1000.0);
        }
        out
    }
}
