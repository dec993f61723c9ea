//! Time travel: as-of queries from history snapshots, and `valid_at` queries from
//! business-time builds (before and after a late import).

use super::*;

/// As-of queries (issue 5's target: under 2 s on a 10 M-event log): a read model that keeps
/// history snapshots folds the log, then states at seeded random positions are rebuilt the
/// way `as_of_position` rebuilds them (nearest history snapshot, then the events after it).
pub(super) async fn as_of_queries(
    log: &Log,
    dir: &std::path::Path,
    seed: u64,
    times: LogTimes,
) -> anyhow::Result<()> {
    const QUERIES: usize = 5;
    let snapshots = crate::layout::DataDir::new(dir).snapshots();
    let last = log.last_position();
    let started = Instant::now();
    let model = crate::read_model::ReadModel::spawn(
        log.clone(),
        crate::read_model::ReadModelOptions::service(Some(snapshots.clone())),
    )
    .await;
    caught_up(&model, last).await?;
    println!(
        "{}   (snapshots every {}, history every {})",
        Rate {
            what: "catch-up keeping snapshots",
            events: last,
            seconds: started.elapsed().as_secs_f64(),
        },
        crate::config::SNAPSHOT_EVERY_EVENTS,
        crate::config::HISTORY_EVERY_EVENTS,
    );
    // A log shorter than the history interval has no history snapshots (nor their folder).
    let listed = || {
        std::fs::read_dir(crate::fold::history::history_dir(&snapshots))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
    };
    let history: Vec<u64> = listed()
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .collect();
    println!(
        "history snapshots: {} files, {} MB in all, the largest {} MB",
        history.len(),
        history.iter().sum::<u64>() / 1_000_000,
        history.iter().max().copied().unwrap_or(0) / 1_000_000,
    );
    // Seconds to build the state at `position` (only events that occurred by `valid_at`),
    // and the events read for it, with a fresh `TimeTravel` each time so nothing is cached
    // from the previous query.
    let query = |position: u64, valid_at: Option<chrono::DateTime<chrono::Utc>>| {
        let tt = crate::fold::time_travel::TimeTravel::new(
            log.clone(),
            Some(snapshots.clone()),
            Default::default(),
            Default::default(),
        );
        async move {
            let started = Instant::now();
            let state = tt.state_at(position, valid_at).await?;
            anyhow::ensure!(
                state.position() == position,
                "as-of state at {} not {position}",
                state.position()
            );
            Ok((started.elapsed().as_secs_f64(), tt.events_read()))
        }
    };
    let median_max = |mut s: Vec<f64>| {
        s.sort_by(f64::total_cmp);
        (s[s.len() / 2], s[s.len() - 1])
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seconds = Vec::new();
    for _ in 0..QUERIES {
        seconds.push(query(rng.gen_range(1..=last), None).await?.0);
    }
    let (median, max) = median_max(seconds);
    println!(
        "as-of query (state at a random position, {QUERIES} queries): median {median:.2} s, max {max:.2} s (target: under 2 s on 10 M events)"
    );
    // Random positions rarely fall where it costs most: just before the last history
    // snapshot, the largest state is loaded and a whole interval folded after it.
    let mut kept: Vec<u64> = listed()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".snapshot")?
                .parse()
                .ok()
        })
        .collect();
    kept.sort_unstable();
    if let [.., before, last_kept] = kept[..] {
        let (s, read) = query(last_kept - 1, None).await?;
        println!(
            "as-of query, worst case (position {}: the snapshot at {before}, then {read} events): {s:.2} s (target: under 2 s)",
            last_kept - 1
        );
    }
    // Business time: `serve` builds it in a child process once the log has grown enough;
    // here in this process, as `rapport valid-time` does. A query then loads the build's
    // snapshot before `valid_at` and folds at most one interval of business order after it,
    // whether the log's business times are shuffled or not.
    let started = Instant::now();
    let every = crate::config::VALID_TIME_EVERY_EVENTS;
    let m = crate::fold::valid_time::build(
        log,
        &snapshots,
        last,
        every,
        Default::default(),
        Default::default(),
        |_| {},
    )
    .await?;
    let built: u64 =
        crate::fold::valid_time::builds(&snapshots, &Default::default(), &Default::default())
            .first()
            .and_then(|(dir, _)| std::fs::read_dir(dir).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
            .sum();
    println!(
        "{}   ({} snapshots every {every} events of business order, {} MB)",
        Rate {
            what: "business-time build (valid_at)",
            events: last,
            seconds: started.elapsed().as_secs_f64(),
        },
        m.snapshots(),
        built / 1_000_000
    );
    let pick = |rng: &mut StdRng| -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
        Ok(match times {
            LogTimes::Shuffled => {
                let day = rng.gen_range(1..=28);
                chrono::DateTime::parse_from_rfc3339(&format!("2026-03-{day:02}T12:00:00Z"))?
                    .to_utc()
            }
            LogTimes::InOrder { .. } => {
                let (start, span) = LogTimes::in_order_span();
                start + span * rng.gen_range(5..95) / 100
            }
        })
    };
    let valid_at_queries = |position: u64, rng: &mut StdRng| {
        let ts: anyhow::Result<Vec<_>> = (0..VALID_AT_QUERIES).map(|_| pick(rng)).collect();
        async move {
            let mut seconds = Vec::new();
            let mut read = 0;
            for t in ts? {
                let (secs, events) = query(position, Some(t)).await?;
                seconds.push(secs);
                read += events;
            }
            let (median, max) = median_max(seconds);
            anyhow::Ok((median, max, read / VALID_AT_QUERIES as u64))
        }
    };
    let (median, max, read) = valid_at_queries(last, &mut rng).await?;
    println!(
        "valid_at query (at the last position, {VALID_AT_QUERIES} queries; {}): median {median:.2} s, max {max:.2} s, {read} events read per query on average",
        times.describe(),
    );
    // A late import recorded after the build: events that occurred in the middle of the
    // log's business time. Until the next build, a query after that time starts from a
    // snapshot before it; the next build keeps the snapshots before it.
    let late_at = match times {
        LogTimes::Shuffled => {
            chrono::DateTime::parse_from_rfc3339("2026-03-15T00:00:00Z")?.to_utc()
        }
        LogTimes::InOrder { .. } => {
            let (start, span) = LogTimes::in_order_span();
            start + span / 2
        }
    };
    let late: Vec<rapport_events::Event> = (0..LATE_IMPORT_EVENTS)
        .map(|i| {
            let at = rapport_events::envelope::format_time(
                &(late_at + chrono::Duration::seconds(i as i64)),
            );
            rapport_events::parse_one(
                &format!(
                    r#"{{"type":"purchase","customer":"c-{i}","occurred_at":"{at}","data":{{"order_id":"late-{i}","amount":"9.90","currency":"CNY"}}}}"#
                ),
                &mut uuid::Uuid::now_v7,
                true,
            )
        })
        .collect::<Result<_, _>>()?;
    log.append(&late, crate::log::AppendRules::per_stream())
        .await?;
    let with_late = log.last_position();
    let (median, max, read) = valid_at_queries(with_late, &mut rng).await?;
    println!(
        "valid_at query after {LATE_IMPORT_EVENTS} events that occurred on {late_at} were recorded, before the next build: median {median:.2} s, max {max:.2} s, {read} events read per query on average"
    );
    let started = Instant::now();
    let mut folded = 0;
    let m = crate::fold::valid_time::build(
        log,
        &snapshots,
        with_late,
        every,
        Default::default(),
        Default::default(),
        |n| folded += n,
    )
    .await?;
    println!(
        "the business-time build after them: {:.2} s, {folded} events folded ({} snapshots)",
        started.elapsed().as_secs_f64(),
        m.snapshots()
    );
    let (median, max, read) = valid_at_queries(with_late, &mut rng).await?;
    println!(
        "valid_at query after that build: median {median:.2} s, max {max:.2} s, {read} events read per query on average"
    );
    Ok(())
}

/// Events of the late import in the `valid_at` benchmark.
const LATE_IMPORT_EVENTS: usize = 1_000;

/// `valid_at` queries measured.
const VALID_AT_QUERIES: usize = 5;
