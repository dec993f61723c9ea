//! `rapport eval-warnings`: how good the early-warning detector is, measured on seeded
//! scenarios, against the rule industry tools use. See `docs/early-warning.md`.
//!
//! A scenario is a community of customers (communities, referrals) with:
//! - **background** complaints from independent customers on many keys, with a weekly
//!   rhythm (busier on Mondays, quieter at weekends), in English and Chinese;
//! - **cascades** (the positives): a complaint that spreads along community and referral
//!   ties within hours, with "me too" echoes and paraphrased text, sizes 3 to 50; a
//!   third of them name no common subject (only their text links them);
//! - **hard negatives**: unconnected bursts (an outage: many unrelated customers on one
//!   store within hours), thinly spread connected complaints (one every 10–20 days) and
//!   noisy repeat complainers;
//! - mixed traffic (purchases, posts) so the speed figure is for a realistic stream.
//!
//! Everything is folded by the real projections in-process (no store), in event-time
//! order, so the figures are the detector's, not the IO's.

use std::{collections::BTreeMap, time::Instant};

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rapport_events::{EventType, FoldEvent, RecordedEvent};
use rapport_projections::{
    warnings::{Kind, Level, WarningConfig, Warnings},
    Customers, Projection,
};
use serde_json::{json, Value};

mod realistic;
mod scenario;
mod score;

pub use realistic::realistic;
pub use scenario::*;
pub use score::*;

/// Where background complaints come from.
#[derive(Clone)]
pub enum Background {
    /// Generated: many keys with a weekly rhythm, templated English and Chinese text.
    Synthetic,
    /// The real CFPB complaints (company, product, issue, narrative), in their own order,
    /// spread over the scenario's days and given to random customers of the scenario.
    Cfpb(Vec<(serde_json::Value, String)>),
}

impl Background {
    /// Reads the CFPB sample through the importer (`shared/data/cfpb/complaints_sample.csv`).
    pub fn cfpb(shared_data: &std::path::Path) -> anyhow::Result<Background> {
        let file = shared_data.join("cfpb/complaints_sample.csv");
        anyhow::ensure!(
            file.is_file(),
            "{} not found (set --shared-data or RAPPORT_SHARED_DATA to the shared/data folder)",
            file.display()
        );
        let (ndjson, _) = crate::importers::cfpb::convert(&[file])?;
        let mut rows: Vec<(String, serde_json::Value, String)> = ndjson
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                Some((
                    v["occurred_at"].as_str()?.to_owned(),
                    v["data"]["about"].clone(),
                    v["data"]["text"].as_str()?.to_owned(),
                ))
            })
            .collect();
        // In the order they were received (ties by their own order).
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Background::Cfpb(
            rows.into_iter()
                .map(|(_, about, text)| (about, text))
                .collect(),
        ))
    }
}

/// Which scenarios: the family the thresholds were tuned on, or the one built to the
/// description of the held-out set (`realistic.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    Tuned,
    Realistic,
}

pub struct EvalOptions {
    pub family: Family,
    pub background: Background,
    pub seeds: Vec<u64>,
    pub customers: usize,
    pub days: i64,
    pub cascades: usize,
    pub config: WarningConfig,
}

/// Days at the start of a scenario that only build baselines (both detectors need
/// history: 28 days plus the 2-day guard); no cascade is injected and nothing raised in
/// them is scored, as in the outbreak-detection literature's baseline period.
pub const WARM_UP_DAYS: i64 = 30;

fn row(name: &str, s: &Score) -> String {
    format!(
        "| {name} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {}/{} |",
        s.recall(),
        s.precision(),
        s.delay_complaints(0.5),
        s.delay_complaints(0.9),
        s.delay_hours(0.5),
        s.delay_hours(0.9),
        s.false_per_10k(),
        s.detected,
        s.cascades,
    )
}

pub fn run(opts: EvalOptions) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = opts
        .seeds
        .iter()
        .map(|s| match opts.family {
            Family::Tuned => scenario(
                *s,
                opts.customers,
                opts.days,
                opts.cascades,
                &opts.background,
            ),
            Family::Realistic => realistic(*s, opts.customers, opts.days, opts.cascades),
        })
        .collect();
    let events: usize = scenarios.iter().map(|s| s.events.len()).sum();
    let complaints: usize = scenarios.iter().map(|s| s.truth.len()).sum();
    println!(
        "{:?} scenarios ({} background): seeds {:?}, {} customers, {} days, {} cascades each; {events} events, {complaints} complaints, {} background",
        opts.family,
        match opts.background {
            Background::Synthetic => "synthetic",
            Background::Cfpb(_) => "CFPB",
        },
        opts.seeds,
        opts.customers,
        opts.days,
        opts.cascades,
        scenarios.iter().map(|s| s.background).sum::<usize>()
    );
    let mut total = Score::default();
    let mut rates = Vec::new();
    for s in &scenarios {
        let (score, rate) = score_detector(s, &opts.config);
        total.add(&score);
        rates.push(rate);
    }
    let mut base = Score::default();
    for s in &scenarios {
        base.add(&score_baseline(s));
    }
    println!();
    println!("| detector | recall | precision | delay p50 (complaints) | p90 | delay p50 (hours) | p90 | false alarms / 10k background | cascades found |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("{}", row("Rapport (group_complaint ≥ warning)", &total));
    println!("{}", row("day count > 7-day mean + 3 sd", &base));
    println!();
    println!(
        "unconnected bursts: {} of {} reported as spike, {} as a group complaint (≥ warning)",
        total.bursts_as_spike, total.bursts, total.bursts_as_group
    );
    if !total.false_by_key.is_empty() {
        let by: Vec<String> = total
            .false_by_key
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "false alarms by the kind of their first key: {}",
            by.join(", ")
        );
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!(
        "detector speed (customers + warnings folds, one core, mixed traffic): median {:.0} events/s",
        rates[rates.len() / 2]
    );
    println!();
    println!("AMOC (one setting varied, the others as given):");
    println!(
        "| setting | recall | delay p50 (complaints) | delay p50 (hours) | false alarms / 10k |"
    );
    println!("|---|---|---|---|---|");
    let mut settings: Vec<(String, WarningConfig)> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .map(|t| {
            (
                format!("threshold {t}"),
                WarningConfig {
                    threshold: *t,
                    ..opts.config.clone()
                },
            )
        })
        .collect();
    settings.extend([2, 3, 4, 5].iter().map(|m| {
        (
            format!("min_count {m}"),
            WarningConfig {
                min_count: *m,
                ..opts.config.clone()
            },
        )
    }));
    for (t, cfg) in settings {
        let mut sc = Score::default();
        for s in &scenarios {
            sc.add(&score_detector(s, &cfg).0);
        }
        println!(
            "| {t} | {:.3} | {:.1} | {:.1} | {:.2} |",
            sc.recall(),
            sc.delay_complaints(0.5),
            sc.delay_hours(0.5),
            sc.false_per_10k()
        );
    }
    Ok(())
}
