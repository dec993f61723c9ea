//! The command line (`rapport …`). Parses flags and environment once, then calls into the
//! library with explicit options; nothing below this module reads the environment.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::{auth::Role, crypto::MasterKey};

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
    Serve(ServeArgs),
    /// Imports events (NDJSON or JSON arrays; `-` for stdin) straight into the store.
    Import(ImportArgs),
    /// Writes the log as NDJSON to stdout.
    Export(ExportArgs),
    /// Writes an analyst's report (Markdown and SVG charts) of the store as of a date.
    Report(ReportArgs),
    /// Run by `serve` only: folds the log into the snapshots of --data-dir up to its last
    /// position and exits. Reads the master key, then the configuration as JSON, from
    /// standard input.
    #[command(hide = true)]
    CatchUp(CatchUpArgs),
    /// Run by `serve` only: builds business time (the snapshots `valid_at` queries start
    /// from) for the log of --data-dir as it is now, and exits. Reads the master key, then
    /// the configuration as JSON, from standard input.
    #[command(hide = true)]
    ValidTime(ValidTimeArgs),
    /// Measures ingest, encryption, export and HTTP rates on synthetic data (prints rates).
    Bench(BenchArgs),
    /// Rebuilds the projections from the first event and writes a fresh snapshot; with
    /// `--verify`, rebuilds beside the live snapshot and compares a digest per projection.
    Replay(ReplayArgs),
    /// Checks the store: SQLite's own check of the file, then every event against the
    /// digest it was written with. Read-only; runs beside a server. Exits 1 if damaged.
    Check(CheckArgs),
    /// Copies the embedded store (events, data keys, API keys) into one file, consistent,
    /// beside a running server. The master key is not in it: keep it apart.
    Backup(BackupArgs),
    /// Makes a data directory from a backup, after checking the file and every event
    /// against its digest with the master key; `serve` then rebuilds its read model.
    Restore(RestoreArgs),
    /// Measures the early-warning detector on seeded scenarios against the industry rule
    /// (precision, recall, detection delay, false alarms, AMOC table, speed).
    EvalWarnings(EvalWarningsArgs),
    /// Measures identity resolution on seeded firms whose people are known: pairwise
    /// precision and recall of the people found, and folding speed.
    EvalIdentity(EvalIdentityArgs),
    /// Measures pyramid risk on seeded firms of healthy and pyramid agent networks:
    /// precision and recall per network, and how soon after the legal crossing it flags.
    EvalAgents(EvalAgentsArgs),
    /// Manages API keys and the master key.
    Keys(KeysArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// The event store: `embedded` (in --data-dir), or KurrentDB / EventStoreDB 22.10+ as
    /// `kurrentdb://USER:PASS@HOST:2113?tls=false[&prefix=rapport]` (see docs/kurrentdb.md).
    /// API keys, snapshots and checkpoints stay in --data-dir either way.
    #[arg(long, env = "RAPPORT_STORE", default_value = "embedded")]
    pub store: String,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "RAPPORT_LISTEN", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// Kafka brokers (HOST:PORT,…): consume events from the in topic and publish alert
    /// and segment changes (see docs/kafka.md). Off when absent.
    #[arg(long, env = "RAPPORT_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The topic events are consumed from.
    #[arg(long, default_value = "rapport.events.in")]
    pub kafka_in_topic: String,
    /// The consumer group.
    #[arg(long, default_value = "rapport")]
    pub kafka_group: String,
    /// How to reach the brokers: in the clear, over TLS, with SASL credentials, or both
    /// (managed Kafka services ask for sasl-ssl).
    #[arg(
        long,
        env = "RAPPORT_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value = "plaintext"
    )]
    pub kafka_security_protocol: crate::kafka::Protocol,
    #[arg(long, env = "RAPPORT_KAFKA_SASL_MECHANISM", value_enum)]
    pub kafka_sasl_mechanism: Option<crate::kafka::Mechanism>,
    #[arg(long, env = "RAPPORT_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,
    /// A file holding the SASL password (or set RAPPORT_KAFKA_SASL_PASSWORD; never on the
    /// command line, where `ps` shows it).
    #[arg(long, env = "RAPPORT_KAFKA_SASL_PASSWORD_FILE")]
    pub kafka_sasl_password_file: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that sign the brokers' certificates; the system's by default.
    #[arg(long, env = "RAPPORT_KAFKA_SSL_CA")]
    pub kafka_ssl_ca: Option<std::path::PathBuf>,
    /// A client certificate (PEM) for brokers that authenticate clients by TLS; needs
    /// --kafka-ssl-key.
    #[arg(long, env = "RAPPORT_KAFKA_SSL_CERT")]
    pub kafka_ssl_cert: Option<std::path::PathBuf>,
    #[arg(long, env = "RAPPORT_KAFKA_SSL_KEY")]
    pub kafka_ssl_key: Option<std::path::PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. The
    /// console's session cookie is then `Secure`.
    #[arg(long, env = "RAPPORT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "RAPPORT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Write the valid events even if some lines are invalid (they are still reported).
    #[arg(long)]
    pub skip_invalid: bool,
    /// What the files are: Rapport's NDJSON/JSON, or a public dataset (see docs/importers.md).
    #[arg(long, value_enum, default_value_t = ImportFormat::Ndjson)]
    pub format: ImportFormat,
    #[arg(required = true)]
    pub files: Vec<String>,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Start after this position.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Stop at this position (inclusive).
    #[arg(long)]
    pub until: Option<u64>,
    /// How personal fields are written: plain (decrypted), pseudonymised, or withheld.
    #[arg(long, value_enum, default_value_t = PersonalArg::Withheld)]
    pub personal: PersonalArg,
    /// What to export: the events, or a projection's table.
    #[arg(long, value_enum, default_value_t = crate::export::What::Events)]
    pub what: crate::export::What,
    /// ndjson (the default), csv, or parquet (for DuckDB, pandas, Spark).
    #[arg(long, value_enum, default_value_t = crate::export::Format::Ndjson)]
    pub format: crate::export::Format,
    /// As the system knew it after this log position, or at this recording time
    /// (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub as_of: Option<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Reference time: RFC 3339 or YYYY-MM-DD (its first instant, UTC).
    #[arg(long)]
    pub as_of: String,
    /// Folder for report.md and the charts.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum FamilyArg {
    Tuned,
    Realistic,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub master: MasterKeyArgs,
}

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// The backup file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file (from `rapport backup`).
    #[arg(long)]
    pub from: PathBuf,
    /// The data directory to make (must hold no store).
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub master: MasterKeyArgs,
}

