//! The detector: complaints and echoes filed under keys, the sweep of what left the
//! window, and the alert a connected cluster raises or updates.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) customer: String,
    pub(super) at: DateTime<Utc>,
    pub(super) position: u64,
    pub(super) complaint: String,
    /// The echoing post, for a "me too".
    pub(super) echo: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyState {
    pub(super) entries: Vec<Entry>,
    /// day number → distinct complainants that day.
    pub(super) days: BTreeMap<i64, BTreeSet<String>>,
    /// The distinct customers of `entries`: how many are on the key without a pass over
    /// the entries, and each one's number, looked up once.
    pub(super) people: BTreeMap<String, OnKey>,
}

/// A customer on a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct OnKey {
    /// Their entries on the key.
    entries: u32,
    /// Their customer number (`Customers::number`, which never changes).
    pub(super) number: Option<u32>,
}

impl KeyState {
    /// Drops the entries at or before `window_start`.
    fn expire(&mut self, window_start: DateTime<Utc>) {
        let people = &mut self.people;
        self.entries.retain(|e| {
            let keep = e.at > window_start;
            if !keep {
                forget(people, &e.customer);
            }
            keep
        });
    }

    /// Files `entry` last, dropping the oldest past `KEY_ENTRIES_MAX`.
    fn push(&mut self, entry: Entry, customers: &Customers) {
        match self.people.get_mut(&entry.customer) {
            Some(on) => on.entries += 1,
            None => {
                let on = OnKey {
                    entries: 1,
                    number: customers.number(&entry.customer),
                };
                self.people.insert(entry.customer.clone(), on);
            }
        }
        self.entries.push(entry);
        if self.entries.len() > KEY_ENTRIES_MAX {
            let drop = self.entries.len() - KEY_ENTRIES_MAX;
            for e in self.entries.drain(..drop) {
                forget(&mut self.people, &e.customer);
            }
        }
    }
}

