//! The writer thread: group commits, bulk imports, and the plan of each append job.

use super::*;

pub(super) fn writer_loop(
    mut conn: Connection,
    rx: crossbeam_channel::Receiver<Job>,
    shared: Arc<Shared>,
    metrics: Arc<dyn WriterMetrics>,
) {
    let mut key_rows = match load_key_rows(&conn) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the data keys; the writer stops");
            return;
        }
    };
    let mut bulk: Option<Bulk> = None;
    while let Ok(first) = rx.recv() {
        let mut appends = Vec::new();
        let mut events = 0usize;
        let mut others = Vec::new();
        let mut push = |job: Job, appends: &mut Vec<_>, events: &mut usize| match job {
            Job::Append(req, reply) => {
                *events += req.events.len();
                appends.push((req, reply));
            }
            other => others.push(other),
        };
        push(first, &mut appends, &mut events);
        while events < GROUP_COMMIT_EVENTS_MAX {
            match rx.try_recv() {
                Ok(job) => push(job, &mut appends, &mut events),
                Err(_) => break,
            }
        }
        if !appends.is_empty() {
            if let Some(b) = bulk.as_mut() {
                bulk_write(&conn, &shared, &key_rows, b, appends);
            } else {
                commit_group(&mut conn, &shared, &mut key_rows, appends, &*metrics);
            }
        }
        for job in others {
            match job {
                Job::BulkBegin(reply) => {
                    let r = if bulk.is_some() {
                        Err(StoreError::Invalid(
                            "a bulk import is already running".into(),
                        ))
                    } else {
                        conn.execute_batch("BEGIN IMMEDIATE")
                            .map_err(StoreError::from)
                            .map(|()| {
                                bulk = Some(Bulk {
                                    pending: Pending::new(&shared),
                                    recorded_at: shared.recorded_now(),
                                    failed: None,
                                });
                            })
                    };
                    let _ = reply.send(r);
                }
                Job::BulkEnd(commit, reply) => {
                    let r = match bulk.take() {
                        None => Err(StoreError::Invalid("no bulk import is running".into())),
                        Some(b) => {
                            let started = Instant::now();
                            let ok = commit && b.failed.is_none();
                            let sql = if ok { "COMMIT" } else { "ROLLBACK" };
                            match conn.execute_batch(sql) {
                                Ok(()) if ok => {
                                    let n = publish(&shared, &mut key_rows, b.pending);
                                    metrics.group_committed(n, 1, started.elapsed().as_secs_f64());
                                    truncate_wal(&conn);
                                    Ok(n as u64)
                                }
                                Ok(()) => match b.failed {
                                    Some(f) => Err(StoreError::Io(f)),
                                    None => Ok(0),
                                },
                                Err(e) => {
                                    let _ = conn.execute_batch("ROLLBACK");
                                    Err(e.into())
                                }
                            }
                        }
                    };
                    let _ = reply.send(r);
                }
                Job::Rewrap(keys, master_id, reply) => {
                    let _ = reply.send(rewrap(&mut conn, &key_rows, keys, &master_id));
                }
                Job::Purge(reply) => {
                    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)).map_err(StoreError::from).and_then(|busy| {
                        if busy != 0 {
                            Err(StoreError::Io("the checkpoint was blocked by a reader; it will complete at the next checkpoint".into()))
                        } else {
                            Ok(())
                        }
                    });
                    let _ = reply.send(r);
                }
                Job::Append(..) => unreachable!("appends are collected above"),
            }
        }
    }
}

/// Copies what the write-ahead log holds into the database file and empties the log
/// (`wal_checkpoint(TRUNCATE)`). After a bulk import the log is as large as the import
/// (3 GB for 10 M events): left in place it doubles the disk the store takes, and every
/// later read looks each page up in its index first. A checkpoint that a reader blocks
/// is only logged: SQLite's automatic checkpoints finish the copy later.
pub(super) fn truncate_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::debug!("the checkpoint after the import was blocked by a reader"),
        Err(e) => tracing::warn!(error = %e, "could not checkpoint the write-ahead log"),
    }
}

/// What an open transaction has added on top of the shared index: positions, streams and
/// key rows that become visible (merged into the shared state) only when it commits.
pub(super) struct Pending {
    /// Event id → position. The rest of a duplicate's record is read back from the open
    /// transaction (a connection sees its own uncommitted rows), so this stays small.
    pub(super) ids: FastMap<IdKey, u64>,
    pub(super) streams: FastMap<String, Vec<u64>>,
    pub(super) key_rows: KeyRows,
    /// The position the next new event gets.
    pub(super) next: u64,
}

