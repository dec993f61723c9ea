//! `rapport export --what events|profiles|segments|alerts --format ndjson|csv|parquet
//! [--as-of POSITION|TIME]`: tables for analysts (DuckDB, pandas, Spark).
//!
//! Events keep their envelope fields as columns and `data` / `metadata` as JSON text.
//! Personal fields follow `--personal` (withheld by default); erased values cannot come
//! back, because their keys are gone. Profiles, segments and alerts come from the
//! projections, which hold no personal data.

use std::{io::Write, sync::Arc};

use arrow_array::{
    builder::{StringBuilder, UInt64Builder},
    ArrayRef, RecordBatch,
};
use arrow_schema::{DataType, Field, Schema};
use rapport_events::PersonalView;
use rapport_projections::ReadState;
use serde_json::{json, Value};

use crate::{
    log::{Log, PersonalAccess},
    store::{sqlite::SqliteStore, StoreError},
};

/// Rows handed to a writer at once (and rows per Parquet row group batch).
const EXPORT_CHUNK_ROWS: usize = 65_536;
/// Batches of `EXPORT_CHUNK_ROWS` read ahead of the Parquet writer.
const PARQUET_QUEUE_BATCHES: usize = 2;

mod events;
mod tables;

pub use events::{
    events, events_parquet, events_parquet_in_batches, export, stored_view, EVENT_COLUMNS,
};
pub use tables::projection_table;

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum What {
    Events,
    Profiles,
    Segments,
    Alerts,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Col {
    U64,
    Str,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    U64(u64),
    Str(String),
}

impl Cell {
    fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::U64(n) => json!(n),
            Cell::Str(s) => json!(s),
        }
    }
    fn opt(s: Option<impl Into<String>>) -> Cell {
        s.map_or(Cell::Null, |s| Cell::Str(s.into()))
    }
}

/// Writes rows of a fixed set of columns in one format.
pub trait TableWriter {
    fn rows(&mut self, rows: &[Vec<Cell>]) -> anyhow::Result<()>;
    fn finish(self: Box<Self>) -> anyhow::Result<()>;
}

struct Ndjson<W: Write> {
    columns: Vec<(&'static str, Col)>,
    out: W,
}

impl<W: Write> TableWriter for Ndjson<W> {
    fn rows(&mut self, rows: &[Vec<Cell>]) -> anyhow::Result<()> {
        for r in rows {
            let mut o = serde_json::Map::new();
            for ((name, _), c) in self.columns.iter().zip(r) {
                if *c != Cell::Null {
                    o.insert((*name).to_owned(), c.json());
                }
            }
            serde_json::to_writer(&mut self.out, &o)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

struct Csv<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> TableWriter for Csv<W> {
    fn rows(&mut self, rows: &[Vec<Cell>]) -> anyhow::Result<()> {
        for r in rows {
            self.out.write_record(r.iter().map(|c| match c {
                Cell::Null => String::new(),
                Cell::U64(n) => n.to_string(),
                Cell::Str(s) => csv_safe(s).into_owned(),
            }))?;
        }
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

struct Parquet<W: Write + Send> {
    schema: Arc<Schema>,
    columns: Vec<(&'static str, Col)>,
    out: parquet::arrow::ArrowWriter<W>,
}

impl<W: Write + Send> TableWriter for Parquet<W> {
    fn rows(&mut self, rows: &[Vec<Cell>]) -> anyhow::Result<()> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (i, (_, col)) in self.columns.iter().enumerate() {
            arrays.push(match col {
                Col::U64 => {
                    let mut b = UInt64Builder::with_capacity(rows.len());
                    for r in rows {
                        match &r[i] {
                            Cell::U64(n) => b.append_value(*n),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                Col::Str => {
                    let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 32);
                    for r in rows {
                        match &r[i] {
                            Cell::Str(s) => b.append_value(s),
                            Cell::U64(n) => b.append_value(n.to_string()),
                            Cell::Null => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            });
        }
        self.out
            .write(&RecordBatch::try_new(self.schema.clone(), arrays)?)?;
        Ok(())
    }
    fn finish(self: Box<Self>) -> anyhow::Result<()> {
        self.out.close()?;
        Ok(())
    }
}

/// A Snappy-compressed Parquet writer for `columns` (every column nullable).
fn parquet_writer<W: Write + Send>(
    columns: &[(&'static str, Col)],
    out: W,
) -> anyhow::Result<(Arc<Schema>, parquet::arrow::ArrowWriter<W>)> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, col)| {
                let ty = match col {
                    Col::U64 => DataType::UInt64,
                    Col::Str => DataType::Utf8,
                };
                Field::new(*name, ty, true)
            })
            .collect::<Vec<_>>(),
    ));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))?;
    Ok((schema, writer))
}

/// A writer for `columns` in `format` onto `out`.
/// A text value as it may go into a CSV file: one that a spreadsheet would run as a
/// formula (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading
/// `'`, as OWASP recommends; numbers (`-12.50`) stay as they are.
pub fn csv_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let risky = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && s.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

pub fn writer<W: Write + Send + 'static>(
    format: Format,
    columns: &[(&'static str, Col)],
    out: W,
) -> anyhow::Result<Box<dyn TableWriter>> {
    Ok(match format {
        Format::Ndjson => Box::new(Ndjson {
            columns: columns.to_vec(),
            out,
        }),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(columns.iter().map(|c| c.0))?;
            Box::new(Csv { out: w })
        }
        Format::Parquet => {
            let (schema, out) = parquet_writer(columns, out)?;
            Box::new(Parquet {
                schema,
                columns: columns.to_vec(),
                out,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::csv_safe;

    #[test]
    fn what_a_spreadsheet_would_run_is_neutralised_and_numbers_are_kept() {
        for risky in ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x"] {
            assert_eq!(csv_safe(risky), format!("'{risky}"));
        }
        for plain in ["c-1", "-12.50", "+3", "茶", ""] {
            assert_eq!(csv_safe(plain), plain);
        }
    }
}
