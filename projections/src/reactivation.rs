//! Which dormant customers are worth winning back, and why; and what campaigns achieved.
//!
//! For every customer whose lifecycle state (as of `as_of`) is `dormant` or `churned`:
//!
//! - **value**: average order value (net of refunds) × orders per year while active, in the main currency
//!   (orders per year = orders ÷ years between first purchase and `as_of`, at least 1/12
//!   of a year);
//! - **p_alive**: how likely the customer is still "alive" — a documented simplification
//!   of the BG/NBD idea, `1 / (1 + t / T)`, where `t` is the time since the last purchase
//!   and `T` the customer's mean gap between purchases (or 90 days after a single
//!   purchase): the longer the silence relative to their own rhythm, the less likely;
//! - **reach**: how reachable they are through the community, `1 + 0.5·[referrer is
//!   active] + 0.25·(active referees) + 0.1·min(active co-members of their communities, 20)`;
//!   "active" means `new`, `active` or `reactivated` as of `as_of`;
//! - **score** = value × p_alive × reach, and `recently_contacted` when they were
//!   contacted in the 30 days before `as_of` (shown, not penalised: the marketer decides).
//!
//! Campaigns: a contact *reactivated* a customer when the customer was `at_risk`,
//! `dormant` or `churned` at the time of the contact and bought within 30 days after it
//! (up to `as_of`); each customer counts once per campaign.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use rust_decimal::{prelude::ToPrimitive, Decimal};
use serde::Serialize;

use crate::{
    customers::{Customers, Profile},
    lifecycle::{Lifecycle, LifecycleConfig},
};

pub const RECENT_CONTACT_DAYS: i64 = 30;
pub const ATTRIBUTION_DAYS: i64 = 30;
const SINGLE_PURCHASE_GAP_DAYS: f64 = 90.0;
const CO_MEMBERS_MAX: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub customer: String,
    pub lifecycle: Lifecycle,
    pub days_since_last_purchase: i64,
    pub orders: usize,
    pub revenue: Decimal,
    /// Expected value per year while active, main currency.
    pub value: Decimal,
    pub p_alive: f64,
    pub reach: f64,
    pub active_referrer: Option<String>,
    pub active_referees: usize,
    pub active_co_members: usize,
    pub recently_contacted: bool,
    pub score: f64,
    /// The channels the customer may be contacted on for marketing, as of the ranking.
    pub marketing_channels: Vec<rapport_events::data::ConsentChannel>,
}

