//! Monthly acquisition cohorts: customers grouped by the month of their first purchase;
//! for each cohort and month offset, how many of them purchased in that month, the
//! retention percentage, and the revenue of those purchases. A purchase counts when its
//! amount is positive; refunds and cancellations are not purchases (and are not
//! subtracted from cohort revenue).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::customers::Customers;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    /// `YYYY-MM` of the first purchase.
    pub cohort: String,
    pub customers: usize,
    pub periods: Vec<CohortPeriod>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CohortPeriod {
    /// Months after the cohort's month (0 = the cohort's own month).
    pub offset: u32,
    pub customers: usize,
    /// `customers / cohort size × 100`, rounded half-even to two places.
    pub retention_pct: Decimal,
    /// Revenue of the purchases in that month, per currency.
    pub revenue: BTreeMap<String, Decimal>,
}

fn month_index(t: DateTime<Utc>) -> i32 {
    t.year() * 12 + t.month0() as i32
}

fn month_label(i: i32) -> String {
    format!("{:04}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1)
}

/// One cohort's month: how many of its buyers bought in it, and their revenue per
/// currency.
type Cell = (usize, BTreeMap<String, Decimal>);

/// Months a cohort table spans by default: its latest cohorts and their first months.
pub const MONTHS_DEFAULT: u32 = 36;
/// The most months a cohort table may span (twenty years): its size is bounded by the
/// square of this, whatever dates the log holds.
pub const MONTHS_MAX: u32 = 240;

/// The cohort table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// The cohorts of the latest `months` months, oldest first, each with its first
    /// `months` periods at most.
    pub cohorts: Vec<Cohort>,
    pub months: u32,
    /// Buyers whose first purchase came before the table's first month (counted, not
    /// shown).
    pub earlier_customers: usize,
}

/// The cohorts of the `months` months up to `as_of` (clamped to 1..=[`MONTHS_MAX`]).
pub fn monthly(customers: &Customers, as_of: DateTime<Utc>, months: u32) -> Table {
    let months = months.clamp(1, MONTHS_MAX);
    let last = month_index(as_of);
    let first_shown = last - months as i32 + 1;
    let mut earlier = 0;
    // cohort month → offset → (distinct customers, revenue per currency)
    let mut cells: BTreeMap<i32, BTreeMap<u32, Cell>> = BTreeMap::new();
    let mut sizes: BTreeMap<i32, usize> = BTreeMap::new();
    // Counts and sums: the order people are read in does not matter.
    for p in customers.people() {
        let n = p.orders_until(as_of);
        if n == 0 {
            continue;
        }
        let first = month_index(p.purchases[0].at());
        if first < first_shown {
            earlier += 1;
            continue;
        }
        *sizes.entry(first).or_default() += 1;
        let cohort = cells.entry(first).or_default();
        // Purchases are in time order, so a person's months come in order: each counts
        // them once.
        let mut counted = None;
        for x in &p.purchases[..n] {
            let offset = (month_index(x.at()) - first) as u32;
            let cell = cohort.entry(offset).or_default();
            if counted != Some(offset) {
                cell.0 += 1;
                counted = Some(offset);
            }
            match cell.1.get_mut(x.currency()) {
                Some(sum) => *sum += x.amount(),
                None => {
                    cell.1.insert(x.currency().to_owned(), x.amount());
                }
            }
        }
    }
    let cohorts = sizes
        .into_iter()
        .map(|(month, size)| {
            let mut cohort_cells = cells.remove(&month).unwrap_or_default();
            let periods = (0..=(last - month).max(0) as u32)
                .map(|offset| {
                    let (who, revenue) = cohort_cells.remove(&offset).unwrap_or_default();
                    let pct = (Decimal::from(who as u64) * Decimal::ONE_HUNDRED
                        / Decimal::from(size as u64))
                    .round_dp(2);
                    CohortPeriod {
                        offset,
                        customers: who,
                        retention_pct: pct,
                        revenue,
                    }
                })
                .collect();
            Cohort {
                cohort: month_label(month),
                customers: size,
                periods,
            }
        })
        .collect();
    Table {
        cohorts,
        months,
        earlier_customers: earlier,
    }
}