impl Pending {
    pub(super) fn new(shared: &Shared) -> Pending {
        Pending {
            ids: FastMap::default(),
            streams: FastMap::default(),
            key_rows: KeyRows::default(),
            next: shared.last.load(Ordering::Acquire) + 1,
        }
    }
}

pub(super) type Reply = oneshot::Sender<Result<Vec<Appended>, StoreError>>;

/// Each job's reply with its outcome.
pub(super) type Answered = Vec<(Reply, Result<Vec<Appended>, StoreError>)>;

/// Writes `jobs` into the open transaction. Returns each job's outcome, or an IO error
/// (then the transaction must be rolled back) with the replies still to be answered.
pub(super) fn write_jobs(
    conn: &Connection,
    idx: &Index,
    key_rows: &KeyRows,
    p: &mut Pending,
    recorded_at: &str,
    jobs: Vec<(AppendRequest, Reply)>,
) -> Result<Answered, (StoreError, Vec<Reply>)> {
    let mut replies = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    let result = (|| -> Result<(), StoreError> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (position, id, stream, stream_version, type, version, customer, occurred_at, recorded_at, data, metadata, sealed, key_gen, digest)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        let mut lookup = conn.prepare_cached(
            "SELECT digest, key_gen, stream, stream_version, id FROM events WHERE position = ?1",
        )?;
        let mut insert_key =
            conn.prepare_cached("INSERT INTO data_keys (customer, generation, wrapped, master_key_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        let mut destroy_key = conn.prepare_cached(
            "UPDATE data_keys SET wrapped = NULL, destroyed_at = ?2 WHERE key_row = ?1",
        )?;
        for (req, reply) in jobs.by_ref() {
            // Decide everything about this job before writing any of it.
            let plan = match plan_job(&req, idx, p, &mut lookup) {
                Ok(plan) => plan,
                Err(e) => {
                    replies.push((reply, Err(e)));
                    continue;
                }
            };
            // From here on an error is an IO error: the reply joins the failed ones.
            replies.push((reply, Ok(Vec::new())));
            for (ev, slot) in req.events.iter().zip(&plan) {
                if slot.duplicate {
                    continue;
                }
                let (sealed, key_gen) = match &ev.sealed {
                    Some((s, g)) => (Some(s.as_slice()), Some(*g)),
                    None => (None, None),
                };
                insert.execute(params![
                    slot.position as i64,
                    ev.id.as_bytes().as_slice(),
                    ev.stream,
                    slot.stream_version as i64,
                    ev.event_type.as_str(),
                    ev.version,
                    ev.customer,
                    time_text(&ev.occurred_at),
                    recorded_at,
                    ev.data,
                    ev.metadata,
                    sealed,
                    key_gen,
                    ev.digest.as_slice(),
                ])?;
                p.ids.insert(ev.id.as_u64_pair(), slot.position);
                match p.streams.get_mut(ev.stream.as_str()) {
                    Some(v) => v.push(slot.position),
                    None => {
                        p.streams.insert(ev.stream.clone(), vec![slot.position]);
                    }
                }
                p.next = slot.position + 1;
            }
            for k in &req.new_keys {
                if key_rows.get(conn, &k.customer, k.generation)?.is_some()
                    || p.key_rows.get(conn, &k.customer, k.generation)?.is_some()
                {
                    continue;
                }
                insert_key.execute(params![
                    k.customer,
                    k.generation,
                    k.wrapped,
                    k.master_key_id,
                    recorded_at
                ])?;
                p.key_rows
                    .insert(&k.customer, k.generation, conn.last_insert_rowid());
            }
            for (customer, generation) in &req.destroy_keys {
                let row = match key_rows.get(conn, customer, *generation)? {
                    Some(row) => Some(row),
                    None => p.key_rows.get(conn, customer, *generation)?,
                };
                if let Some(row) = row {
                    destroy_key.execute(params![row, recorded_at])?;
                }
            }
            if let Some(k) = req.new_keys.first() {
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('master_key_id', ?1)",
                    [&k.master_key_id],
                )?;
            }
            let appended = req
                .events
                .iter()
                .zip(plan)
                .map(|(ev, slot)| Appended {
                    id: ev.id,
                    position: slot.position,
                    stream: slot.stream.unwrap_or_else(|| ev.stream.clone()),
                    stream_version: slot.stream_version,
                    duplicate: slot.duplicate,
                })
                .collect();
            replies.last_mut().expect("pushed above").1 = Ok(appended);
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(replies),
        Err(e) => {
            let mut failed: Vec<Reply> = replies.into_iter().map(|(r, _)| r).collect();
            failed.extend(jobs.map(|(_, r)| r));
            Err((e, failed))
        }
    }
}

