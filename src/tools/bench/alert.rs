//! Alert latency: a durable append of an escalating complaint to the alert applied.

use super::*;

/// Time from a durable append of the complaint that raises (or escalates) an alert to the
/// read model having applied it (the alert is then on `/v1/alerts/subscribe`), with the
/// read model caught up on the benchmark's store. Prints p50 and p99 of 50 trials.
pub(super) async fn alert_latency(
    log: &crate::log::Log,
    model: &crate::read_model::ReadModel,
) -> anyhow::Result<()> {
    const TRIALS: usize = 50;
    let mut ms = Vec::with_capacity(TRIALS);
    let mut ids = uuid::Uuid::now_v7;
    let ev = |text: String, ids: &mut dyn FnMut() -> uuid::Uuid| {
        rapport_events::parse_one(&text, &mut || ids(), false).map_err(|e| anyhow::anyhow!("{e}"))
    };
    for t in 0..TRIALS {
        let g = format!("lat-g-{t}");
        let mut setup = Vec::new();
        for k in 0..3 {
            setup.push(ev(format!(r#"{{"type":"community_joined","customer":"lat-{t}-{k}","occurred_at":"2026-03-28T08:00:00Z","data":{{"community":"{g}"}}}}"#), &mut ids)?);
        }
        for k in 0..2 {
            setup.push(ev(format!(r#"{{"type":"complaint","customer":"lat-{t}-{k}","occurred_at":"2026-03-28T09:0{k}:00Z","data":{{"complaint_id":"lat-k-{t}-{k}","about":{{"batch":"LAT-{t}"}},"text":"mould in batch LAT-{t}"}}}}"#), &mut ids)?);
        }
        log.append(&setup, crate::log::AppendRules::per_stream())
            .await?;
        let third = ev(
            format!(
                r#"{{"type":"complaint","customer":"lat-{t}-2","occurred_at":"2026-03-28T09:05:00Z","data":{{"complaint_id":"lat-k-{t}-2","about":{{"batch":"LAT-{t}"}},"text":"mould in batch LAT-{t} too"}}}}"#
            ),
            &mut ids,
        )?;
        let before = model.state.read().await.warnings.last_seq();
        let started = Instant::now();
        let p = log
            .append(&[third], crate::log::AppendRules::per_stream())
            .await?[0]
            .position;
        anyhow::ensure!(
            model.wait_for(p).await,
            "the read model did not apply the complaint"
        );
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            model.state.read().await.warnings.last_seq() > before,
            "the third connected complaint did not change an alert"
        );
        ms.push(elapsed);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "alert latency: durable append of the escalating complaint → alert applied: p50 {:.1} ms, p99 {:.1} ms ({TRIALS} trials, includes the fsync)",
        ms[TRIALS / 2],
        ms[TRIALS * 99 / 100]
    );
    Ok(())
}
