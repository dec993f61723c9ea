//! Lifecycle states at the end of each month: how many buyers were new, active, at risk,
//! dormant … as each month closed, from the month of the first purchase to `as_of`.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::{Lifecycle, LifecycleConfig};
use crate::{customers::Moment, Customers};

/// One month's close: `YYYY-MM` and the number of buyers in each state then (customers
/// who had bought by then; prospects are not counted).
pub type MonthStates = (String, BTreeMap<Lifecycle, usize>);

/// The last second of a month.
fn month_end(year: i32, month: u32) -> Option<DateTime<Utc>> {
    let (y, m) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let first = NaiveDate::from_ymd_opt(y, m, 1)?
        .and_hms_opt(0, 0, 0)?
        .and_utc();
    Some(first - Duration::seconds(1))
}

/// Buyers by lifecycle state at the end of every month from the first purchase's month
/// to the month of `as_of` (that last month counted at `as_of`), the latest `months`
/// months at most (clamped to 1..=[`crate::cohorts::MONTHS_MAX`]). Each person is read
/// once, at every month end from their first purchase on.
pub fn by_month(
    c: &Customers,
    lc: &LifecycleConfig,
    as_of: DateTime<Utc>,
    months: u32,
) -> Vec<MonthStates> {
    let months = months.clamp(1, crate::cohorts::MONTHS_MAX) as i32;
    let people: Vec<_> = c.people().collect();
    let first = people
        .iter()
        .filter_map(|p| p.purchases.first().map(|x| x.at()))
        .min();
    let Some(first) = first.filter(|f| *f <= as_of) else {
        return Vec::new();
    };
    let index = |y: i32, m: u32| y * 12 + m as i32 - 1;
    let from =
        index(first.year(), first.month()).max(index(as_of.year(), as_of.month()) - months + 1);
    let first = (from.div_euclid(12), from.rem_euclid(12) as u32 + 1);
    let mut ends: Vec<(String, DateTime<Utc>)> = Vec::new();
    let (mut y, mut m) = first;
    while let Some(end) = month_end(y, m).map(|e| e.min(as_of)) {
        ends.push((format!("{y:04}-{m:02}"), end));
        if end >= as_of {
            break;
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    let moments: Vec<Moment> = ends.iter().map(|(_, end)| Moment::from(*end)).collect();
    let mut counts = vec![[0usize; Lifecycle::ALL.len()]; ends.len()];
    for p in &people {
        let Some(bought) = p.purchases.first().map(|x| x.at()) else {
            continue;
        };
        // Counted from the first month end at or after the first purchase.
        let from = ends.partition_point(|(_, end)| *end < bought);
        for (i, end) in moments.iter().enumerate().skip(from) {
            counts[i][lc.state_at(p, *end) as usize] += 1;
        }
    }
    ends.into_iter()
        .zip(counts)
        .map(|((month, _), n)| {
            let states = Lifecycle::ALL
                .into_iter()
                .zip(n)
                .filter(|(_, n)| *n > 0)
                .collect();
            (month, states)
        })
        .collect()
}