fn is_active(s: Lifecycle) -> bool {
    matches!(
        s,
        Lifecycle::New | Lifecycle::Active | Lifecycle::Reactivated
    )
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Ranked candidates (highest score first; ties by customer id).
pub fn candidates(
    c: &Customers,
    lc: &LifecycleConfig,
    as_of: DateTime<Utc>,
    currency: &str,
) -> Vec<Candidate> {
    // Read in no order (the ranking's ties are broken by id below), and by number: a
    // million ids are neither sorted nor hashed.
    let profiles: Vec<(u32, &Profile)> = c.people_numbered().collect();
    let mut states = States(vec![None; c.len()]);
    for (n, p) in &profiles {
        states.0[*n as usize] = Some(lc.state(p, as_of));
    }
    // Active members per community, by the community's name number.
    let mut active_members: HashMap<u32, usize> = HashMap::new();
    for (n, p) in &profiles {
        if states.of(*n).is_some_and(is_active) {
            for g in p.communities.numbers() {
                *active_members.entry(g).or_default() += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (n, p) in &profiles {
        let Some(state) = states.of(*n) else { continue };
        if !matches!(state, Lifecycle::Dormant | Lifecycle::Churned) {
            continue;
        }
        out.push(candidate(
            c,
            p,
            state,
            &states,
            &active_members,
            as_of,
            currency,
        ));
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.customer.cmp(&b.customer))
    });
    out
}

/// Each person's state, by the number of its root id (`None` for the other ids of a
/// person: a tie to one of them counts for nothing, as a tie to an unknown id).
struct States(Vec<Option<Lifecycle>>);

impl States {
    fn of(&self, n: u32) -> Option<Lifecycle> {
        self.0.get(n as usize).copied().flatten()
    }
}

fn candidate(
    c: &Customers,
    p: &Profile,
    state: Lifecycle,
    states: &States,
    active_members: &HashMap<u32, usize>,
    as_of: DateTime<Utc>,
    currency: &str,
) -> Candidate {
    let n = p.orders_until(as_of);
    let purchases = &p.purchases[..n];
    let (first, last) = (purchases[0].at(), purchases[n - 1].at());
    let in_currency = purchases
        .iter()
        .filter(|x| x.currency() == currency)
        .count();
    let revenue = p.net_revenue_in(as_of, currency);
    // Net of refunds: an order that was cancelled in full is worth nothing.
    let net = revenue.max(Decimal::ZERO);
    let aov = if in_currency == 0 {
        Decimal::ZERO
    } else {
        net / Decimal::from(in_currency as u64)
    };
    let years = ((as_of - first).num_days() as f64 / 365.0).max(1.0 / 12.0);
    let per_year = in_currency as f64 / years;
    let value = (aov * Decimal::try_from(per_year).unwrap_or_default()).round_dp(2);
    let since_days = (as_of - last).num_seconds() as f64 / 86_400.0;
    let gap_days = if n >= 2 {
        (last - first).num_seconds() as f64 / 86_400.0 / (n - 1) as f64
    } else {
        SINGLE_PURCHASE_GAP_DAYS
    }
    .max(1.0);
    let p_alive = 1.0 / (1.0 + since_days / gap_days);
    let active_referrer = p
        .referred_by
        .filter(|&r| states.of(r).is_some_and(is_active))
        .and(c.referred_by(p))
        .map(str::to_owned);
    let active_referees = p
        .referees
        .iter()
        .filter(|&&r| states.of(r).is_some_and(is_active))
        .count();
    let active_co_members: usize = p
        .communities
        .numbers()
        .map(|g| active_members.get(&g).copied().unwrap_or(0))
        .sum::<usize>()
        .min(CO_MEMBERS_MAX);
    let reach = 1.0
        + if active_referrer.is_some() { 0.5 } else { 0.0 }
        + 0.25 * active_referees as f64
        + 0.1 * active_co_members as f64;
    let recently_contacted = p
        .last_contacted_at()
        .is_some_and(|t| t <= as_of && as_of - t <= Duration::days(RECENT_CONTACT_DAYS));
    let score = value.to_f64().unwrap_or(0.0) * p_alive * reach;
    Candidate {
        customer: p.id.to_string(),
        lifecycle: state,
        days_since_last_purchase: (as_of - last).num_days(),
        orders: n,
        revenue,
        value,
        p_alive: round4(p_alive),
        reach: round4(reach),
        active_referrer,
        active_referees,
        active_co_members,
        recently_contacted,
        score: round4(score),
        marketing_channels: p.marketing_channels(as_of),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub campaign: String,
    pub contacts: usize,
    pub customers: usize,
    /// Customers who were lapsing when contacted and bought within 30 days after.
    pub reactivated: usize,
    pub reactivated_customers: Vec<String>,
    /// Contacts on a channel without the customer's marketing consent at that time.
    pub contacted_without_consent: usize,
}

pub fn campaigns(c: &Customers, lc: &LifecycleConfig, as_of: DateTime<Utc>) -> Vec<Campaign> {
    let mut by: BTreeMap<&str, (usize, BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    let mut unconsented: BTreeMap<String, usize> = BTreeMap::new();
    // Sets and counts: the order people are read in does not matter.
    for p in c.people() {
        for m in p.contacts_without_consent(as_of) {
            *unconsented.entry(m.campaign.to_string()).or_default() += 1;
        }
        for (campaign, times) in p.campaigns() {
            let e = by.entry(campaign).or_default();
            for t in times.iter().filter(|t| **t <= as_of) {
                e.0 += 1;
                e.1.insert(p.id.as_str());
                let lapsing = matches!(
                    lc.state(p, *t),
                    Lifecycle::AtRisk | Lifecycle::Dormant | Lifecycle::Churned
                );
                let bought_after = p.purchases.iter().any(|x| {
                    x.at() > *t && x.at() <= (*t + Duration::days(ATTRIBUTION_DAYS)).min(as_of)
                });
                if lapsing && bought_after {
                    e.2.insert(p.id.as_str());
                }
            }
        }
    }
    by.into_iter()
        .filter(|(_, (n, ..))| *n > 0)
        .map(|(name, (contacts, who, re))| Campaign {
            campaign: name.to_owned(),
            contacts,
            customers: who.len(),
            reactivated: re.len(),
            reactivated_customers: re.into_iter().map(str::to_owned).collect(),
            contacted_without_consent: unconsented.get(name).copied().unwrap_or(0),
        })
        .collect()
}
