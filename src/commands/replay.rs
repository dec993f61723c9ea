//! `rapport replay [--projection NAME…] [--verify]`: folds the log again from the first
//! event, and writes a fresh snapshot or compares with the live one.

use std::path::Path;

use rapport_projections::ReadState;

use crate::{
    app,
    cli::ReplayArgs,
    config::Config,
    crypto::MasterKey,
    fold::{self, digests},
    store::EventStore,
};

/// `rapport replay [--projection NAME…] [--verify]`.
pub async fn replay(
    data_dir: &Path,
    master: MasterKey,
    config: &Config,
    projections: &[String],
    verify: bool,
    costs: bool,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    const NAMES: [&str; 5] = ["customers", "segments", "warnings", "lifecycles", "alerts"];
    for p in projections {
        anyhow::ensure!(
            NAMES.contains(&p.as_str()),
            "unknown projection `{p}` (known: {})",
            NAMES.join(", ")
        );
    }
    let wanted = |name: &str| projections.is_empty() || projections.iter().any(|p| p == name);
    let begun = std::time::Instant::now();
    let (store, log) = app::open_log_read_only(data_dir, master).await?;
    eprintln!(
        "opened the store ({} events) and the keyring in {:.2} s",
        store.last_position(),
        begun.elapsed().as_secs_f64()
    );
    let snapshots = crate::layout::DataDir::new(data_dir).snapshots();
    let lifecycle = config.lifecycle;
    let warnings = config.early_warning.clone();
    let live = if verify {
        let from_log = crate::fold::snapshot::from_this_log(
            &crate::fold::snapshot::snapshot_path(&snapshots),
            &log,
        )
        .await;
        let live = from_log
            .then(|| {
                crate::fold::snapshot::load_snapshot(
                    &snapshots,
                    store.last_position(),
                    &lifecycle,
                    &warnings,
                )
            })
            .flatten();
        let Some(live) = live else {
            anyhow::bail!(
                "no usable snapshot in {} to verify against (start the server, or run `rapport replay` without --verify)",
                snapshots.display()
            );
        };
        Some(live)
    } else {
        None
    };
    let until = live
        .as_ref()
        .map_or(store.last_position(), |l| l.position());
    let bar = ProgressBar::with_draw_target(
        Some(until),
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let fresh = ReadState::new(lifecycle, warnings.clone());
    let rebuilt = if costs {
        let mut timed = fold::fold_from(&log, fold::costs::Timed::new(fresh), 0, until, |n| {
            bar.inc(n)
        })
        .await?;
        bar.finish_and_clear();
        println!("{}", timed.table());
        timed.state
    } else {
        fold::fold(&log, fresh, until, |n| bar.inc(n)).await?
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {} events in {secs:.2} s ({:.0} events/s)",
        rebuilt.position(),
        rebuilt.position() as f64 / secs.max(1e-9)
    );
    match live {
        Some(live) => {
            let (a, b) = (digests(&live), digests(&rebuilt));
            let mut differ = Vec::new();
            for ((name, x), (_, y)) in a.iter().zip(&b) {
                if !wanted(name) {
                    continue;
                }
                let same = x == y;
                println!(
                    "{name:<10} {} live {} replayed {}",
                    if same { "same     " } else { "DIFFERENT" },
                    &x[..16],
                    &y[..16]
                );
                if !same {
                    differ.push(*name);
                }
            }
            anyhow::ensure!(
                differ.is_empty(),
                "the replayed state differs from the live snapshot at position {until} in: {}",
                differ.join(", ")
            );
            println!("verified at position {until}: replay gives the live state byte for byte");
            // The replay read the log as it is: that it is what was written is checked
            // against each event's digest (a damaged row folds into both sides alike).
            let check = crate::commands::check::check_log(&log).await?;
            check.print();
            anyhow::ensure!(
                check.is_intact(),
                "{} events do not match the digests they were written with, {} data keys are damaged",
                check.damaged.len(),
                check.damaged_keys.len()
            );
        }
        None => {
            let started = std::time::Instant::now();
            let bytes = rebuilt.snapshot_bytes();
            let anchors = crate::fold::snapshot::anchors(&log, rebuilt.position()).await?;
            crate::fold::snapshot::write_snapshot(&snapshots, rebuilt.position(), anchors, &bytes)?;
            eprintln!(
                "wrote the snapshot in {:.2} s",
                started.elapsed().as_secs_f64()
            );
            for (name, d) in digests(&rebuilt) {
                if wanted(name) {
                    println!("{name:<10} {}", &d[..16]);
                }
            }
            println!(
                "wrote a fresh snapshot at position {} to {} (a running server keeps its own state until it restarts)",
                rebuilt.position(),
                snapshots.display()
            );
        }
    }
    let secs = begun.elapsed().as_secs_f64();
    eprintln!(
        "in all {secs:.2} s: {:.0} events/s end to end",
        rebuilt.position() as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let ReplayArgs {
        data,
        config,
        master,
        projection,
        verify,
        costs,
    } = args;
    let config = config.load()?;
    let master = master.resolve(false)?;
    replay(&data.data_dir, master, &config, &projection, verify, costs).await
}
