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
                Cell::Str(s) => s.clone(),
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

pub const EVENT_COLUMNS: &[(&str, Col)] = &[
    ("position", Col::U64),
    ("stream", Col::Str),
    ("stream_version", Col::U64),
    ("recorded_at", Col::Str),
    ("id", Col::Str),
    ("type", Col::Str),
    ("version", Col::U64),
    ("customer", Col::Str),
    ("subject", Col::Str),
    ("occurred_at", Col::Str),
    ("data", Col::Str),
    ("metadata", Col::Str),
    ("personal", Col::Str),
];

fn view_name(v: PersonalView) -> &'static str {
    match v {
        PersonalView::Plain => "plain",
        PersonalView::Pseudonymised => "pseudonymised",
        PersonalView::Withheld => "withheld",
        PersonalView::Erased => "erased",
    }
}

/// Writes events `(after, until]` as table rows. Events that need no decryption are
/// written from their stored text; the rest go through [`Log::open`] for `access`.
pub fn events(
    store: &SqliteStore,
    log: &Log,
    after: u64,
    until: u64,
    access: PersonalAccess,
    w: &mut dyn TableWriter,
) -> anyhow::Result<u64> {
    let mut rows: Vec<Vec<Cell>> = Vec::with_capacity(EXPORT_CHUNK_ROWS);
    let mut n = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    store
        .for_each_raw_blocking(after, until, |r| {
            let operator =
                rapport_events::EventType::parse(r.event_type).is_some_and(|t| t.is_operator());
            let (customer, subject) = if operator {
                (Cell::Null, Cell::Str(r.customer.to_owned()))
            } else {
                (Cell::Str(r.customer.to_owned()), Cell::Null)
            };
            let view = crate::import::stored_view(log, r, access);
            let (data, personal) = match view {
                Some(v) => (r.data.to_owned(), v.map(view_name)),
                None => {
                    let ev = log.open(r.stored()?, access)?;
                    (ev.data.to_string(), ev.personal.map(view_name))
                }
            };
            let id = uuid::Uuid::from_slice(r.id).map_err(|e| StoreError::Io(e.to_string()))?;
            rows.push(vec![
                Cell::U64(r.position),
                Cell::Str(r.stream.to_owned()),
                Cell::U64(r.stream_version),
                Cell::Str(r.recorded_at.to_owned()),
                Cell::Str(id.hyphenated().to_string()),
                Cell::Str(r.event_type.to_owned()),
                Cell::U64(r.version as u64),
                customer,
                subject,
                Cell::Str(r.occurred_at.to_owned()),
                Cell::Str(data),
                Cell::opt(r.metadata),
                Cell::opt(personal),
            ]);
            n += 1;
            if rows.len() >= EXPORT_CHUNK_ROWS {
                if let Err(e) = w.rows(&rows) {
                    failed = Some(e);
                    return Err(StoreError::Io("export writer failed".into()));
                }
                rows.clear();
            }
            Ok(())
        })
        .map_err(|e| failed.take().unwrap_or_else(|| e.into()))?;
    w.rows(&rows)?;
    Ok(n)
}

