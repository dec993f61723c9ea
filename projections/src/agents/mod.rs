//! Agent networks: who recruited whom, what agents bought and sold, what they were paid
//! for, and whether a network looks like pyramid selling (`risk.rs`).
//!
//! A network is a top-level agent and everything under it. An agent joins under its
//! upline; an upline named before it joined is an agent from then on (it recruited).
//! When a top-level agent later joins under someone, its whole network moves under that
//! agent's. A purchase by an agent is the agent's own purchase (stock or own use); a
//! purchase by anyone else that names an agent in `sold_by` is that agent's retail sale
//! to an end customer. Every figure a network shows is a sum kept as events arrive, so
//! evaluating a network's risk after each event costs the same however large it is.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Datelike, Utc};
use rapport_events::{data::CommissionBasis, fold as facts, Facts, FoldEvent};
use serde::{Deserialize, Serialize};

use crate::warnings::Level;

mod amounts;
mod risk;
mod view;

pub use amounts::Amounts;
pub use risk::{PyramidConfig, Signs};
pub use view::{AgentView, NetworkView};

/// Levels above an agent whose downline counts are kept exact: a join walks up at most
/// this many uplines (a deeper chain is itself the finding).
pub const CHAIN_WALK_MAX: usize = 256;
/// Months of figures each agent keeps for its sell-through window.
pub const AGENT_MONTHS_KEPT: usize = 3;
/// Participants named on a pyramid alert (the network's count is in its evidence).
pub const ALERT_PARTICIPANTS_MAX: usize = 100;
/// Orders of agents' own purchases remembered, so that a commission paid on one is known
/// as pay unrelated to retail (the oldest are forgotten first; commissions follow their
/// orders within days).
pub const OWN_ORDERS_KEPT: usize = 200_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub upline: Option<String>,
    /// An upline refused because it would have made a cycle.
    pub upline_refused: Option<String>,
    pub root: String,
    /// 0 for a top-level agent.
    pub depth: u32,
    pub children: Vec<String>,
    pub downline: u32,
    /// `None` for an agent known only as someone's upline.
    pub joined_at: Option<DateTime<Utc>>,
    pub left_at: Option<DateTime<Utc>>,
    pub tier: Option<String>,
    pub fee: Amounts,
    pub own_purchases: Amounts,
    pub own_orders: u32,
    pub retail: Amounts,
    pub retail_orders: u32,
    /// Commissions by basis: retail, recruitment, team.
    pub commissions: [Amounts; 3],
    pub last_active: Option<DateTime<Utc>>,
    /// Whether it paid to join (a fee, or own purchase within `entry_days` before any
    /// retail sale).
    pub paid_entry: bool,
    /// (month number, retail, own purchases) for the latest months with either.
    pub months: Vec<(i32, Amounts, Amounts)>,
}

impl Agent {
    pub fn is_active(&self) -> bool {
        self.left_at.is_none()
    }
}

/// Figures of one month of a network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Month {
    pub recruits: u32,
    pub retail_orders: u32,
    pub own_orders: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub root: String,
    /// Agents in it by depth (index 0: the top agent).
    pub per_level: Vec<u32>,
    pub participants: u32,
    pub left: u32,
    pub fees: Amounts,
    pub own_purchases: Amounts,
    pub own_orders: u32,
    pub retail: Amounts,
    pub retail_orders: u32,
    pub commissions: [Amounts; 3],
    pub commission_count: u32,
    /// Commissions unrelated to sales to end customers: for recruitment, and any paid on
    /// an order that was an agent's own purchase (an override on stock bought).
    pub unrelated_pay: Amounts,
    pub paid_entry: u32,
    /// Agents who left holding stock (sell-through below `stocked_sell_through`).
    pub stocked_and_left: u32,
    pub months: BTreeMap<i32, Month>,
    /// The level of its pyramid risk (levels never go down).
    pub level: Option<Level>,
    /// Where it first reached the legal scale, and where its risk first reached
    /// `warning` (the evaluation measures the distance).
    pub scale_at: Option<u64>,
    pub flagged_at: Option<u64>,
    /// Participants when its alert was last described.
    pub described_at_participants: u32,
}

