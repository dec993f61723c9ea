//! The customer profile: a 360° view folded from the customer's events and from the
//! events of others that concern them (a referral names its referee, a reply names the
//! author of the post it answers, an echo names the complaint it supports).

use std::{
    collections::{BTreeMap, BTreeSet},
    num::{NonZeroU32, NonZeroU64},
};

use compact_str::CompactString;
use thin_vec::ThinVec;

use hashbrown::HashTable;

use crate::interned::{Interned, InternedMap};

// Customer ids are hashed for `Customers::numbers` as `Interned` hashes its strings.
use crate::interned::hash as id_hash;

use chrono::{DateTime, Utc};
use rapport_events::{data::ConsentChannel, Facts, FoldEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Projection;

mod consent;
mod identity;
mod money;
mod person;
mod sets;
mod snapshot;

pub use consent::{ConsentChange, MarketingContact};
pub use identity::{Cause, Identity, IdentityConfig, Link, Refusal};

pub use money::{Moment, Money3};
pub use sets::{Counts, NameSet, Names, SmallSet};
pub use snapshot::SNAPSHOT_PROFILES_PER_CHUNK;

/// Everything Rapport knows about one customer, except personal data.
///
/// Kept small (a million of these must fit well under a gigabyte with everything else):
/// lists are `ThinVec` (one pointer, nothing allocated while empty), short strings are
/// inline, and what only contacted customers have is boxed in [`Outreach`].
///
/// Invariant: no personal field is ever held here (the read model folds events with
/// personal fields withheld). Identity (name, e-mail, phone, personal traits) is read from
/// the log when a profile is shown, so an erasure needs nothing from projections and no
/// snapshot can keep erased values alive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: CompactString,
    /// A name number (see [`Names`]) plus one; read through [`Customers::region`].
    pub region: Option<NonZeroU32>,
    /// As `region`; read through [`Customers::channel`].
    pub channel: Option<NonZeroU32>,
    /// Read through [`Customers::names_of`].
    pub tags: NameSet,
    /// Non-personal traits only, sorted by name.
    pub traits: ThinVec<(CompactString, CompactString)>,
    /// The customer's personal data was crypto-shredded.
    pub erased: bool,
    /// The log position of the first event that carries the customer's identity
    /// (`customer_registered`, `profile_updated`): held inline, as most customers have
    /// one. The others, in order, in `identity_more`. See [`Profile::identity_positions`].
    pub identity_first: Option<NonZeroU64>,
    pub identity_more: ThinVec<u64>,
    #[serde(with = "crate::wire::opt_time")]
    pub first_seen: Option<DateTime<Utc>>,
    #[serde(with = "crate::wire::opt_time")]
    pub last_seen: Option<DateTime<Utc>>,
    /// Purchases with a positive amount, sorted by time (late events are inserted in place).
    pub purchases: ThinVec<Money3>,
    /// Refunds, sorted by time.
    pub refunds: ThinVec<Money3>,
    /// sku or product → units bought.
    pub products: Counts,
    /// category → units bought.
    pub categories: Counts,
    /// Customers this one referred, by number, in order (ids: [`Customers::referees`]).
    pub referees: ThinVec<u32>,
    /// The referrer's number (id: [`Customers::referred_by`]).
    pub referred_by: Option<u32>,
    pub complaints_open: SmallSet,
    pub complaints_resolved: u32,
    pub resolutions_satisfied: u32,
    pub resolutions_unsatisfied: u32,
    pub posts: u32,
    pub replies_received: u32,
    pub echoes_received: u32,
    pub mentions_received: u32,
    /// Read through [`Customers::names_of`] and [`Customers::has_name`].
    pub communities: NameSet,
    /// Outreach to the customer; `None` until the first `contacted`.
    pub outreach: Option<Box<Outreach>>,
}

