//! Exposure: who bought what, recently, so an alert about a product or a SKU can name the
//! customers who bought it and have not complained (yet), with the money at stake.
//!
//! Each purchase line is filed under `sku:`, `product:`, `batch:` (the line's) and
//! `store:` (the order's), the same keys the detector files complaints under. Only the
//! last `days` days of event time are kept (swept once a day), which bounds the state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rapport_events::{Facts, FoldEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Customers;

/// A kept purchase line of one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Buy {
    /// The customer's number in [`Customers`].
    pub customer: u32,
    /// Unix seconds of the purchase.
    pub at: i64,
    /// Quantity × unit price of the line (absent when the line has no price). Written as
    /// the decimal's 16 bytes: its own serde form asks the format to say what comes next,
    /// which a postcard snapshot cannot (every snapshot holding one was unreadable).
    #[serde(with = "decimal_bytes")]
    pub amount: Option<Decimal>,
    pub currency: Option<[u8; 3]>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exposure {
    days: i64,
    clock: i64,
    swept_day: i64,
    /// key → its purchase lines in arrival order.
    buys: BTreeMap<String, Vec<Buy>>,
    /// The key being looked up (a buffer, so a known key costs no allocation).
    #[serde(skip)]
    key: String,
}

mod decimal_bytes {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.serialize()).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        Ok(Option::<[u8; 16]>::deserialize(d)?.map(Decimal::deserialize))
    }
}

/// Equal when they hold the same purchases (the lookup buffer is no state).
impl PartialEq for Exposure {
    fn eq(&self, other: &Exposure) -> bool {
        (self.days, self.clock, self.swept_day, &self.buys)
            == (other.days, other.clock, other.swept_day, &other.buys)
    }
}

/// One exposed customer: what they bought under the asked keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposed {
    pub customer: String,
    pub last_bought_at: DateTime<Utc>,
    pub lines: usize,
    /// Currency → the amount of their lines.
    pub amount: BTreeMap<String, Decimal>,
}

impl Exposure {
    pub fn new(days: i64) -> Exposure {
        Exposure {
            days: days.max(1),
            clock: i64::MIN,
            swept_day: i64::MIN,
            buys: BTreeMap::new(),
            key: String::new(),
        }
    }

    /// Days of purchases kept.
    pub fn days(&self) -> i64 {
        self.days
    }

    pub fn apply(&mut self, ev: &FoldEvent, customers: &Customers) {
        let Facts::Purchase(p) = &ev.data else {
            return;
        };
        let at = ev.occurred_at.timestamp();
        if at > self.clock {
            self.clock = at;
            self.sweep();
        }
        if at <= self.clock - self.days * 86_400 {
            return;
        }
        let Some(customer) = customers.number(&ev.customer) else {
            return;
        };
        for item in &p.items {
            let amount = item
                .unit_price
                .and_then(|u| u.checked_mul(Decimal::from(item.quantity.unwrap_or(1))));
            let buy = Buy {
                customer,
                at,
                amount,
                currency: p.currency,
            };
            let keys = [
                ("sku:", &item.sku),
                ("product:", &item.product),
                ("batch:", &item.batch),
                ("store:", &p.store),
            ];
            for (field, value) in keys {
                let Some(v) = value else { continue };
                // Appended in arrival order (a late event is not moved into place: the
                // queries filter by time), and the key built only when it is new.
                self.key.clear();
                self.key.push_str(field);
                self.key.push_str(v);
                match self.buys.get_mut(self.key.as_str()) {
                    Some(list) => list.push(buy.clone()),
                    None => {
                        self.buys.insert(self.key.clone(), vec![buy.clone()]);
                    }
                }
            }
        }
    }

    fn sweep(&mut self) {
        let today = self.clock.div_euclid(86_400);
        if today == self.swept_day {
            return;
        }
        self.swept_day = today;
        let from = self.clock - self.days * 86_400;
        self.buys.retain(|_, list| {
            list.retain(|b| b.at > from);
            !list.is_empty()
        });
    }

