//! Agents (代理, distributors): customers who resell to others and recruit further agents,
//! paid by commission. Three events describe a programme: an agent joining (under an
//! upline, perhaps for a fee), an agent leaving, and a commission paid, with what it was
//! paid for. A purchase names the agent credited with the sale in `sold_by`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::{customer_id, opt_short, opt_text};
use crate::{
    error::Errors,
    money::{Currency, Money},
};

/// The customer became an agent (`agent_joined`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentJoined {
    /// The customer id of the agent who recruited this one; absent for a top-level agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upline: Option<String>,
    /// What the agent paid to join (an entry fee, a starter pack paid as a fee).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Money>,
    /// Required with a fee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// The programme's name for the agent's rank (`bronze`, `一级代理` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// The agent left the programme (`agent_left`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentLeft {
    /// Personal (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a commission was paid for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CommissionBasis {
    /// On the agent's own sales to customers.
    Retail,
    /// For bringing in a new agent (a recruitment bonus, a share of the recruit's fee).
    Recruitment,
    /// An override on the sales or purchases of the agent's downline.
    Team,
}

impl CommissionBasis {
    pub const ALL: [CommissionBasis; 3] = [
        CommissionBasis::Retail,
        CommissionBasis::Recruitment,
        CommissionBasis::Team,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommissionBasis::Retail => "retail",
            CommissionBasis::Recruitment => "recruitment",
            CommissionBasis::Team => "team",
        }
    }
}

/// The firm paid the agent a commission (`commission_paid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionPaid {
    pub amount: Money,
    pub currency: Currency,
    pub basis: CommissionBasis,
    /// The order the commission is for (retail and team commissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The customer id of the recruit it is for (recruitment commissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recruit: Option<String>,
}

pub(super) fn check_joined(e: &mut Errors, d: &AgentJoined) {
    if let Some(u) = &d.upline {
        customer_id(e, "/upline", u);
    }
    if d.fee.is_some() && d.currency.is_none() {
        e.push("/currency", "is required with a fee");
    }
    opt_short(e, "/tier", &d.tier);
}

pub(super) fn check_left(e: &mut Errors, d: &AgentLeft) {
    opt_text(e, "/reason", &d.reason);
}

pub(super) fn check_commission(e: &mut Errors, d: &CommissionPaid) {
    if let Some(o) = &d.order_id {
        super::rules::id(e, "/order_id", o);
    }
    if let Some(r) = &d.recruit {
        customer_id(e, "/recruit", r);
    }
}
