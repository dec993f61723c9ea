//! The deadline clock: alerts' deadlines pass on event time only (projections never read
//! the wall clock), so when a deadline falls due and no customer event has moved event
//! time past it, this task appends a `clock_ticked` event stamped with the wall clock.
//! The fold then marks the alert overdue at that event's position, and a replay marks it
//! at the same one. It ticks only when a deadline is due, never on a fixed beat.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use rapport_events::{
    data::{ClockTicked, EventData},
    Event, Subject,
};

use crate::{log::Log, read_model::ReadModel, store::ExpectedVersion};

/// The subject (`clock-deadlines`) of the ticks.
pub const CLOCK_ID: &str = "deadlines";
/// Longest sleep between two looks at the next deadline (a new alert may bring one
/// closer without waking the task otherwise).
const LOOK_EVERY: Duration = Duration::from_secs(30);
/// Wait after a failed append before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Starts the task; it runs until the handle is aborted.
pub fn spawn(
    log: Log,
    read_model: Arc<ReadModel>,
    ids: impl Fn() -> uuid::Uuid + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut applied = read_model.watch_applied();
        loop {
            let caught_up = read_model.applied_position() >= log.last_position();
            let next = read_model.state.read().await.warnings.next_deadline();
            let now = Utc::now();
            let wait = match next {
                Some(due) if due <= now && caught_up => match tick(&log, &ids).await {
                    Ok(position) => {
                        read_model.wait_for(position).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not append the deadline clock's tick");
                        RETRY_AFTER
                    }
                },
                Some(due) if due > now => {
                    (due - now).to_std().unwrap_or(LOOK_EVERY).min(LOOK_EVERY)
                }
                _ => LOOK_EVERY,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = applied.changed() => if changed.is_err() { return },
            }
        }
    })
}

async fn tick(log: &Log, ids: &(impl Fn() -> uuid::Uuid + Sync)) -> anyhow::Result<u64> {
    let event = Event {
        id: ids(),
        data: EventData::ClockTicked(ClockTicked {}),
        customer: CLOCK_ID.to_owned(),
        occurred_at: Utc::now(),
        metadata: Default::default(),
    };
    let stream = Subject::Clock(CLOCK_ID.to_owned()).stream();
    let appended = log
        .append(
            &[event],
            crate::log::AppendRules::in_stream(stream, ExpectedVersion::Any),
        )
        .await?;
    tracing::info!(position = appended[0].position, "deadline clock ticked");
    Ok(appended[0].position)
}
