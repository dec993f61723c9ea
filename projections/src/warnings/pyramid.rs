//! Pyramid-risk alerts: raised from the agents projection's evaluation of a network, and
//! worked by staff like every other alert (acknowledge, assign, review, resolve,
//! deadlines by level). Their evidence is the network's figures in sentences; they hold
//! no complaints.

use super::*;
use crate::agents::RiskChange;

impl Warnings {
    /// Raises, escalates or re-describes the alert of the network in `change`.
    pub fn network_risk(&mut self, change: RiskChange, ev: &FoldEvent) {
        let id = self.live_id(&alert_id(Kind::PyramidRisk, &change.root));
        let now = self.clock.unwrap_or(ev.occurred_at);
        let threshold = self.config.threshold;
        let is_new = !self.alerts.contains_key(&id);
        let key = format!("network:{}", change.root);
        let alert = self.alerts.entry(id.clone()).or_insert_with(|| {
            let mut a = Alert::new(
                id.clone(),
                Kind::PyramidRisk,
                change.level,
                ev.occurred_at,
                ev,
                threshold,
            );
            a.keys.insert(key.clone());
            a.evidence.support = Support {
                state: "holding".into(),
                level_key: key,
                level_statistic: 0.0,
                level_position: ev.position,
                gone_since: None,
            };
            a
        });
        let escalated = change.level > alert.level;
        if escalated {
            alert.level = change.level;
            alert.levels.push((change.level, ev.position));
            alert.evidence.support.level_position = ev.position;
        }
        let participants = change.participants as usize;
        alert.evidence.ties = change
            .sentences
            .iter()
            .map(crate::said::Said::english)
            .collect();
        alert.evidence.said = change.sentences;
        alert.evidence.observed = participants;
        alert.evidence.connected = participants;
        alert.evidence.on_key = participants;
        // Between announcements the figures follow quietly (no feed item, no update
        // position): they are read when the alert is.
        let announced = change.members.is_some();
        if let Some(members) = change.members {
            alert.customers = members.into_iter().collect();
            alert.updated_at_position = ev.position;
        }
        // A resolved network that gets worse is open again.
        let reopened = escalated && alert.status == Status::Resolved;
        if reopened {
            alert.status = Status::Open;
            alert.actions.push(Action {
                action: "reopened".into(),
                position: ev.position,
                at: ev.occurred_at,
                by: None,
                note: None,
            });
        }
        let level = alert.level;
        if !(announced || is_new || escalated) {
            return;
        }
        let what = if is_new {
            "raised"
        } else if reopened {
            "reopened"
        } else if escalated {
            "escalated"
        } else {
            "updated"
        };
        self.push_change(&id, what, level, ev.position);
        if is_new || escalated {
            self.set_deadlines(&id, level, now, reopened);
        }
    }
}

/// The id of the pyramid-risk alert of the network under `root` (before any merge).
pub fn network_alert_id(root: &str) -> String {
    alert_id(Kind::PyramidRisk, root)
}
