//! RFM: recency, frequency and monetary value, scored 1–5 by quintile as of a date, and the
//! standard named segments.
//!
//! - Recency: days from the last purchase to `as_of` (fewer is better: 5).
//! - Frequency: purchases up to `as_of`.
//! - Monetary: revenue net of refunds in one currency up to `as_of`.
//!
//! Scores: customers are ranked by the value (ties by customer id); a customer's score is
//! `1 + ⌊5 · r / n⌋` where `r` is the rank of the *first* customer with the same value, so
//! equal values always get equal scores. Segments use R and F (the usual grid):
//!
//! | segment | R | F |
//! |---|---|---|
//! | Champions | 5 | 4–5 |
//! | Loyal | 3–4 | 4–5 |
//! | Potential Loyalist | 4–5 | 2–3 |
//! | New | 5 | 1 |
//! | Promising | 4 | 1 |
//! | Need Attention | 3 | 3 |
//! | About to Sleep | 3 | 1–2 |
//! | At Risk | 1–2 | 3–4 |
//! | Can't Lose Them | 1–2 | 5 |
//! | Hibernating | 1–2 | 1–2, except R1 F1 |
//! | Lost | 1 | 1 |

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::customers::Customers;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RfmRow {
    pub customer: String,
    pub recency_days: i64,
    pub frequency: u64,
    pub monetary: Decimal,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: &'static str,
}

pub const SEGMENTS: &[&str] = &[
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
];

pub fn segment(r: u8, f: u8) -> &'static str {
    match (r, f) {
        (5, 4..=5) => "Champions",
        (3..=4, 4..=5) => "Loyal",
        (4..=5, 2..=3) => "Potential Loyalist",
        (5, 1) => "New",
        (4, 1) => "Promising",
        (3, 3) => "Need Attention",
        (3, 1..=2) => "About to Sleep",
        (1..=2, 3..=4) => "At Risk",
        (1..=2, 5) => "Can't Lose Them",
        (1, 1) => "Lost",
        _ => "Hibernating",
    }
}

/// Scores `values` (higher is better) into quintiles; ties share the score of their first rank.
fn quintiles<T: Ord + Copy>(values: &[(T, &str)]) -> Vec<u8> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Equal values share the score of the first of them, so their order among
    // themselves does not matter.
    order.sort_unstable_by(|&a, &b| values[a].0.cmp(&values[b].0));
    let mut scores = vec![0u8; n];
    let mut first_rank = 0;
    for (rank, &i) in order.iter().enumerate() {
        if rank > 0 && values[order[rank - 1]].0 != values[i].0 {
            first_rank = rank;
        }
        scores[i] = 1 + (5 * first_rank / n) as u8;
    }
    scores
}

/// The amounts as integers of one scale (the largest among them), which order as the
/// amounts do; `None` when one would not fit.
fn integer_amounts(amounts: impl Iterator<Item = Decimal> + Clone) -> Option<Vec<i128>> {
    let scale = amounts.clone().map(|a| a.scale()).max().unwrap_or(0);
    amounts
        .map(|a| {
            10i128
                .checked_pow(scale - a.scale())
                .and_then(|f| a.mantissa().checked_mul(f))
        })
        .collect()
}

/// Customers and net revenue per segment, every segment listed (in [`SEGMENTS`] order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentTotal {
    pub segment: &'static str,
    pub customers: usize,
    pub monetary: Decimal,
}

/// One cell of the recency × frequency grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridCell {
    pub r: u8,
    pub f: u8,
    pub customers: usize,
    pub monetary: Decimal,
}

/// Customers and net revenue per recency and frequency score: 25 cells, recency 5
/// (most recent) first, then frequency 1 to 5.
pub fn grid(rows: &[RfmRow]) -> Vec<GridCell> {
    let mut out: Vec<GridCell> = (1..=5u8)
        .rev()
        .flat_map(|r| {
            (1..=5u8).map(move |f| GridCell {
                r,
                f,
                customers: 0,
                monetary: Decimal::ZERO,
            })
        })
        .collect();
    for row in rows {
        if (1..=5).contains(&row.r) && (1..=5).contains(&row.f) {
            let cell = &mut out[(5 - row.r as usize) * 5 + (row.f as usize - 1)];
            cell.customers += 1;
            cell.monetary = cell.monetary.saturating_add(row.monetary);
        }
    }
    out
}

pub fn segment_totals(rows: &[RfmRow]) -> Vec<SegmentTotal> {
    let mut out: Vec<SegmentTotal> = SEGMENTS
        .iter()
        .map(|s| SegmentTotal {
            segment: s,
            customers: 0,
            monetary: Decimal::ZERO,
        })
        .collect();
    for r in rows {
        if let Some(t) = out.iter_mut().find(|t| t.segment == r.segment) {
            t.customers += 1;
            t.monetary += r.monetary;
        }
    }
    out
}

