//! Identity resolution: which customer ids are one person.
//!
//! Events keep the id they were recorded with; this fold decides, from identifier events
//! and staff's merges and unmerges in log order, which ids belong together. The profile of
//! a person is then the profiles of its ids taken together (`person.rs`), so nothing
//! folded per id is ever rewritten, and an unmerge gives each id back exactly as it was.
//!
//! Two ids are linked when staff merge them, or automatically when both hold the same
//! identifier of a kind that merges. The guards are Segment Unify's:
//! - a **blocked** value (a shop's shared tablet, `0000`) links nobody;
//! - a **limit** per kind: a person holds at most so many values of a kind (one member
//!   number, two phone numbers); a link that would exceed it is not made, and an
//!   identifier that makes a person exceed it splits the person again;
//! - a **priority** among kinds: when a person is worked out again, links through
//!   higher-priority kinds are made first, so a member number outweighs a family phone;
//! - an identifier already held by two people who stay apart is **ambiguous** and links
//!   nobody more;
//! - an **unmerge** keeps two ids apart from then on, whatever they share.

use std::collections::{BTreeMap, BTreeSet};

use rapport_events::data::{IdentifierKind, IdentityRulesDefined, KindRule};
use serde::{Deserialize, Serialize};

/// The identity rules: the defaults until staff define others (`identity_rules_defined`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityConfig {
    pub kinds: BTreeMap<IdentifierKind, KindRule>,
    /// Blind indexes of blocked values.
    pub blocked: BTreeSet<String>,
    /// The position of the definition in force (0: the defaults).
    pub defined_position: u64,
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        use IdentifierKind::*;
        let rule = |merge, limit, priority| KindRule {
            merge,
            limit,
            priority,
        };
        IdentityConfig {
            kinds: BTreeMap::from([
                (Member, rule(true, 1, 0)),
                (WechatUnionid, rule(true, 1, 1)),
                (WechatOpenid, rule(true, 4, 2)),
                (Email, rule(true, 3, 3)),
                (Phone, rule(true, 2, 4)),
                (External, rule(true, 4, 5)),
            ]),
            blocked: BTreeSet::new(),
            defined_position: 0,
        }
    }
}

impl IdentityConfig {
    fn rule(&self, kind: IdentifierKind) -> KindRule {
        self.kinds.get(&kind).copied().unwrap_or(KindRule {
            merge: false,
            limit: u32::MAX,
            priority: u8::MAX,
        })
    }
}

/// Why two ids are linked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// `customers_merged`, by the API key named.
    Staff { by: Option<String> },
    /// Both hold this identifier (its blind index).
    Shared { kind: IdentifierKind, index: String },
}

/// One link between two customer numbers: `a` is the side that survives (staff's target,
/// or the earlier holder of the identifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub a: u32,
    pub b: u32,
    pub position: u64,
    pub cause: Cause,
    /// Whether the link joins the two now; when not, why.
    pub refused: Option<Refusal>,
}

/// Why a link does not join its two ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The person would hold more values of `kind` than its limit.
    Limit { kind: IdentifierKind, limit: u32 },
    /// Staff unmerged two of its ids.
    Unmerged { position: u64 },
    /// The identifier's value is blocked.
    Blocked,
    /// The identifier is held by two people who stay apart.
    Ambiguous,
}

/// The identity state (see the module's documentation).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Identity {
    pub config: IdentityConfig,
    /// Blind index → kind and the customers holding it, in the order they gained it.
    holders: Holders,
    /// Customer → its identifiers (kind, blind index), in the order gained.
    of: BTreeMap<u32, Vec<(IdentifierKind, String)>>,
    links: Vec<Link>,
    /// Pairs (smaller number first) staff said are two people, since the position.
    apart: BTreeMap<(u32, u32), u64>,
    /// Identifiers shown to be held by two people: a link through one was refused, so it
    /// links nobody any more (and the links it made are undone).
    ambiguous: BTreeSet<String>,
    /// Member → its person's root, for people of two ids or more (root included).
    root_of: BTreeMap<u32, u32>,
    /// Root → members, sorted, for people of two ids or more.
    members: BTreeMap<u32, Vec<u32>>,
    /// Customers whose person changed in the last event applied.
    #[serde(skip)]
    changed: Vec<u32>,
    /// The keys of `root_of` as bits by customer number: most events are of customers who
    /// stand alone, and a bit answers that faster than the map (derived; see `reindex`).
    #[serde(skip)]
    merged_bits: Vec<u64>,
}

