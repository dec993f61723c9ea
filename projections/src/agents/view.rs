//! What the API shows of an agent and of a network, as of the projection's clock.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{basis_index, month_of, Agent, Agents, Network};
use rapport_events::data::CommissionBasis;

/// An agent's figures (`GET /v1/agents/{id}`).
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub id: String,
    pub network: String,
    /// Uplines from the nearest to the top agent.
    pub upline_chain: Vec<String>,
    pub upline_refused: Option<String>,
    pub depth: u32,
    pub level: u32,
    pub tier: Option<String>,
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub direct_downline: Vec<String>,
    pub total_downline: u32,
    pub retail_sales: Value,
    pub retail_orders: u32,
    pub own_purchases: Value,
    pub own_orders: u32,
    /// Retail sales ÷ own purchases over all time and over the latest months.
    pub sell_through: Option<f64>,
    pub sell_through_recent: Option<f64>,
    pub recent_months: usize,
    pub entry_fees: Value,
    pub paid_entry: bool,
    pub commissions: Value,
    pub last_active: Option<DateTime<Utc>>,
    /// No purchase and no sale for `quiet_days` of event time.
    pub quiet: bool,
    /// Left, or went quiet, with most of what it bought unsold.
    pub stocked_and_gone: bool,
}

/// A network's figures (`GET /v1/agents/networks`).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkView {
    pub root: String,
    pub participants: u32,
    pub active: u32,
    pub left: u32,
    pub levels: u32,
    pub per_level: Vec<u32>,
    pub retail_sales: Value,
    pub own_purchases: Value,
    /// Share of the network's revenue that is agents' own purchases.
    pub own_purchase_share: Option<f64>,
    /// Agents' own purchases ÷ their retail sales.
    pub loading_ratio: Option<f64>,
    pub commissions: Value,
    pub recruitment_commission_share: Option<f64>,
    /// Share of commissions unrelated to retail: for recruitment or on agents' own
    /// purchases (what the `recruitment_pay` sign reads).
    pub unrelated_commission_share: Option<f64>,
    pub entry_fees: Value,
    pub paid_entry: u32,
    /// Recruits and retail orders in the latest three months against the three before.
    pub growth: Value,
    pub stocked_and_left: u32,
    pub stocked_and_quiet: u32,
    pub signs: super::Signs,
    pub risk: Option<crate::warnings::Level>,
    /// A number to rank by: the level, then how many criteria hold, then size.
    pub risk_rank: u64,
    pub evidence: Vec<String>,
    /// `evidence` as data, for readers in other languages.
    pub said: Vec<crate::said::Said>,
}

fn ratio_or_none(r: Option<f64>) -> Option<f64> {
    r.filter(|r| r.is_finite())
        .map(|r| (r * 1000.0).round() / 1000.0)
}

fn commissions_json(c: &[super::Amounts; 3]) -> Value {
    let mut m = serde_json::Map::new();
    for b in CommissionBasis::ALL {
        m.insert(b.as_str().into(), c[basis_index(b)].to_json());
    }
    Value::Object(m)
}

impl Agents {
    fn quiet(&self, a: &Agent, now: Option<DateTime<Utc>>) -> bool {
        let since = a.last_active.or(a.joined_at);
        match (now, since) {
            (Some(now), Some(s)) => now - s >= self.config.days(self.config.quiet_days),
            _ => false,
        }
    }

    fn stocked(&self, a: &Agent) -> bool {
        !a.own_purchases.is_zero()
            && a.retail.ratio(&a.own_purchases).unwrap_or(0.0) < self.config.stocked_sell_through
    }