/// Makes a committed transaction visible: merges its additions into the shared index.
pub(super) fn publish(shared: &Shared, key_rows: &mut KeyRows, p: Pending) -> usize {
    let last = shared.last.load(Ordering::Acquire);
    let written = (p.next - 1 - last) as usize;
    key_rows.merge(p.key_rows);
    if written > 0 {
        let mut idx = shared.index.write().unwrap_or_else(|e| e.into_inner());
        idx.ids.reserve(p.ids.len());
        for (id, pos) in p.ids {
            idx.ids.insert(&Uuid::from_u64_pair(id.0, id.1), pos);
        }
        for (stream, positions) in p.streams {
            let all = idx.streams.get_or_insert_with(&stream, Positions::default);
            for position in positions {
                all.push(position);
            }
        }
        drop(idx);
        shared.last.store(p.next - 1, Ordering::Release);
        shared.notify.send_replace(p.next - 1);
    }
    written
}

pub(super) fn fail_all(replies: Vec<Reply>, e: &StoreError) {
    for r in replies {
        let answer = match e {
            StoreError::Full(m) => StoreError::Full(m.clone()),
            other => StoreError::Io(other.to_string()),
        };
        let _ = r.send(Err(answer));
    }
}

/// Logs a commit that failed: a full disk once per episode (every request would repeat
/// it), anything else each time.
fn commit_failed(shared: &Shared, e: &StoreError) {
    match e {
        StoreError::Full(_) => {
            if !shared.full.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, "the store's disk is full: appends are refused (507) until there is room; nothing was lost");
            }
        }
        _ => tracing::error!(error = %e, "group commit failed; nothing of it was written"),
    }
}

/// One group commit: one transaction, one fsync, then every caller is answered.
/// Commits one group and answers its appenders. The metrics are recorded before the
/// answers go out, so whoever saw an acknowledgement sees it counted.
pub(super) fn commit_group(
    conn: &mut Connection,
    shared: &Shared,
    key_rows: &mut KeyRows,
    jobs: Vec<(AppendRequest, Reply)>,
    metrics: &dyn WriterMetrics,
) -> usize {
    let started = Instant::now();
    let job_count = jobs.len();
    let recorded_at = shared.recorded_now();
    let mut pending = Pending::new(shared);
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = e.into();
        commit_failed(shared, &e);
        fail_all(jobs.into_iter().map(|(_, r)| r).collect(), &e);
        return 0;
    }
    let idx = shared.index.read().unwrap_or_else(|e| e.into_inner());
    let outcome = write_jobs(conn, &idx, key_rows, &mut pending, &recorded_at, jobs);
    drop(idx);
    match outcome.and_then(|replies| match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(replies),
        Err(e) => Err((e.into(), replies.into_iter().map(|(r, _)| r).collect())),
    }) {
        Ok(replies) => {
            if shared.full.swap(false, Ordering::Relaxed) {
                tracing::info!("the store's disk has room again: appends go through");
            }
            let written = publish(shared, key_rows, pending);
            metrics.group_committed(written, job_count, started.elapsed().as_secs_f64());
            for (reply, r) in replies {
                let _ = reply.send(r);
            }
            written
        }
        Err((e, replies)) => {
            let _ = conn.execute_batch("ROLLBACK");
            commit_failed(shared, &e);
            fail_all(replies, &e);
            0
        }
    }
}

/// A bulk import's transaction: open across many appends, committed (one fsync) or rolled
/// back as a whole at the end, so an import is all or nothing and never half-visible.
pub(super) struct Bulk {
    pub(super) pending: Pending,
    pub(super) recorded_at: String,
    /// The first IO error; once set, the bulk can only be rolled back.
    pub(super) failed: Option<String>,
}

pub(super) fn bulk_write(
    conn: &Connection,
    shared: &Shared,
    key_rows: &KeyRows,
    b: &mut Bulk,
    jobs: Vec<(AppendRequest, Reply)>,
) {
    if let Some(f) = &b.failed {
        fail_all(
            jobs.into_iter().map(|(_, r)| r).collect(),
            &StoreError::Io(f.clone()),
        );
        return;
    }
    let idx = shared.index.read().unwrap_or_else(|e| e.into_inner());
    match write_jobs(conn, &idx, key_rows, &mut b.pending, &b.recorded_at, jobs) {
        Ok(replies) => {
            for (reply, r) in replies {
                let _ = reply.send(r);
            }
        }
        Err((e, replies)) => {
            b.failed = Some(e.to_string());
            fail_all(replies, &e);
        }
    }
}

