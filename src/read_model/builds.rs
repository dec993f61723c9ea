//! `serve`'s business-time builds: a child process (`rapport valid-time`) builds again as
//! the read model applies new events (see `crate::fold::valid_time`).

use std::{path::PathBuf, sync::Arc};

use rapport_projections::{warnings::WarningConfig, LifecycleConfig};

use super::ReadModel;
use crate::{
    fold::{
        child::FoldChild,
        valid_time::{builds, scan_keys, Key},
    },
    log::Log,
};

/// `serve`'s builds (embedded store): runs `child` (`rapport valid-time`) to build again
/// whenever the read model has applied `child.min_events` events past the newest build,
/// or sooner, as soon as an event recorded since the build precedes the build's last
/// snapshot in business order (a late import, a segment definition): until the next build,
/// such an event sends `valid_at` queries after it back to an earlier snapshot. The keys of
/// new events are read as the read model applies them (several batches at once when it is
/// ahead). One build at a time; a failed build is logged and tried again after as many
/// events more.
pub fn spawn_builds(
    model: Arc<ReadModel>,
    log: Log,
    child: FoldChild,
    snapshots: PathBuf,
    lifecycle: LifecycleConfig,
    warnings: WarningConfig,
) {
    tokio::spawn(async move {
        let mut applied = model.watch_applied();
        let newest = || {
            builds(&snapshots, &lifecycle, &warnings)
                .first()
                .map(|(_, m)| (m.until, m.cut(m.snapshots())))
        };
        let (mut built, mut last_cut) = newest().unwrap_or((0, Key::MIN));
        // The events since the build whose keys were looked at, and the least of them.
        let (mut checked, mut first_since) = (built, None::<Key>);
        loop {
            let due = built + child.min_events;
            if applied
                .wait_for(|&p| p >= due || (built > 0 && p > checked))
                .await
                .is_err()
            {
                return; // the read model stopped
            }
            let at = *applied.borrow();
            if at < due {
                match scan_keys(&log, checked, at).await {
                    Ok(keys) => {
                        first_since = first_since.into_iter().chain(keys).min();
                        checked = at;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the keys of new events failed");
                        checked = at;
                        continue;
                    }
                }
                if first_since.is_none_or(|f| f > last_cut) {
                    continue;
                }
            }
            let started = std::time::Instant::now();
            match child.run().await {
                Ok(()) => {
                    (built, last_cut) = newest().unwrap_or((at, last_cut));
                    tracing::info!(
                        until = built,
                        seconds = started.elapsed().as_secs_f64(),
                        "built business time (valid_at)"
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "building business time (valid_at) failed; trying again later"
                    );
                    built = at;
                }
            }
            (checked, first_since) = (built, None);
        }
    });
}