/// Reaching one customer: the outreach that reached them, and their consent to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outreach {
    pub contacts: u32,
    #[serde(with = "crate::wire::opt_time")]
    pub last_contacted_at: Option<DateTime<Utc>>,
    pub last_campaign: Option<CompactString>,
    pub last_outcome: Option<CompactString>,
    /// Campaign → the times the customer was contacted by it, sorted.
    pub campaigns: BTreeMap<CompactString, Vec<DateTime<Utc>>>,
    /// Consent changes, in time order (see `consent.rs`).
    pub consent: Vec<ConsentChange>,
    /// Contacts with a campaign on a channel consent governs, in time order.
    pub marketing: Vec<MarketingContact>,
}

impl Profile {
    /// Log positions of the events that carry the customer's identity, in order: where to
    /// read it from.
    pub fn identity_positions(&self) -> impl Iterator<Item = u64> + '_ {
        self.identity_first
            .map(NonZeroU64::get)
            .into_iter()
            .chain(self.identity_more.iter().copied())
    }

    fn add_identity_position(&mut self, position: u64) {
        match (self.identity_first, NonZeroU64::new(position)) {
            (None, Some(p)) => self.identity_first = Some(p),
            _ => self.identity_more.push(position),
        }
    }

    pub fn contacts(&self) -> u32 {
        self.outreach.as_ref().map_or(0, |o| o.contacts)
    }

    pub fn last_contacted_at(&self) -> Option<DateTime<Utc>> {
        self.outreach.as_ref().and_then(|o| o.last_contacted_at)
    }

    pub fn last_campaign(&self) -> Option<&str> {
        self.outreach.as_ref()?.last_campaign.as_deref()
    }

    pub fn last_outcome(&self) -> Option<&str> {
        self.outreach.as_ref()?.last_outcome.as_deref()
    }

    /// Campaign → the times the customer was contacted by it, in campaign order.
    pub fn campaigns(&self) -> impl Iterator<Item = (&str, &[DateTime<Utc>])> {
        self.outreach
            .iter()
            .flat_map(|o| o.campaigns.iter().map(|(c, t)| (c.as_str(), t.as_slice())))
    }

    /// Orders strictly before `t`.
    pub fn orders_before(&self, t: DateTime<Utc>) -> usize {
        let t = Moment::from(t);
        self.purchases.partition_point(|p| p.moment() < t)
    }

    pub fn orders_until(&self, as_of: DateTime<Utc>) -> usize {
        let as_of = Moment::from(as_of);
        self.purchases.partition_point(|p| p.moment() <= as_of)
    }

    /// Revenue net of refunds per currency, up to `as_of` (inclusive).
    pub fn net_revenue(&self, as_of: DateTime<Utc>) -> BTreeMap<String, Decimal> {
        let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
        let as_of = Moment::from(as_of);
        // A currency's name is allocated once, not once a purchase.
        let mut add = |currency: &str, amount: Decimal| match out.get_mut(currency) {
            Some(sum) => *sum += amount,
            None => {
                out.insert(currency.to_owned(), amount);
            }
        };
        for p in self.purchases.iter().take_while(|p| p.moment() <= as_of) {
            add(p.currency(), p.amount());
        }
        for r in self.refunds.iter().take_while(|r| r.moment() <= as_of) {
            add(r.currency(), -r.amount());
        }
        out
    }

    /// Revenue net of refunds in one currency, up to `as_of` (inclusive).
    pub fn net_revenue_in(&self, as_of: DateTime<Utc>, currency: &str) -> Decimal {
        let as_of = Moment::from(as_of);
        let sum = |amounts: &[Money3]| -> Decimal {
            amounts
                .iter()
                .take_while(|a| a.moment() <= as_of)
                .filter(|a| a.is_in(currency))
                .map(|a| a.amount())
                .sum()
        };
        sum(&self.purchases) - sum(&self.refunds)
    }

    pub fn last_purchase_until(&self, as_of: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.purchases[..self.orders_until(as_of)]
            .last()
            .map(|p| p.at())
    }
}

