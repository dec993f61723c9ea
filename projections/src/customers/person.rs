//! A person's profile: the profiles of its ids taken together.
//!
//! Profiles stay per id (each event keeps the id it was recorded with); a person of two
//! ids or more gets a combined profile, rebuilt whenever an event touches one of its ids
//! or its ids change. The combined profile carries the root's id, so every query that
//! reads people (RFM, cohorts, reactivation, segments, lists) sees one customer.

use super::*;

fn merge_sorted(into: &mut ThinVec<Money3>, more: &[Money3]) {
    if more.is_empty() {
        return;
    }
    let mut all: Vec<Money3> = into.iter().chain(more).copied().collect();
    // Stable: at equal moments the root's entries stay first.
    all.sort_by_key(|m| m.moment());
    *into = all.into_iter().collect();
}

impl Profile {
    /// Takes `other` (another id of the same person) into this profile.
    pub(super) fn absorb(&mut self, other: &Profile) {
        self.region = self.region.or(other.region);
        self.channel = self.channel.or(other.channel);
        for n in other.tags.numbers() {
            self.tags.insert(n);
        }
        for (k, v) in &other.traits {
            if let Err(i) = self.traits.binary_search_by(|(x, _)| x.cmp(k)) {
                self.traits.insert(i, (k.clone(), v.clone()));
            }
        }
        self.erased |= other.erased;
        let mut positions: Vec<u64> = self
            .identity_positions()
            .chain(other.identity_positions())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        self.identity_first = None;
        self.identity_more = ThinVec::new();
        for p in positions {
            self.add_identity_position(p);
        }
        self.first_seen = match (self.first_seen, other.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_seen = self.last_seen.max(other.last_seen);
        merge_sorted(&mut self.purchases, &other.purchases);
        merge_sorted(&mut self.refunds, &other.refunds);
        for (n, c) in other.products.iter() {
            self.products.add(n, c);
        }
        for (n, c) in other.categories.iter() {
            self.categories.add(n, c);
        }
        for r in &other.referees {
            if !self.referees.contains(r) {
                self.referees.push(*r);
            }
        }
        self.referred_by = self.referred_by.or(other.referred_by);
        for c in &other.complaints_open {
            self.complaints_open.insert(c);
        }
        self.complaints_resolved += other.complaints_resolved;
        self.resolutions_satisfied += other.resolutions_satisfied;
        self.resolutions_unsatisfied += other.resolutions_unsatisfied;
        self.posts += other.posts;
        self.replies_received += other.replies_received;
        self.echoes_received += other.echoes_received;
        self.mentions_received += other.mentions_received;
        for n in other.communities.numbers() {
            self.communities.insert(n);
        }
        if let Some(o) = &other.outreach {
            let mine = self.outreach.get_or_insert_default();
            mine.contacts += o.contacts;
            if o.last_contacted_at > mine.last_contacted_at {
                mine.last_contacted_at = o.last_contacted_at;
                mine.last_campaign = o.last_campaign.clone();
                mine.last_outcome = o.last_outcome.clone();
            }
            for (c, times) in &o.campaigns {
                let all = mine.campaigns.entry(c.clone()).or_default();
                all.extend(times);
                all.sort_unstable();
            }
            // Stable: at equal times the root's entries stay first.
            mine.consent.extend(o.consent.iter().cloned());
            mine.consent.sort_by_key(|c| c.at);
            mine.marketing.extend(o.marketing.iter().cloned());
            mine.marketing.sort_by_key(|m| m.at);
        }
    }
}

impl Customers {
    /// The combined profile of people whose ids are `members` (sorted), the root first.
    fn combine(&self, root: u32, members: &[u32]) -> Profile {
        let mut p = self.profiles[root as usize].clone();
        for &m in members.iter().filter(|&&m| m != root) {
            p.absorb(&self.profiles[m as usize]);
        }
        p
    }

    /// Rebuilds the combined profiles of the people of `touched` and of every customer
    /// whose person changed in the last event.
    pub(super) fn refresh_people(&mut self, touched: &[u32]) {
        let changed = self.identity.changed().to_vec();
        for m in &changed {
            self.people.remove(m);
        }
        let roots: BTreeSet<u32> = changed
            .iter()
            .chain(touched)
            .map(|&n| self.identity.root(n))
            .collect();
        for r in roots {
            let members = self.identity.members_of(r);
            if members.len() > 1 {
                let p = self.combine(r, &members);
                self.people.insert(r, p);
            } else {
                self.people.remove(&r);
            }
        }
    }

