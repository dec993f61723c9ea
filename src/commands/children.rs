//! The hidden commands `serve` runs as its children (see `crate::fold::child::FoldChild`):
//! `rapport catch-up` and `rapport valid-time`. Each reads the master key and the
//! configuration from its standard input and opens the store read-only.

use std::path::Path;

use anyhow::Context;

use crate::{
    app::open_log_read_only,
    cli::{CatchUpArgs, ValidTimeArgs},
    config::Config,
    crypto::MasterKey,
    fold::{snapshot::write_snapshot, valid_time},
    layout::DataDir,
    read_model::{ReadModel, ReadModelOptions},
    store::EventStore,
};

/// For a child of `serve` (`catch-up`, `valid-time`), first thing: it is killed when the
/// server ends, so no orphan goes on folding or writing snapshots.
pub fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_PDEATHSIG)` only sets a signal for this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

/// `rapport catch-up`, started by `serve` (see `crate::fold::child::FoldChild`): folds
/// the log as it is now into the snapshots of `data_dir`, as the server's read model would
/// have, and writes a last snapshot at its end. The store is opened read-only: the server
/// holds it, and may append meanwhile.
pub async fn catch_up(data_dir: &Path, master: MasterKey, config: &Config) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (store, log) = open_log_read_only(data_dir, master).await?;
    let last = store.last_position();
    let snapshots = DataDir::new(data_dir).snapshots();
    let model = ReadModel::spawn(
        log.clone(),
        ReadModelOptions {
            lifecycle: config.lifecycle,
            warnings: config.early_warning.clone(),
            history_every_events: config.time_travel.history_every_events,
            // It exits once caught up: nothing to compact.
            compact_after_catch_up_events: u64::MAX,
            // Written by the server's consumers' floors (see `read_model::outbox`).
            outbox: Some(crate::read_model::outbox::Outbox::open(
                &DataDir::new(data_dir).outbox(),
            )?),
            ..ReadModelOptions::service(Some(snapshots.clone()))
        },
    )
    .await;
    model
        .watch_applied()
        .wait_for(|p| *p >= last)
        .await
        .map_err(|_| anyhow::anyhow!("the read model stopped before position {last}"))?;
    let bytes = {
        let state = model.state.read().await;
        state.snapshot_bytes()
    };
    let anchors = crate::fold::snapshot::anchors(&log, last).await?;
    tokio::task::block_in_place(|| write_snapshot(&snapshots, last, anchors, &bytes))?;
    tracing::info!(
        position = last,
        seconds = started.elapsed().as_secs_f64(),
        "caught up"
    );
    Ok(())
}

/// `rapport valid-time`, started by `serve` (see `crate::read_model::builds`):
/// builds business time for `valid_at` queries from the log as it is now, in the snapshots
/// of `data_dir`. The store is opened read-only.
pub async fn build_valid_time(
    data_dir: &Path,
    master: MasterKey,
    config: &Config,
) -> anyhow::Result<()> {
    // A build runs beside the server, often: the server's requests come first.
    // SAFETY: `nice` only lowers this process's priority.
    unsafe {
        libc::nice(10);
    }
    let started = std::time::Instant::now();
    let (store, log) = open_log_read_only(data_dir, master).await?;
    let until = store.last_position();
    let m = valid_time::build(
        &log,
        &DataDir::new(data_dir).snapshots(),
        until,
        config.time_travel.valid_time_every_events,
        config.lifecycle,
        config.early_warning.clone(),
        |_| {},
    )
    .await?;
    tracing::info!(
        until,
        snapshots = m.snapshots(),
        seconds = started.elapsed().as_secs_f64(),
        "built business time"
    );
    Ok(())
}

pub async fn run_catch_up(args: CatchUpArgs) -> anyhow::Result<()> {
    let CatchUpArgs { data } = args;
    die_with_parent();
    let (master, config) = child_input()?;
    catch_up(&data.data_dir, master, &config).await
}

pub async fn run_valid_time(args: ValidTimeArgs) -> anyhow::Result<()> {
    let ValidTimeArgs { data } = args;
    die_with_parent();
    let (master, config) = child_input()?;
    build_valid_time(&data.data_dir, master, &config).await
}

/// What `serve` writes to a child's standard input (see `read_model::FoldChild`): the
/// master key, a newline, the configuration as JSON.
fn child_input() -> anyhow::Result<(MasterKey, crate::config::Config)> {
    tracing::debug!("reading the master key and the configuration from standard input");
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    let (key, config) = input.split_once('\n').unwrap_or((input.as_str(), "{}"));
    let master = MasterKey::from_text(key.trim()).context("the master key on stdin")?;
    let config = crate::config::Config::parse(config)
        .map_err(|e| anyhow::anyhow!("the configuration on stdin: {e}"))?;
    Ok((master, config))
}