fn forget(people: &mut BTreeMap<String, OnKey>, customer: &str) {
    if let Some(on) = people.get_mut(customer) {
        on.entries -= 1;
        if on.entries == 0 {
            people.remove(customer);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ComplaintInfo {
    pub(super) customer: String,
    pub(super) at: DateTime<Utc>,
    pub(super) position: u64,
    pub(super) keys: Vec<String>,
    pub(super) severity: Option<u8>,
    pub(super) category: Option<String>,
}

pub(super) fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

impl Warnings {
    /// Evicts everything older than the windows, once per day of event time.
    pub(super) fn sweep(&mut self) {
        let Some(now) = self.clock else { return };
        let today = day_of(now);
        if today == self.swept_day {
            return;
        }
        let new_week =
            today.div_euclid(TIE_SWEEP_DAYS) != self.swept_day.div_euclid(TIE_SWEEP_DAYS);
        self.swept_day = today;
        let window_start = now - self.window();
        let keep_days = self.config.baseline_days + self.config.guard_days + 4;
        self.keys.retain(|_, k| {
            k.expire(window_start);
            k.days.retain(|d, _| *d > today - keep_days);
            !k.entries.is_empty() || !k.days.is_empty()
        });
        self.complaints.retain(|_, c| c.at > window_start);
        self.echo_posts.retain(|_, (_, at)| *at > window_start);
        // Ties older than the tie window are out from now on (`tie_is_live` reads past
        // them); the pass that frees them walks them all, so it runs at the first sweep of
        // each `TIE_SWEEP_DAYS` of event time.
        let tie_start = now - Duration::days(self.config.tie_window_days);
        self.tie_cutoff = Some(tie_start);
        if new_week {
            self.ties.retain(|_, m| {
                m.retain(|_, (_, at)| *at > tie_start);
                !m.is_empty()
            });
        }
        let stale: Vec<String> = self
            .clusters
            .values()
            .filter(|c| c.last_at <= window_start)
            .map(|c| c.id.clone())
            .collect();
        for id in stale {
            self.drop_cluster(&id);
        }
        let keys = &self.keys;
        self.spike_of.retain(|k, _| keys.contains_key(k));
        // An alert whose complaints have all left the window keeps its level, and says
        // that nothing supports it now.
        let window = self.window();
        for a in self.alerts.values_mut() {
            let support = &mut a.evidence.support;
            if a.status.is_active() && support.state == "holding" {
                let last = a.evidence.timeline.last().map(|t| t.at);
                if let Some(last) = last.filter(|l| *l <= window_start) {
                    support.state = "gone".into();
                    support.gone_since = Some(last + window);
                }
            }
        }
        let alerts = &self.alerts;
        let kept: BTreeSet<u64> = self.complaints.values().map(|c| c.position).collect();
        self.alert_of
            .retain(|p, a| kept.contains(p) && alerts.contains_key(a));
    }

    pub(super) fn complaint(
        &mut self,
        ev: &FoldEvent,
        d: &facts::Complaint,
        customers: &Customers,
    ) {
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
                severity: d.severity,
                category: d.category.clone(),
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

    pub(super) fn echo(
        &mut self,
        ev: &FoldEvent,
        post: &facts::Post,
        complaint: &str,
        customers: &Customers,
    ) {
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

    /// Files `entry` under key `k`, then raises or updates what the key now shows.
    pub(super) fn add(&mut self, k: &str, entry: Entry, ev: &FoldEvent, customers: &Customers) {
        let now = self.clock.unwrap_or(ev.occurred_at);
        let window_start = now - self.window();
        let cfg = &self.config;
        let today = day_of(now);
        let ks = self.keys.entry(k.to_owned()).or_default();
        ks.expire(window_start);
        if entry.at <= window_start {
            return; // a late event older than the window changes nothing now
        }
        let day = ks.days.entry(day_of(entry.at)).or_default();
        if !day.contains(&entry.customer) {
            day.insert(entry.customer.clone());
        }
        ks.push(entry, customers);
        // Baseline: distinct complainants per day before the guard gap.
        let from = today - cfg.guard_days - cfg.baseline_days;
        let to = today - cfg.guard_days;
        let total: usize = ks.days.range(from..to).map(|(_, s)| s.len()).sum();
        let rate = (total as f64 / cfg.baseline_days as f64).max(cfg.prior_daily_rate);
        let expected = rate * cfg.window_hours as f64 / 24.0;
        let z = |observed: usize| (observed as f64 - expected) / expected.sqrt();
        // Nothing can be raised when even all the key's customers, connected, would be
        // ordinary: a component is never larger than the key, and the statistic grows with
        // the count. This is most complaints (a busy product's steady trickle), and spares
        // them the search for connections.
        if z(ks.people.len()) < cfg.watch_threshold.min(cfg.threshold) {
            return;
        }
        // The key's state is taken out while judged, so the alerts it updates can borrow
        // its entries.
        let Some((k, ks)) = self.keys.remove_entry(k) else {
            return; // unreachable: filed above
        };
        self.judge(&k, &ks, expected, ev, customers);
        self.keys.insert(k, ks);
    }

    /// Raises or updates what key `k` shows now that its last entry is on it: the new
    /// entry's connected component as a group complaint, or the key as a spike.
    fn judge(
        &mut self,
        k: &str,
        ks: &KeyState,
        expected: f64,
        ev: &FoldEvent,
        customers: &Customers,
    ) {
        let Some(entry) = ks.entries.last() else {
            return; // unreachable: an entry was just filed
        };
        let now = self.clock.unwrap_or(ev.occurred_at);
        let cfg = self.config.clone();
        let z = |observed: usize| (observed as f64 - expected) / expected.sqrt();
        // Distinct customers on the key (in id order: what follows does not depend on it).
        let people: Vec<&str> = ks.people.keys().map(String::as_str).collect();
        let numbers: Vec<Option<u32>> = ks.people.values().map(|on| on.number).collect();
        let index: FastMap<&str, usize> = people.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        // Components over every tie at once (union-find): the new entry's, and the largest.
        let mut dsu = self.connect(&people, &numbers, &index, customers);
        let Some(&me) = index.get(entry.customer.as_str()) else {
            return; // unreachable: the entry was just filed, and its customer with it
        };
        let roots: Vec<usize> = (0..people.len()).map(|i| dsu.find(i)).collect();
        let root = roots[me];
        let component: Vec<&str> = (0..people.len())
            .filter(|i| roots[*i] == root)
            .map(|i| people[i])
            .collect();
        let size = component.len();
        let zt = z(people.len());
        let spike_possible = people.len() >= cfg.spike_min && zt >= cfg.threshold;
        let largest = if spike_possible {
            let mut sizes = vec![0usize; people.len()];
            for r in &roots {
                sizes[*r] += 1;
            }
            sizes.into_iter().max().unwrap_or(0)
        } else {
            size
        };
        let entries = &ks.entries;
        // Whether each entry is the component's, and who complained themselves (an echo,
        // "+1", ties and counts for `watch`, but a warning needs `min_count` complainants).
        let mut complained = vec![false; people.len()];
        let in_component: Vec<bool> = entries
            .iter()
            .map(|e| {
                let i = index.get(e.customer.as_str()).copied();
                if e.echo.is_none() {
                    if let Some(i) = i {
                        complained[i] = true;
                    }
                }
                i.is_some_and(|i| roots[i] == root)
            })
            .collect();
        let of_component = || {
            entries
                .iter()
                .zip(&in_component)
                .filter(|(_, inside)| **inside)
                .map(|(e, _)| e)
        };
        let has_echo = of_component().any(|e| e.echo.is_some());
        // Communities shared by at least two of the cluster's customers: one pass over the
        // cluster, and only when a warning is in question.
        let shared_communities = || {
            let mut per: FastMap<u32, usize> = FastMap::default();
            for p in component.iter().filter_map(|c| customers.person(c)) {
                for g in p.communities.numbers() {
                    *per.entry(g).or_default() += 1;
                }
            }
            per.values().filter(|n| **n >= 2).count()
        };
        let influential = || {
            component.iter().any(|c| {
                customers
                    .person(c)
                    .is_some_and(|p| customers.influence(p, now) >= cfg.influence_critical)
            })
        };
        let zc = z(size);
        // People, not ids: two ids found to be one person after they complained count once
        // (a set only when some ids are one person: the count is the common case's cost).
        let complaining = component
            .iter()
            .filter(|c| index.get(**c).is_some_and(|i| complained[*i]));
        let complainants = if customers.identity().any_merged() {
            complaining
                .map(|c| customers.person_id(c))
                .collect::<std::collections::HashSet<&str>>()
                .len()
        } else {
            complaining.count()
        };
        let group_level = if complainants >= cfg.min_count && zc >= cfg.threshold {
            if size >= cfg.critical_size
                || shared_communities() >= cfg.critical_communities
                || influential()
                || self.severe(of_component())
            {
                Some(Level::Critical)
            } else {
                Some(Level::Warning)
            }
        } else if (size >= 2 || has_echo) && zc >= cfg.watch_threshold {
            Some(Level::Watch)
        } else {
            None
        };
        let on_key = people.len();
        let group = group_level.map(|level| (level, of_component().collect::<Vec<&Entry>>()));
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
                Some(id) => (Some(id.clone()), vec![entry]),
                None => (None, entries.iter().collect::<Vec<&Entry>>()),
            }
        });
        if let Some((level, members)) = group {
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
            let level = if self.severe(entries.iter()) {
                Level::Critical
            } else {
                Level::Warning
            };
            let id = self.upsert_as(
                known,
                Kind::Spike,
                level,
                k,
                &all,
                ev,
                customers,
                (on_key, expected, zt, largest, on_key),
            );
            self.spike_of.insert(k.to_owned(), id);
        }
    }

    /// Whether any of these complaints is severe or of a critical category.
    fn severe<'a>(&self, entries: impl Iterator<Item = &'a Entry>) -> bool {
        let cfg = &self.config;
        entries
            .filter(|e| e.echo.is_none())
            .filter_map(|e| self.complaints.get(&e.complaint))
            .any(|c| {
                c.severity.is_some_and(|s| s >= cfg.severe_from)
                    || c.category
                        .as_ref()
                        .is_some_and(|g| cfg.critical_categories.contains(g))
            })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn upsert(
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
    pub(super) fn upsert_as(
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
        // A merged alert's complaints go on in the alert it was merged into.
        let id = self.live_id(&existing.unwrap_or_else(|| alert_id(kind, &first.complaint)));
        // A cluster weaker than the alert it touches (a `watch` on a busy product key that
        // holds one of a warning's complaints) does not pour its members into it.
        if self
            .alerts
            .get(&id)
            .is_some_and(|a| a.level > level && a.kind == kind)
        {
            return id;
        }
        let now = self.clock.unwrap_or(ev.occurred_at);
        let cfg_threshold = self.config.threshold;
        let is_new = !self.alerts.contains_key(&id);
        let alert = self
            .alerts
            .entry(id.clone())
            .or_insert_with(|| Alert::new(id.clone(), kind, level, first.at, ev, cfg_threshold));
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
                    if let Some(c) = self.complaints.get(&e.complaint) {
                        alert.severity_max = alert.severity_max.max(c.severity);
                        alert.categories.extend(c.category.clone());
                    }
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
        if is_new || escalated {
            alert.evidence.support.level_key = key.to_owned();
            alert.evidence.support.level_statistic = (statistic * 1000.0).round() / 1000.0;
            alert.evidence.support.level_position = ev.position;
        }
        if grew || is_new || escalated {
            alert.evidence.support.state = "holding".into();
            alert.evidence.support.gone_since = None;
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
            let (said, communities) = self.describe(&people, customers, now);
            let alert = self.alerts.get_mut(&id).expect("inserted above");
            alert.evidence.ties = said.iter().map(crate::said::Said::english).collect();
            alert.evidence.said = said;
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
        if is_new || escalated || reopened {
            self.set_deadlines(&id, level_now, now, reopened);
        }
        id
    }
}
