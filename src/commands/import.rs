//! `rapport import`: events (NDJSON or JSON arrays, or a public dataset) straight into
//! the embedded store, in one bulk transaction.

use crate::{
    app,
    cli::{ImportArgs, ImportFormat},
    import::{self, ImportOptions, Input},
    store::sqlite::SqliteOptions,
};

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let ImportArgs {
        data,
        master,
        skip_invalid,
        format,
        files,
    } = args;
    let started = std::time::Instant::now();
    let inputs = match format {
        ImportFormat::Ndjson => files
            .iter()
            .map(|f| Input::read(f))
            .collect::<anyhow::Result<Vec<_>>>()?,
        ImportFormat::OnlineRetail | ImportFormat::OlistReviews | ImportFormat::Cfpb => {
            let mut files = files.clone();
            files.sort();
            let (name, (text, conv)) = match format {
                ImportFormat::OnlineRetail => (
                    "online-retail",
                    crate::importers::online_retail::convert(&files)?,
                ),
                ImportFormat::OlistReviews => {
                    ("olist-reviews", crate::importers::olist::convert(&files)?)
                }
                _ => ("cfpb", crate::importers::cfpb::convert(&files)?),
            };
            eprintln!("{name}: {} rows → {} events", conv.rows, conv.events);
            for (why, n) in &conv.skipped {
                eprintln!("  skipped {n} {why}");
            }
            vec![Input::text(name, text)]
        }
    };
    let master = master.resolve(true)?;
    let (store, log) = app::open_log(&data.data_dir, master, SqliteOptions::default()).await?;
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = tokio::task::block_in_place(|| {
        import::import(
            &store,
            &log,
            &inputs,
            ImportOptions {
                skip_invalid,
                progress,
            },
        )
    })?;
    store.close();
    for e in &report.errors {
        eprintln!("{e}");
    }
    if report.invalid as usize > report.errors.len() {
        eprintln!(
            "… and {} more invalid lines",
            report.invalid as usize - report.errors.len()
        );
    }
    let rate = report.events_read as f64 / report.seconds.max(1e-9);
    let total = started.elapsed().as_secs_f64();
    eprintln!(
        "read {} events: {} written, {} already stored, {} invalid, in {:.2} s ({:.0} events/s; {total:.2} s in all){}",
        report.events_read,
        report.events_written,
        report.duplicates,
        report.invalid,
        report.seconds,
        rate,
        if report.invalid > 0 && !skip_invalid { "; nothing was written because some lines are invalid (see above, or use --skip-invalid)" } else { "" }
    );
    if report.invalid > 0 {
        std::process::exit(1);
    }
    Ok(())
}