/// The lookup table of [`Customers::numbers`]: derived from the profiles, so equal
/// whenever they are (and compared through them).
#[derive(Clone, Default)]
struct Numbers(HashTable<u32>);

impl PartialEq for Numbers {
    fn eq(&self, _: &Numbers) -> bool {
        true
    }
}

impl std::fmt::Debug for Numbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} numbers", self.0.len())
    }
}

/// All profiles, plus the little that is needed to attribute other customers' events.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Customers {
    /// Profiles by customer number: customers are numbered in the order the log first
    /// mentions them, so other projections can key their per-customer state by a `u32`
    /// instead of repeating the id. Held in place, not boxed: the room a doubling vector
    /// keeps spare is never touched, so never resident, and a box cost a pointer and the
    /// allocator's rounding on each of a million profiles.
    profiles: Vec<Profile>,
    /// Customer id → number: numbers, found by the hash of the id their profile holds
    /// (a map keyed by the id repeated it, 70 MB for a million customers).
    numbers: Numbers,
    /// post id → author, so a reply can be credited to the author it answers.
    post_authors: InternedMap<u32>,
    /// complaint id → complainant, so an echo can be credited.
    complaint_authors: InternedMap<u32>,
    /// The names that `Profile::products` and `categories` count by number.
    names: Names,
    /// Community (name number) → members now: derived from the profiles (rebuilt when a
    /// snapshot is read), so the detector can weigh a tie by how large its community is.
    community_sizes: BTreeMap<u32, u32>,
    /// Which ids are one person.
    identity: Identity,
    /// Root → the combined profile, for people of two ids or more (derived: rebuilt from
    /// the profiles and `identity` when a snapshot is read).
    people: BTreeMap<u32, Profile>,
    /// Customers who became agents (by number): what influence needs to count a recruit
    /// or referee by the end-customer purchases they bring, not by their own stocking.
    agent_marks: BTreeMap<u32, AgentMark>,
    /// The last position applied.
    pub position: u64,
}

/// When a customer became an agent, left, and first sold to an end customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMark {
    pub joined: DateTime<Utc>,
    pub left: Option<DateTime<Utc>>,
    pub first_retail: Option<DateTime<Utc>>,
}

fn insert_sorted(v: &mut ThinVec<Money3>, m: Money3) {
    let at = m.moment();
    let i = v.partition_point(|p| p.moment() <= at);
    v.insert(i, m);
}