impl Network {
    pub fn levels(&self) -> u32 {
        self.per_level
            .iter()
            .rposition(|n| *n > 0)
            .map_or(0, |i| i as u32 + 1)
    }

    fn all_pay(&self) -> Amounts {
        let mut all = self.commissions[0].clone();
        all.add_all(&self.commissions[1]);
        all.add_all(&self.commissions[2]);
        all
    }

    /// The share of commissions (by amount) paid for recruiting (`basis: recruitment`).
    pub fn recruitment_share(&self) -> Option<f64> {
        self.commissions[1].ratio(&self.all_pay())
    }

    /// The share of commissions unrelated to sales to end customers: for recruiting, or
    /// on agents' own purchases (all team commissions too, when configured so).
    pub fn unrelated_share(&self, cfg: &PyramidConfig) -> Option<f64> {
        let mut pay = self.unrelated_pay.clone();
        if cfg.team_counts_as_recruitment {
            pay = self.commissions[1].clone();
            pay.add_all(&self.commissions[2]);
        }
        pay.ratio(&self.all_pay())
    }

    /// Agents' own purchases ÷ their retail sales (infinite with no retail at all).
    pub fn loading(&self) -> Option<f64> {
        if self.own_purchases.is_zero() {
            return None;
        }
        Some(
            self.own_purchases
                .ratio(&self.retail)
                .unwrap_or(f64::INFINITY),
        )
    }

    /// The share of the network's revenue that is agents' own purchases.
    pub fn own_purchase_share(&self) -> Option<f64> {
        self.own_purchases.share_of_total(&self.retail)
    }

    pub fn signs(&self, cfg: &PyramidConfig) -> Signs {
        let enough_pay = self.commission_count >= cfg.min_evidence;
        let enough_buying = self.own_orders >= cfg.min_evidence;
        Signs {
            scale: self.participants >= cfg.min_participants && self.levels() >= cfg.min_levels,
            recruitment_pay: enough_pay
                && self
                    .unrelated_share(cfg)
                    .is_some_and(|s| s >= cfg.recruitment_share),
            paid_entry: self.participants > 0
                && f64::from(self.paid_entry) / f64::from(self.participants) >= cfg.entry_share,
            loading: enough_buying && self.loading().is_some_and(|r| r >= cfg.loading_ratio),
        }
    }
}

/// A flagged network touched by an event: what its alert shows now.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskChange {
    pub root: String,
    pub level: Level,
    pub participants: u32,
    /// Its first agents, when the change is announced (the risk rose, or the network
    /// grew by a tenth); `None`: the evidence is brought up to date quietly.
    pub members: Option<Vec<String>>,
    pub sentences: Vec<crate::said::Said>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agents {
    config: PyramidConfig,
    clock: Option<DateTime<Utc>>,
    agents: BTreeMap<String, Agent>,
    networks: BTreeMap<String, Network>,
    /// Order ids of agents' own purchases, and the order they came in (to forget the
    /// oldest).
    own_orders: BTreeSet<String>,
    own_orders_queue: VecDeque<String>,
}

impl Default for Agents {
    fn default() -> Self {
        Agents::new(PyramidConfig::default())
    }
}

