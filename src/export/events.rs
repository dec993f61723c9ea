//! The events of the log as rows: NDJSON straight from the stored bytes where nothing
//! needs opening, CSV, and Parquet built in Arrow batches on a thread of its own.

use super::*;

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

pub(super) fn view_name(v: PersonalView) -> &'static str {
    match v {
        PersonalView::Plain => "plain",
        PersonalView::Pseudonymised => "pseudonymised",
        PersonalView::Withheld => "withheld",
        PersonalView::Erased => "erased",
        PersonalView::Damaged => "damaged",
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
            let (customer, subject) = match subject_field(r.event_type) {
                "subject" => (Cell::Null, Cell::Str(r.customer.to_owned())),
                _ => (Cell::Str(r.customer.to_owned()), Cell::Null),
            };
            let view = stored_view(log, r, access);
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
            let operator = subject_field(r.event_type) == "subject";
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
            match stored_view(log, r, access) {
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

/// Writes the log as NDJSON (one [`rapport_events::RecordedEvent`] a line) to `out`.
///
/// Events whose personal fields need not be opened (none, withheld, or erased) are written
/// straight from the stored bytes; the others go through [`Log::open`]. Both give the same
/// JSON values (`tests/store_contract.rs` compares them).
pub fn export(
    store: &SqliteStore,
    log: &Log,
    after: u64,
    until: u64,
    access: PersonalAccess,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut line = Vec::with_capacity(1024);
    let io = |e: std::io::Error| crate::store::StoreError::Io(e.to_string());
    store.for_each_raw_blocking(after, until, |r| {
        line.clear();
        let view = stored_view(log, r, access);
        match view {
            Some(view) => write_raw(&mut line, r, view).map_err(io)?,
            None => {
                let ev = log.open(r.stored()?, access)?;
                serde_json::to_writer(&mut line, &ev)
                    .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
            }
        }
        line.push(b'\n');
        out.write_all(&line).map_err(io)?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}

/// How a stored row's personal fields show for `access` when that needs no decryption:
/// `Some(view)` (`None` inside for a type without personal fields), or `None` when the
/// row must go through [`Log::open`].
pub fn stored_view(
    log: &Log,
    r: &crate::store::sqlite::RawRow<'_>,
    access: PersonalAccess,
) -> Option<Option<rapport_events::PersonalView>> {
    use rapport_events::PersonalView;
    match (r.sealed, r.key_gen) {
        (None, _) => {
            let ty = rapport_events::EventType::parse(r.event_type);
            Some(
                ty.filter(|t| rapport_events::personal::may_carry_personal(*t))
                    .map(|_| PersonalView::Plain),
            )
        }
        (Some(_), Some(g)) if g != 0 => match log.keys.get(r.customer, g) {
            Some(k) if k.is_destroyed() => Some(Some(PersonalView::Erased)),
            Some(k) if k.is_damaged() => Some(Some(PersonalView::Damaged)),
            Some(_) if access == PersonalAccess::Withheld => Some(Some(PersonalView::Withheld)),
            _ => None,
        },
        _ => None,
    }
}

/// Writes a stored row as the JSON of its [`rapport_events::RecordedEvent`], copying the
/// stored JSON of `data` and `metadata` as it is (the store wrote it canonical).
pub(super) fn write_raw(
    out: &mut Vec<u8>,
    r: &crate::store::sqlite::RawRow<'_>,
    personal: Option<rapport_events::PersonalView>,
) -> std::io::Result<()> {
    let s =
        |out: &mut Vec<u8>, v: &str| serde_json::to_writer(out, v).map_err(std::io::Error::other);
    let id = uuid::Uuid::from_slice(r.id).map_err(std::io::Error::other)?;
    write!(out, "{{\"position\":{},\"stream\":", r.position)?;
    s(out, r.stream)?;
    write!(
        out,
        ",\"stream_version\":{},\"recorded_at\":",
        r.stream_version
    )?;
    s(out, r.recorded_at)?;
    write!(out, ",\"id\":\"{}\",\"type\":", id.hyphenated())?;
    s(out, r.event_type)?;
    let field = subject_field(r.event_type);
    write!(out, ",\"version\":{},\"{field}\":", r.version)?;
    s(out, r.customer)?;
    out.extend_from_slice(b",\"occurred_at\":");
    s(out, r.occurred_at)?;
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(r.data.as_bytes());
    if let Some(m) = r.metadata {
        out.extend_from_slice(b",\"metadata\":");
        out.extend_from_slice(m.as_bytes());
    }
    if let Some(p) = personal {
        out.extend_from_slice(b",\"personal\":");
        serde_json::to_writer(&mut *out, &p).map_err(std::io::Error::other)?;
    }
    out.push(b'}');
    Ok(())
}

/// The envelope field that names a stored row's subject id (see `Subject`).
fn subject_field(event_type: &str) -> &'static str {
    rapport_events::EventType::parse(event_type)
        .map_or("customer", rapport_events::Subject::field_name)
}