    /// Customers who bought under any of `keys` at or after `since`, one row each, except
    /// those `skip` names (the alert's complainants) and erased customers; most money at
    /// stake first, then by id.
    pub fn exposed(
        &self,
        keys: &[&str],
        since: DateTime<Utc>,
        skip: &dyn Fn(&str) -> bool,
        customers: &Customers,
    ) -> Vec<Exposed> {
        let since = since.timestamp();
        let mut by_customer: BTreeMap<u32, (i64, usize, BTreeMap<String, Decimal>)> =
            BTreeMap::new();
        for k in keys {
            let Some(list) = self.buys.get(*k) else {
                continue;
            };
            for b in list.iter().filter(|b| b.at >= since) {
                let row = by_customer
                    .entry(b.customer)
                    .or_insert((b.at, 0, BTreeMap::new()));
                row.0 = row.0.max(b.at);
                row.1 += 1;
                if let (Some(a), Some(c)) = (b.amount, b.currency) {
                    let cur = String::from_utf8_lossy(&c).into_owned();
                    let sum = row.2.entry(cur).or_default();
                    // A sum past the decimal range stays at the last representable value.
                    *sum = sum.checked_add(a).unwrap_or(*sum);
                }
            }
        }
        let mut out: Vec<Exposed> = by_customer
            .into_iter()
            .filter_map(|(n, (last, lines, amount))| {
                let p = customers.by_number(n)?;
                if p.erased || skip(&p.id) {
                    return None;
                }
                Some(Exposed {
                    customer: p.id.to_string(),
                    last_bought_at: DateTime::from_timestamp(last, 0)?,
                    lines,
                    amount,
                })
            })
            .collect();
        let total = |e: &Exposed| e.amount.values().copied().sum::<Decimal>();
        out.sort_by(|a, b| {
            total(b)
                .cmp(&total(a))
                .then_with(|| a.customer.cmp(&b.customer))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Projection;
    use rapport_events::EventType;
    use serde_json::json;
    use uuid::Uuid;

    fn ev(position: u64, ty: EventType, who: &str, day: i64, data: serde_json::Value) -> FoldEvent {
        FoldEvent {
            position,
            id: Uuid::from_u128(position as u128),
            event_type: ty,
            customer: who.into(),
            subject: None,
            occurred_at: DateTime::from_timestamp(1_767_225_600 + day * 86_400, 0).unwrap(),
            data: Facts::from_value(ty, &data).unwrap(),
        }
    }

    fn buy(position: u64, who: &str, day: i64, sku: &str, qty: u32, price: &str) -> FoldEvent {
        ev(
            position,
            EventType::Purchase,
            who,
            day,
            json!({"order_id": format!("o{position}"), "amount": "1.00", "currency": "CNY",
                   "items": [{"sku": sku, "quantity": qty, "unit_price": price, "product": "Oolong"}]}),
        )
    }

    #[test]
    fn buyers_of_a_sku_since_a_time_are_exposed_with_their_money_and_old_buys_are_swept() {
        let mut c = Customers::default();
        let mut x = Exposure::new(30);
        let events = [
            buy(1, "old", 0, "S1", 1, "10.00"),
            buy(2, "a", 40, "S1", 2, "12.50"),
            buy(3, "b", 41, "S1", 1, "30.00"),
            buy(4, "b", 42, "S2", 1, "99.00"),
            buy(5, "complainer", 42, "S1", 1, "12.50"),
            buy(6, "c", 43, "S9", 1, "5.00"),
        ];
        for e in &events {
            c.apply(e);
            x.apply(e, &c);
        }
        let since = DateTime::from_timestamp(0, 0).unwrap();
        let exposed = x.exposed(&["sku:S1"], since, &|id| id == "complainer", &c);
        let rows: Vec<(&str, String)> = exposed
            .iter()
            .map(|e| (e.customer.as_str(), e.amount["CNY"].to_string()))
            .collect();
        assert_eq!(
            rows,
            [("b", "30.00".into()), ("a", "25.00".into())],
            "`old` fell out of the 30 days"
        );
        // By product, both SKUs count.
        let by_product = x.exposed(&["product:Oolong"], since, &|_| false, &c);
        assert_eq!(by_product[0].customer, "b");
        assert_eq!(by_product[0].amount["CNY"].to_string(), "129.00");
        assert_eq!(by_product[0].lines, 2);
    }

    #[test]
    fn priced_lines_survive_a_snapshot() {
        let mut c = Customers::default();
        let mut x = Exposure::new(30);
        let e = buy(1, "a", 40, "S1", 2, "12.50");
        c.apply(&e);
        x.apply(&e, &c);
        let bytes = postcard::to_stdvec(&x).unwrap();
        let back: Exposure = postcard::from_bytes(&bytes).expect("a snapshot reads back");
        assert_eq!(back, x);
    }
}
