//! The command line (`rapport …`). Parses flags and environment once, then calls into the
//! library with explicit options; nothing below this module reads the environment.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::{
    auth::{ApiKeys, Role},
    crypto::MasterKey,
    import::{self, ImportOptions, Input},
    log::PersonalAccess,
    server::{self, ServeOptions},
    store::{sqlite::SqliteOptions, EventStore},
};

#[derive(Parser)]
#[command(
    name = "rapport",
    version,
    about = "Event-sourced customer-community CRM"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct DataDir {
    /// Where the embedded store lives.
    #[arg(
        long,
        env = "RAPPORT_DATA_DIR",
        default_value = "./rapport-data",
        global = true
    )]
    pub data_dir: PathBuf,
}

#[derive(Args, Clone)]
pub struct MasterKeyArgs {
    /// File holding the 256-bit master key (base64). Created (mode 0600) if missing.
    /// Default: $XDG_CONFIG_HOME/rapport/master.key or ~/.config/rapport/master.key,
    /// deliberately outside the data directory.
    #[arg(long, env = "RAPPORT_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself (base64), instead of a file. Environment only.
    #[arg(long, env = "RAPPORT_MASTER_KEY", hide = true, hide_env_values = true)]
    pub master_key: Option<String>,
}

impl MasterKeyArgs {
    pub fn resolve(&self, create: bool) -> anyhow::Result<MasterKey> {
        if let Some(text) = &self.master_key {
            return MasterKey::from_text(text).context("RAPPORT_MASTER_KEY");
        }
        let path = match &self.master_key_file {
            Some(p) => p.clone(),
            None => default_master_key_path()?,
        };
        let (key, created) = MasterKey::load_or_create(&path, create)?;
        if created {
            tracing::warn!(path = %path.display(), id = %key.id(), "created a new master key; back it up: without it personal data cannot be read");
        }
        Ok(key)
    }
}

fn default_master_key_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("rapport/master.key"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("set --master-key-file (no HOME to put the default master key in)")?;
    Ok(PathBuf::from(home).join(".config/rapport/master.key"))
}

