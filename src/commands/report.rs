//! `rapport report`: the analyst's report (Markdown and SVG charts) as of a date.

use crate::{app, cli::ReportArgs};

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let ReportArgs {
        data,
        config,
        master,
        as_of,
        out,
    } = args;
    let config = config.load()?;
    let as_of = crate::http::parse_as_of(&as_of)
        .map_err(|_| anyhow::anyhow!("--as-of must be an RFC 3339 time or a date YYYY-MM-DD"))?;
    let master = master.resolve(false)?;
    let (_, log) = app::open_log_read_only(&data.data_dir, master).await?;
    let customers = crate::report::fold(&log).await?;
    crate::report::write(&customers, as_of, &config.lifecycle, &out)?;
    eprintln!(
        "wrote {}/report.md, cohort-retention.svg, lifecycle-by-month.svg",
        out.display()
    );
    Ok(())
}
