//! Olist's classified reviews (`olist_classified_public_dataset.csv`: 3,584 Brazilian
//! e-commerce orders, each with a review and crowd-voted complaint labels).
//!
//! The file has no customer id: each order's buyer becomes one synthetic customer
//! `olist-<id>` (so no two orders are wrongly joined). Mapping:
//! - every delivered-or-not order → a `purchase` of `order_products_value` BRL at
//!   `order_purchase_timestamp` (order `olist-<id>`), with its category as an item;
//! - a review scored 1 or 2 whose most-voted class is a problem (`problemas_de_entrega`,
//!   `problemas_de_qualidade`) → a `complaint` at `review_creation_date`: about the
//!   product category and the most-voted subclass (topic), category = the class, severity
//!   5 for a score of 1 and 4 for a 2, text = the review's title and message (Portuguese);
//! - other reviews are not complaints and are skipped (counted by reason): the file holds
//!   no community, so they cannot be posts.

use std::{fmt::Write as _, path::Path};

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use super::Conversion;

pub const NAMESPACE: Uuid = Uuid::from_u128(0x5a0b_11e2_9c3d_4e8f_a1b2_7c6d_0e9f_4a31);

fn time(s: &str) -> Option<String> {
    let s = s.trim();
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(rapport_events::envelope::format_time(&t.and_utc()))
}

pub fn convert(files: &[impl AsRef<Path>]) -> anyhow::Result<(String, Conversion)> {
    let mut conv = Conversion::default();
    let mut out = String::new();
    for file in files {
        let file = file.as_ref();
        let mut rdr = csv::Reader::from_path(file)
            .with_context(|| format!("failed to open {}", file.display()))?;
        let headers = rdr.headers()?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .with_context(|| format!("{}: no column `{name}`", file.display()))
        };
        let (id_c, value_c, bought_c, cat_c, score_c, title_c, msg_c, review_c, class_c, sub_c) = (
            col("id")?,
            col("order_products_value")?,
            col("order_purchase_timestamp")?,
            col("product_category_name")?,
            col("review_score")?,
            col("review_comment_title")?,
            col("review_comment_message")?,
            col("review_creation_date")?,
            col("most_voted_class")?,
            col("most_voted_subclass")?,
        );
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.with_context(|| format!("{}:{}", file.display(), i + 2))?;
            conv.rows += 1;
            let f = |c: usize| rec.get(c).unwrap_or("").trim();
            let id = f(id_c);
            let customer = format!("olist-{id}");
            let category = if f(cat_c).is_empty() {
                "unknown"
            } else {
                f(cat_c)
            };
            match (time(f(bought_c)), rapport_events::Money::parse(f(value_c))) {
                (Some(at), Ok(value)) if !value.decimal().is_zero() => {
                    let ev = json!({"id": Uuid::new_v5(&NAMESPACE, format!("order\n{id}").as_bytes()), "type": "purchase", "customer": customer, "occurred_at": at,
                        "data": {"order_id": customer, "amount": value.to_string(), "currency": "BRL", "items": [{"sku": category, "quantity": 1, "unit_price": value.to_string(), "category": category}]},
                        "metadata": {"source": "olist"}});
                    let _ = writeln!(out, "{ev}");
                    conv.events += 1;
                }
                _ => conv.skip("orders without a purchase time or value", 1),
            }
            let score: u8 = f(score_c).parse().unwrap_or(0);
            let class = f(class_c);
            if !(1..=2).contains(&score) {
                conv.skip("reviews scored 3 to 5 (not complaints)", 1);
                continue;
            }
            if !class.starts_with("problemas") {
                conv.skip("low-scored reviews without a problem label", 1);
                continue;
            }
            let text = [f(title_c), f(msg_c)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" — ");
            let Some(at) = time(f(review_c)) else {
                conv.skip("complaints without a review date", 1);
                continue;
            };
            if text.is_empty() {
                conv.skip("complaints without any comment text", 1);
                continue;
            }
            let ev = json!({"id": Uuid::new_v5(&NAMESPACE, format!("review\n{id}").as_bytes()), "type": "complaint", "customer": customer, "occurred_at": at,
                "data": {"complaint_id": format!("olist-review-{id}"), "about": {"product": category, "topic": f(sub_c)}, "category": class,
                    "severity": 6 - score, "text": text, "channel": "review"},
                "metadata": {"source": "olist"}});
            let _ = writeln!(out, "{ev}");
            conv.events += 1;
        }
    }
    Ok((out, conv))
}