#[derive(Subcommand)]
pub enum Command {
    /// Runs the HTTP service (on the embedded store unless --store names another).
    Serve {
        #[command(flatten)]
        data: DataDir,
        /// The event store: `embedded` (in --data-dir), or KurrentDB / EventStoreDB 22.10+ as
        /// `kurrentdb://USER:PASS@HOST:2113?tls=false[&prefix=rapport]` (see docs/kurrentdb.md).
        /// API keys, snapshots and checkpoints stay in --data-dir either way.
        #[arg(long, env = "RAPPORT_STORE", default_value = "embedded")]
        store: String,
        #[command(flatten)]
        config: crate::config::ConfigArgs,
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:7700")]
        listen: SocketAddr,
        /// Kafka brokers (HOST:PORT,…): consume events from the in topic and publish alert
        /// and segment changes (see docs/kafka.md). Off when absent.
        #[arg(long, env = "RAPPORT_KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
        /// The topic events are consumed from.
        #[arg(long, default_value = "rapport.events.in")]
        kafka_in_topic: String,
        /// The consumer group.
        #[arg(long, default_value = "rapport")]
        kafka_group: String,
    },
    /// Imports events (NDJSON or JSON arrays; `-` for stdin) straight into the store.
    Import {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Write the valid events even if some lines are invalid (they are still reported).
        #[arg(long)]
        skip_invalid: bool,
        /// What the files are: Rapport's NDJSON/JSON, or a public dataset (see docs/importers.md).
        #[arg(long, value_enum, default_value_t = ImportFormat::Ndjson)]
        format: ImportFormat,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Writes the log as NDJSON to stdout.
    Export {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        config: crate::config::ConfigArgs,
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Start after this position.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Stop at this position (inclusive).
        #[arg(long)]
        until: Option<u64>,
        /// How personal fields are written: plain (decrypted), pseudonymised, or withheld.
        #[arg(long, value_enum, default_value_t = PersonalArg::Withheld)]
        personal: PersonalArg,
        /// What to export: the events, or a projection's table.
        #[arg(long, value_enum, default_value_t = crate::export::What::Events)]
        what: crate::export::What,
        /// ndjson (the default), csv, or parquet (for DuckDB, pandas, Spark).
        #[arg(long, value_enum, default_value_t = crate::export::Format::Ndjson)]
        format: crate::export::Format,
        /// As the system knew it after this log position, or at this recording time
        /// (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Writes an analyst's report (Markdown and SVG charts) of the store as of a date.
    Report {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Reference time: RFC 3339 or YYYY-MM-DD (its first instant, UTC).
        #[arg(long)]
        as_of: String,
        /// Folder for report.md and the charts.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run by `serve` only: folds the log into the snapshots of --data-dir up to its last
    /// position and exits. Reads the master key, then the configuration as JSON, from
    /// standard input.
    #[command(hide = true)]
    CatchUp {
        #[command(flatten)]
        data: DataDir,
    },
    /// Run by `serve` only: builds business time (the snapshots `valid_at` queries start
    /// from) for the log of --data-dir as it is now, and exits. Reads the master key, then
    /// the configuration as JSON, from standard input.
    #[command(hide = true)]
    ValidTime {
        #[command(flatten)]
        data: DataDir,
    },
    /// Measures ingest, encryption, export and HTTP rates on synthetic data (prints rates).
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 100_000)]
        customers: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 10)]
        http_seconds: u64,
        #[arg(long, default_value_t = 64)]
        http_clients: usize,
        /// Events per second the HTTP clients send together; 0: as fast as they can (the
        /// profile lookups then compete with a saturating ingest for the same cores).
        #[arg(long, default_value_t = 0)]
        http_ingest_rate: u64,
        #[arg(long)]
        skip_http: bool,
        /// Instead: import the synthetic log, start `rapport serve` on it as a child process
        /// and print its resident memory once the read model has caught up.
        #[arg(long)]
        serve_memory: bool,
        /// Instead: write the synthetic log as NDJSON to this file and stop (for `rapport
        /// import`, then `rapport replay`, on the same log the other figures come from).
        #[arg(long, value_name = "FILE")]
        write_log: Option<PathBuf>,
        /// A synthetic log in business order, with this percentage of its events arriving
        /// late (by up to 7 days). Without it the log's times cycle through March every 28
        /// events (business times shuffled: the hardest log for business-time builds).
        #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
        late_percent: Option<u8>,
    },
    /// Rebuilds the projections from the first event and writes a fresh snapshot; with
    /// `--verify`, rebuilds beside the live snapshot and compares a digest per projection.
    Replay {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        config: crate::config::ConfigArgs,
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Projections to compare or report (customers, segments, warnings, lifecycles); all by default.
        /// Every projection is folded either way (segments and warnings read profiles).
        #[arg(long)]
        projection: Vec<String>,
        /// Compare with the live snapshot instead of replacing it; fails on any difference.
        #[arg(long)]
        verify: bool,
    },
    /// Measures the early-warning detector on seeded scenarios against the industry rule
    /// (precision, recall, detection delay, false alarms, AMOC table, speed).
    EvalWarnings {
        /// Scenario seeds (comma-separated). Thresholds were tuned on 1,2,3; report on others.
        #[arg(long, value_delimiter = ',', default_value = "11,12,13")]
        seeds: Vec<u64>,
        #[arg(long, default_value_t = 6_000)]
        customers: usize,
        #[arg(long, default_value_t = 120)]
        days: i64,
        #[arg(long, default_value_t = 30)]
        cascades: usize,
        /// The z-score threshold for `warning` (default: the service's).
        #[arg(long)]
        threshold: Option<f64>,
        /// Smallest connected cluster for `warning` (default: the service's).
        #[arg(long)]
        min_count: Option<usize>,
        /// Background complaints: generated, or the real CFPB sample.
        #[arg(long, value_enum, default_value_t = BackgroundArg::Synthetic)]
        background: BackgroundArg,
        /// The shared data folder (for `--background cfpb`).
        #[arg(long, env = "RAPPORT_SHARED_DATA", default_value = "../shared/data")]
        shared_data: PathBuf,
    },
    /// Manages API keys and the master key.
    Keys {
        #[command(flatten)]
        data: DataDir,
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ImportFormat {
    Ndjson,
    OnlineRetail,
    OlistReviews,
    Cfpb,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackgroundArg {
    Synthetic,
    Cfpb,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PersonalArg {
    Plain,
    Pseudonymised,
    Withheld,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Creates an API key and prints its token (shown once).
    Create {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        label: Option<String>,
    },
    /// Lists API keys.
    List,
    /// Revokes an API key (a running server notices within 2 s).
    Revoke { id: String },
    /// Re-wraps every data key under a new master key (the server must be stopped).
    RotateMaster {
        #[command(flatten)]
        master: MasterKeyArgs,
        /// Where to write the new master key (must not exist).
        #[arg(long)]
        new_master_key_file: PathBuf,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            data,
            store,
            config,
            master,
            listen,
            kafka_brokers,
            kafka_in_topic,
            kafka_group,
        } => {
            let config = config.load()?;
            let master = master.resolve(true)?;
            let kafka = kafka_brokers.map(|b| crate::kafka::KafkaOptions {
                in_topic: kafka_in_topic,
                group: kafka_group,
                ..crate::kafka::KafkaOptions::defaults(&b, &data.data_dir)
            });
            let store = server::StoreChoice::parse(&store)?;
            server::run(
                ServeOptions {
                    data_dir: data.data_dir,
                    store,
                    listen,
                    master,
                    kafka,
                    config,
                },
                server::shutdown_signal(),
            )
            .await
        }
        Command::Import {
            data,
            master,
            skip_invalid,
            format,
            files,
        } => {
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
            let (store, log) =
                server::open_log(&data.data_dir, master, SqliteOptions::default()).await?;
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
        Command::Export {
            data,
            config,
            master,
            after,
            until,
            personal,
            what,
            format,
            as_of,
        } => {
            let master = master.resolve(false)?;
            let (store, log) = server::open_log_read_only(&data.data_dir, master).await?;
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
                            anyhow::anyhow!("--as-of must be a log position, an RFC 3339 time or a date YYYY-MM-DD")
                        })?;
                        crate::replay::position_known_at(&log, t).await?
                    }
                }),
            };
            let until = until.unwrap_or(u64::MAX).min(as_of.unwrap_or(u64::MAX));
            let started = std::time::Instant::now();
            let n = if what == crate::export::What::Events
                && format == crate::export::Format::Ndjson
            {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                tokio::task::block_in_place(|| {
                    import::export(&store, &log, after, until, access, &mut out)
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
                    let tt = crate::replay::TimeTravel::new(
                        log.clone(),
                        Some(data.data_dir.join("snapshots")),
                        config.lifecycle,
                        config.early_warning.clone(),
                    );
                    let state = tt.state_at(position, None).await?;
                    let (columns, rows) =
                        crate::export::projection_table(what, &state, &config.lifecycle);
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
        Command::Keys { data, command } => run_keys(data, command).await,
        Command::Replay {
            data,
            config,
            master,
            projection,
            verify,
        } => {
            let config = config.load()?;
            let master = master.resolve(false)?;
            crate::replay::run_cli(&data.data_dir, master, &config, &projection, verify).await
        }
        Command::EvalWarnings {
            seeds,
            customers,
            days,
            cascades,
            threshold,
            min_count,
            background,
            shared_data,
        } => {
            let defaults = rapport_projections::warnings::WarningConfig::default();
            let config = rapport_projections::warnings::WarningConfig {
                threshold: threshold.unwrap_or(defaults.threshold),
                min_count: min_count.unwrap_or(defaults.min_count),
                ..defaults
            };
            if days < crate::eval::WARM_UP_DAYS + 10 {
                anyhow::bail!(
                    "--days must be at least {} (a {}-day warm-up builds the baselines)",
                    crate::eval::WARM_UP_DAYS + 10,
                    crate::eval::WARM_UP_DAYS
                );
            }
            let background = match background {
                BackgroundArg::Synthetic => crate::eval::Background::Synthetic,
                BackgroundArg::Cfpb => crate::eval::Background::cfpb(&shared_data)?,
            };
            crate::eval::run(crate::eval::EvalOptions {
                background,
                seeds,
                customers,
                days,
                cascades,
                config,
            })
        }
        Command::Report {
            data,
            master,
            as_of,
            out,
        } => {
            let as_of = crate::http::parse_as_of(&as_of).map_err(|_| {
                anyhow::anyhow!("--as-of must be an RFC 3339 time or a date YYYY-MM-DD")
            })?;
            let master = master.resolve(false)?;
            let (store, log) = server::open_log_read_only(&data.data_dir, master).await?;
            let customers = tokio::task::block_in_place(|| crate::report::fold(&store, &log))?;
            crate::report::write(&customers, as_of, &out)?;
            eprintln!(
                "wrote {}/report.md, cohort-retention.svg, lifecycle-by-month.svg",
                out.display()
            );
            Ok(())
        }
        Command::CatchUp { data } => {
            server::die_with_parent();
            let (master, config) = child_input()?;
            server::catch_up(&data.data_dir, master, &config).await
        }
        Command::ValidTime { data } => {
            server::die_with_parent();
            let (master, config) = child_input()?;
            server::build_valid_time(&data.data_dir, master, &config).await
        }
        Command::Bench {
            events,
            customers,
            seed,
            http_seconds,
            http_clients,
            http_ingest_rate,
            skip_http,
            serve_memory,
            write_log,
            late_percent,
        } => {
            let times = late_percent.map_or(crate::bench::LogTimes::Shuffled, |late_percent| {
                crate::bench::LogTimes::InOrder { late_percent }
            });
            if let Some(path) = write_log {
                let text = crate::bench::synthetic_ndjson(events, customers, seed, times);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "wrote {events} synthetic events ({customers} customers, seed {seed}) to {}",
                    path.display()
                );
                return Ok(());
            }
            crate::bench::run(crate::bench::BenchOptions {
                serve_memory,
                events,
                customers,
                seed,
                http_seconds,
                http_clients,
                http_ingest_rate,
                skip_http,
                times,
            })
            .await
        }
    }
}

