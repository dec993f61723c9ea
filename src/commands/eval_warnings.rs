//! `rapport eval-warnings`: the detector measured by `crate::tools::eval`.

use crate::cli::{BackgroundArg, EvalWarningsArgs};

pub async fn run(args: EvalWarningsArgs) -> anyhow::Result<()> {
    let EvalWarningsArgs {
        seeds,
        customers,
        days,
        cascades,
        threshold,
        min_count,
        background,
        shared_data,
    } = args;
    let defaults = rapport_projections::warnings::WarningConfig::default();
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
        background,
        seeds,
        customers,
        days,
        cascades,
        config,
    })
}
