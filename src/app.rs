//! Startup and shutdown of the service: opens the store and keyring, bootstraps the admin
//! key, serves HTTP until a signal, then drains in-flight appends and closes the store.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Arc},
};

use anyhow::Context;

use crate::{
    auth::ApiKeys,
    crypto::{Keyring, MasterKey},
    fold::child::FoldChild,
    http::{self, metrics::Metrics, AppState},
    layout::DataDir,
    log::Log,
    store::{
        kurrent::{KurrentOptions, KurrentStore},
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};

/// Opens the embedded store and its keyring under `master`.
pub async fn open_log(
    data_dir: &Path,
    master: MasterKey,
    opts: SqliteOptions,
) -> anyhow::Result<(Arc<SqliteStore>, Log)> {
    let store = Arc::new(
        SqliteStore::open(data_dir, opts)
            .with_context(|| format!("failed to open the store in {}", data_dir.display()))?,
    );
    keyring_for(store, master).await
}

/// Opens the store read-only (no lock; works beside a running server) with its keyring.
pub async fn open_log_read_only(
    data_dir: &Path,
    master: MasterKey,
) -> anyhow::Result<(Arc<SqliteStore>, Log)> {
    let store = Arc::new(
        SqliteStore::open_read_only(data_dir)
            .with_context(|| format!("failed to open the store in {}", data_dir.display()))?,
    );
    keyring_for(store, master).await
}

/// Which event store `serve` runs on.
#[derive(Clone)]
pub enum StoreChoice {
    Embedded,
    Kurrent(Box<KurrentOptions>),
}

impl StoreChoice {
    /// `embedded`, or a `kurrentdb://`, `kdb://` or `esdb://` URL.
    pub fn parse(s: &str) -> anyhow::Result<StoreChoice> {
        if s == "embedded" {
            return Ok(StoreChoice::Embedded);
        }
        KurrentOptions::parse(s)
            .map(|k| StoreChoice::Kurrent(Box::new(k)))
            .map_err(|e| anyhow::anyhow!("--store: {e}"))
    }

    /// What the data directory records, so its snapshots and checkpoints (which name
    /// positions of one log) are never used with another log.
    fn identity(&self) -> String {
        match self {
            StoreChoice::Embedded => "embedded".into(),
            StoreChoice::Kurrent(k) => k.display.clone(),
        }
    }
}

/// Refuses a data directory whose snapshots and checkpoints belong to another store.
fn check_store_identity(data_dir: &Path, choice: &StoreChoice) -> anyhow::Result<()> {
    let path = DataDir::new(data_dir).store_identity();
    let want = choice.identity();
    match std::fs::read_to_string(&path) {
        Ok(have) if have.trim() == want => Ok(()),
        Ok(have) => anyhow::bail!(
            "the data directory {} belongs to the store `{}`, not `{want}`: its snapshots and checkpoints count positions of that log; use another --data-dir",
            data_dir.display(),
            have.trim()
        ),
        // Directories made before this check all belong to the embedded store.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let existing = DataDir::new(data_dir).database().exists();
            if existing && want != "embedded" {
                anyhow::bail!(
                    "the data directory {} holds an embedded store; give the KurrentDB store its own --data-dir",
                    data_dir.display()
                );
            }
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, format!("{want}\n"))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Connects to KurrentDB and loads the keyring from it.
pub async fn open_log_kurrent(
    opts: KurrentOptions,
    master: MasterKey,
) -> anyhow::Result<(Arc<KurrentStore>, Log)> {
    let display = opts.display.clone();
    let store = Arc::new(
        KurrentStore::open(opts)
            .await
            .with_context(|| format!("failed to open the KurrentDB store {display}"))?,
    );
    keyring_for(store, master).await
}

async fn keyring_for<S: EventStore>(
    store: Arc<S>,
    master: MasterKey,
) -> anyhow::Result<(Arc<S>, Log)> {
    if let Some(id) = store.master_key_id().await? {
        anyhow::ensure!(
            id == master.id(),
            "the configured master key (id {}) is not the one this store's data keys are wrapped with (id {id}); \
             without that key no personal data can be read (see docs/privacy.md)",
            master.id()
        );
    }
    let wrapped = store.load_keys().await?;
    let keyring = Keyring::load(master, wrapped).context("failed to unwrap the data keys")?;
    let log = Log::new(store.clone() as Arc<dyn EventStore>, Arc::new(keyring));
    Ok((store, log))
}

pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub listen: SocketAddr,
    pub master: MasterKey,
    /// Kafka in and out, when configured.
    pub kafka: Option<crate::kafka::KafkaOptions>,
    /// Lifecycle and early-warning thresholds.
    pub config: crate::config::Config,
}

/// Runs the service until `shutdown` resolves. Prints `rapport listening on http://ADDR`
/// on stdout once the socket is bound (tests and scripts read it).
pub async fn run(
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    check_store_identity(&opts.data_dir, &opts.store)?;
    // For the catch-up child's standard input.
    let master_text = opts.master.to_text();
    let (embedded, log) = match opts.store.clone() {
        StoreChoice::Embedded => {
            let (store, log) = open_log(
                &opts.data_dir,
                opts.master,
                SqliteOptions {
                    durable: true,
                    metrics: metrics.clone(),
                },
            )
            .await?;
            (Some(store), log)
        }
        StoreChoice::Kurrent(k) => {
            tracing::info!(store = %k.display, "opening the KurrentDB store");
            (None, open_log_kurrent(*k, opts.master).await?.1)
        }
    };
    let keys = Arc::new(ApiKeys::open(&opts.data_dir)?);
    let admin_path = DataDir::new(&opts.data_dir).admin_key();
    if let Some(id) = keys.bootstrap_admin(&admin_path)? {
        tracing::warn!(key = %id, path = %admin_path.display(), "no API keys existed: created an admin key; read it from this file (mode 0600)");
    }
    let stopping = Arc::new(AtomicBool::new(false));
    // The KurrentDB backend has no read-only opening for a child; it compacts instead.
    // A child of this server, `rapport COMMAND --data-dir …`, given the master key and the
    // configuration on its standard input (see `FoldChild`).
    let child = |command: &str, min_events: u64| -> anyhow::Result<FoldChild> {
        Ok(FoldChild {
            program: std::env::current_exe().context("cannot find the rapport executable")?,
            args: vec![
                command.into(),
                "--data-dir".into(),
                opts.data_dir.clone().into(),
            ],
            stdin: zeroize::Zeroizing::new(format!(
                "{}\n{}",
                master_text.as_str(),
                serde_json::to_string(&opts.config)?
            )),
            min_events,
        })
    };
    let catch_up_child = match (&embedded, opts.config.read_model.catch_up_in_child_events) {
        (Some(_), n) if n > 0 => Some(child("catch-up", n)?),
        _ => None,
    };
    let read_model = crate::read_model::ReadModel::spawn(
        log.clone(),
        crate::read_model::ReadModelOptions {
            lifecycle: opts.config.lifecycle,
            warnings: opts.config.early_warning.clone(),
            history_every_events: opts.config.time_travel.history_every_events,
            catch_up_child,
            ..crate::read_model::ReadModelOptions::service(Some(
                DataDir::new(&opts.data_dir).snapshots(),
            ))
        },
    );
    let valid_time = opts.config.time_travel.valid_time_rebuild_after_events;
    if let (Some(_), true) = (&embedded, valid_time > 0) {
        crate::read_model::builds::spawn_builds(
            read_model.clone(),
            log.clone(),
            child("valid-time", valid_time)?,
            DataDir::new(&opts.data_dir).snapshots(),
            opts.config.lifecycle,
            opts.config.early_warning.clone(),
        );
    }
    let kafka = match &opts.kafka {
        Some(k) => {
            let ingest = crate::kafka::spawn_ingest(k.clone(), log.clone())?;
            let outbox = crate::kafka::spawn_outbox(k.clone(), read_model.clone())?;
            tracing::info!(brokers = %k.brokers, topic = %k.in_topic, group = %k.group, "kafka: consuming and publishing");
            Some((ingest, outbox))
        }
        None => None,
    };
    let state = AppState {
        log: log.clone(),
        keys,
        metrics,
        ids: Arc::new(uuid::Uuid::now_v7),
        stopping: stopping.clone(),
        read_model,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("failed to listen on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    println!("rapport listening on http://{addr}");
    tracing::info!(%addr, data_dir = %opts.data_dir.display(), store = %opts.store.identity(), last_position = log.last_position(), "serving");
    let app = http::router(state);
    http::serve(listener, app, async move {
        shutdown.await;
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("shutting down: finishing in-flight requests");
    })
    .await?;
    if let Some((ingest, outbox)) = kafka {
        // The consumer commits what it stored; the outbox keeps its checkpoint.
        if let Err(e) = ingest.stop().await {
            tracing::warn!(error = %e, "kafka ingest stopped with an error");
        }
        if let Err(e) = outbox.stop().await {
            tracing::warn!(error = %e, "kafka outbox stopped with an error");
        }
    }
    // Every acknowledged append already committed; this drains whatever is still queued.
    // (KurrentDB acknowledged each append itself; its client closes when dropped.)
    if let Some(store) = embedded {
        store.close();
    }
    tracing::info!("store closed");
    Ok(())
}
