//! What each event costs the fold, by event type: `rapport replay --costs`.

use std::collections::BTreeMap;
use std::time::Instant;

use rapport_events::{Facts, FoldEvent};
use rapport_projections::Projection;

/// A projection whose every `apply` is timed, by the kind of event (`kind_of`).
pub struct Timed<S> {
    pub state: S,
    nanos: BTreeMap<&'static str, Vec<u32>>,
}

impl<S> Timed<S> {
    pub fn new(state: S) -> Timed<S> {
        Timed {
            state,
            nanos: BTreeMap::new(),
        }
    }

    /// A Markdown table: per kind of event, how many, their share of the fold's time, and
    /// the cost of one at the mean, p50, p99 and worst.
    pub fn table(&mut self) -> String {
        let total: u64 = self.nanos.values().flatten().map(|n| u64::from(*n)).sum();
        let mut out = String::from(
            "| event | count | share of fold time | mean | p50 | p99 | max |\n|---|---|---|---|---|---|---|\n",
        );
        let us = |n: u32| format!("{:.1} µs", f64::from(n) / 1000.0);
        for (kind, v) in &mut self.nanos {
            v.sort_unstable();
            let sum: u64 = v.iter().map(|n| u64::from(*n)).sum();
            let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            out.push_str(&format!(
                "| {kind} | {} | {:.1}% | {:.1} µs | {} | {} | {} |\n",
                v.len(),
                100.0 * sum as f64 / total.max(1) as f64,
                sum as f64 / v.len() as f64 / 1000.0,
                us(at(0.5)),
                us(at(0.99)),
                us(at(1.0)),
            ));
        }
        out
    }
}

/// The event's type, with complaints about a batch apart: in a firm's log those are a
/// recall or a crisis, the burst the detector must keep up with.
fn kind_of(ev: &FoldEvent) -> &'static str {
    match &ev.data {
        Facts::Complaint(c) if c.about.batch.is_some() => "complaint about a batch",
        _ => ev.event_type.as_str(),
    }
}

impl<S: Projection> Projection for Timed<S> {
    const NAME: &'static str = S::NAME;

    fn apply(&mut self, ev: &FoldEvent) {
        let started = Instant::now();
        self.state.apply(ev);
        let nanos = u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX);
        self.nanos.entry(kind_of(ev)).or_default().push(nanos);
    }
}