#[derive(Args)]
pub struct CatchUpArgs {
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Args)]
pub struct ValidTimeArgs {
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 100_000)]
    pub customers: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    #[arg(long, default_value_t = 64)]
    pub http_clients: usize,
    /// Events per second the HTTP clients send together; 0: as fast as they can (the
    /// profile lookups then compete with a saturating ingest for the same cores).
    #[arg(long, default_value_t = 0)]
    pub http_ingest_rate: u64,
    #[arg(long)]
    pub skip_http: bool,
    /// Instead: import the synthetic log, start `rapport serve` on it as a child process
    /// and print its resident memory once the read model has caught up.
    #[arg(long)]
    pub serve_memory: bool,
    /// Instead: write the synthetic log as NDJSON to this file and stop (for `rapport
    /// import`, then `rapport replay`, on the same log the other figures come from).
    #[arg(long, value_name = "FILE")]
    pub write_log: Option<PathBuf>,
    /// A synthetic log in business order, with this percentage of its events arriving
    /// late (by up to 7 days). Without it the log's times cycle through March every 28
    /// events (business times shuffled: the hardest log for business-time builds).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub late_percent: Option<u8>,
    /// With --write-log: `synthetic` (purchases, posts, registrations, joins: the log the
    /// other figures come from) or `firm` (a real firm's mix: complaints with recurring
    /// phrasings, echoes, replies, referrals, communities of 500, and a crisis burst).
    #[arg(long, value_enum, default_value = "synthetic")]
    pub mix: MixArg,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum MixArg {
    Synthetic,
    Firm,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Projections to compare or report (customers, segments, warnings, lifecycles); all by default.
    /// Every projection is folded either way (segments and warnings read profiles).
    #[arg(long)]
    pub projection: Vec<String>,
    /// Compare with the live snapshot instead of replacing it; fails on any difference.
    #[arg(long)]
    pub verify: bool,
    /// Also time every event's fold and print the cost per event type (p50, p99, max),
    /// with the complaints about a batch (a crisis) apart. The timing itself costs about
    /// 40 ns an event.
    #[arg(long)]
    pub costs: bool,
}

#[derive(Args)]
pub struct EvalIdentityArgs {
    /// Firm seeds (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// People per firm (each with one to three ids).
    #[arg(long, default_value_t = 50_000)]
    pub people: usize,
    /// How often households share a phone number (see docs/identity.md).
    #[arg(long, value_enum, default_value = "typical")]
    pub households: crate::tools::identity_eval::Households,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalAgentsArgs {
    /// Firm seeds (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Agent networks per firm (two in five healthy, one in five healthy but recruiting
    /// hard, one in five pyramids, one in five degenerating into one).
    #[arg(long, default_value_t = 100)]
    pub networks: usize,
    /// Print JSON (with every network) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalWarningsArgs {
    /// `tuned`: the scenarios the thresholds were set on; `realistic`: heavy-tailed
    /// communities, Zipf products, isolated echoes, slow and store-wide cascades (see
    /// docs/early-warning.md).
    #[arg(long, value_enum, default_value = "tuned")]
    pub family: FamilyArg,
    /// Measure the detector on the verdicts staff gave (`alert_reviewed`) in the store at
    /// --data-dir, instead of on generated scenarios.
    #[arg(long)]
    pub from_store: bool,
    #[command(flatten)]
    pub data: DataDir,
    #[command(flatten)]
    pub store_config: crate::config::ConfigArgs,
    #[command(flatten)]
    pub master: MasterKeyArgs,
    /// Scenario seeds (comma-separated). Thresholds were tuned on 1,2,3; report on others.
    #[arg(long, value_delimiter = ',', default_value = "11,12,13")]
    pub seeds: Vec<u64>,
    #[arg(long, default_value_t = 6_000)]
    pub customers: usize,
    #[arg(long, default_value_t = 120)]
    pub days: i64,
    #[arg(long, default_value_t = 30)]
    pub cascades: usize,
    /// The z-score threshold for `warning` (default: the service's).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Smallest connected cluster for `warning` (default: the service's).
    #[arg(long)]
    pub min_count: Option<usize>,
    /// Background complaints: generated, or the real CFPB sample.
    #[arg(long, value_enum, default_value_t = BackgroundArg::Synthetic)]
    pub background: BackgroundArg,
    /// The shared data folder (for `--background cfpb`).
    #[arg(long, env = "RAPPORT_SHARED_DATA", default_value = "../shared/data")]
    pub shared_data: PathBuf,
}

#[derive(Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub data: DataDir,
    #[command(subcommand)]
    pub command: KeysCommand,
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