pub(super) struct Slot {
    pub(super) position: u64,
    pub(super) stream_version: u64,
    pub(super) duplicate: bool,
    /// For duplicates: the stream the original landed in.
    pub(super) stream: Option<String>,
}

pub(super) fn plan_job(
    req: &AppendRequest,
    idx: &Index,
    overlay: &Pending,
    lookup: &mut rusqlite::CachedStatement<'_>,
) -> Result<Vec<Slot>, StoreError> {
    let mut next = overlay.next;
    let mut slots = Vec::with_capacity(req.events.len());
    // Ids and stream lengths this job itself adds, for duplicates inside one request.
    let mut local_ids: FastMap<IdKey, usize> = FastMap::default();
    let mut local_streams: FastMap<&str, u64> = FastMap::default();
    let stream_len = |s: &str, local: &FastMap<&str, u64>| -> u64 {
        idx.streams.get(s).map_or(0, |p| p.len() as u64)
            + overlay.streams.get(s).map_or(0, |p| p.len() as u64)
            + local.get(s).copied().unwrap_or(0)
    };
    // `AppendRequest::check` ran before the request was queued.
    for ev in &req.events {
        let key = ev.id.as_u64_pair();
        let (candidates, exact) = match overlay.ids.get(&key) {
            Some(&pos) => (vec![pos], true),
            None => match idx.ids.lookup(&ev.id) {
                IdLookup::At(pos) => (vec![pos], true),
                IdLookup::Candidates(c) => (c, false),
            },
        };
        let mut stored = None;
        for pos in candidates {
            type Row = (Vec<u8>, Option<u32>, String, i64, Vec<u8>);
            let (digest, gen, stream, version, id): Row = lookup.query_row([pos as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            let integrity = |what: &str| StoreError::Integrity {
                position: pos,
                what: what.into(),
            };
            let digest: [u8; 16] = digest
                .as_slice()
                .try_into()
                .map_err(|_| integrity("bad digest"))?;
            let same_id = id.as_slice() == ev.id.as_bytes();
            if exact && !same_id {
                return Err(integrity("the id index points at another event"));
            }
            // A fingerprint shared with another id: this one is not stored there.
            if same_id {
                stored = Some((pos, digest, gen, stream, version as u64));
                break;
            }
        }
        if let Some((pos, digest, gen, stream, version)) = stored {
            let new_gen = ev.sealed.as_ref().map(|(_, g)| *g);
            // Events sealed with different key generations cannot be compared (the old
            // key may be destroyed): the stored one wins and nothing is written, so a
            // late retry can never bring erased data back.
            let same =
                digest == ev.digest || (gen.is_some() && new_gen.is_some() && gen != new_gen);
            if !same {
                return Err(StoreError::IdConflict {
                    id: ev.id,
                    position: pos,
                });
            }
            slots.push(Slot {
                position: pos,
                stream_version: version,
                duplicate: true,
                stream: Some(stream),
            });
            continue;
        }
        if let Some(&i) = local_ids.get(&key) {
            if req.events[i].digest != ev.digest {
                return Err(StoreError::IdConflict {
                    id: ev.id,
                    position: slots[i].position,
                });
            }
            let s = &slots[i];
            let dup = Slot {
                position: s.position,
                stream_version: s.stream_version,
                duplicate: true,
                stream: None,
            };
            slots.push(dup);
            continue;
        }
        let version = stream_len(&ev.stream, &local_streams);
        *local_streams.entry(ev.stream.as_str()).or_default() += 1;
        local_ids.insert(key, slots.len());
        slots.push(Slot {
            position: next,
            stream_version: version,
            duplicate: false,
            stream: None,
        });
        next += 1;
    }
    if let Some((stream, expected)) = &req.expected {
        let all_duplicates = slots.iter().all(|s| s.duplicate);
        // A retried append whose events are all stored already succeeds again (idempotent).
        if !all_duplicates {
            let len = idx
                .streams
                .get(stream.as_str())
                .map_or(0, |p| p.len() as u64)
                + overlay.streams.get(stream).map_or(0, |p| p.len() as u64);
            let ok = match expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => len == 0,
                ExpectedVersion::Exact(v) => len == v + 1,
            };
            if !ok {
                let actual = if len == 0 {
                    "no_stream".to_string()
                } else {
                    (len - 1).to_string()
                };
                return Err(StoreError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected: *expected,
                    actual,
                });
            }
        }
    }
    Ok(slots)
}
