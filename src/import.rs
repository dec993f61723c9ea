//! `rapport import`: NDJSON (or JSON arrays) into the log, straight against
//! the embedded store (no server).
//!
//! Import is all-or-nothing by default: everything goes into one transaction; if any line
//! is invalid, each is reported as `file:line: error` and the transaction is rolled back.
//! An event without an `id` gets one derived from its line (UUIDv5), so re-running an
//! import is a no-op.

use std::{
    io::{BufRead, Read},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_events::{Event, ValidationErrors};
use uuid::Uuid;

use crate::{log::Log, store::sqlite::SqliteStore, store::AppendRequest};

/// Events per append during import.
pub const IMPORT_CHUNK_EVENTS: usize = 8192;
/// Appends in flight during import.
pub const IMPORT_IN_FLIGHT_MAX: usize = 4;
/// Threads that parse and seal during import (the writer is one more).
pub const IMPORT_SEALERS_MAX: usize = 4;
/// Invalid lines listed before the rest are only counted.
pub const IMPORT_ERRORS_SHOWN_MAX: usize = 100;

/// Namespace of ids derived from import lines. Never change it: re-imports depend on it.
pub const IMPORT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x2b9e_51c0_77a4_4f0e_8d1c_4a6b_0f39_e2d7);

/// Bytes read from a file at a time while importing.
const IMPORT_READ_BUFFER_BYTES: usize = 1 << 20;

/// What to import: NDJSON (streamed, one line at a time: a file of any size is read in
/// chunks) or one JSON array of events (read whole, then split).
pub struct Input {
    pub name: String,
    source: Source,
}

enum Source {
    Text(String),
    File(PathBuf),
    Stdin,
}

impl Input {
    /// Events already in memory (converted datasets, benchmarks, tests).
    pub fn text(name: impl Into<String>, text: String) -> Input {
        Input {
            name: name.into(),
            source: Source::Text(text),
        }
    }

    /// A file, or stdin for `-`; nothing is read yet (a missing file is an error now).
    pub fn read(path: &str) -> anyhow::Result<Input> {
        if path == "-" {
            return Ok(Input {
                name: "<stdin>".into(),
                source: Source::Stdin,
            });
        }
        std::fs::File::open(path).with_context(|| format!("failed to read {path}"))?;
        Ok(Input {
            name: path.to_owned(),
            source: Source::File(PathBuf::from(path)),
        })
    }

    /// Its size in bytes, when known before reading (not for stdin).
    fn len(&self) -> Option<u64> {
        match &self.source {
            Source::Text(t) => Some(t.len() as u64),
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        }
    }

    fn open(&self) -> anyhow::Result<Box<dyn BufRead + '_>> {
        Ok(match &self.source {
            Source::Text(t) => Box::new(t.as_bytes()),
            Source::File(p) => Box::new(std::io::BufReader::with_capacity(
                IMPORT_READ_BUFFER_BYTES,
                std::fs::File::open(p).with_context(|| format!("failed to read {}", self.name))?,
            )),
            Source::Stdin => Box::new(std::io::stdin().lock()),
        })
    }

    /// Sends the input's events, in order, as chunks of at most [`IMPORT_CHUNK_EVENTS`].
    fn chunks<'a>(&'a self, mut send: impl FnMut(Chunk<'a>) -> bool) -> anyhow::Result<()> {
        let mut r = self.open()?;
        // A JSON array if the first non-blank byte is `[`.
        let is_array = loop {
            let buf = r.fill_buf()?;
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    let array = buf[i] == b'[';
                    r.consume(i);
                    break array;
                }
                None if buf.is_empty() => return Ok(()),
                None => {
                    let n = buf.len();
                    r.consume(n);
                }
            }
        };
        if is_array {
            let mut text = String::new();
            r.read_to_string(&mut text)
                .with_context(|| format!("failed to read {}", self.name))?;
            let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: invalid JSON array: {e}", self.name))?;
            for (n, part) in items.chunks(IMPORT_CHUNK_EVENTS).enumerate() {
                let mut chunk = Chunk::new(self, true);
                for (i, item) in part.iter().enumerate() {
                    chunk.push(n * IMPORT_CHUNK_EVENTS + i, item.get());
                }
                // The array was read whole; its bytes are spread over its chunks.
                let share = |k: usize| text.len() as u64 * k as u64 / items.len() as u64;
                let start = n * IMPORT_CHUNK_EVENTS;
                chunk.bytes = share(start + part.len()) - share(start);
                if !send(chunk) {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let mut chunk = Chunk::new(self, false);
        let mut line = String::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = r
                .read_line(&mut line)
                .with_context(|| format!("failed to read {} after line {number}", self.name))?;
            if n == 0 {
                break;
            }
            number += 1;
            chunk.bytes += n as u64;
            let text = line.trim_end_matches(['\n', '\r']);
            if !text.trim().is_empty() {
                chunk.push(number, text);
            }
            if chunk.items.len() == IMPORT_CHUNK_EVENTS
                && !send(std::mem::replace(&mut chunk, Chunk::new(self, false)))
            {
                return Ok(());
            }
        }
        if chunk.bytes > 0 {
            send(chunk);
        }
        Ok(())
    }
}

