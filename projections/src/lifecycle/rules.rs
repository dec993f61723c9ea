//! Lifecycle states and the customer/user distinction, computed for a reference time
//! `as_of` from the purchase history alone (deterministic, no clock).
//!
//! With the default thresholds (days since the last purchase):
//!
//! | state | rule |
//! |---|---|
//! | `prospect` | known, never bought (up to `as_of`) |
//! | `new` | first purchase within the last `new_days` (30) |
//! | `reactivated` | last purchase within `active_days` (90) and it came after a gap of more than `dormant_days` (180) |
//! | `active` | last purchase within `active_days` (90) |
//! | `at_risk` | last purchase 91–180 days ago |
//! | `dormant` | last purchase 181–365 days ago |
//! | `churned` | last purchase more than `churned_days` (365) ago |
//!
//! The first matching row wins. Because the state is a function of `as_of`, dormancy
//! "happens" without any new event: the state is re-evaluated whenever it is read, for the
//! `as_of` of the query (by default the time of the latest event in the log, never the
//! wall clock).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::customers::{Moment, Profile};

/// Thresholds, configurable (`rapport serve --config`); a missing field keeps its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    pub new_days: i64,
    pub active_days: i64,
    pub dormant_days: i64,
    pub churned_days: i64,
    /// A *user* has at least this many orders in the last `user_window_days`.
    pub user_min_orders: usize,
    pub user_window_days: i64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            new_days: 30,
            active_days: 90,
            dormant_days: 180,
            churned_days: 365,
            user_min_orders: 3,
            user_window_days: 365,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    Prospect,
    New,
    Active,
    Reactivated,
    AtRisk,
    Dormant,
    Churned,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Prospect => "prospect",
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Reactivated => "reactivated",
            Lifecycle::AtRisk => "at_risk",
            Lifecycle::Dormant => "dormant",
            Lifecycle::Churned => "churned",
        }
    }

    /// Every state, in lifecycle order (`prospect` first).
    pub const ALL: [Lifecycle; 7] = [
        Lifecycle::Prospect,
        Lifecycle::New,
        Lifecycle::Active,
        Lifecycle::Reactivated,
        Lifecycle::AtRisk,
        Lifecycle::Dormant,
        Lifecycle::Churned,
    ];

    pub fn parse(s: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// The domain's distinction between a one-off buyer and a lasting relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Never bought.
    Prospect,
    /// Bought, but not (or no longer) repeatedly: a transaction, not a relationship.
    Customer,
    /// A repeat buyer: at least `user_min_orders` orders in the last `user_window_days`
    /// and positive net revenue. This is who brings lasting profit.
    User,
}

impl LifecycleConfig {
    pub fn state(&self, p: &Profile, as_of: DateTime<Utc>) -> Lifecycle {
        self.state_at(p, Moment::from(as_of))
    }

    /// [`LifecycleConfig::state`] at a packed time: what tables over a million customers
    /// call, with no calendar arithmetic per call.
    pub fn state_at(&self, p: &Profile, as_of: Moment) -> Lifecycle {
        let n = p.purchases.partition_point(|x| x.moment() <= as_of);
        if n == 0 {
            return Lifecycle::Prospect;
        }
        let purchases = &p.purchases[..n];
        let first = purchases[0].moment();
        let last = purchases[n - 1].moment();
        let days = |d: i64| i128::from(d) * 86_400 * 1_000_000_000;
        let since = as_of.nanos_since(last);
        if as_of.nanos_since(first) <= days(self.new_days) {
            return Lifecycle::New;
        }
        if since <= days(self.active_days) {
            let gap_before_last =
                n >= 2 && last.nanos_since(purchases[n - 2].moment()) > days(self.dormant_days);
            return if gap_before_last {
                Lifecycle::Reactivated
            } else {
                Lifecycle::Active
            };
        }
        if since <= days(self.dormant_days) {
            Lifecycle::AtRisk
        } else if since <= days(self.churned_days) {
            Lifecycle::Dormant
        } else {
            Lifecycle::Churned
        }
    }

    /// The instants after which [`LifecycleConfig::state`] may answer differently with no
    /// new event: the end of being new, and the active, dormant and churned thresholds
    /// counted from the last purchase.
    pub fn state_thresholds(
        &self,
        p: &Profile,
        as_of: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> {
        let n = p.orders_until(as_of);
        let (first, last) = match n {
            0 => (None, None),
            n => (Some(p.purchases[0].at()), Some(p.purchases[n - 1].at())),
        };
        let new_ends = first.map(|f| f + Duration::days(self.new_days));
        let after_last = [self.active_days, self.dormant_days, self.churned_days]
            .into_iter()
            .filter_map(move |d| last.map(|l| l + Duration::days(d)));
        new_ends.into_iter().chain(after_last)
    }

    pub fn relationship(&self, p: &Profile, as_of: DateTime<Utc>) -> Relationship {
        let n = p.orders_until(as_of);
        if n == 0 {
            return Relationship::Prospect;
        }
        let since = as_of - Duration::days(self.user_window_days);
        let recent = p.purchases[..n].iter().filter(|x| x.at() > since).count();
        let net_positive = p
            .net_revenue(as_of)
            .values()
            .any(|v| v.is_sign_positive() && !v.is_zero());
        if recent >= self.user_min_orders && net_positive {
            Relationship::User
        } else {
            Relationship::Customer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customers::Money3;
    use rust_decimal::Decimal;

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::days(day)
    }

    fn with_purchases(days: &[i64]) -> Profile {
        Profile {
            purchases: days
                .iter()
                .map(|d| Money3::new(at(*d), Decimal::ONE, *b"GBP").unwrap())
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn states_follow_the_days_since_the_last_purchase() {
        let c = LifecycleConfig::default();
        let p = with_purchases(&[0, 40]);
        assert_eq!(
            c.state(&p, at(-1)),
            Lifecycle::Prospect,
            "nothing bought yet as of then"
        );
        assert_eq!(c.state(&p, at(10)), Lifecycle::New);
        assert_eq!(c.state(&p, at(100)), Lifecycle::Active);
        assert_eq!(c.state(&p, at(200)), Lifecycle::AtRisk);
        assert_eq!(c.state(&p, at(300)), Lifecycle::Dormant);
        assert_eq!(c.state(&p, at(500)), Lifecycle::Churned);
    }

    #[test]
    fn buying_again_after_dormancy_is_a_reactivation() {
        let c = LifecycleConfig::default();
        let p = with_purchases(&[0, 300]);
        assert_eq!(c.state(&p, at(310)), Lifecycle::Reactivated);
        assert_eq!(
            c.state(&p, at(420)),
            Lifecycle::AtRisk,
            "a reactivation that lapses is at risk again"
        );
    }

    #[test]
    fn a_user_buys_repeatedly_a_customer_once() {
        let c = LifecycleConfig::default();
        assert_eq!(
            c.relationship(&with_purchases(&[0]), at(1)),
            Relationship::Customer
        );
        assert_eq!(
            c.relationship(&with_purchases(&[0, 10, 20]), at(30)),
            Relationship::User
        );
        assert_eq!(
            c.relationship(&with_purchases(&[0, 10, 20]), at(500)),
            Relationship::Customer,
            "no longer repeat"
        );
    }
}
