//! Snapshots kept for time travel: `<snapshots>/history/<position>.snapshot`, hard links of
//! the read model's snapshots taken at least `history_every_events` positions apart.

use std::path::{Path, PathBuf};

/// Snapshots kept for time travel: `<dir>/history/<position>.snapshot`, hard links of the
/// read model's snapshots taken at least `every` positions apart.
pub fn history_dir(snapshots: &Path) -> PathBuf {
    crate::layout::Snapshots::history(snapshots)
}

/// The history snapshot with the greatest position ≤ `position`.
pub fn history_snapshot_before(snapshots: &Path, position: u64) -> Option<(u64, PathBuf)> {
    let entries = std::fs::read_dir(history_dir(snapshots)).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let p: u64 = name.strip_suffix(".snapshot")?.parse().ok()?;
            (p <= position).then(|| (p, e.path()))
        })
        .max_by_key(|(p, _)| *p)
}

/// Keeps the current snapshot (just written at `position`) for time travel, as a hard link.
pub fn keep_history(dir: &Path, position: u64) -> std::io::Result<()> {
    let history = history_dir(dir);
    std::fs::create_dir_all(&history)?;
    let target = history.join(format!("{position}.snapshot"));
    if !target.exists() {
        std::fs::hard_link(super::snapshot::snapshot_path(dir), target)?;
    }
    Ok(())
}