/// The columns and rows of a projection table from `state`.
pub fn projection_table(
    what: What,
    state: &ReadState,
    lifecycle: &rapport_projections::LifecycleConfig,
) -> (Vec<(&'static str, Col)>, Vec<Vec<Cell>>) {
    let now = state
        .segments
        .clock()
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    let t = |t: Option<chrono::DateTime<chrono::Utc>>| {
        Cell::opt(t.map(|t| rapport_events::envelope::format_time(&t)))
    };
    match what {
        What::Events => (EVENT_COLUMNS.to_vec(), vec![]),
        What::Profiles => {
            let c = &state.customers;
            let columns = vec![
                ("customer", Col::Str),
                ("lifecycle", Col::Str),
                ("relationship", Col::Str),
                ("first_seen", Col::Str),
                ("last_seen", Col::Str),
                ("last_purchase", Col::Str),
                ("orders", Col::U64),
                ("revenue", Col::Str),
                ("region", Col::Str),
                ("communities", Col::Str),
                ("referrals", Col::U64),
                ("referred_by", Col::Str),
                ("complaints_open", Col::U64),
                ("complaints_resolved", Col::U64),
                ("posts", Col::U64),
                ("influence", Col::U64),
                ("erased", Col::Str),
            ];
            let rows = c
                .sorted()
                .into_iter()
                .map(|p| {
                    let communities = c.names_of(&p.communities);
                    vec![
                        Cell::Str(p.id.to_string()),
                        Cell::Str(lifecycle.state(p, now).as_str().into()),
                        Cell::Str(
                            json!(lifecycle.relationship(p, now))
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                        ),
                        t(p.first_seen),
                        t(p.last_seen),
                        t(p.last_purchase_until(now)),
                        Cell::U64(p.orders_until(now) as u64),
                        Cell::Str(json!(p.net_revenue(now)).to_string()),
                        Cell::opt(c.region(p)),
                        Cell::Str(communities.join(";")),
                        Cell::U64(p.referees.len() as u64),
                        Cell::opt(c.referred_by(p)),
                        Cell::U64(p.complaints_open.len() as u64),
                        Cell::U64(p.complaints_resolved as u64),
                        Cell::U64(p.posts as u64),
                        Cell::U64(c.influence(p, now)),
                        Cell::Str(p.erased.to_string()),
                    ]
                })
                .collect();
            (columns, rows)
        }
        What::Segments => {
            let columns = vec![
                ("segment", Col::Str),
                ("name", Col::Str),
                ("customer", Col::Str),
            ];
            let mut rows = Vec::new();
            for d in state.segments.defs() {
                for m in state.segments.members(&d.id).into_iter().flatten() {
                    rows.push(vec![
                        Cell::Str(d.id.clone()),
                        Cell::Str(d.name.clone()),
                        Cell::Str(m.clone()),
                    ]);
                }
            }
            (columns, rows)
        }
        What::Alerts => {
            let columns = vec![
                ("id", Col::Str),
                ("kind", Col::Str),
                ("level", Col::Str),
                ("status", Col::Str),
                ("keys", Col::Str),
                ("complaints", Col::U64),
                ("customers", Col::U64),
                ("echoes", Col::U64),
                ("first_complaint_at", Col::Str),
                ("raised_at", Col::Str),
                ("raised_at_position", Col::U64),
                ("updated_at_position", Col::U64),
                ("evidence", Col::Str),
            ];
            let name = |v: Value| v.as_str().unwrap_or_default().to_owned();
            let rows = state
                .warnings
                .alerts()
                .map(|a| {
                    let keys: Vec<&str> = a.keys.iter().map(String::as_str).collect();
                    vec![
                        Cell::Str(a.id.clone()),
                        Cell::Str(name(json!(a.kind))),
                        Cell::Str(name(json!(a.level))),
                        Cell::Str(name(json!(a.status))),
                        Cell::Str(keys.join(";")),
                        Cell::U64(a.complaints.len() as u64),
                        Cell::U64(a.customers.len() as u64),
                        Cell::U64(a.echoes.len() as u64),
                        t(Some(a.first_complaint_at)),
                        t(Some(a.raised_at)),
                        Cell::U64(a.raised_at_position),
                        Cell::U64(a.updated_at_position),
                        Cell::Str(json!(a.evidence).to_string()),
                    ]
                })
                .collect();
            (columns, rows)
        }
    }
}

/// Events as Parquet, appended straight into Arrow builders (one copy per value, no
/// intermediate rows): the fast path of `export --format parquet`.
pub fn events_parquet<W: Write + Send>(
    store: &SqliteStore,
    log: &Log,
    after: u64,
    until: u64,
    access: PersonalAccess,
    out: W,
) -> anyhow::Result<u64> {
    events_parquet_in_batches(store, log, after, until, access, out, EXPORT_CHUNK_ROWS)
}

/// [`events_parquet`] in record batches of `batch_rows` (tests use small ones).
pub fn events_parquet_in_batches<W: Write + Send>(
    store: &SqliteStore,
    log: &Log,
    after: u64,
    until: u64,
    access: PersonalAccess,
    out: W,
    batch_rows: usize,
) -> anyhow::Result<u64> {
    let (schema, mut writer) = parquet_writer(EVENT_COLUMNS, out)?;
    struct B {
        position: UInt64Builder,
        stream: StringBuilder,
        stream_version: UInt64Builder,
        recorded_at: StringBuilder,
        id: StringBuilder,
        ty: StringBuilder,
        version: UInt64Builder,
        customer: StringBuilder,
        subject: StringBuilder,
        occurred_at: StringBuilder,
        data: StringBuilder,
        metadata: StringBuilder,
        personal: StringBuilder,
        rows: usize,
    }
    let new = || B {
        position: UInt64Builder::with_capacity(batch_rows),
        stream: StringBuilder::with_capacity(batch_rows, batch_rows * 16),
        stream_version: UInt64Builder::with_capacity(batch_rows),
        recorded_at: StringBuilder::with_capacity(batch_rows, batch_rows * 30),
        id: StringBuilder::with_capacity(batch_rows, batch_rows * 36),
        ty: StringBuilder::with_capacity(batch_rows, batch_rows * 10),
        version: UInt64Builder::with_capacity(batch_rows),
        customer: StringBuilder::with_capacity(batch_rows, batch_rows * 8),
        subject: StringBuilder::with_capacity(batch_rows, 0),
        occurred_at: StringBuilder::with_capacity(batch_rows, batch_rows * 20),
        data: StringBuilder::with_capacity(batch_rows, batch_rows * 160),
        metadata: StringBuilder::with_capacity(batch_rows, batch_rows * 20),
        personal: StringBuilder::with_capacity(batch_rows, batch_rows * 8),
        rows: 0,
    };
    // Encoding and compressing a batch (the Parquet writer) runs on a thread of its own
    // while the next batch is read: the export uses both cores.
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(PARQUET_QUEUE_BATCHES);
    let encode = move || -> anyhow::Result<()> {
        for batch in rx {
            writer.write(&batch)?;
        }
        writer.close()?;
        Ok(())
    };
    let flush = |b: &mut B, tx: &std::sync::mpsc::SyncSender<RecordBatch>| -> bool {
        if b.rows == 0 {
            return true;
        }
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(b.position.finish()),
            Arc::new(b.stream.finish()),
            Arc::new(b.stream_version.finish()),
            Arc::new(b.recorded_at.finish()),
            Arc::new(b.id.finish()),
            Arc::new(b.ty.finish()),
            Arc::new(b.version.finish()),
            Arc::new(b.customer.finish()),
            Arc::new(b.subject.finish()),
            Arc::new(b.occurred_at.finish()),
            Arc::new(b.data.finish()),
            Arc::new(b.metadata.finish()),
            Arc::new(b.personal.finish()),
        ];
        let batch =
            RecordBatch::try_new(schema.clone(), arrays).expect("the builders match the schema");
        b.rows = 0;
        // A closed channel means the writer failed; its error is what the join returns.
        tx.send(batch).is_ok()
    };
    std::thread::scope(|scope| -> anyhow::Result<u64> {
        let encoder = scope.spawn(encode);
        let mut b = new();
        let mut n = 0u64;
        let mut id_buf = uuid::Uuid::encode_buffer();
        let read = store.for_each_raw_blocking(after, until, |r| {
            let operator =
                rapport_events::EventType::parse(r.event_type).is_some_and(|t| t.is_operator());
            b.position.append_value(r.position);
            b.stream.append_value(r.stream);
            b.stream_version.append_value(r.stream_version);
            b.recorded_at.append_value(r.recorded_at);
            let id = uuid::Uuid::from_slice(r.id).map_err(|e| StoreError::Io(e.to_string()))?;
            b.id.append_value(id.hyphenated().encode_lower(&mut id_buf));
            b.ty.append_value(r.event_type);
            b.version.append_value(r.version as u64);
            if operator {
                b.customer.append_null();
                b.subject.append_value(r.customer);
            } else {
                b.customer.append_value(r.customer);
                b.subject.append_null();
            }
            b.occurred_at.append_value(r.occurred_at);
            match crate::import::stored_view(log, r, access) {
                Some(v) => {
                    b.data.append_value(r.data);
                    b.personal.append_option(v.map(view_name));
                }
                None => {
                    let ev = log.open(r.stored()?, access)?;
                    b.data.append_value(ev.data.to_string());
                    b.personal.append_option(ev.personal.map(view_name));
                }
            }
            b.metadata.append_option(r.metadata);
            b.rows += 1;
            n += 1;
            if b.rows >= batch_rows && !flush(&mut b, &tx) {
                return Err(StoreError::Io("export writer failed".into()));
            }
            Ok(())
        });
        if read.is_ok() {
            flush(&mut b, &tx);
        }
        drop(tx);
        let written = encoder
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        // A failed send means the writer failed: its error comes first.
        match (read, written) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e.into()),
            (Ok(()), Ok(())) => Ok(n),
        }
    })
}
