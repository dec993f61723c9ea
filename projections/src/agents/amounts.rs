//! Exact sums of money per currency. Programmes are normally in one currency; ratios
//! between sums are read in the currency that holds most of the money compared.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Sums per currency code, sorted by code. A sum that would pass the decimal type's
/// maximum stays at it (amounts are bounded on input, so this takes ~10¹⁶ maximal
/// amounts; a fold never panics on it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts(Vec<(String, Decimal)>);

impl Amounts {
    pub fn add(&mut self, currency: [u8; 3], amount: Decimal) {
        let code = std::str::from_utf8(&currency).unwrap_or("XXX");
        match self.0.binary_search_by(|(c, _)| c.as_str().cmp(code)) {
            Ok(i) => {
                let s = &mut self.0[i].1;
                *s = s.checked_add(amount).unwrap_or(Decimal::MAX);
            }
            Err(i) => self.0.insert(i, (code.to_owned(), amount)),
        }
    }

    pub fn add_all(&mut self, other: &Amounts) {
        for (c, a) in &other.0 {
            if let Ok(code) = <[u8; 3]>::try_from(c.as_bytes()) {
                self.add(code, *a);
            }
        }
    }

    pub fn get(&self, currency: &str) -> Decimal {
        self.0
            .iter()
            .find(|(c, _)| c == currency)
            .map_or(Decimal::ZERO, |(_, a)| *a)
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|(_, a)| a.is_zero())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Decimal)> {
        self.0.iter().map(|(c, a)| (c.as_str(), *a))
    }

    /// The currency holding most of `self` and `other` together (ties: the first code).
    pub fn main_currency<'a>(&'a self, other: &'a Amounts) -> Option<&'a str> {
        let mut best: Option<(&str, Decimal)> = None;
        for (c, _) in self.iter().chain(other.iter()) {
            let total = self.get(c).saturating_add(other.get(c));
            if best.is_none_or(|(bc, b)| total > b || (total == b && c < bc)) {
                best = Some((c, total));
            }
        }
        best.map(|(c, _)| c)
    }

    /// `self ÷ other` in their main currency; `None` when `other` is zero there.
    pub fn ratio(&self, other: &Amounts) -> Option<f64> {
        let c = self.main_currency(other)?;
        let (a, b) = (self.get(c), other.get(c));
        if b.is_zero() {
            return None;
        }
        rust_decimal::prelude::ToPrimitive::to_f64(&a.checked_div(b)?)
    }

    /// `self ÷ (self + other)` in their main currency.
    pub fn share_of_total(&self, other: &Amounts) -> Option<f64> {
        let mut total = self.clone();
        total.add_all(other);
        self.ratio(&total)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(c, a)| (c.clone(), serde_json::Value::String(a.to_string())))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_read_in_the_currency_holding_most_money() {
        let mut own = Amounts::default();
        own.add(*b"CNY", Decimal::new(500, 0));
        own.add(*b"USD", Decimal::new(1, 0));
        let mut retail = Amounts::default();
        retail.add(*b"CNY", Decimal::new(100, 0));
        assert_eq!(own.ratio(&retail), Some(5.0));
        assert_eq!(retail.ratio(&Amounts::default()), None);
        assert!((retail.share_of_total(&own).unwrap() - 1.0 / 6.0).abs() < 1e-12);
        let mut huge = Amounts::default();
        huge.add(*b"CNY", Decimal::MAX);
        huge.add(*b"CNY", Decimal::MAX);
        assert_eq!(huge.get("CNY"), Decimal::MAX);
    }
}
