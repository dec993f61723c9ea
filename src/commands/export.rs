//! `rapport export`: the log or a projection's table, as NDJSON, CSV or Parquet, to
//! stdout.

use crate::{
    app,
    cli::{ExportArgs, PersonalArg},
    log::PersonalAccess,
    store::EventStore,
};

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs {
        data,
        config,
        master,
        after,
        until,
        personal,
        what,
        format,
        as_of,
    } = args;
    let master = master.resolve(false)?;
    let (store, log) = app::open_log_read_only(&data.data_dir, master).await?;
    let access = match personal {
        PersonalArg::Plain => PersonalAccess::Plain,
        PersonalArg::Pseudonymised => PersonalAccess::Pseudonymised,
        PersonalArg::Withheld => PersonalAccess::Withheld,
    };
    let as_of = match &as_of {
        None => None,
        Some(v) => Some(match v.parse::<u64>() {
            Ok(p) => p,
            Err(_) => {
                let t = crate::http::parse_as_of(v).map_err(|_| {
                    anyhow::anyhow!(
                        "--as-of must be a log position, an RFC 3339 time or a date YYYY-MM-DD"
                    )
                })?;
                crate::fold::time_travel::position_known_at(&log, t).await?
            }
        }),
    };
    let until = until.unwrap_or(u64::MAX).min(as_of.unwrap_or(u64::MAX));
    let started = std::time::Instant::now();
    let n = if what == crate::export::What::Events && format == crate::export::Format::Ndjson {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        tokio::task::block_in_place(|| {
            crate::export::export(&store, &log, after, until, access, &mut out)
        })?
    } else {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
        if what == crate::export::What::Events && format == crate::export::Format::Parquet {
            tokio::task::block_in_place(|| {
                crate::export::events_parquet(&store, &log, after, until, access, out)
            })?
        } else if what == crate::export::What::Events {
            let mut w = crate::export::writer(format, crate::export::EVENT_COLUMNS, out)?;
            let n = tokio::task::block_in_place(|| {
                crate::export::events(&store, &log, after, until, access, w.as_mut())
            })?;
            w.finish()?;
            n
        } else {
            let position = until.min(store.last_position());
            let config = config.load()?;
            let tt = crate::fold::time_travel::TimeTravel::new(
                log.clone(),
                Some(crate::layout::DataDir::new(&data.data_dir).snapshots()),
                config.lifecycle,
                config.early_warning.clone(),
            );
            let state = tt.state_at(position, None).await?;
            let (columns, rows) = crate::export::projection_table(what, &state, &config.lifecycle);
            let mut w = crate::export::writer(format, &columns, out)?;
            w.rows(&rows)?;
            w.finish()?;
            rows.len() as u64
        }
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {n} rows in {secs:.2} s ({:.0} rows/s)",
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