    pub fn agent_view(&self, id: &str) -> Option<AgentView> {
        let a = self.agents.get(id)?;
        let now = self.clock;
        let mut chain = vec![];
        let mut up = a.upline.as_deref();
        while let Some(u) = up {
            if chain.len() >= super::CHAIN_WALK_MAX {
                break;
            }
            chain.push(u.to_owned());
            up = self.agents.get(u).and_then(|x| x.upline.as_deref());
        }
        // The window: the latest months kept, when they are recent.
        let recent_from = now
            .map(month_of)
            .map(|m| m - super::AGENT_MONTHS_KEPT as i32 + 1);
        let (mut retail, mut own) = (super::Amounts::default(), super::Amounts::default());
        for (m, r, o) in &a.months {
            if recent_from.is_some_and(|f| *m >= f) {
                retail.add_all(r);
                own.add_all(o);
            }
        }
        let quiet = a.is_active() && self.quiet(a, now);
        let mut children = a.children.clone();
        children.sort();
        Some(AgentView {
            id: id.to_owned(),
            network: a.root.clone(),
            upline_chain: chain,
            upline_refused: a.upline_refused.clone(),
            depth: a.depth,
            level: a.depth + 1,
            tier: a.tier.clone(),
            joined_at: a.joined_at,
            left_at: a.left_at,
            direct_downline: children,
            total_downline: a.downline,
            retail_sales: a.retail.to_json(),
            retail_orders: a.retail_orders,
            own_purchases: a.own_purchases.to_json(),
            own_orders: a.own_orders,
            sell_through: ratio_or_none(a.retail.ratio(&a.own_purchases)),
            sell_through_recent: ratio_or_none(retail.ratio(&own)),
            recent_months: super::AGENT_MONTHS_KEPT,
            entry_fees: a.fee.to_json(),
            paid_entry: a.paid_entry,
            commissions: commissions_json(&a.commissions),
            last_active: a.last_active,
            quiet,
            stocked_and_gone: (a.left_at.is_some() || quiet) && self.stocked(a),
        })
    }

    pub fn network_view(&self, net: &Network) -> NetworkView {
        let cfg = &self.config;
        let now = self.clock;
        let members = self.members(&net.root);
        let stocked_and_quiet = members
            .iter()
            .filter_map(|m| self.agents.get(*m))
            .filter(|a| a.is_active() && self.quiet(a, now) && self.stocked(a))
            .count() as u32;
        let this = now.map(month_of);
        let sum = |from: i32, to: i32| {
            net.months
                .range(from..=to)
                .fold((0u32, 0u32), |(r, o), (_, m)| {
                    (r + m.recruits, o + m.retail_orders)
                })
        };
        let growth = match this {
            Some(m) => {
                let (r1, s1) = sum(m - 2, m);
                let (r0, s0) = sum(m - 5, m - 3);
                json!({
                    "recruits_latest_3_months": r1, "recruits_previous_3_months": r0,
                    "retail_orders_latest_3_months": s1, "retail_orders_previous_3_months": s0,
                })
            }
            None => json!({}),
        };
        let signs = net.signs(cfg);
        let held = [
            signs.scale,
            signs.recruitment_pay,
            signs.paid_entry,
            signs.loading,
        ]
        .iter()
        .filter(|b| **b)
        .count() as u64;
        let level_rank = net.level.map_or(0, |l| l as u64 + 1);
        let said = self.sentences(&net.root);
        NetworkView {
            root: net.root.clone(),
            participants: net.participants,
            active: net.participants - net.left,
            left: net.left,
            levels: net.levels(),
            per_level: net.per_level[..net.levels() as usize].to_vec(),
            retail_sales: net.retail.to_json(),
            own_purchases: net.own_purchases.to_json(),
            own_purchase_share: ratio_or_none(net.own_purchase_share()),
            loading_ratio: ratio_or_none(net.loading()),
            commissions: commissions_json(&net.commissions),
            recruitment_commission_share: ratio_or_none(net.recruitment_share()),
            unrelated_commission_share: ratio_or_none(net.unrelated_share(cfg)),
            entry_fees: net.fees.to_json(),
            paid_entry: net.paid_entry,
            growth,
            stocked_and_left: net.stocked_and_left,
            stocked_and_quiet,
            signs,
            risk: net.level,
            risk_rank: level_rank << 40 | held << 32 | u64::from(net.participants),
            evidence: said.iter().map(crate::said::Said::english).collect(),
            said,
        }
    }
}
