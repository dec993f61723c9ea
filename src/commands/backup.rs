//! `rapport backup` and `rapport restore`: the embedded store as one file, and back.
//!
//! The backup is SQLite's online backup of the store file: events, wrapped data keys and
//! API keys, consistent at one instant, taken beside a running server (it only reads).
//! The master key is deliberately not in it, so a stolen backup opens nothing; keep the
//! key apart. A restore checks the file (SQLite's check, then every event against its
//! digest, which needs the right master key), then makes a new data directory holding
//! it; `serve` rebuilds snapshots from the events.

use std::path::Path;

use anyhow::Context;

use crate::{
    app,
    cli::{BackupArgs, RestoreArgs},
    layout::DataDir,
};

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.out.exists(),
        "{} exists: a backup never overwrites a file",
        args.out.display()
    );
    let store = crate::store::sqlite::SqliteStore::open_read_only(&args.data.data_dir)
        .with_context(|| {
            format!(
                "failed to open the store in {}",
                args.data.data_dir.display()
            )
        })?;
    // Created owner-only first: the file holds wrapped keys and API key hashes.
    let tmp = args.out.with_extension("partial");
    restrict(&tmp)?;
    store.backup_to(&tmp)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &args.out)?;
    let (events, keys) = counts(&args.out)?;
    println!(
        "backed up {events} events and {keys} data keys to {} (the master key is not in it: keep it apart)",
        args.out.display()
    );
    Ok(())
}

/// Makes `path` a new empty file only its owner may read (replacing a leftover one).
fn restrict(path: &Path) -> anyhow::Result<std::fs::File> {
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    Ok(opts.open(path)?)
}

/// Events and data keys in a store file.
fn counts(file: &Path) -> anyhow::Result<(i64, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let events = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    let keys = conn
        .query_row("SELECT count(*) FROM data_keys", [], |r| r.get(0))
        .unwrap_or(0);
    Ok((events, keys))
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(&args.data.data_dir);
    anyhow::ensure!(
        !dir.database().exists(),
        "{} already holds a store: restore into an empty data directory",
        args.data.data_dir.display()
    );
    anyhow::ensure!(args.from.is_file(), "{} is not a file", args.from.display());
    // Checked where it lies, before anything is written.
    let staging = tempfile::tempdir()?;
    std::fs::copy(&args.from, DataDir::new(staging.path()).database())
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    let master = args.master.resolve(false)?;
    {
        let (store, log) = app::open_log_read_only(staging.path(), master)
            .await
            .context("the backup is not a Rapport store this master key opens")?;
        let file = store.quick_check()?;
        anyhow::ensure!(
            file == ["ok"],
            "the backup file is damaged: {}",
            file.join("; ")
        );
        let report = super::check::check_log(&log).await?;
        report.print();
        anyhow::ensure!(
            report.is_intact(),
            "the backup holds damaged events or data keys (see above)"
        );
    }
    std::fs::create_dir_all(&args.data.data_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.data.data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = dir.database().with_extension("partial");
    let mut out = restrict(&tmp)?;
    std::io::copy(&mut std::fs::File::open(&args.from)?, &mut out)?;
    out.sync_all()?;
    std::fs::rename(&tmp, dir.database())?;
    println!(
        "restored {} into {}; `rapport serve` rebuilds the read model from its events",
        args.from.display(),
        args.data.data_dir.display()
    );
    Ok(())
}
