//! `rapport import` and `rapport export`: the log in and out as NDJSON, straight against
//! the embedded store (no server).
//!
//! Import is all-or-nothing by default: a first pass validates every line of every file
//! and, if any is invalid, reports each as `file:line: error` and writes nothing. The
//! second pass writes in chunks of [`IMPORT_CHUNK_EVENTS`] events, several in flight so the
//! writer group-commits while the next chunk is parsed. An event without an `id` gets one
//! derived from its line (UUIDv5), so re-running an import is a no-op.

use std::{
    collections::VecDeque,
    io::{Read, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_events::{Event, ValidationErrors};
use uuid::Uuid;

use crate::{
    log::{Log, PersonalAccess},
    store::AppendRequest,
    store::sqlite::SqliteStore,
};

/// Events per append during import.
pub const IMPORT_CHUNK_EVENTS: usize = 8192;
/// Appends in flight during import.
pub const IMPORT_IN_FLIGHT_MAX: usize = 4;
/// Invalid lines listed before the rest are only counted.
pub const IMPORT_ERRORS_SHOWN_MAX: usize = 100;

/// Namespace of ids derived from import lines. Never change it: re-imports depend on it.
pub const IMPORT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x2b9e_51c0_77a4_4f0e_8d1c_4a6b_0f39_e2d7);

pub struct Input {
    pub name: String,
    pub text: String,
}

impl Input {
    /// Reads a file, or stdin for `-`.
    pub fn read(path: &str) -> anyhow::Result<Input> {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).context("failed to read stdin")?;
            s
        } else {
            std::fs::read_to_string(PathBuf::from(path)).with_context(|| format!("failed to read {path}"))?
        };
        Ok(Input { name: if path == "-" { "<stdin>".into() } else { path.to_owned() }, text })
    }

    /// The input's events as (label for errors, JSON text) in order.
    fn items(&self) -> Result<Vec<(usize, &str)>, String> {
        if self.text.trim_start().starts_with('[') {
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(&self.text).map_err(|e| format!("{}: invalid JSON array: {e}", self.name))?;
            Ok(items.into_iter().enumerate().map(|(i, r)| (i, r.get())).collect())
        } else {
            Ok(self.text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| (i + 1, l)).collect())
        }
    }

    fn is_array(&self) -> bool {
        self.text.trim_start().starts_with('[')
    }
}

fn parse_item(text: &str) -> Result<Event, ValidationErrors> {
    let mut id = || Uuid::new_v5(&IMPORT_ID_NAMESPACE, text.trim().as_bytes());
    rapport_events::parse_one(text, &mut id, false)
}

#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub events_read: u64,
    pub events_written: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub errors: Vec<String>,
    pub seconds: f64,
}

pub struct ImportOptions {
    /// Write the valid events even when some are invalid.
    pub skip_invalid: bool,
    pub progress: bool,
}

pub async fn import(store: &SqliteStore, log: &Log, inputs: &[Input], opts: ImportOptions) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    let bar = if opts.progress { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg:10} {bar:40} {pos}/{len} events  {per_sec}  eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Pass 1, on every core: parse, validate and seal every event, keeping the sealed
    // chunks in memory (the input is in memory already), so that nothing is written
    // unless everything is valid.
    bar.set_message("checking");
    let mut sealed: Vec<(AppendRequest, u64)> = Vec::new();
    for input in inputs {
        let items = input.items().map_err(anyhow::Error::msg)?;
        report.events_read += items.len() as u64;
        bar.inc_length(items.len() as u64);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunks: Vec<&[(usize, &str)]> = items.chunks(IMPORT_CHUNK_EVENTS).collect();
        let per_thread = chunks.len().div_ceil(threads).max(1);
        let results: Vec<Vec<ChunkResult>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .chunks(per_thread)
                .map(|group| {
                    let bar = bar.clone();
                    s.spawn(move || group.iter().map(|chunk| check_chunk(log, chunk, &bar)).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("import threads do not panic")).collect()
        });
        for r in results.into_iter().flatten() {
            for (line, err) in r.errors {
                report.invalid += 1;
                let at = if input.is_array() { format!("{}:[{line}]", input.name) } else { format!("{}:{line}", input.name) };
                if report.errors.len() < IMPORT_ERRORS_SHOWN_MAX {
                    report.errors.push(format!("{at}: {err}"));
                }
            }
            if let Some(req) = r.sealed {
                let n = req.events.len() as u64;
                sealed.push((req, n));
            }
        }
    }
    if report.invalid > 0 && !opts.skip_invalid {
        bar.finish_and_clear();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "checked and sealed");
    // Pass 2: hand the sealed chunks to the writer in order, several in flight so it
    // group-commits.
    bar.set_message("writing");
    bar.set_position(0);
    let mut in_flight = VecDeque::new();
    for (req, n) in sealed {
        let keys = req.new_keys.clone();
        in_flight.push_back((store.append_nowait(req)?, keys, n));
        while in_flight.len() >= IMPORT_IN_FLIGHT_MAX {
            settle(in_flight.pop_front().expect("not empty"), log, &mut report, &bar).await?;
        }
    }
    while let Some(job) = in_flight.pop_front() {
        settle(job, log, &mut report, &bar).await?;
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct ChunkResult {
    sealed: Option<AppendRequest>,
    errors: Vec<(usize, String)>,
}

fn check_chunk(log: &Log, chunk: &[(usize, &str)], bar: &ProgressBar) -> ChunkResult {
    let mut events = Vec::with_capacity(chunk.len());
    let mut errors = Vec::new();
    for (line, text) in chunk {
        match parse_item(text) {
            Ok(ev) => events.push(ev),
            Err(e) => errors.push((*line, e.to_string())),
        }
    }
    bar.inc(chunk.len() as u64);
    let sealed = (!events.is_empty()).then(|| log.seal_request(&events, None));
    ChunkResult { sealed, errors }
}

type Pending = (tokio::sync::oneshot::Receiver<Result<Vec<crate::store::Appended>, crate::store::StoreError>>, Vec<crate::store::WrappedKey>, u64);

async fn settle((rx, keys, n): Pending, log: &Log, report: &mut ImportReport, bar: &ProgressBar) -> anyhow::Result<()> {
    let appended = rx.await.map_err(|_| anyhow::anyhow!("the store stopped"))??;
    log.keys.mark_durable(&keys);
    let dups = appended.iter().filter(|a| a.duplicate).count() as u64;
    report.duplicates += dups;
    report.events_written += appended.len() as u64 - dups;
    bar.inc(n);
    Ok(())
}

/// Writes the log as NDJSON (one [`rapport_events::RecordedEvent`] a line) to `out`.
pub fn export(store: &SqliteStore, log: &Log, after: u64, until: u64, access: PersonalAccess, out: &mut dyn Write) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut line = Vec::with_capacity(1024);
    store.for_each_blocking(after, until, |stored| {
        let ev = log.open(stored, access)?;
        line.clear();
        serde_json::to_writer(&mut line, &ev).map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line).map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
        n += 1;
        Ok(())
    })?;
    out.flush()?;
    Ok(n)
}
