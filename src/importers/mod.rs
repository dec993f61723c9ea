//! Importers for public datasets: each turns the files as they are into Rapport events in
//! NDJSON, with deterministic ids (so re-importing is a no-op), and reports what it skipped
//! and why. The events then go through the normal import (validation, one transaction).

pub mod cfpb;
pub mod olist;
pub mod online_retail;

/// What an importer did with its input.
#[derive(Debug, Default, serde::Serialize)]
pub struct Conversion {
    pub rows: u64,
    pub events: u64,
    /// Reason → rows (or invoices) skipped for it.
    pub skipped: std::collections::BTreeMap<String, u64>,
}

impl Conversion {
    pub fn skip(&mut self, why: &str, n: u64) {
        *self.skipped.entry(why.to_owned()).or_default() += n;
    }
}
