//! UCI Online Retail (a UK gift retailer, Dec 2010 – Dec 2011), as the per-day CSV files in
//! `shared/data/online-retail/by-day/` (`InvoiceNo,StockCode,Description,Quantity,
//! InvoiceDate,UnitPrice,CustomerID,Country`).
//!
//! Mapping (see `docs/importers.md`):
//! - one `purchase` per invoice: lines with a positive quantity become items; the amount is
//!   Σ quantity × unit price over every line, exact; currency GBP;
//! - an invoice number starting with `C` is a cancellation: one `refund` of Σ |quantity| ×
//!   unit price for the original order;
//! - the customer's country becomes the trait `country` (a `profile_updated` when first seen
//!   and whenever it changes);
//! - rows without a CustomerID cannot be attributed: counted and skipped, never invented;
//! - an invoice whose amount is not positive is not a purchase (the standard cleaning of
//!   this dataset): counted and skipped; so are zero-value cancellations;
//! - an invoice with more than 1,000 lines keeps its full amount but only its first 1,000
//!   items (the model's list limit), and is counted;
//! - `InvoiceDate` has no zone; the retailer is in the UK and the times are taken as UTC.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Context;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::Conversion;

/// Namespace of the ids of events made from this dataset. Never change it.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x0e1c_7a52_5b1d_4f3e_b4c2_90a1_6d2f_3c88);

struct Line {
    stock: String,
    description: String,
    quantity: i64,
    price: Decimal,
}

struct Invoice {
    number: String,
    customer: String,
    country: String,
    date: String,
    lines: Vec<Line>,
}

/// Converts the CSV files (in the order given; pass them sorted by name for the original
/// order) into NDJSON events.
pub fn convert(files: &[impl AsRef<Path>]) -> anyhow::Result<(String, Conversion)> {
    let mut conv = Conversion::default();
    // Invoices in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut invoices: BTreeMap<String, Invoice> = BTreeMap::new();
    for file in files {
        let file = file.as_ref();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_path(file)
            .with_context(|| format!("failed to open {}", file.display()))?;
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.with_context(|| format!("{}:{}", file.display(), i + 2))?;
            conv.rows += 1;
            let field = |n: usize| rec.get(n).unwrap_or("").trim();
            let customer = field(6);
            if customer.is_empty() {
                conv.skip("rows without a CustomerID", 1);
                continue;
            }
            let customer = customer.strip_suffix(".0").unwrap_or(customer).to_owned();
            let (Ok(quantity), Ok(price)) =
                (field(3).parse::<i64>(), Decimal::from_str_exact(field(5)))
            else {
                conv.skip("rows with an unreadable quantity or price", 1);
                continue;
            };
            let number = field(0).to_owned();
            let inv = invoices.entry(number.clone()).or_insert_with(|| {
                order.push(number.clone());
                Invoice {
                    number,
                    customer,
                    country: field(7).to_owned(),
                    date: field(4).to_owned(),
                    lines: Vec::new(),
                }
            });
            inv.lines.push(Line {
                stock: field(1).to_owned(),
                description: field(2).to_owned(),
                quantity,
                price,
            });
        }
    }
    let mut out = String::new();
    let mut countries: BTreeMap<String, String> = BTreeMap::new();
    for number in order {
        let inv = &invoices[&number];
        let Some(at) = chrono::NaiveDateTime::parse_from_str(&inv.date, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|t| t.and_utc())
        else {
            conv.skip("invoices with an unreadable date", 1);
            continue;
        };
        let at = rapport_events::envelope::format_time(&at);
        if countries.get(&inv.customer) != Some(&inv.country) && !inv.country.is_empty() {
            countries.insert(inv.customer.clone(), inv.country.clone());
            let id = Uuid::new_v5(
                &NAMESPACE,
                format!("country\n{}\n{}\n{}", inv.customer, inv.country, inv.number).as_bytes(),
            );
            let ev = json!({"id": id, "type": "profile_updated", "customer": inv.customer, "occurred_at": at,
                "data": {"traits": {"country": inv.country}}, "metadata": {"source": "online-retail"}});
            let _ = writeln!(out, "{ev}");
            conv.events += 1;
        }
        let id = Uuid::new_v5(&NAMESPACE, format!("invoice\n{}", inv.number).as_bytes());
        let amount: Decimal = inv
            .lines
            .iter()
            .map(|l| Decimal::from(l.quantity) * l.price)
            .sum();
        if let Some(original) = inv.number.strip_prefix('C') {
            let refunded = -amount;
            if refunded <= Decimal::ZERO {
                conv.skip("cancellations with no positive value", 1);
                continue;
            }
            let ev = json!({"id": id, "type": "refund", "customer": inv.customer, "occurred_at": at,
                "data": {"order_id": original, "amount": refunded.normalize().to_string(), "currency": "GBP"},
                "metadata": {"source": "online-retail", "invoice": inv.number}});
            let _ = writeln!(out, "{ev}");
            conv.events += 1;
            continue;
        }
        if amount <= Decimal::ZERO {
            conv.skip("invoices with no positive value (not purchases)", 1);
            continue;
        }
        let mut items: Vec<_> = inv
            .lines
            .iter()
            .filter(|l| l.quantity > 0 && l.price >= Decimal::ZERO && !l.stock.is_empty())
            .map(|l| {
                let mut item = json!({"sku": l.stock, "quantity": l.quantity, "unit_price": l.price.normalize().to_string()});
                if !l.description.is_empty() {
                    item["product"] = json!(l.description);
                }
                item
            })
            .collect();
        if items.len() > rapport_events::data::LIST_LEN_MAX {
            // The amount stays complete; only the item list is cut to the model's limit.
            items.truncate(rapport_events::data::LIST_LEN_MAX);
            conv.skip(
                "invoices with more item lines than an event holds (items cut, amount complete)",
                1,
            );
        }
        let ev = json!({"id": id, "type": "purchase", "customer": inv.customer, "occurred_at": at,
            "data": {"order_id": inv.number, "amount": amount.normalize().to_string(), "currency": "GBP", "items": items},
            "metadata": {"source": "online-retail"}});
        let _ = writeln!(out, "{ev}");
        conv.events += 1;
    }
    Ok((out, conv))
}
