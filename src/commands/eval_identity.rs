//! `rapport eval-identity`: prints how well identity resolution does on seeded firms.

use crate::{cli::EvalIdentityArgs, tools::identity_eval};

pub fn run(args: EvalIdentityArgs) -> anyhow::Result<()> {
    let scores: Vec<_> = args
        .seeds
        .iter()
        .map(|&seed| identity_eval::evaluate(seed, args.people, args.households))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
        return Ok(());
    }
    println!("| seed | people | ids | identifier events | pairs of one person | linkable | put together | right | precision | recall (linkable) | recall (all) | events/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &scores {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.0} |",
            s.seed,
            s.people,
            s.ids,
            s.identifier_events,
            s.true_pairs,
            s.linkable_pairs,
            s.predicted_pairs,
            s.correct_pairs,
            s.precision,
            s.recall,
            s.recall_all,
            s.events_per_second
        );
    }
    Ok(())
}
