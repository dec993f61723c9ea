//! What the API shows of a community: its figures as of the projection's clock, with what
//! the customers, lifecycle and warnings projections know of its members.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{month_of, Community};
use crate::customers::Moment;

use crate::{
    lifecycle::{Lifecycle, LifecycleConfig},
    warnings::Warnings,
    Customers,
};

/// Leaders listed per measure, and dormant members listed on a community's page.
pub(crate) const LEADERS_MAX: usize = 5;
pub(crate) const DORMANT_LISTED_MAX: usize = 20;
/// Months of the revenue and membership series on a community's page.
pub(crate) const SERIES_MONTHS: i32 = 12;

#[derive(Debug, Clone, Serialize)]
pub struct CommunitySummary {
    pub id: String,
    pub members: usize,
    pub joined_total: u32,
    pub left_total: u32,
    /// Members who posted in it or bought in the window (the latest `window_months`
    /// months of event time, this one included).
    pub active_members: usize,
    pub window_months: u32,
    pub posts_in_window: u32,
    pub complaints_in_window: u32,
    /// Complaints in the window per member.
    pub complaint_rate: f64,
    /// Members' revenue net of refunds, per currency, all time; and in the window against
    /// the window before it (in the currency holding most of it).
    pub member_revenue: BTreeMap<String, String>,
    pub revenue_in_window: BTreeMap<String, String>,
    pub revenue_trend: Option<f64>,
    /// Members who are dormant or at risk: worth reactivating through the community.
    pub dormant_members: usize,
    pub open_alerts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Leader {
    pub customer: String,
    pub value: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommunityDetail {
    #[serde(flatten)]
    pub summary: CommunitySummary,
    /// Per month: joined, left, members at its end, posts, complaints, members' revenue.
    pub months: Vec<serde_json::Value>,
    pub leaders: BTreeMap<&'static str, Vec<Leader>>,
    /// The dormant and at-risk members, most revenue first.
    pub dormant: Vec<serde_json::Value>,
}

fn month_name(m: i32) -> String {
    format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1)
}

fn strings(m: BTreeMap<String, Decimal>) -> BTreeMap<String, String> {
    m.into_iter().map(|(k, v)| (k, v.to_string())).collect()
}

/// The first instant of month number `m` (`year × 12 + month0`), packed.
fn month_start(m: i32) -> Moment {
    let start = chrono::NaiveDate::from_ymd_opt(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    Moment::from(start)
}

fn add(into: &mut BTreeMap<String, Decimal>, currency: &str, amount: Decimal) {
    // The currency's name is allocated once per map, not once a purchase.
    match into.get_mut(currency) {
        Some(e) => *e = e.checked_add(amount).unwrap_or(Decimal::MAX),
        None => {
            into.insert(currency.to_owned(), amount);
        }
    }
}

/// What a community's figures are read with.
pub struct Context<'a> {
    pub customers: &'a Customers,
    pub lifecycle: &'a LifecycleConfig,
    pub as_of: DateTime<Utc>,
    pub window_months: u32,
    /// Active alerts by community they touch, read once for every community listed.
    open_alerts: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Context<'a> {
    pub fn new(
        customers: &'a Customers,
        warnings: &'a Warnings,
        lifecycle: &'a LifecycleConfig,
        as_of: DateTime<Utc>,
        window_months: u32,
    ) -> Context<'a> {
        let mut open_alerts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for a in warnings.alerts().filter(|a| a.status.is_active()) {
            for c in &a.evidence.communities {
                open_alerts
                    .entry(c.as_str())
                    .or_default()
                    .push(a.id.as_str());
            }
        }
        Context {
            customers,
            lifecycle,
            as_of,
            window_months,
            open_alerts,
        }
    }
}