/// Equal when the state is: what is derived from it (`changed`, `merged_bits`) is not.
impl PartialEq for Identity {
    fn eq(&self, o: &Identity) -> bool {
        (
            &self.config,
            &self.holders,
            &self.of,
            &self.links,
            &self.apart,
            &self.ambiguous,
            &self.root_of,
            &self.members,
        ) == (
            &o.config,
            &o.holders,
            &o.of,
            &o.links,
            &o.apart,
            &o.ambiguous,
            &o.root_of,
            &o.members,
        )
    }
}

impl Identity {
    /// The person's root (the id it is known by) for customer `n`.
    pub fn root(&self, n: u32) -> u32 {
        if !self.is_merged(n) {
            return n;
        }
        self.root_of.get(&n).copied().unwrap_or(n)
    }

    /// Whether customer `n` is one of several ids of a person.
    pub fn is_merged(&self, n: u32) -> bool {
        self.merged_bits
            .get(n as usize / 64)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    fn set_merged(&mut self, n: u32, on: bool) {
        let (i, bit) = (n as usize / 64, 1u64 << (n % 64));
        if i >= self.merged_bits.len() {
            if !on {
                return;
            }
            self.merged_bits.resize(i + 1, 0);
        }
        if on {
            self.merged_bits[i] |= bit;
        } else {
            self.merged_bits[i] &= !bit;
        }
    }

    /// Rebuilds what is derived from the state (after it was read from a snapshot).
    pub(super) fn reindex(&mut self) {
        self.merged_bits.clear();
        let members: Vec<u32> = self.root_of.keys().copied().collect();
        for m in members {
            self.set_merged(m, true);
        }
    }

    /// Whether any two ids are one person (when not, every query is per id as before).
    pub fn any_merged(&self) -> bool {
        !self.members.is_empty()
    }

    /// The ids of customer `n`'s person, sorted (`[n]` when it stands alone).
    pub fn members_of(&self, n: u32) -> Vec<u32> {
        self.members
            .get(&self.root(n))
            .cloned()
            .unwrap_or_else(|| vec![n])
    }

    /// Roots of people of two ids or more, with their members.
    pub fn people(&self) -> impl Iterator<Item = (u32, &[u32])> {
        self.members.iter().map(|(r, m)| (*r, m.as_slice()))
    }

    /// Customers holding the identifier with this blind index.
    pub fn holders(&self, index: &str) -> &[u32] {
        self.holders.get(index).map_or(&[], |(_, h)| h.as_slice())
    }

    /// Customer `n`'s identifiers: kind and blind index.
    pub fn identifiers(&self, n: u32) -> &[(IdentifierKind, String)] {
        self.of.get(&n).map_or(&[], Vec::as_slice)
    }

    /// Every link that touches one of `members`, in log order.
    pub fn links_of<'a>(&'a self, members: &'a [u32]) -> impl Iterator<Item = &'a Link> {
        self.links
            .iter()
            .filter(|l| members.contains(&l.a) || members.contains(&l.b))
    }

    /// Customers whose person changed in the last event applied.
    pub fn changed(&self) -> &[u32] {
        &self.changed
    }

    pub(super) fn begin(&mut self) {
        self.changed.clear();
    }

    /// Customer `n` gained an identifier.
    pub(super) fn add(&mut self, n: u32, kind: IdentifierKind, index: &str, position: u64) {
        let held = self.of.entry(n).or_default();
        if held.iter().any(|(_, i)| i == index) {
            return;
        }
        held.push((kind, index.to_owned()));
        let (_, holders) = self.holders.get_or_insert(index, kind);
        let earlier: Vec<u32> = holders.clone();
        holders.push(n);
        // The identifier may take the person past a limit: work it out again.
        let rule = self.config.rule(kind);
        if self.is_merged(n) && self.count(&self.members_of(n), kind) > rule.limit as usize {
            self.recompute(n);
        }
        if earlier.is_empty()
            || !rule.merge
            || self.config.blocked.contains(index)
            || self.ambiguous.contains(index)
        {
            return;
        }
        let me = self.root(n);
        let others: BTreeSet<u32> = earlier
            .iter()
            .map(|&h| self.root(h))
            .filter(|&r| r != me)
            .collect();
        // Held by two people who stay apart: it says nothing about who this is.
        let people_before: BTreeSet<u32> = earlier.iter().map(|&h| self.root(h)).collect();
        if others.len() != 1 || people_before.len() != 1 {
            return;
        }
        let a = earlier[0];
        self.link(Link {
            a,
            b: n,
            position,
            cause: Cause::Shared {
                kind,
                index: index.to_owned(),
            },
            refused: None,
        });
    }

    /// Staff merged `b` into `a`.
    pub(super) fn merge(&mut self, a: u32, b: u32, by: Option<String>, position: u64) {
        // Staff's merge outweighs their own earlier unmerges of these two people.
        let (ma, mb) = (self.members_of(a), self.members_of(b));
        self.apart.retain(|&(x, y), _| {
            !((ma.contains(&x) && mb.contains(&y)) || (ma.contains(&y) && mb.contains(&x)))
        });
        self.link(Link {
            a,
            b,
            position,
            cause: Cause::Staff { by },
            refused: None,
        });
    }

    /// Staff said `a` and `b` are two people.
    pub(super) fn unmerge(&mut self, a: u32, b: u32, position: u64) {
        self.apart.insert((a.min(b), a.max(b)), position);
        if self.root(a) == self.root(b) {
            self.recompute(a);
        }
    }

    /// Staff defined the rules: from now on they decide, and every person is worked out
    /// again under them (a tighter limit or a newly blocked value splits people; links
    /// never tried before are not looked for).
    pub(super) fn define(&mut self, d: &IdentityRulesDefined, position: u64) {
        let mut config = IdentityConfig::default();
        config.kinds.extend(d.kinds.iter().map(|(k, r)| (*k, *r)));
        config.blocked = d.blocked.iter().filter_map(|b| b.index.clone()).collect();
        config.defined_position = position;
        self.config = config;
        let roots: Vec<u32> = self.members.keys().copied().collect();
        for r in roots {
            self.recompute(r);
        }
    }

    /// Customer `n` was erased: their identifiers can no longer be found.
    pub(super) fn forget(&mut self, n: u32) {
        for (_, index) in self.of.remove(&n).unwrap_or_default() {
            if let Some((_, h)) = self.holders.get_mut(&index) {
                h.retain(|&x| x != n);
                if h.is_empty() {
                    self.holders.remove(&index);
                }
            }
        }
    }

    fn link(&mut self, mut link: Link) {
        let (ra, rb) = (self.root(link.a), self.root(link.b));
        if ra != rb {
            link.refused = self.refusal(ra, rb, &link.cause);
            if link.refused.is_none() {
                self.join(ra, rb);
            }
        }
        let limit = matches!(link.refused, Some(Refusal::Limit { .. }));
        let (a, b) = (link.a, link.b);
        let through = match &link.cause {
            Cause::Shared { index, .. } if limit => Some(index.clone()),
            _ => None,
        };
        self.links.push(link);
        // Two people hold this identifier: it tells nobody apart, here or anywhere it
        // joined ids before (a household's phone that merged two of its members).
        if let Some(index) = through {
            self.ambiguous.insert(index.clone());
            let holders: BTreeSet<u32> =
                self.holders(&index).iter().map(|&h| self.root(h)).collect();
            for r in holders.into_iter().chain([a, b]) {
                self.recompute(r);
            }
        }
    }

    /// Why people `ra` and `rb` may not be joined through `cause`, if they may not.
    fn refusal(&self, ra: u32, rb: u32, cause: &Cause) -> Option<Refusal> {
        let (ma, mb) = (self.members_of(ra), self.members_of(rb));
        for (&(x, y), &position) in &self.apart {
            if (ma.contains(&x) && mb.contains(&y)) || (ma.contains(&y) && mb.contains(&x)) {
                return Some(Refusal::Unmerged { position });
            }
        }
        let index = match cause {
            Cause::Staff { .. } => return None,
            Cause::Shared { index, .. } => index,
        };
        if self.config.blocked.contains(index) {
            return Some(Refusal::Blocked);
        }
        if self.ambiguous.contains(index) {
            return Some(Refusal::Ambiguous);
        }
        let both: Vec<u32> = ma.iter().chain(&mb).copied().collect();
        for (&kind, rule) in &self.config.kinds {
            if self.count(&both, kind) > rule.limit as usize {
                return Some(Refusal::Limit {
                    kind,
                    limit: rule.limit,
                });
            }
        }
        None
    }

    /// Distinct values of `kind` held by `members`.
    fn count(&self, members: &[u32], kind: IdentifierKind) -> usize {
        let values: BTreeSet<&str> = members
            .iter()
            .flat_map(|m| self.identifiers(*m))
            .filter(|(k, _)| *k == kind)
            .map(|(_, i)| i.as_str())
            .collect();
        values.len()
    }

    fn join(&mut self, ra: u32, rb: u32) {
        let mut all = self.members_of(ra);
        all.extend(self.members_of(rb));
        all.sort_unstable();
        all.dedup();
        self.members.remove(&rb);
        for &m in &all {
            self.root_of.insert(m, ra);
            self.set_merged(m, true);
        }
        self.changed.extend(&all);
        self.members.insert(ra, all);
    }

    /// Works out the person of customer `n` again from its links: every id starts alone,
    /// then the links among them are made again, staff's first, then by the strength of
    /// their kind, then in log order, each under today's guards.
    fn recompute(&mut self, n: u32) {
        let members = self.members_of(n);
        if members.len() < 2 {
            return;
        }
        let root = self.root(n);
        self.members.remove(&root);
        for m in &members {
            self.root_of.remove(m);
            self.set_merged(*m, false);
        }
        self.changed.extend(&members);
        let mut order: Vec<usize> = (0..self.links.len())
            .filter(|&i| {
                let l = &self.links[i];
                members.contains(&l.a) && members.contains(&l.b)
            })
            .collect();
        let rank = |l: &Link| match &l.cause {
            Cause::Staff { .. } => 0u16,
            Cause::Shared { kind, .. } => 1 + u16::from(self.config.rule(*kind).priority),
        };
        order.sort_by_key(|&i| (rank(&self.links[i]), self.links[i].position));
        for i in order {
            let (ra, rb) = (self.root(self.links[i].a), self.root(self.links[i].b));
            let refused = if ra == rb {
                None
            } else {
                self.refusal(ra, rb, &self.links[i].cause)
            };
            if ra != rb && refused.is_none() {
                self.join(ra, rb);
            }
            self.links[i].refused = refused;
        }
    }
}

/// Blind index → kind and holders: a hash table (most identifier events look one up), kept
/// in index order when written, so a snapshot does not depend on hashing.
#[derive(Clone, Default)]
struct Holders(hashbrown::HashTable<(String, IdentifierKind, Vec<u32>)>);

impl Holders {
    fn get(&self, index: &str) -> Option<(IdentifierKind, &Vec<u32>)> {
        self.0
            .find(crate::interned::hash(index), |e| e.0 == index)
            .map(|e| (e.1, &e.2))
    }