    /// After `ev`: rebuilds the combined profiles of the people whose ids' profiles it
    /// changed (its customer, and those it credits: referee, author replied to or echoed,
    /// mentioned, complainant of a resolution), if they are people of several ids, and of
    /// those whose ids changed. Most events touch no such person and cost a lookup.
    pub(super) fn refresh_people_for(&mut self, ev: &FoldEvent) {
        let mut touched: Vec<u32> = Vec::new();
        let mut add = |n: Option<u32>| {
            if let Some(n) = n.filter(|&n| self.identity.is_merged(n)) {
                touched.push(n);
            }
        };
        add(self.number(&ev.customer));
        match &ev.data {
            Facts::Referral(d) => add(d.referee.as_deref().and_then(|r| self.number(r))),
            Facts::ComplaintResolved(d) => add(d
                .complaint_id
                .as_deref()
                .and_then(|c| self.complaint_authors.get(c))),
            Facts::Post(d) => {
                add(d.reply_to.as_deref().and_then(|r| self.post_authors.get(r)));
                add(d
                    .echoes
                    .as_deref()
                    .and_then(|c| self.complaint_authors.get(c)));
                for m in &d.mentions {
                    add(self.number(m));
                }
            }
            _ => {}
        }
        if !touched.is_empty() || !self.identity.changed().is_empty() {
            self.refresh_people(&touched);
        }
    }

    /// Every combined profile rebuilt (after a snapshot is read).
    pub(super) fn rebuild_people(&mut self) {
        let people: Vec<(u32, Vec<u32>)> = self
            .identity
            .people()
            .map(|(r, m)| (r, m.to_vec()))
            .collect();
        self.people = people
            .into_iter()
            .map(|(r, m)| (r, self.combine(r, &m)))
            .collect();
    }

    /// The identity state: who is one person.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Sets the identity state read from a snapshot, and rebuilds people's profiles.
    pub fn set_identity(&mut self, mut identity: Identity) {
        identity.reindex();
        self.identity = identity;
        self.rebuild_people();
    }

    /// The number of the person customer `n` belongs to (its root).
    pub fn person_number(&self, n: u32) -> u32 {
        self.identity.root(n)
    }

    /// The id of the person that customer `id` is part of (`id` itself when alone).
    pub fn person_id<'a>(&'a self, id: &'a str) -> &'a str {
        if !self.identity.any_merged() {
            return id;
        }
        match self.number(id) {
            Some(n) => self.id_of(self.identity.root(n)),
            None => id,
        }
    }

    /// The profile of the person customer `id` is part of: the combined profile of all
    /// its ids, under the root's id.
    pub fn person(&self, id: &str) -> Option<&Profile> {
        let n = self.number(id)?;
        self.person_by_number(n)
    }

    /// As [`Customers::person`], by customer number.
    pub fn person_by_number(&self, n: u32) -> Option<&Profile> {
        let r = self.identity.root(n);
        self.people
            .get(&r)
            .or_else(|| self.profiles.get(r as usize))
    }

    /// Every person, in id order: one profile per person (ids merged into another are
    /// left out; their events are in the root's combined profile).
    pub fn people_sorted(&self) -> Vec<&Profile> {
        if !self.identity.any_merged() {
            return self.sorted();
        }
        let mut v: Vec<&Profile> = self.people().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Every person, in no particular order (the order customers first appeared): for
    /// counts and sums, which need no sort of a million ids.
    pub fn people(&self) -> impl Iterator<Item = &Profile> + '_ {
        self.people_numbered().map(|(_, p)| p)
    }

    /// Every person with the number of its root id, in number order.
    pub fn people_numbered(&self) -> impl Iterator<Item = (u32, &Profile)> + '_ {
        let merged = self.identity.any_merged();
        (0..self.profiles.len() as u32)
            .filter(move |&n| !merged || self.identity.root(n) == n)
            .map(move |n| match merged {
                true => (n, self.people.get(&n).unwrap_or(&self.profiles[n as usize])),
                false => (n, &self.profiles[n as usize]),
            })
    }

    /// The ids of the person customer `id` is part of, the root first.
    pub fn person_ids(&self, id: &str) -> Vec<&str> {
        let Some(n) = self.number(id) else {
            return vec![];
        };
        let root = self.identity.root(n);
        let mut ids = vec![self.id_of(root)];
        ids.extend(
            self.identity
                .members_of(n)
                .into_iter()
                .filter(|&m| m != root)
                .map(|m| self.id_of(m)),
        );
        ids
    }
}