/// The currency with the most purchases up to `as_of` (ties: alphabetical).
pub fn main_currency(customers: &Customers, as_of: DateTime<Utc>) -> Option<String> {
    // A firm has a handful of currencies: a short list beats a map over 10 M purchases.
    let mut counts: Vec<([u8; 3], &str, usize)> = Vec::new();
    let until = crate::customers::Moment::from(as_of);
    for p in customers.people() {
        for x in p.purchases.iter().take_while(|x| x.moment() <= until) {
            let code = x.currency_code();
            match counts.iter_mut().find(|(c, ..)| *c == code) {
                Some((.., n)) => *n += 1,
                None => counts.push((code, x.currency(), 1)),
            }
        }
    }
    counts
        .into_iter()
        .map(|(_, c, n)| (c, n))
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c.to_owned())
}

/// RFM rows of every customer with a purchase up to `as_of`, in customer-id order.
pub fn rfm(customers: &Customers, as_of: DateTime<Utc>, currency: &str) -> Vec<RfmRow> {
    let mut rows = scores(customers, as_of, currency);
    rows.sort_unstable_by(|a, b| a.customer.cmp(&b.customer));
    rows
}

/// RFM rows of every customer with a purchase up to `as_of`, in no particular order (for
/// totals: no sort of a million ids).
pub fn scores(customers: &Customers, as_of: DateTime<Utc>, currency: &str) -> Vec<RfmRow> {
    let mut rows = Vec::new();
    for p in customers.people() {
        let n = p.orders_until(as_of);
        if n == 0 {
            continue;
        }
        let last = p.purchases[n - 1].at();
        rows.push(RfmRow {
            customer: p.id.to_string(),
            recency_days: (as_of - last).num_days(),
            frequency: n as u64,
            monetary: p.net_revenue_in(as_of, currency),
            r: 0,
            f: 0,
            m: 0,
            segment: "",
        });
    }
    let r: Vec<(i64, &str)> = rows
        .iter()
        .map(|x| (-x.recency_days, x.customer.as_str()))
        .collect();
    let f: Vec<(u64, &str)> = rows
        .iter()
        .map(|x| (x.frequency, x.customer.as_str()))
        .collect();
    let ms = match integer_amounts(rows.iter().map(|x| x.monetary)) {
        // The same order, compared as integers (decimal comparison was most of the cost).
        Some(keys) => quintiles(
            &keys
                .into_iter()
                .zip(&rows)
                .map(|(k, x)| (k, x.customer.as_str()))
                .collect::<Vec<_>>(),
        ),
        None => quintiles(
            &rows
                .iter()
                .map(|x| (x.monetary, x.customer.as_str()))
                .collect::<Vec<_>>(),
        ),
    };
    let (rs, fs) = (quintiles(&r), quintiles(&f));
    for (i, row) in rows.iter_mut().enumerate() {
        row.r = rs[i];
        row.f = fs[i];
        row.m = ms[i];
        row.segment = segment(row.r, row.f);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_of_different_scales_order_as_integers_as_they_do_as_decimals() {
        let amounts: Vec<Decimal> = [
            "10",
            "9.99",
            "10.001",
            "-3.5",
            "0",
            "10.00",
            "79228162514264337593543950335",
            "0.0000000000000000000000000001",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(
            integer_amounts(amounts.iter().copied()),
            None,
            "the largest does not fit at scale 28"
        );
        let small = &amounts[..6];
        let keys = integer_amounts(small.iter().copied()).unwrap();
        for (i, a) in small.iter().enumerate() {
            for (j, b) in small.iter().enumerate() {
                assert_eq!(keys[i].cmp(&keys[j]), a.cmp(b), "{a} against {b}");
            }
        }
    }

    #[test]
    fn a_quintile_counts_the_values_below_so_ties_share_a_score_whatever_their_order() {
        let mut seed = 7u64;
        let ids: Vec<String> = (0..500).map(|i| format!("c-{i}")).collect();
        let values: Vec<(u64, &str)> = ids
            .iter()
            .map(|id| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((seed >> 33) % 17, id.as_str())
            })
            .collect();
        let got = quintiles(&values);
        for (i, (v, _)) in values.iter().enumerate() {
            let below = values.iter().filter(|(w, _)| w < v).count();
            assert_eq!(got[i], 1 + (5 * below / values.len()) as u8);
        }
        let mut reversed = values.clone();
        reversed.reverse();
        let mut again = quintiles(&reversed);
        again.reverse();
        assert_eq!(again, got);
    }

    #[test]
    fn every_score_pair_has_exactly_one_segment_and_all_eleven_are_used() {
        let mut used = std::collections::BTreeSet::new();
        for r in 1..=5 {
            for f in 1..=5 {
                used.insert(segment(r, f));
            }
        }
        assert_eq!(used.len(), SEGMENTS.len());
    }

    #[test]
    fn ties_share_a_score_and_scores_span_one_to_five() {
        let v = [
            (1, "a"),
            (1, "b"),
            (2, "c"),
            (3, "d"),
            (4, "e"),
            (5, "f"),
            (6, "g"),
            (7, "h"),
            (8, "i"),
            (9, "j"),
        ];
        let s = quintiles(&v);
        assert_eq!(s, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        let same = [(7, "a"), (7, "b"), (7, "c")];
        assert_eq!(quintiles(&same), [1, 1, 1]);
    }
}
