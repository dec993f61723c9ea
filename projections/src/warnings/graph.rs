//! Who is connected to whom on a key: ties (community, referral, reply, mention, echo)
//! and union-find.

use super::*;

pub(super) fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Union-find over indices.
pub(super) struct Dsu(pub(super) Vec<usize>);

impl Dsu {
    pub(super) fn find(&mut self, x: usize) -> usize {
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
    pub(super) fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Fixed tie-break: the smaller index is the root.
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

impl Warnings {
    /// Records that `a` replied to, mentioned or echoed `b`: stored both ways, the label
    /// read from the key's side ("~" marks the reverse direction).
    pub(super) fn tie(&mut self, a: &str, b: &str, kind: &str, at: DateTime<Utc>) {
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

    /// For each of `people`, the indices of the others it is tied to: shared community,
    /// referral, or a reply / mention / echo tie. Built from buckets, not pairs, so a key
    /// with many unrelated customers costs about one lookup per customer.
    pub(super) fn adjacency(&self, people: &[&str], customers: &Customers) -> Vec<Vec<usize>> {
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
}