    fn get_mut(&mut self, index: &str) -> Option<(IdentifierKind, &mut Vec<u32>)> {
        self.0
            .find_mut(crate::interned::hash(index), |e| e.0 == index)
            .map(|e| (e.1, &mut e.2))
    }

    fn get_or_insert(
        &mut self,
        index: &str,
        kind: IdentifierKind,
    ) -> (IdentifierKind, &mut Vec<u32>) {
        let h = crate::interned::hash(index);
        let e = match self
            .0
            .entry(h, |e| e.0 == index, |e| crate::interned::hash(&e.0))
        {
            hashbrown::hash_table::Entry::Occupied(e) => e.into_mut(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert((index.to_owned(), kind, Vec::new())).into_mut()
            }
        };
        (e.1, &mut e.2)
    }

    fn remove(&mut self, index: &str) {
        if let Ok(e) = self
            .0
            .find_entry(crate::interned::hash(index), |e| e.0 == index)
        {
            e.remove();
        }
    }

    fn sorted(&self) -> Vec<&(String, IdentifierKind, Vec<u32>)> {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl PartialEq for Holders {
    fn eq(&self, o: &Holders) -> bool {
        self.sorted() == o.sorted()
    }
}

impl std::fmt::Debug for Holders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} identifiers", self.0.len())
    }
}

impl Serialize for Holders {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.sorted())
    }
}

impl<'de> Deserialize<'de> for Holders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Holders, D::Error> {
        let all = Vec::<(String, IdentifierKind, Vec<u32>)>::deserialize(d)?;
        let mut h = Holders::default();
        for (index, kind, holders) in all {
            *h.get_or_insert(&index, kind).1 = holders;
        }
        Ok(h)
    }
}
