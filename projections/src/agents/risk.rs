//! Pyramid risk: when an agent network looks like pyramid selling rather than a referral
//! programme. The criteria come from the law and regulators' guidance (`docs/agents.md`
//! gives the sources):
//!
//! - China's case-filing standard for organising pyramid selling (criminal law art.
//!   224-1; the 2022 prosecution standards, art. 70): at least 30 participants over at
//!   least 3 levels — [`PyramidConfig::min_participants`], [`PyramidConfig::min_levels`];
//!   pay based on recruiting — [`PyramidConfig::recruitment_share`]; a fee or a purchase
//!   to join — [`PyramidConfig::entry_share`].
//! - The FTC's tests (Koscot; the 2018 business guidance on multi-level marketing):
//!   rewards for recruiting unrelated to sales to end users (the same recruitment share),
//!   and purchases made to qualify rather than from demand — agents buying far more
//!   than they sell to end customers, [`PyramidConfig::loading_ratio`].
//!
//! Levels: `critical` when all four hold (the legal standard and inventory loading);
//! `warning` when the scale and recruitment pay hold with either of the others; `watch`
//! when, from `watch_participants` but before the legal scale, all three economic signs
//! hold (a young network that already sells places and stock). A programme whose agents mostly sell to end customers and whose
//! commissions are mostly for retail shows none of the economic signs, so it is never
//! flagged, however large or deep.

use serde::{Deserialize, Serialize};

use crate::warnings::Level;

/// The thresholds of pyramid risk (`early_warning.pyramid` in the configuration file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PyramidConfig {
    /// Participants (agents who ever joined, the top agent included) for the legal scale.
    pub min_participants: u32,
    /// Levels (the top agent is level 1) for the legal scale.
    pub min_levels: u32,
    /// Share of commissions (by amount) unrelated to sales to end customers (paid for
    /// recruitment, or on an order that was an agent's own purchase) from which pay is
    /// based on recruiting.
    pub recruitment_share: f64,
    /// Whether every `team` commission counts as unrelated to retail, whatever order it
    /// was paid on. Off by default: an override on real retail is legitimate.
    pub team_counts_as_recruitment: bool,
    /// Share of agents who paid to join from which joining has a price: a fee, or stock
    /// bought within `entry_days` of joining and before any retail sale, worth at least
    /// `entry_stock_orders` of the network's average orders to end customers.
    pub entry_share: f64,
    pub entry_days: i64,
    pub entry_stock_orders: f64,
    /// Agents' own purchases ÷ their retail sales to end customers from which agents
    /// are loaded with stock.
    pub loading_ratio: f64,
    /// Fewest participants for a `watch`.
    pub watch_participants: u32,
    /// Fewest commissions before the recruitment share is read, and fewest own purchases
    /// before the loading ratio is (a ratio of two orders says nothing).
    pub min_evidence: u32,
    /// An agent with no purchase and no sale for this many days of event time has gone
    /// quiet.
    pub quiet_days: i64,
    /// Sell-through below this (retail sales ÷ own purchases) is stock left unsold.
    pub stocked_sell_through: f64,
}

impl Default for PyramidConfig {
    fn default() -> Self {
        PyramidConfig {
            min_participants: 30,
            min_levels: 3,
            recruitment_share: 0.5,
            team_counts_as_recruitment: false,
            entry_share: 0.5,
            entry_days: 30,
            entry_stock_orders: 3.0,
            loading_ratio: 2.0,
            watch_participants: 10,
            min_evidence: 5,
            quiet_days: 90,
            stocked_sell_through: 0.5,
        }
    }
}

impl PyramidConfig {
    /// `n` days as a duration; a count past what time can hold is "forever", never a
    /// panic in the fold.
    pub fn days(&self, n: i64) -> chrono::Duration {
        chrono::Duration::try_days(n.max(0)).unwrap_or(chrono::Duration::MAX)
    }
}

/// Which criteria a network meets now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signs {
    /// At least `min_participants` over at least `min_levels`.
    pub scale: bool,
    pub recruitment_pay: bool,
    pub paid_entry: bool,
    pub loading: bool,
}

impl Signs {
    fn economic(&self) -> usize {
        [self.recruitment_pay, self.paid_entry, self.loading]
            .iter()
            .filter(|b| **b)
            .count()
    }

    /// The level these signs give, if any.
    pub fn level(&self, participants: u32, cfg: &PyramidConfig) -> Option<Level> {
        if self.scale && self.recruitment_pay && self.paid_entry && self.loading {
            Some(Level::Critical)
        } else if self.scale && self.recruitment_pay && (self.paid_entry || self.loading) {
            Some(Level::Warning)
        } else if participants >= cfg.watch_participants && self.economic() == 3 {
            Some(Level::Watch)
        } else {
            None
        }
    }
}