/// Up to [`IMPORT_CHUNK_EVENTS`] events of one input: their text in one buffer.
struct Chunk<'a> {
    input: &'a Input,
    is_array: bool,
    text: String,
    /// Line number (NDJSON, from 1) or array index (from 0), and where the event is in `text`.
    items: Vec<(usize, std::ops::Range<usize>)>,
    /// Bytes of the input this chunk covers (for the progress bar).
    bytes: u64,
}

impl<'a> Chunk<'a> {
    fn new(input: &'a Input, is_array: bool) -> Chunk<'a> {
        Chunk {
            input,
            is_array,
            text: String::new(),
            items: Vec::with_capacity(IMPORT_CHUNK_EVENTS),
            bytes: 0,
        }
    }

    fn push(&mut self, label: usize, event: &str) {
        let start = self.text.len();
        self.text.push_str(event);
        self.items.push((label, start..self.text.len()));
    }
}

fn parse_item(text: &str) -> Result<Event, ValidationErrors> {
    let mut id = || Uuid::new_v5(&IMPORT_ID_NAMESPACE, text.trim().as_bytes());
    let event = rapport_events::parse_one(text, &mut id, false)?;
    // History of any age is welcome; the future is not.
    rapport_events::envelope::check_not_ahead(
        std::slice::from_ref(&event),
        chrono::Utc::now(),
        |_| String::new(),
    )?;
    Ok(event)
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

/// Imports `inputs` into the store. Synchronous: call it outside async code (or in
/// `tokio::task::block_in_place`).
///
/// One pass, in one bulk transaction: this thread parses and seals chunk after chunk and
/// hands each to the writer thread, which writes it into the open transaction; a second
/// thread collects the answers. At most [`IMPORT_IN_FLIGHT_MAX`] chunks are in flight. An
/// invalid line stops the writing (parsing goes on, to report every invalid line) and the
/// transaction is rolled back, so nothing is written; otherwise it commits with one fsync.
pub fn import(
    store: &SqliteStore,
    log: &Log,
    inputs: &[Input],
    opts: ImportOptions,
) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    let bar = if opts.progress {
        ProgressBar::new(inputs.iter().filter_map(Input::len).sum())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // One core is the writer's; the others seal.
    let sealers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .saturating_sub(1)
        .clamp(1, IMPORT_SEALERS_MAX);
    let any_invalid = std::sync::atomic::AtomicBool::new(false);
    store.bulk_begin()?;
    let carried = std::sync::Mutex::new(Vec::new());
    let (tx, rx) = crossbeam_channel::bounded::<Pending>(IMPORT_IN_FLIGHT_MAX);
    let outcome = std::thread::scope(|s| -> anyhow::Result<(u64, u64)> {
        let waiter = s.spawn(|| -> anyhow::Result<(u64, u64)> {
            let (mut written, mut duplicates) = (0, 0);
            for (reply, keys, bytes) in rx {
                let appended = reply
                    .blocking_recv()
                    .map_err(|_| anyhow::anyhow!("the store stopped"))??;
                // Written into the bulk transaction: later chunks of this import need not
                // carry these keys again. Until the commit they are not durable; if the
                // transaction rolls back they go back to pending (below).
                log.keys.mark_durable(&keys);
                carried
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(keys);
                let dups = appended.iter().filter(|a| a.duplicate).count() as u64;
                duplicates += dups;
                written += appended.len() as u64 - dups;
                bar.inc(bytes);
            }
            Ok((written, duplicates))
        });
        // The reader deals chunks out to the sealers in turn (chunk i to sealer i mod n);
        // this thread takes their results back in the same turn, so in input order.
        let (inputs_tx, inputs_rx): (Vec<_>, Vec<_>) = (0..sealers)
            .map(|_| crossbeam_channel::bounded::<Chunk<'_>>(2))
            .unzip();
        let reader = s.spawn(move || -> anyhow::Result<()> {
            let mut i = 0usize;
            for input in inputs {
                input.chunks(|chunk| {
                    let sent = inputs_tx[i % sealers].send(chunk).is_ok();
                    i += 1;
                    sent
                })?;
            }
            Ok(())
        });
        let outputs: Vec<crossbeam_channel::Receiver<SealedChunk>> = inputs_rx
            .into_iter()
            .map(|chunks| {
                let (out_tx, out_rx) = crossbeam_channel::bounded(2);
                let any_invalid = &any_invalid;
                s.spawn(move || {
                    for chunk in chunks {
                        let sealed = seal_chunk(log, &chunk, any_invalid, opts.skip_invalid);
                        if out_tx.send(sealed).is_err() {
                            return;
                        }
                    }
                });
                out_rx
            })
            .collect();
        // Hand the sealed chunks to the writer in input order.
        let sent = (|| -> anyhow::Result<()> {
            // A sealer's channel closes when the reader is done and it has sent all its
            // chunks; the next chunk in turn would have been its, so that is the end.
            for i in 0.. {
                let Ok(out) = outputs[i % sealers].recv() else {
                    break;
                };
                report.events_read += out.lines;
                for e in out.errors {
                    report.invalid += 1;
                    if report.errors.len() < IMPORT_ERRORS_SHOWN_MAX {
                        report.errors.push(e);
                    }
                }
                match out.sealed {
                    Some(req) if report.invalid == 0 || opts.skip_invalid => {
                        let keys = req.new_keys.clone();
                        tx.send((store.append_nowait(req)?, keys, out.bytes))
                            .map_err(|_| {
                                anyhow::anyhow!("the import stopped waiting for the writer")
                            })?;
                    }
                    _ => bar.inc(out.bytes),
                }
            }
            Ok(())
        })();
        drop(tx);
        drop(outputs);
        // The waiter's error is the cause when both failed (it stopped, so sending failed).
        let counts = waiter.join().expect("the waiter does not panic")?;
        reader.join().expect("the reader does not panic")?;
        sent?;
        Ok(counts)
    });
    let commit = outcome.is_ok() && (report.invalid == 0 || opts.skip_invalid);
    let ended = store.bulk_end(commit);
    if !(commit && ended.is_ok()) {
        log.keys
            .restore_pending(&carried.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    let (written, duplicates) = outcome?;
    let committed = ended?;
    if commit {
        anyhow::ensure!(
            committed == written,
            "the store committed {committed} events but {written} were written"
        );
        report.events_written = written;
        report.duplicates = duplicates;
    }
    bar.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

struct SealedChunk {
    lines: u64,
    bytes: u64,
    errors: Vec<String>,
    sealed: Option<AppendRequest>,
}

/// Parses a chunk and, unless some line anywhere was invalid, seals it.
fn seal_chunk(
    log: &Log,
    chunk: &Chunk<'_>,
    any_invalid: &std::sync::atomic::AtomicBool,
    skip_invalid: bool,
) -> SealedChunk {
    let mut events = Vec::with_capacity(chunk.items.len());
    let mut errors = Vec::new();
    for (label, range) in &chunk.items {
        match parse_item(&chunk.text[range.clone()]) {
            Ok(ev) => events.push(ev),
            Err(e) => {
                any_invalid.store(true, std::sync::atomic::Ordering::Relaxed);
                let name = &chunk.input.name;
                let at = if chunk.is_array {
                    format!("{name}:[{label}]")
                } else {
                    format!("{name}:{label}")
                };
                errors.push(format!("{at}: {e}"));
            }
        }
    }
    // After an invalid line nothing will be written (unless invalid lines are skipped):
    // sealing would be wasted work.
    let doomed = !skip_invalid && any_invalid.load(std::sync::atomic::Ordering::Relaxed);
    let sealed = (!events.is_empty() && !doomed)
        .then(|| log.seal_request(&events, crate::log::AppendRules::all_or_nothing()));
    SealedChunk {
        lines: chunk.items.len() as u64,
        bytes: chunk.bytes,
        errors,
        sealed,
    }
}

type Pending = (
    tokio::sync::oneshot::Receiver<Result<Vec<crate::store::Appended>, crate::store::StoreError>>,
    Vec<crate::store::WrappedKey>,
    u64,
);
