//! `rapport eval-agents`: prints how well pyramid risk does on seeded firms.

use crate::{cli::EvalAgentsArgs, tools::agents_eval};

pub fn run(args: EvalAgentsArgs) -> anyhow::Result<()> {
    let scores: Vec<_> = args
        .seeds
        .iter()
        .map(|&seed| agents_eval::evaluate(seed, args.networks))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(());
    }
    println!("| seed | networks | pyramids | events | flagged right | flagged wrong | missed | healthy at watch | precision | recall | flagged within 10% | delay (median, max share of events after crossing) | events/s | pyramid agents with influence ≥ influence_critical (formula before → now) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &scores {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3}, {:.3} | {:.0} | {} → {} |",
            s.seed,
            s.networks,
            s.pyramids,
            s.events,
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.healthy_watched,
            s.precision,
            s.recall,
            s.within_tenth,
            s.delay_share_median,
            s.delay_share_max,
            s.events_per_second,
            s.pyramid_agents_influential_before,
            s.pyramid_agents_influential
        );
    }
    Ok(())
}
