//! `rapport report`: the analyst's summary of a store as of a date — customers, monthly
//! cohort retention (table and heatmap), RFM segments, the dormant customers worth
//! winning back, lifecycle states month by month — written as Markdown and SVG charts
//! (drawn with `plotters`). Everything comes from the projections; nothing is typed in.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::Context;
use chrono::{DateTime, Utc};
use plotters::prelude::*;
use rapport_projections::{cohorts, reactivation, rfm, Customers, Lifecycle, LifecycleConfig};
use rust_decimal::Decimal;

use crate::log::Log;

/// Cohort columns shown in the Markdown table (the heatmap shows all).
const TABLE_OFFSETS_MAX: u32 = 12;
const DORMANT_SHOWN: usize = 15;

/// Folds the whole log into the customer profiles (personal fields withheld).
pub async fn fold(log: &Log) -> anyhow::Result<Customers> {
    let until = log.last_position();
    Ok(crate::fold::fold_from(log, Customers::default(), 0, until, |_| {}).await?)
}

/// Writes `report.md`, `cohort-retention.svg` and `lifecycle-by-month.svg` into `out`.
pub fn write(
    c: &Customers,
    as_of: DateTime<Utc>,
    lc: &LifecycleConfig,
    out: &Path,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut md = String::new();
    let buyers = c
        .people_sorted()
        .iter()
        .filter(|p| p.orders_until(as_of) > 0)
        .count();
    let _ = writeln!(
        md,
        "# Report as of {}\n",
        as_of.format("%Y-%m-%d %H:%M UTC")
    );
    let _ = writeln!(
        md,
        "- Customers known: **{}**; customers with at least one purchase: **{buyers}**.\n",
        c.len()
    );

    // Cohorts.
    // A report shows the whole history the table can hold.
    let cohorts = cohorts::monthly(c, as_of, cohorts::MONTHS_MAX).cohorts;
    let _ = writeln!(md, "## Monthly cohort retention\n\nCustomers by month of first purchase; each cell: customers who bought in that month (and % of the cohort).\n");
    let width = cohorts
        .iter()
        .map(|c| c.periods.len())
        .max()
        .unwrap_or(0)
        .min(TABLE_OFFSETS_MAX as usize + 1);
    let _ = write!(md, "| cohort | size |");
    for o in 0..width {
        let _ = write!(md, " +{o} |");
    }
    let _ = write!(md, "\n|---|---|");
    for _ in 0..width {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for co in &cohorts {
        let _ = write!(md, "| {} | {} |", co.cohort, co.customers);
        for o in 0..width {
            match co.periods.get(o) {
                Some(p) => {
                    let _ = write!(md, " {} ({}%) |", p.customers, p.retention_pct.round_dp(1));
                }
                None => md.push_str(" |"),
            }
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\n![cohort retention heatmap](cohort-retention.svg)\n");
    heatmap(&cohorts, &out.join("cohort-retention.svg"))?;

    // RFM.
    let currency = rfm::main_currency(c, as_of).unwrap_or_else(|| "GBP".into());
    let rows = rfm::rfm(c, as_of, &currency);
    let _ = writeln!(md, "## RFM segments ({currency})\n\n| segment | customers | share | net revenue |\n|---|---|---|---|");
    let mut segs = rfm::segment_totals(&rows);
    segs.sort_by_key(|s| std::cmp::Reverse(s.monetary));
    for rfm::SegmentTotal {
        segment: name,
        customers: n,
        monetary: rev,
    } in segs
    {
        let share = if rows.is_empty() {
            Decimal::ZERO
        } else {
            (Decimal::from(n as u64) * Decimal::ONE_HUNDRED / Decimal::from(rows.len() as u64))
                .round_dp(1)
        };
        let _ = writeln!(md, "| {name} | {n} | {share}% | {} |", rev.round_dp(2));
    }

    // Reactivation.
    let cands = reactivation::candidates(c, lc, as_of, &currency);
    let _ = writeln!(
        md,
        "\n## Dormant customers worth winning back\n\n{} customers are dormant or churned. The first {DORMANT_SHOWN} by score (value × p_alive × reach; see docs/projections.md):\n\n| customer | state | days since last purchase | orders | revenue | value/year | p_alive | reach | score |\n|---|---|---|---|---|---|---|---|---|",
        cands.len()
    );
    for x in cands.iter().take(DORMANT_SHOWN) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            x.customer,
            x.lifecycle.as_str(),
            x.days_since_last_purchase,
            x.orders,
            x.revenue.round_dp(2),
            x.value,
            x.p_alive,
            x.reach,
            x.score
        );
    }

    // Lifecycle by month.
    let months =
        rapport_projections::lifecycle::by_month::by_month(c, lc, as_of, cohorts::MONTHS_MAX);
    // Buyers only: every state but `prospect`.
    let states = &Lifecycle::ALL[1..];
    let _ = write!(
        md,
        "\n## Lifecycle states at the end of each month (buyers only)\n\n| month |"
    );
    for s in states {
        let _ = write!(md, " {} |", s.as_str());
    }
    let _ = write!(md, "\n|---|");
    for _ in states {
        md.push_str("---|");
    }
    md.push('\n');
    for (month, counts) in &months {
        let _ = write!(md, "| {month} |");
        for s in states {
            let _ = write!(md, " {} |", counts.get(s).copied().unwrap_or(0));
        }
        md.push('\n');
    }
    let _ = writeln!(md, "\n![lifecycle states by month](lifecycle-by-month.svg)");
    lifecycle_chart(&months, states, &out.join("lifecycle-by-month.svg"))?;
    std::fs::write(out.join("report.md"), &md)?;
    Ok(md)
}

fn heatmap(cohorts: &[cohorts::Cohort], path: &Path) -> anyhow::Result<()> {
    let rows = cohorts.len().max(1);
    let cols = cohorts
        .iter()
        .map(|c| c.periods.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let root =
        SVGBackend::new(path, (120 + 56 * cols as u32, 90 + 30 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Monthly cohort retention (% of cohort buying in month +n)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0..cols as i32).into_segmented(),
            (0..rows as i32).into_segmented(),
        )?;
    let labels: Vec<String> = cohorts.iter().map(|c| c.cohort.clone()).collect();
    let centre = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => Some(*i),
        SegmentValue::Last => None,
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(cols)
        .x_label_formatter(&|x| centre(x).map(|i| format!("+{i}")).unwrap_or_default())
        .y_labels(rows)
        .y_label_formatter(&|y| {
            centre(y)
                .and_then(|i| (rows as i32 - 1).checked_sub(i))
                .and_then(|r| usize::try_from(r).ok())
                .and_then(|r| labels.get(r).cloned())
                .unwrap_or_default()
        })
        .draw()?;
    for (r, co) in cohorts.iter().enumerate() {
        let y = (rows - 1 - r) as i32;
        for p in &co.periods {
            let pct: f64 = p.retention_pct.try_into().unwrap_or(0.0);
            let shade = 255 - (pct.clamp(0.0, 100.0) * 2.2) as u8;
            let x = p.offset as i32;
            let cell = [
                (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
            ];
            chart.draw_series(std::iter::once(Rectangle::new(
                cell,
                RGBColor(shade, shade, 255).filled(),
            )))?;
            let ink = if pct > 60.0 { WHITE } else { BLACK };
            chart.draw_series(std::iter::once(Text::new(
                format!("{pct:.0}"),
                (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                ("sans-serif", 12).into_font().color(&ink),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn lifecycle_chart(
    months: &[(String, BTreeMap<Lifecycle, usize>)],
    states: &[Lifecycle],
    path: &Path,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = months
        .iter()
        .map(|(_, c)| c.values().sum::<usize>())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Buyers by lifecycle state at each month's end",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0..months.len() as i32, 0..max as i32)?;
    let labels: Vec<String> = months.iter().map(|(m, _)| m.clone()).collect();
    chart
        .configure_mesh()
        .x_labels(months.len())
        .x_label_formatter(&|x| labels.get(*x as usize).cloned().unwrap_or_default())
        .draw()?;
    let palette = [
        RGBColor(102, 194, 165),
        RGBColor(66, 146, 198),
        RGBColor(171, 221, 164),
        RGBColor(253, 174, 97),
        RGBColor(244, 109, 67),
        RGBColor(158, 1, 66),
    ];
    for (i, state) in states.iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(months.iter().enumerate().map(|(x, (_, counts))| {
                let below: usize = states[..i]
                    .iter()
                    .map(|s| counts.get(s).copied().unwrap_or(0))
                    .sum();
                let here = counts.get(state).copied().unwrap_or(0);
                Rectangle::new(
                    [
                        (x as i32, below as i32),
                        (x as i32 + 1, (below + here) as i32),
                    ],
                    color.filled(),
                )
            }))?
            .label(state.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
