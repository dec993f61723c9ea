//! `rapport eval-warnings`: the detector measured by `crate::tools::eval`.

use crate::cli::{BackgroundArg, EvalWarningsArgs, FamilyArg};

pub async fn run(args: EvalWarningsArgs) -> anyhow::Result<()> {
    if args.from_store {
        return from_store(args).await;
    }
    let EvalWarningsArgs {
        family,
        seeds,
        customers,
        days,
        cascades,
        threshold,
        min_count,
        background,
        shared_data,
        store_config,
        ..
    } = args;
    // The service's configuration (`--config`), with --threshold and --min-count on top.
    let defaults = store_config.load()?.early_warning;
    let config = rapport_projections::warnings::WarningConfig {
        threshold: threshold.unwrap_or(defaults.threshold),
        min_count: min_count.unwrap_or(defaults.min_count),
        ..defaults
    };
    if days < crate::tools::eval::WARM_UP_DAYS + 10 {
        anyhow::bail!(
            "--days must be at least {} (a {}-day warm-up builds the baselines)",
            crate::tools::eval::WARM_UP_DAYS + 10,
            crate::tools::eval::WARM_UP_DAYS
        );
    }
    let background = match background {
        BackgroundArg::Synthetic => crate::tools::eval::Background::Synthetic,
        BackgroundArg::Cfpb => crate::tools::eval::Background::cfpb(&shared_data)?,
    };
    crate::tools::eval::run(crate::tools::eval::EvalOptions {
        family: match family {
            FamilyArg::Tuned => crate::tools::eval::Family::Tuned,
            FamilyArg::Realistic => crate::tools::eval::Family::Realistic,
        },
        background,
        seeds,
        customers,
        days,
        cascades,
        config,
    })
}

/// The detector's precision on the verdicts staff recorded: the whole log folded with the
/// service's configuration.
async fn from_store(args: EvalWarningsArgs) -> anyhow::Result<()> {
    let config = args.store_config.load()?;
    let master = args.master.resolve(false)?;
    let (_, log) = crate::app::open_log_read_only(&args.data.data_dir, master).await?;
    let state = rapport_projections::ReadState::new(config.lifecycle, config.early_warning);
    let until = log.last_position();
    let state = crate::fold::fold(&log, state, until, |_| {}).await?;
    let v = state.warnings.verdicts();
    println!("Detector precision on staff's verdicts ({until} events)\n");
    println!("| level | alerts | reviewed | confirmed | not a group complaint | precision |");
    println!("|---|---|---|---|---|---|");
    for level in ["watch", "warning", "critical", "warning_or_above"] {
        let c = v.levels.get(level).cloned().unwrap_or_default();
        let precision = c.precision.map_or("–".to_owned(), |p| format!("{p:.3}"));
        println!(
            "| {level} | {} | {} | {} | {} | {precision} |",
            c.raised, c.reviewed, c.confirmed, c.not_group_complaint
        );
    }
    println!("\nRecall needs the group complaints the detector missed, which verdicts on its alerts cannot show.");
    Ok(())
}