impl Community {
    /// Its members now (what `sort=size` orders by, without reading each member).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn summary(&self, id: &str, cx: &Context) -> CommunitySummary {
        let now = month_of(cx.as_of);
        let from = now - cx.window_months.max(1) as i32 + 1;
        let before = from - cx.window_months.max(1) as i32;
        let (as_of, from_start, before_start) = (
            Moment::from(cx.as_of),
            month_start(from),
            month_start(before),
        );
        let in_window = self.months.range(from..=now);
        let (posts, complaints) =
            in_window.fold((0, 0), |(p, c), (_, m)| (p + m.posts, c + m.complaints));
        let (mut revenue, mut window, mut previous) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let (mut active, mut dormant) = (0, 0);
        for (n, m) in &self.members {
            let Some(p) = cx.customers.by_number(*n) else {
                continue;
            };
            let posted = m
                .last_post_at
                .is_some_and(|t| month_of(t) >= from && t <= cx.as_of);
            let mut bought = false;
            // Packed times: no calendar arithmetic per purchase.
            for x in p.purchases.iter().take_while(|x| x.moment() <= as_of) {
                add(&mut revenue, x.currency(), x.amount());
                if x.moment() >= from_start {
                    bought = true;
                    add(&mut window, x.currency(), x.amount());
                } else if x.moment() >= before_start {
                    add(&mut previous, x.currency(), x.amount());
                }
            }
            for r in p.refunds.iter().take_while(|x| x.moment() <= as_of) {
                add(&mut revenue, r.currency(), -r.amount());
            }
            active += usize::from(posted || bought);
            if matches!(
                cx.lifecycle.state_at(p, as_of),
                Lifecycle::Dormant | Lifecycle::AtRisk
            ) {
                dormant += 1;
            }
        }
        let main = window
            .iter()
            .chain(previous.iter())
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(c, _)| c.clone());
        let revenue_trend = main.and_then(|c| {
            let (w, p) = (window.get(&c).copied()?, previous.get(&c).copied()?);
            (!p.is_zero())
                .then(|| rust_decimal::prelude::ToPrimitive::to_f64(&(w / p)))
                .flatten()
        });
        let open_alerts = cx
            .open_alerts
            .get(id)
            .map(|ids| ids.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default();
        let members = self.members.len();
        CommunitySummary {
            id: id.to_owned(),
            members,
            joined_total: self.joined_total,
            left_total: self.left_total,
            active_members: active,
            window_months: cx.window_months.max(1),
            posts_in_window: posts,
            complaints_in_window: complaints,
            complaint_rate: if members == 0 {
                0.0
            } else {
                (f64::from(complaints) / members as f64 * 1000.0).round() / 1000.0
            },
            member_revenue: strings(revenue),
            revenue_in_window: strings(window),
            revenue_trend: revenue_trend.map(|t| (t * 1000.0).round() / 1000.0),
            dormant_members: dormant,
            open_alerts,
        }
    }

    pub fn detail(&self, id: &str, cx: &Context) -> CommunityDetail {
        let summary = self.summary(id, cx);
        let c = cx.customers;
        let now = month_of(cx.as_of);
        let first = now - SERIES_MONTHS + 1;
        // Members at the end of each month, counted back from now.
        let mut at_end = self.members.len() as i64;
        let mut rows = vec![];
        let mut revenue: BTreeMap<i32, BTreeMap<String, Decimal>> = BTreeMap::new();
        for n in self.members.keys() {
            if let Some(p) = c.by_number(*n) {
                for x in p.purchases.iter().take_while(|x| x.at() <= cx.as_of) {
                    let mo = month_of(x.at());
                    if mo >= first {
                        add(revenue.entry(mo).or_default(), x.currency(), x.amount());
                    }
                }
            }
        }
        for mo in (first..=now).rev() {
            let m = self.months.get(&mo).cloned().unwrap_or_default();
            rows.push(serde_json::json!({
                "month": month_name(mo), "joined": m.joined, "left": m.left,
                "members_at_end": at_end.max(0), "posts": m.posts, "complaints": m.complaints,
                "member_revenue": strings(revenue.remove(&mo).unwrap_or_default()),
            }));
            at_end -= i64::from(m.joined) - i64::from(m.left);
        }
        rows.reverse();
        let top = |f: &dyn Fn(u32, &super::Member) -> u64| {
            let mut v: Vec<Leader> = self
                .members
                .iter()
                .map(|(n, m)| (f(*n, m), *n))
                .filter(|(v, _)| *v > 0)
                .filter_map(|(value, n)| {
                    c.by_number(n).map(|p| Leader {
                        customer: p.id.to_string(),
                        value,
                    })
                })
                .collect();
            v.sort_by(|a, b| {
                b.value
                    .cmp(&a.value)
                    .then_with(|| a.customer.cmp(&b.customer))
            });
            v.truncate(LEADERS_MAX);
            v
        };
        let mut leaders = BTreeMap::new();
        leaders.insert("posts", top(&|_, m| u64::from(m.posts)));
        leaders.insert(
            "replies_received",
            top(&|_, m| u64::from(m.replies_received)),
        );
        leaders.insert("echoes_received", top(&|_, m| u64::from(m.echoes_received)));
        leaders.insert(
            "influence",
            top(&|n, _| c.by_number(n).map_or(0, |p| c.influence(p, cx.as_of))),
        );
        let mut dormant: Vec<(Decimal, String, Lifecycle, Option<DateTime<Utc>>)> = self
            .members
            .keys()
            .filter_map(|n| c.by_number(*n))
            .filter_map(|p| {
                let state = cx.lifecycle.state(p, cx.as_of);
                matches!(state, Lifecycle::Dormant | Lifecycle::AtRisk).then(|| {
                    let spent = p
                        .purchases
                        .iter()
                        .take_while(|x| x.at() <= cx.as_of)
                        .map(|x| x.amount())
                        .fold(Decimal::ZERO, |a, b| a.saturating_add(b));
                    (
                        spent,
                        p.id.to_string(),
                        state,
                        p.last_purchase_until(cx.as_of),
                    )
                })
            })
            .collect();
        dormant.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let dormant = dormant
            .into_iter()
            .take(DORMANT_LISTED_MAX)
            .map(|(spent, id, state, last)| {
                serde_json::json!({"customer": id, "lifecycle": state.as_str(),
                    "last_purchase_at": last, "spent": spent.to_string()})
            })
            .collect();
        CommunityDetail {
            summary,
            months: rows,
            leaders,
            dormant,
        }
    }
}
