//! CFPB consumer complaints (the two samples in `shared/data/cfpb/`).
//!
//! Customers are anonymous in this data: each complaint gets its own synthetic customer
//! `cfpb-<complaint id>`. Mapping, per row → one `complaint` at `Date received` (UTC
//! midnight): `about.store` = the company complained about, `about.product` = Product
//! (with the Sub-product after ` / `), `about.topic` = Issue; `channel` = Submitted via;
//! `text` = the consumer's narrative when there is one, else the Issue and Sub-issue (the
//! complaint's own structured description).
//!
//! Narratives longer than the model's 16 KiB text limit are cut there (counted).
//!
//! The files as they are: `complaints_sample.csv` starts with two lines of `unzip` output
//! before its header (any lines before the header are skipped and counted);
//! `complaints.csv` has no Complaint ID and no Issue: its complaints are numbered by row
//! (`cfpb-mdv-<row>`) and their text is the product line.

use std::{fmt::Write as _, path::Path};

use anyhow::Context;
use serde_json::json;
use uuid::Uuid;

use super::Conversion;

/// How far down a file the header is looked for.
const HEADER_SEARCH_LINES_MAX: usize = 20;

fn preamble_lines(s: &str) -> usize {
    s.lines().count()
}

pub const NAMESPACE: Uuid = Uuid::from_u128(0x3c7e_2d90_1f4a_4b6c_8e5d_a9b0_c1d2_e3f4);

pub fn convert(files: &[impl AsRef<Path>]) -> anyhow::Result<(String, Conversion)> {
    let mut conv = Conversion::default();
    let mut out = String::new();
    for file in files {
        let file = file.as_ref();
        let bytes =
            std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        // The header is the first line that starts with the first column's name; whatever
        // comes before it is not data.
        let mut line_start = 0;
        loop {
            let line = &text[line_start..];
            if line.starts_with("Date received") || line.starts_with("\"Date received\"") {
                break;
            }
            match line.find('\n') {
                Some(i) if preamble_lines(&text[..line_start + i]) < HEADER_SEARCH_LINES_MAX => {
                    line_start += i + 1
                }
                _ => anyhow::bail!(
                    "{}: no `Date received` header in its first {HEADER_SEARCH_LINES_MAX} lines",
                    file.display()
                ),
            }
        }
        let preamble = text[..line_start].lines().count() as u64;
        if preamble > 0 {
            conv.skip("lines before the CSV header (tool output)", preamble);
        }
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text[line_start..].as_bytes());
        let headers = rdr.headers()?.clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let need = |name: &str| {
            col(name).with_context(|| format!("{}: no column `{name}`", file.display()))
        };
        let (date_c, product_c, company_c) =
            (need("Date received")?, need("Product")?, need("Company")?);
        let (sub_c, issue_c, subissue_c, narrative_c, via_c, id_c) = (
            col("Sub-product"),
            col("Issue"),
            col("Sub-issue"),
            col("Consumer complaint narrative"),
            col("Submitted via"),
            col("Complaint ID"),
        );
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("cfpb");
        for (i, rec) in rdr.records().enumerate() {
            let Ok(rec) = rec else {
                conv.skip("rows that are not valid CSV", 1);
                continue;
            };
            conv.rows += 1;
            let f = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").trim();
            let Ok(day) = chrono::NaiveDate::parse_from_str(f(Some(date_c)), "%Y-%m-%d") else {
                conv.skip("rows without a readable Date received", 1);
                continue;
            };
            let (product, company) = (f(Some(product_c)), f(Some(company_c)));
            if company.is_empty() && product.is_empty() {
                conv.skip("rows naming neither company nor product", 1);
                continue;
            }
            let complaint_id = match f(id_c) {
                "" => format!("cfpb-mdv-{}", i + 1),
                id => format!("cfpb-{id}"),
            };
            let product_line = if f(sub_c).is_empty() {
                product.to_owned()
            } else {
                format!("{product} / {}", f(sub_c))
            };
            let text = if !f(narrative_c).is_empty() {
                let mut t = f(narrative_c).to_owned();
                if t.len() > rapport_events::data::TEXT_LEN_MAX {
                    let mut cut = rapport_events::data::TEXT_LEN_MAX;
                    while !t.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    t.truncate(cut);
                    conv.skip("narratives longer than 16 KiB (cut to 16 KiB)", 1);
                }
                t
            } else if !f(issue_c).is_empty() {
                [f(issue_c), f(subissue_c)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(": ")
            } else {
                product_line.clone()
            };
            let mut about = serde_json::Map::new();
            if !company.is_empty() {
                about.insert("store".into(), json!(company));
            }
            if !product_line.is_empty() {
                about.insert("product".into(), json!(product_line));
            }
            if !f(issue_c).is_empty() {
                about.insert("topic".into(), json!(f(issue_c)));
            }
            let mut data = json!({"complaint_id": complaint_id, "about": about, "text": text});
            if !f(via_c).is_empty() {
                data["channel"] = json!(f(via_c));
            }
            let at = rapport_events::envelope::format_time(
                &day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
            );
            let ev = json!({"id": Uuid::new_v5(&NAMESPACE, format!("{stem}\n{complaint_id}").as_bytes()), "type": "complaint",
                "customer": complaint_id, "occurred_at": at, "data": data, "metadata": {"source": "cfpb"}});
            let _ = writeln!(out, "{ev}");
            conv.events += 1;
        }
    }
    Ok((out, conv))
}