impl Customers {
    /// Most bought first, at most `n`; ties by name, so the order never depends on hashing.
    pub fn favourites(&self, counts: &Counts, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<_> = counts
            .iter()
            .map(|(k, c)| (self.names.name(k).to_owned(), c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.number(id).map(|n| &self.profiles[n as usize])
    }

    /// The customer who filed complaint `id`.
    pub fn complaint_author(&self, id: &str) -> Option<&Profile> {
        self.complaint_authors
            .get(id)
            .and_then(|n| self.by_number(n))
    }

    /// Members of the community numbered `n` (see [`NameSet::numbers`]) now.
    pub fn community_size_by_number(&self, n: u32) -> u32 {
        self.community_sizes.get(&n).copied().unwrap_or(0)
    }

    /// The customer's number (see `profiles`), if the log has mentioned them.
    pub fn number(&self, id: &str) -> Option<u32> {
        self.numbers
            .0
            .find(id_hash(id), |&n| self.profiles[n as usize].id == id)
            .copied()
    }

    pub fn by_number(&self, number: u32) -> Option<&Profile> {
        self.profiles.get(number as usize)
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// Every profile, in customer-id order (never hash order).
    pub fn sorted(&self) -> Vec<&Profile> {
        let mut v: Vec<&Profile> = self.profiles.iter().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The customer's number, numbering them if the log had not mentioned them yet.
    fn numbered(&mut self, id: &str) -> u32 {
        let h = id_hash(id);
        if let Some(&n) = self
            .numbers
            .0
            .find(h, |&n| self.profiles[n as usize].id == id)
        {
            return n;
        }
        let n = u32::try_from(self.profiles.len()).expect("fewer than 2^32 customers");
        self.profiles.push(Profile {
            id: id.into(),
            ..Default::default()
        });
        let profiles = &self.profiles;
        self.numbers
            .0
            .insert_unique(h, n, |&m| id_hash(&profiles[m as usize].id));
        n
    }

    fn profile(&mut self, id: &str) -> &mut Profile {
        let n = self.numbered(id);
        &mut self.profiles[n as usize]
    }

    /// The id of the customer with number `n` (every stored number has a profile).
    fn id_of(&self, n: u32) -> &str {
        &self.profiles[n as usize].id
    }
}

impl Projection for Customers {
    const NAME: &'static str = "customers";

    fn apply(&mut self, ev: &FoldEvent) {
        self.position = ev.position;
        self.identity.begin();
        if let Facts::IdentityRulesDefined(d) = &ev.data {
            self.identity.define(d, ev.position);
            self.refresh_people(&[]);
            return;
        }
        // Operator events (segments, alerts) are about no customer.
        if ev.event_type.is_operator() {
            return;
        }
        self.apply_customer_event(ev);
        if self.identity.any_merged() || !self.identity.changed().is_empty() {
            self.refresh_people_for(ev);
        }
    }
}

impl Customers {
    fn is_active_agent(&self, n: u32) -> bool {
        self.agent_marks.get(&n).is_some_and(|m| m.left.is_none())
    }

    /// A purchase by someone who is not an agent, credited to an agent who is: that
    /// agent's sale to an end customer.
    fn note_retail_sale(&mut self, buyer: &str, seller: Option<&str>, at: DateTime<Utc>) {
        let Some(seller) = seller.filter(|s| *s != buyer) else {
            return;
        };
        if self.number(buyer).is_some_and(|b| self.is_active_agent(b)) {
            return;
        }
        let Some(s) = self.number(seller).filter(|s| self.is_active_agent(*s)) else {
            return;
        };
        if let Some(m) = self.agent_marks.get_mut(&s) {
            m.first_retail = Some(m.first_retail.map_or(at, |f| f.min(at)));
        }
    }

    /// Whether the customer numbered `n` brought end-customer purchases by `as_of`: bought
    /// before becoming an agent, or (as an agent) sold to an end customer.
    pub fn brought_end_customer_purchases(&self, n: u32, as_of: DateTime<Utc>) -> bool {
        let Some(p) = self.by_number(n) else {
            return false;
        };
        match self.agent_marks.get(&n) {
            Some(m) if m.joined <= as_of => {
                p.orders_before(m.joined) > 0 || m.first_retail.is_some_and(|t| t <= as_of)
            }
            _ => p.orders_until(as_of) > 0,
        }
    }

    fn apply_customer_event(&mut self, ev: &FoldEvent) {
        let at = ev.occurred_at;
        {
            let p = self.profile(&ev.customer);
            // An erasure is no activity of the customer's.
            if ev.event_type.records_business_time() {
                p.first_seen = Some(p.first_seen.map_or(at, |f| f.min(at)));
                p.last_seen = Some(p.last_seen.map_or(at, |l| l.max(at)));
            }
        }
        match &ev.data {
            Facts::CustomerRegistered(d) => {
                let region = d.region.as_deref().map(|v| self.names.number_plus_one(v));
                let channel = d.channel.as_deref().map(|v| self.names.number_plus_one(v));
                let p = self.profile(&ev.customer);
                p.add_identity_position(ev.position);
                if region.is_some() {
                    p.region = region;
                }
                if channel.is_some() {
                    p.channel = channel;
                }
                for t in &d.tags {
                    let n = self.names.number(t);
                    self.profile(&ev.customer).tags.insert(n);
                }
            }
            Facts::ProfileUpdated(d) => {
                let p = self.profile(&ev.customer);
                p.add_identity_position(ev.position);
                let public = d.traits.iter().filter(|(k, _)| {
                    rapport_events::personal::NON_PERSONAL_TRAITS.contains(&k.as_str())
                });
                for (k, v) in public {
                    match p.traits.binary_search_by(|(x, _)| x.as_str().cmp(k)) {
                        Ok(i) => p.traits[i].1 = v.as_str().into(),
                        Err(i) => p.traits.insert(i, (k.as_str().into(), v.as_str().into())),
                    }
                }
            }
            Facts::Purchase(d) => {
                self.note_retail_sale(&ev.customer, d.sold_by.as_deref(), at);
                let p = self.profile(&ev.customer);
                if let (Some(amount), Some(currency)) = (d.amount, d.currency) {
                    // A zero-value order is not a purchase (the standard cleaning rule).
                    if amount > Decimal::ZERO {
                        // The fold's view only has currencies of capital letters.
                        if let Some(m) = Money3::new(at, amount, currency) {
                            insert_sorted(&mut p.purchases, m);
                        }
                    }
                }
                for item in &d.items {
                    let qty = item.quantity.unwrap_or(1);
                    let product = item
                        .product
                        .as_deref()
                        .or(item.sku.as_deref())
                        .map(|n| self.names.number(n));
                    let category = item.category.as_deref().map(|n| self.names.number(n));
                    let p = self.profile(&ev.customer);
                    if let Some(n) = product {
                        p.products.add(n, qty);
                    }
                    if let Some(n) = category {
                        p.categories.add(n, qty);
                    }
                }
            }
            Facts::Refund(d) => {
                let p = self.profile(&ev.customer);
                if let Some(amount) = d.amount {
                    // Without a currency the refund is in the currency of the latest purchase.
                    let currency = d
                        .currency
                        .or_else(|| p.purchases.last().map(|x| x.currency_code()));
                    if let Some(m) = currency.and_then(|c| Money3::new(at, amount, c)) {
                        insert_sorted(&mut p.refunds, m);
                    }
                }
            }
            Facts::Referral(d) => {
                if let Some(referee) = &d.referee {
                    let referrer = self.numbered(&ev.customer);
                    let referee = self.numbered(referee);
                    let p = &mut self.profiles[referrer as usize];
                    if !p.referees.contains(&referee) {
                        p.referees.push(referee);
                    }
                    let r = &mut self.profiles[referee as usize];
                    if r.referred_by.is_none() {
                        r.referred_by = Some(referrer);
                    }
                }
            }
            Facts::Complaint(d) => {
                if let Some(id) = d.complaint_id.as_deref() {
                    let n = self.numbered(&ev.customer);
                    self.complaint_authors.insert(id, n);
                    self.profiles[n as usize].complaints_open.insert(id);
                }
            }
            Facts::ComplaintResolved(d) => {
                if let Some(id) = d.complaint_id.as_deref() {
                    // Resolutions may be recorded on the complainant's stream or by staff on
                    // it; either way the complaint's author is credited.
                    let author = match self.complaint_authors.get(id) {
                        Some(n) => n,
                        None => self.numbered(&ev.customer),
                    };
                    let p = &mut self.profiles[author as usize];
                    if p.complaints_open.remove(id) {
                        p.complaints_resolved += 1;
                        match d.satisfied {
                            Some(true) => p.resolutions_satisfied += 1,
                            Some(false) => p.resolutions_unsatisfied += 1,
                            None => {}
                        }
                    }
                }
            }
            Facts::Post(d) => {
                let me = self.numbered(&ev.customer);
                if let Some(id) = d.post_id.as_deref() {
                    self.post_authors.insert(id, me);
                }
                self.profiles[me as usize].posts += 1;
                if let Some(author) = d.reply_to.as_deref().and_then(|r| self.post_authors.get(r)) {
                    if author != me {
                        self.profiles[author as usize].replies_received += 1;
                    }
                }
                if let Some(author) = d
                    .echoes
                    .as_deref()
                    .and_then(|c| self.complaint_authors.get(c))
                {
                    if author != me {
                        self.profiles[author as usize].echoes_received += 1;
                    }
                }
                let mentioned: BTreeSet<&str> = d
                    .mentions
                    .iter()
                    .map(String::as_str)
                    .filter(|m| *m != ev.customer)
                    .collect();
                for m in mentioned {
                    self.profile(m).mentions_received += 1;
                }
            }
            Facts::CommunityJoined(d) => {
                if let Some(c) = d.community.as_deref() {
                    let n = self.names.number(c);
                    if self.profile(&ev.customer).communities.insert(n) {
                        *self.community_sizes.entry(n).or_default() += 1;
                    }
                }
            }
            Facts::CommunityLeft(d) => {
                // A community never joined is not numbered for it.
                if let Some(n) = d.community.as_deref().and_then(|c| self.names.find(c)) {
                    if self.profile(&ev.customer).communities.remove(n) {
                        // Counted as the snapshot rebuilds it: an empty community is absent.
                        if let Some(size) = self.community_sizes.get_mut(&n) {
                            *size -= 1;
                            if *size == 0 {
                                self.community_sizes.remove(&n);
                            }
                        }
                    }
                }
            }
            Facts::Contacted(d) => {
                let o = self.profile(&ev.customer).outreach.get_or_insert_default();
                o.contacts += 1;
                o.last_contacted_at = Some(o.last_contacted_at.map_or(at, |l| l.max(at)));
                o.last_campaign = d.campaign.as_deref().map(CompactString::from);
                o.last_outcome = d.outcome.as_deref().map(CompactString::from);
                if let Some(c) = d.campaign.as_deref() {
                    let times = o.campaigns.entry(c.into()).or_default();
                    let i = times.partition_point(|t| *t <= at);
                    times.insert(i, at);
                    let channel = d.channel.as_deref().and_then(ConsentChannel::of_contact);
                    if let Some(channel) = channel {
                        let m = MarketingContact {
                            at,
                            channel,
                            campaign: c.into(),
                        };
                        consent::insert_by_time(&mut o.marketing, m, |m| m.at);
                    }
                }
            }
            Facts::ConsentGiven(d) | Facts::ConsentWithdrawn(d) => {
                let o = self.profile(&ev.customer).outreach.get_or_insert_default();
                let change = ConsentChange {
                    at,
                    channel: d.channel,
                    purpose: d.purpose,
                    given: matches!(ev.data, Facts::ConsentGiven(_)),
                    source: d.source.as_deref().map(CompactString::from),
                };
                consent::insert_by_time(&mut o.consent, change, |c| c.at);
            }
            // The agents projection reads the figures; here only what influence needs: a
            // recruit is a referral of its upline, and when each agent sold at retail.
            Facts::AgentJoined(d) => {
                let me = self.numbered(&ev.customer);
                let mark = self.agent_marks.entry(me).or_insert(AgentMark {
                    joined: at,
                    left: None,
                    first_retail: None,
                });
                mark.joined = mark.joined.min(at);
                mark.left = None;
                if let Some(up) = d.upline.as_deref().filter(|u| *u != ev.customer) {
                    let up = self.numbered(up);
                    let p = &mut self.profiles[up as usize];
                    if !p.referees.contains(&me) {
                        p.referees.push(me);
                    }
                    let r = &mut self.profiles[me as usize];
                    if r.referred_by.is_none() {
                        r.referred_by = Some(up);
                    }
                }
            }
            Facts::AgentLeft => {
                if let Some(n) = self.number(&ev.customer) {
                    if let Some(m) = self.agent_marks.get_mut(&n) {
                        m.left = Some(m.left.map_or(at, |l| l.min(at)));
                    }
                }
            }
            Facts::CommissionPaid(_) => {}
            Facts::PersonalDataErased => {
                self.profile(&ev.customer).erased = true;
                let n = self.numbered(&ev.customer);
                self.identity.forget(n);
            }
            Facts::IdentifierAdded(d) => {
                // The value is read from the log when the profile is shown, like a name.
                self.profile(&ev.customer)
                    .add_identity_position(ev.position);
                let n = self.numbered(&ev.customer);
                // Without its index (an event recorded without one) it links nobody.
                if let Some(index) = d.index.as_deref() {
                    self.identity.add(n, d.kind, index, ev.position);
                }
            }
            Facts::CustomersMerged(d) => {
                let a = self.numbered(&ev.customer);
                let b = self.numbered(&d.merged);
                self.identity
                    .merge(a, b, d.requested_by.clone(), ev.position);
            }
            Facts::CustomersUnmerged(d) => {
                let a = self.numbered(&ev.customer);
                let b = self.numbered(&d.other);
                self.identity.unmerge(a, b, ev.position);
            }
            Facts::SegmentDefined(_)
            | Facts::SegmentRetired
            | Facts::AlertAcknowledged(_)
            | Facts::AlertResolved(_)
            | Facts::AlertAssigned(_)
            | Facts::AlertReviewed(_)
            | Facts::AlertMerged(_)
            | Facts::ProblemOpened(_)
            | Facts::ProblemLinked(_)
            | Facts::ProblemResolved(_)
            | Facts::ClockTicked
            | Facts::IdentityRulesDefined(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        // A fixed seed: every run checks the same cases.
        #![proptest_config(ProptestConfig {
            cases: 2000,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d6f_6e65_7933),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]
        /// Packing loses nothing: any time chrono holds (leap-second nanoseconds
        /// included), any decimal, any code of capital letters.
        #[test]
        fn a_packed_purchase_gives_back_exactly_what_it_was_made_of(
            seconds in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..2_000_000_000,
            lo in any::<u32>(), mid in any::<u32>(), hi in any::<u32>(),
            negative in any::<bool>(),
            scale in 0u32..=28,
            code in proptest::array::uniform3(b'A'..=b'Z'),
        ) {
            let at = DateTime::from_timestamp(seconds, nanos % 1_000_000_000)
                .or_else(|| DateTime::from_timestamp(seconds, 0))
                .unwrap();
            // A leap second's nanoseconds, where chrono allows them.
            let at = DateTime::from_timestamp(seconds, nanos).unwrap_or(at);
            let amount = Decimal::from_parts(lo, mid, hi, negative, scale);
            let m = Money3::new(at, amount, code).unwrap();
            prop_assert_eq!(m.at(), at);
            prop_assert_eq!(m.amount().serialize(), amount.serialize());
            prop_assert_eq!(m.currency_code(), code);
            prop_assert_eq!(m.currency().as_bytes(), &code);
            let back: Money3 = postcard::from_bytes(&postcard::to_stdvec(&m).unwrap()).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!(m.moment(), Moment::from(at));
        }

        /// Moments order as the times they were made of, leap seconds included.
        #[test]
        fn moments_order_as_times_do(
            a in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            near in -2i64..=2,
            na in 0u32..2_000_000_000,
            nb in 0u32..2_000_000_000,
        ) {
            let time = |s: i64, n: u32| {
                DateTime::from_timestamp(s, n).or_else(|| DateTime::from_timestamp(s, n % 1_000_000_000))
            };
            let b = a.saturating_add(near);
            if let (Some(x), Some(y)) = (time(a, na), time(b, nb)) {
                prop_assert_eq!(Moment::from(x).cmp(&Moment::from(y)), x.cmp(&y));
            }
        }
    }

    #[test]
    fn a_purchase_is_24_bytes_and_refuses_a_currency_of_other_characters() {
        assert_eq!(std::mem::size_of::<Money3>(), 24);
        let at = DateTime::from_timestamp(0, 0).unwrap();
        assert!(Money3::new(at, Decimal::ONE, *b"GBP").is_some());
        for bad in [*b"gbp", *b"GB1", *b"G\0P"] {
            assert!(Money3::new(at, Decimal::ONE, bad).is_none());
        }
    }

    #[test]
    fn packed_words_that_no_purchase_makes_are_refused_when_read() {
        let at = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let good = Money3::new(at, Decimal::new(-1234, 2), *b"EUR").unwrap();
        let read = |w: [u64; 3]| postcard::from_bytes::<Money3>(&postcard::to_stdvec(&w).unwrap());
        assert_eq!(read(good.0).unwrap(), good);
        let scale_29 = [good.0[0], good.0[1] & !(0x1f << 32) | 29 << 32, good.0[2]];
        let past_zzz = [good.0[0], good.0[1] | 0x7fff << 38, good.0[2]];
        let past_chrono = [good.0[0], good.0[1] | 0x7ff << 53, good.0[2]];
        let nanos_past_two_seconds = [good.0[0], good.0[1], good.0[2] | u64::MAX << 33];
        for bad in [scale_29, past_zzz, past_chrono, nanos_past_two_seconds] {
            assert!(read(bad).is_err(), "{bad:x?}");
        }
    }

    /// A million profiles are a fifth of the memory target: a profile stays within the
    /// allocator's 192-byte size class.
    #[test]
    fn a_profile_fits_in_192_bytes() {
        assert!(
            std::mem::size_of::<Profile>() <= 192,
            "Profile is {} bytes",
            std::mem::size_of::<Profile>()
        );
    }

    fn with_ids(ids: impl IntoIterator<Item = String>) -> Customers {
        let mut c = Customers::default();
        for id in ids {
            c.profiles.push(Profile {
                id: id.into(),
                first_seen: DateTime::from_timestamp(c.profiles.len() as i64, 7),
                ..Profile::default()
            });
        }
        let profiles = &c.profiles;
        let numbers =
            crate::interned::numbered_table(profiles.len(), |n| profiles[n as usize].id.as_str());
        c.numbers = Numbers(numbers.expect("distinct ids"));
        c
    }

    /// The profile count comes first; one that the bytes after it cannot hold is refused
    /// before anything is reserved for it, and one its chunk does not hold is refused too.
    #[test]
    fn a_snapshot_claiming_more_profiles_than_it_holds_is_refused() {
        let c = with_ids(["a".to_owned()]);
        let bytes = c.snapshot_bytes();
        assert_eq!(Customers::from_snapshot_bytes(&bytes, 1).unwrap(), c);
        // position 0 (one byte), then the count: 1.
        assert_eq!(bytes[..2], [0, 1]);
        for claimed in [1usize << 40, 2] {
            let mut forged = bytes[..1].to_vec();
            forged.extend(postcard::to_stdvec(&claimed).unwrap());
            forged.extend(&bytes[2..]);
            assert!(
                Customers::from_snapshot_bytes(&forged, 1).is_err(),
                "{claimed}"
            );
        }
    }

    #[test]
    fn profiles_in_several_chunks_come_back_in_order_and_numbered() {
        let n = 2 * SNAPSHOT_PROFILES_PER_CHUNK + 5;
        let c = with_ids((0..n).map(|i| format!("c-{i}")));
        let bytes = c.snapshot_bytes();
        let back = Customers::from_snapshot_bytes(&bytes, 2).unwrap();
        assert_eq!(back, c);
        assert_eq!(Customers::from_snapshot_bytes(&bytes, 1).unwrap(), c);
        assert_eq!(back.profiles.len(), n);
        assert_eq!(back.number("c-0"), Some(0));
        assert_eq!(back.number(&format!("c-{}", n - 1)), Some(n as u32 - 1));
        let last = &back.profiles[n - 1];
        assert_eq!(last.first_seen, DateTime::from_timestamp(n as i64 - 1, 7));
    }
}