fn month_of(t: DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

impl Agents {
    pub fn new(config: PyramidConfig) -> Agents {
        Agents {
            config,
            clock: None,
            agents: BTreeMap::new(),
            networks: BTreeMap::new(),
            own_orders: BTreeSet::new(),
            own_orders_queue: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &PyramidConfig {
        &self.config
    }

    pub fn clock(&self) -> Option<DateTime<Utc>> {
        self.clock
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn is_agent(&self, id: &str) -> bool {
        self.agents.get(id).is_some_and(Agent::is_active)
    }

    pub fn network(&self, root: &str) -> Option<&Network> {
        self.networks.get(root)
    }

    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.networks.values()
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The agents of the network under `root`, top first then by id, level by level.
    pub fn members(&self, root: &str) -> Vec<&str> {
        let mut out = vec![];
        let Some((root, _)) = self.agents.get_key_value(root) else {
            return out;
        };
        let mut level = vec![root.as_str()];
        while !level.is_empty() && out.len() < self.agents.len() {
            out.extend(level.iter().copied());
            let mut next: Vec<&str> = level
                .iter()
                .filter_map(|a| self.agents.get(*a))
                .flat_map(|a| a.children.iter().map(String::as_str))
                .collect();
            next.sort_unstable();
            level = next;
        }
        out
    }

    /// Folds one event; returns the risk change of the network it touched, if any.
    pub fn apply(&mut self, ev: &FoldEvent) -> Option<RiskChange> {
        if ev.event_type.records_business_time() && self.clock.is_none_or(|c| ev.occurred_at > c) {
            self.clock = Some(ev.occurred_at);
        }
        let touched = match &ev.data {
            Facts::AgentJoined(d) => self.join(ev, d),
            Facts::AgentLeft => self.leave(ev),
            Facts::CommissionPaid(d) => self.commission(ev, d),
            Facts::Purchase(d) => self.purchase(ev, d),
            _ => None,
        }?;
        self.evaluate(&touched, ev.position)
    }

    fn ensure(&mut self, id: &str) {
        if !self.agents.contains_key(id) {
            self.agents.insert(
                id.to_owned(),
                Agent {
                    root: id.to_owned(),
                    ..Agent::default()
                },
            );
            let net = self.networks.entry(id.to_owned()).or_default();
            net.root = id.to_owned();
            net.per_level = vec![1];
            net.participants = 1;
        }
    }

    fn join(&mut self, ev: &FoldEvent, d: &facts::AgentJoined) -> Option<String> {
        let me = ev.customer.as_str();
        let at = ev.occurred_at;
        let known = self.agents.contains_key(me);
        self.ensure(me);
        let cfg_entry = d.fee.is_some_and(|f| f > rust_decimal::Decimal::ZERO);
        let rejoin = known && self.agents[me].joined_at.is_some();
        {
            let a = self.agents.get_mut(me).expect("ensured");
            if a.joined_at.is_none() {
                a.joined_at = Some(at);
            }
            let was_left = a.left_at.take().is_some();
            if d.tier.is_some() {
                a.tier = d.tier.clone();
            }
            if let (Some(fee), Some(cur)) = (d.fee, d.currency) {
                a.fee.add(cur, fee);
            }
            let newly_paid = cfg_entry && !a.paid_entry;
            a.paid_entry |= cfg_entry;
            let root = a.root.clone();
            let net = self
                .networks
                .get_mut(&root)
                .expect("every root has a network");
            if was_left {
                net.left = net.left.saturating_sub(1);
            }
            if let (Some(fee), Some(cur)) = (d.fee, d.currency) {
                net.fees.add(cur, fee);
            }
            if newly_paid {
                net.paid_entry += 1;
            }
        }
        if let Some(up) = d.upline.as_deref().filter(|u| *u != me) {
            let has_upline = self.agents[me].upline.is_some();
            if !has_upline {
                self.attach(me, up);
            }
        }
        if !rejoin {
            let root = self.agents[me].root.clone();
            let net = self
                .networks
                .get_mut(&root)
                .expect("every root has a network");
            net.months.entry(month_of(at)).or_default().recruits += 1;
        }
        Some(self.agents[me].root.clone())
    }

    /// Puts `me` (a top-level agent, with its network) under `up`, unless `up` is in
    /// `me`'s own network below it (a cycle).
    fn attach(&mut self, me: &str, up: &str) {
        if self.agents.get(up).is_some_and(|a| a.root == me) {
            self.agents.get_mut(me).expect("known").upline_refused = Some(up.to_owned());
            return;
        }
        self.ensure(up);
        let old_root = self.agents[me].root.clone();
        debug_assert_eq!(old_root, me, "only a top-level agent gets an upline");
        let new_root = self.agents[up].root.clone();
        let offset = self.agents[up].depth + 1;
        let moved = self
            .networks
            .remove(me)
            .expect("a top-level agent has a network");
        // Ancestors count the moved agents in their downline.
        let mut walk = Some(up.to_owned());
        for _ in 0..CHAIN_WALK_MAX {
            let Some(id) = walk else { break };
            let a = self.agents.get_mut(&id).expect("uplines are agents");
            a.downline += moved.participants;
            walk = a.upline.clone();
        }
        {
            let a = self.agents.get_mut(me).expect("known");
            a.upline = Some(up.to_owned());
        }
        self.agents
            .get_mut(up)
            .expect("ensured")
            .children
            .push(me.to_owned());
        // Every agent of the moved network: its root and depth.
        let mut stack = vec![me.to_owned()];
        while let Some(id) = stack.pop() {
            let a = self.agents.get_mut(&id).expect("children are agents");
            a.root = new_root.clone();
            a.depth += offset;
            stack.extend(a.children.iter().cloned());
        }
        let net = self
            .networks
            .get_mut(&new_root)
            .expect("every root has a network");
        for (i, n) in moved.per_level.iter().enumerate() {
            let level = i + offset as usize;
            if net.per_level.len() <= level {
                net.per_level.resize(level + 1, 0);
            }
            net.per_level[level] += n;
        }
        net.participants += moved.participants;
        net.left += moved.left;
        net.fees.add_all(&moved.fees);
        net.own_purchases.add_all(&moved.own_purchases);
        net.own_orders += moved.own_orders;
        net.retail.add_all(&moved.retail);
        net.retail_orders += moved.retail_orders;
        for (into, from) in net.commissions.iter_mut().zip(&moved.commissions) {
            into.add_all(from);
        }
        net.commission_count += moved.commission_count;
        net.unrelated_pay.add_all(&moved.unrelated_pay);
        net.paid_entry += moved.paid_entry;
        net.stocked_and_left += moved.stocked_and_left;
        for (m, f) in moved.months {
            let into = net.months.entry(m).or_default();
            into.recruits += f.recruits;
            into.retail_orders += f.retail_orders;
            into.own_orders += f.own_orders;
        }
        net.scale_at = net.scale_at.or(moved.scale_at);
    }

    fn leave(&mut self, ev: &FoldEvent) -> Option<String> {
        let sell_through = self.config.stocked_sell_through;
        let a = self.agents.get_mut(&ev.customer)?;
        if a.left_at.is_some() {
            return None;
        }
        a.left_at = Some(ev.occurred_at);
        let stocked = !a.own_purchases.is_zero()
            && a.retail.ratio(&a.own_purchases).unwrap_or(0.0) < sell_through;
        let root = a.root.clone();
        let net = self
            .networks
            .get_mut(&root)
            .expect("every root has a network");
        net.left += 1;
        if stocked {
            net.stocked_and_left += 1;
        }
        Some(root)
    }

    fn commission(&mut self, ev: &FoldEvent, d: &facts::Commission) -> Option<String> {
        let (Some(amount), Some(cur)) = (d.amount, d.currency) else {
            return None;
        };
        self.ensure(&ev.customer);
        let i = basis_index(d.basis);
        let unrelated = d.basis == CommissionBasis::Recruitment
            || d.order_id
                .as_ref()
                .is_some_and(|o| self.own_orders.contains(o.as_str()));
        let a = self.agents.get_mut(&ev.customer).expect("ensured");
        a.commissions[i].add(cur, amount);
        let root = a.root.clone();
        let net = self
            .networks
            .get_mut(&root)
            .expect("every root has a network");
        net.commissions[i].add(cur, amount);
        net.commission_count += 1;
        if unrelated {
            net.unrelated_pay.add(cur, amount);
        }
        Some(root)
    }

    fn purchase(&mut self, ev: &FoldEvent, d: &facts::Purchase) -> Option<String> {
        let (Some(amount), Some(cur)) = (d.amount, d.currency) else {
            return None;
        };
        if amount <= rust_decimal::Decimal::ZERO {
            return None;
        }
        let at = ev.occurred_at;
        let month = month_of(at);
        let entry_days = self.config.days(self.config.entry_days);
        if self.is_agent(&ev.customer) {
            if let Some(o) = &d.order_id {
                if self.own_orders.insert(o.to_string()) {
                    self.own_orders_queue.push_back(o.to_string());
                    if self.own_orders_queue.len() > OWN_ORDERS_KEPT {
                        if let Some(old) = self.own_orders_queue.pop_front() {
                            self.own_orders.remove(&old);
                        }
                    }
                }
            }
            let stock_from = self.stock_threshold(&ev.customer, cur);
            let a = self.agents.get_mut(&ev.customer).expect("an agent");
            a.own_purchases.add(cur, amount);
            a.own_orders += 1;
            a.last_active = Some(a.last_active.map_or(at, |l| l.max(at)));
            bump_month(&mut a.months, month, cur, amount, false);
            // Stock bought on joining, before selling anything: worth several of the
            // network's orders to end customers (a sample is not a price of entry).
            let entry_purchase = !a.paid_entry
                && a.retail_orders == 0
                && amount >= stock_from
                && a.joined_at.is_some_and(|j| at >= j && at - j <= entry_days);
            a.paid_entry |= entry_purchase;
            let root = a.root.clone();
            let net = self
                .networks
                .get_mut(&root)
                .expect("every root has a network");
            net.own_purchases.add(cur, amount);
            net.own_orders += 1;
            net.months.entry(month).or_default().own_orders += 1;
            if entry_purchase {
                net.paid_entry += 1;
            }
            return Some(root);
        }
        let seller = d.sold_by.as_deref().filter(|s| *s != ev.customer)?;
        if !self.is_agent(seller) {
            return None;
        }
        let a = self.agents.get_mut(seller).expect("an agent");
        a.retail.add(cur, amount);
        a.retail_orders += 1;
        a.last_active = Some(a.last_active.map_or(at, |l| l.max(at)));
        bump_month(&mut a.months, month, cur, amount, true);
        let root = a.root.clone();
        let net = self
            .networks
            .get_mut(&root)
            .expect("every root has a network");
        net.retail.add(cur, amount);
        net.retail_orders += 1;
        net.months.entry(month).or_default().retail_orders += 1;
        Some(root)
    }

    /// The smallest own purchase that counts as stock bought to join: `entry_stock_orders`
    /// times the network's average order to end customers in that currency (any amount
    /// while it has none).
    fn stock_threshold(&self, agent: &str, cur: [u8; 3]) -> rust_decimal::Decimal {
        let Some(net) = self
            .agents
            .get(agent)
            .and_then(|a| self.networks.get(&a.root))
        else {
            return rust_decimal::Decimal::ZERO;
        };
        let code = std::str::from_utf8(&cur).unwrap_or("");
        let retail = net.retail.get(code);
        if net.retail_orders == 0 || retail.is_zero() {
            return rust_decimal::Decimal::ZERO;
        }
        let per_order = retail / rust_decimal::Decimal::from(net.retail_orders);
        let times = rust_decimal::Decimal::from_f64_retain(self.config.entry_stock_orders)
            .unwrap_or(rust_decimal::Decimal::ONE);
        per_order
            .checked_mul(times)
            .unwrap_or(rust_decimal::Decimal::MAX)
    }

    /// Re-reads the network's signs after an event that touched it.
    fn evaluate(&mut self, root: &str, position: u64) -> Option<RiskChange> {
        let cfg = &self.config;
        let net = self.networks.get_mut(root)?;
        let signs = net.signs(cfg);
        if signs.scale && net.scale_at.is_none() {
            net.scale_at = Some(position);
        }
        let level = signs.level(net.participants, cfg);
        let rose = level > net.level;
        if !rose && net.level.is_none() {
            return None;
        }
        // A flagged network's evidence follows every event (its sentences come from sums);
        // its agents are listed again, and the change announced, as it grows by a tenth.
        let grew =
            net.participants > net.described_at_participants + net.described_at_participants / 10;
        if rose {
            net.level = level;
            if level >= Some(Level::Warning) && net.flagged_at.is_none() {
                net.flagged_at = Some(position);
            }
        }
        let announce = rose || grew;
        if announce {
            net.described_at_participants = net.participants;
        }
        let level = net.level?;
        let participants = net.participants;
        let sentences = self.sentences(root);
        let members = announce.then(|| {
            self.members(root)
                .into_iter()
                .take(ALERT_PARTICIPANTS_MAX)
                .map(str::to_owned)
                .collect()
        });
        Some(RiskChange {
            root: root.to_owned(),
            level,
            participants,
            members,
            sentences,
        })
    }

    /// The evidence of a network's risk, in sentences from its figures.
    pub fn sentences(&self, root: &str) -> Vec<crate::said::Said> {
        use crate::said::Said;
        let Some(net) = self.networks.get(root) else {
            return vec![];
        };
        let cfg = &self.config;
        let mut out = vec![Said::new(
            "network-size",
            &[
                ("agents", net.participants.to_string()),
                ("levels", net.levels().to_string()),
                ("root", root.to_owned()),
            ],
        )];
        let percent = |s: f64| format!("{:.0}", s * 100.0);
        if let Some(s) = net.recruitment_share() {
            out.push(Said::new("recruitment-share", &[("percent", percent(s))]));
        }
        if let Some(s) = net
            .unrelated_share(cfg)
            .filter(|u| Some(*u) != net.recruitment_share())
        {
            out.push(Said::new("unrelated-share", &[("percent", percent(s))]));
        }
        match net.loading() {
            Some(r) if r.is_finite() => {
                out.push(Said::new("loading", &[("times", format!("{r:.1}"))]))
            }
            Some(_) => out.push(Said::new("loading-no-retail", &[])),
            None => {}
        }
        if net.paid_entry > 0 {
            let fees = net
                .fees
                .iter()
                .map(|(c, a)| format!("{a} {c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let (paid, agents) = (net.paid_entry.to_string(), net.participants.to_string());
            out.push(if fees.is_empty() {
                Said::new("paid-entry-stock", &[("paid", paid), ("agents", agents)])
            } else {
                Said::new(
                    "paid-entry",
                    &[("paid", paid), ("agents", agents), ("fees", fees)],
                )
            });
        }
        if net.stocked_and_left > 0 {
            out.push(Said::new(
                "stocked-left",
                &[("agents", net.stocked_and_left.to_string())],
            ));
        }
        out
    }
}

fn basis_index(b: CommissionBasis) -> usize {
    match b {
        CommissionBasis::Retail => 0,
        CommissionBasis::Recruitment => 1,
        CommissionBasis::Team => 2,
    }
}

fn bump_month(
    months: &mut Vec<(i32, Amounts, Amounts)>,
    month: i32,
    cur: [u8; 3],
    amount: rust_decimal::Decimal,
    retail: bool,
) {
    let i = match months.binary_search_by_key(&month, |m| m.0) {
        Ok(i) => i,
        Err(i) => {
            months.insert(i, (month, Amounts::default(), Amounts::default()));
            i
        }
    };
    if retail {
        months[i].1.add(cur, amount);
    } else {
        months[i].2.add(cur, amount);
    }
    if months.len() > AGENT_MONTHS_KEPT {
        months.remove(0);
    }
}

#[cfg(test)]
mod tests;
