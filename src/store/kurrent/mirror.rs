//! The mirror: Rapport's gapless numbering of its events in `$all`, kept by following
//! `$all` with a catch-up subscription.

use super::*;

/// Rapport's numbering of its events in `$all`, as far as this instance has followed it.
#[derive(Default)]
pub struct Mirror {
    /// For position *n* at index *n − 1*: its `$all` position and recorded time in µs
    /// (kept non-decreasing, as time travel by knowledge time needs).
    pub(super) at: Vec<(Position, i64)>,
    pub(super) ids: FastMap<u128, u64>,
    /// Last revision of each stream.
    pub(super) streams: FastMap<Box<str>, u64>,
}

impl Mirror {
    pub fn last(&self) -> u64 {
        self.at.len() as u64
    }

    /// Takes the next event of Rapport's streams in `$all` order and returns its position,
    /// or `None` when it is not after the last one (a resubscription overlaps).
    pub fn apply(
        &mut self,
        stream: &str,
        revision: u64,
        id: Uuid,
        at: Position,
        created: DateTime<Utc>,
    ) -> Option<u64> {
        let floor = match self.at.last() {
            Some(&(last, _)) if at <= last => return None,
            Some(&(_, t)) => t,
            None => i64::MIN,
        };
        self.at.push((at, created.timestamp_micros().max(floor)));
        let position = self.last();
        // The first occurrence of an id is the event; a later one could only come from a
        // writer that bypassed Rapport.
        self.ids.entry(id.as_u128()).or_insert(position);
        self.streams.insert(stream.into(), revision);
        Some(position)
    }

    pub(super) fn recorded_at(&self, position: u64) -> DateTime<Utc> {
        let micros = self.at[position as usize - 1].1;
        Utc.timestamp_micros(micros).single().unwrap_or_default()
    }
}

/// Keeps the mirror and the last position in step.
pub(super) struct Shared {
    pub(super) mirror: RwLock<Mirror>,
    pub(super) last: watch::Sender<u64>,
}

impl Shared {
    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.mirror.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn apply(&self, events_prefix: &str, rec: &RecordedEvent) {
        let Some(stream) = rec.stream_id().strip_prefix(events_prefix) else {
            return;
        };
        if rec.event_type.starts_with('$') {
            return;
        }
        let p = self
            .mirror
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(stream, rec.revision, rec.id, rec.position, rec.created);
        if let Some(p) = p {
            self.last.send_replace(p);
        }
    }
}

/// Fills the answers for ids repeated inside one request from their first occurrence.
pub(super) fn fill_inner_duplicates(
    events: &[&SealedEvent],
    mut out: Vec<Option<Appended>>,
) -> Result<Vec<Appended>, StoreError> {
    for i in 0..out.len() {
        if out[i].is_none() {
            let first = out[..i]
                .iter()
                .flatten()
                .find(|a| a.id == events[i].id)
                .cloned()
                .ok_or_else(|| StoreError::Io("kurrentdb: lost track of an event".into()))?;
            out[i] = Some(Appended {
                duplicate: true,
                ..first
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// One forward page of `$all`, filtered to streams starting with `prefix`.
pub(super) async fn read_page(
    client: &Client,
    prefix: &str,
    from: StreamPosition<Position>,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let options = ReadAllOptions::default()
        .position(from)
        .forwards()
        .filter(SubscriptionFilter::on_stream_name().add_prefix(prefix))
        .max_count(max)
        .deadline(CALL_DEADLINE);
    let mut stream = client
        .read_all(&options)
        .await
        .map_err(|e| io("read $all", e))?;
    let mut out = Vec::new();
    while let Some(ev) = stream.next().await.map_err(|e| io("read $all", e))? {
        if let Some(ev) = ev.event {
            out.push(ev);
        }
    }
    Ok(out)
}

/// Hands `each` every event of streams starting with `prefix`, from the start of `$all` to
/// its end, in order, once each (pages overlap when the server treats a start position as
/// inclusive).
pub(super) async fn read_through(
    client: &Client,
    prefix: &str,
    mut each: impl FnMut(RecordedEvent),
) -> Result<(), StoreError> {
    let mut after: Option<Position> = None;
    loop {
        let from = after.map_or(StreamPosition::Start, StreamPosition::Position);
        let page = read_page(client, prefix, from, CATCH_UP_PAGE_EVENTS).await?;
        let seen = after;
        let fresh: Vec<RecordedEvent> = page
            .into_iter()
            .filter(|r| seen.is_none_or(|a| r.position > a))
            .collect();
        // A filtered read may return a short page before the end; only a page with nothing
        // new proves the end was reached.
        if fresh.is_empty() {
            return Ok(());
        }
        for r in fresh {
            after = Some(r.position);
            each(r);
        }
    }
}

/// Reads Rapport's events from the start of `$all` into the (empty) mirror.
pub(super) async fn catch_up(
    client: &Client,
    prefix: &str,
    shared: &Shared,
) -> Result<(), StoreError> {
    let started = Instant::now();
    read_through(client, prefix, |ev| shared.apply(prefix, &ev)).await?;
    tracing::info!(
        events = shared.read().last(),
        seconds = started.elapsed().as_secs_f64(),
        "kurrentdb: caught up with $all"
    );
    Ok(())
}

/// Follows `$all` for as long as the store lives, resubscribing after errors from the last
/// position seen (a server restart or a leader change ends a subscription).
pub(super) async fn follow(client: Client, prefix: String, shared: Arc<Shared>) {
    loop {
        let from = match shared.read().at.last() {
            Some(&(p, _)) => StreamPosition::Position(p),
            None => StreamPosition::Start,
        };
        let options = SubscribeToAllOptions::default()
            .position(from)
            .filter(SubscriptionFilter::on_stream_name().add_prefix(&prefix));
        let mut sub = client.subscribe_to_all(&options).await;
        loop {
            match sub.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(ev)) => {
                    if let Some(ev) = ev.event {
                        shared.apply(&prefix, &ev);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "kurrentdb: the $all subscription ended; resubscribing");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