async fn run_keys(data: DataDir, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, label } => {
            let keys = ApiKeys::open(&data.data_dir)?;
            let (info, token) = keys.create(role, label.as_deref())?;
            eprintln!(
                "created key {} with role {}; the token below is shown once:",
                info.id,
                role.as_str()
            );
            println!("{token}");
        }
        KeysCommand::List => {
            let keys = ApiKeys::open(&data.data_dir)?;
            for k in keys.list()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role.as_str(),
                    k.created_at,
                    k.revoked_at.as_deref().unwrap_or("active"),
                    k.label.unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let keys = ApiKeys::open(&data.data_dir)?;
            anyhow::ensure!(keys.revoke(&id)?, "no active key `{id}`");
            eprintln!("revoked {id}");
        }
        KeysCommand::RotateMaster {
            master,
            new_master_key_file,
        } => {
            let old = master.resolve(false)?;
            let (store, log) =
                server::open_log(&data.data_dir, old, SqliteOptions::default()).await?;
            let new = MasterKey::generate();
            crate::crypto::write_secret_file(&new_master_key_file, new.to_text().as_bytes())
                .with_context(|| format!("failed to write {}", new_master_key_file.display()))?;
            let rewrapped = log.keys.rewrap_all(&new);
            let n = rewrapped.len();
            store.rewrap_keys(rewrapped, &new.id()).await?;
            store.purge().await.ok();
            store.close();
            eprintln!(
                "re-wrapped {n} data keys under the new master key {} (written to {}); start Rapport with --master-key-file {} and then destroy the old key",
                new.id(),
                new_master_key_file.display(),
                new_master_key_file.display()
            );
        }
    }
    Ok(())
}

/// What `serve` writes to a child's standard input (see `read_model::FoldChild`): the
/// master key, a newline, the configuration as JSON.
fn child_input() -> anyhow::Result<(MasterKey, crate::config::Config)> {
    tracing::debug!("reading the master key and the configuration from standard input");
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)?;
    let (key, config) = input.split_once('\n').unwrap_or((input.as_str(), "{}"));
    let master = MasterKey::from_text(key.trim()).context("the master key on stdin")?;
    let config = crate::config::Config::parse(config)
        .map_err(|e| anyhow::anyhow!("the configuration on stdin: {e}"))?;
    Ok((master, config))
}
