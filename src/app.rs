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
    read_model::{ReadModel, ReadModelOptions},
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
    crate::fold::snapshot::check_not_rewound(
        &DataDir::new(data_dir).snapshots(),
        store.last_position(),
    )?;
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
    let damaged = keyring.damaged();
    if let Some((customer, generation)) = damaged.first() {
        tracing::error!(
            damaged = damaged.len(),
            first_customer = %customer,
            first_generation = generation,
            "data keys are damaged in the store: the personal data they sealed is shown as `damaged`; everything else is served (rapport check lists the events; restore from a backup to recover them)"
        );
    }
    let log = Log::new(store.clone() as Arc<dyn EventStore>, Arc::new(keyring));
    Ok((store, log))
}

/// What the service is built from; every option is set by the caller.
pub struct AppOptions {
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub master: MasterKey,
    /// Kafka in and out, when configured.
    pub kafka: Option<crate::kafka::KafkaOptions>,
    /// Thresholds, and when to fold in child processes.
    pub config: crate::config::Config,
    /// Longest wait of a query for `min_position` before it answers 503.
    pub min_position_wait: std::time::Duration,
    /// Connections, header and body timeouts of the listener.
    pub limits: http::ServeLimits,
    /// TLS on the listener: the certificate chain and its private key (PEM files).
    pub tls: Option<TlsFiles>,
}

/// Where the listener's certificate chain and private key are (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl AppOptions {
    /// The service's defaults for `data_dir` on the embedded store.
    pub fn embedded(data_dir: impl Into<PathBuf>, master: MasterKey) -> AppOptions {
        AppOptions {
            data_dir: data_dir.into(),
            store: StoreChoice::Embedded,
            master,
            kafka: None,
            config: Default::default(),
            min_position_wait: std::time::Duration::from_millis(
                crate::read_model::MIN_POSITION_WAIT_MS,
            ),
            limits: Default::default(),
            tls: None,
        }
    }
}

/// The service, wired: the store and keyring, API keys, the read model and its
/// business-time builds, Kafka in and out. [`App::serve`] runs its HTTP API until shutdown
/// and then stops it all in order. `rapport serve`, the tests and the benchmarks build it
/// the same way.
pub struct App {
    state: AppState,
    /// The embedded store, to close at shutdown (`None` on KurrentDB, whose client closes
    /// when dropped).
    embedded: Option<Arc<SqliteStore>>,
    kafka: Option<(crate::kafka::TaskHandle, crate::kafka::TaskHandle)>,
    data_dir: PathBuf,
    store_identity: String,
    limits: http::ServeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Ticks the deadline clock when an alert's deadline falls due (unless configured off).
    deadlines: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Opens the store named by `opts.store`, bootstraps the admin key when no API key
    /// exists (`<data-dir>/admin-key`), and starts the read model, the business-time
    /// builds (embedded store) and Kafka (when configured).
    pub async fn build(opts: AppOptions) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        // A certificate that cannot be used stops the start before anything is opened.
        let tls = match &opts.tls {
            Some(f) => Some(http::tls::acceptor(&f.cert, &f.key)?),
            None => None,
        };
        check_store_identity(&opts.data_dir, &opts.store)?;
        let layout = DataDir::new(&opts.data_dir);
        // For the standard input of the children.
        let master_text = opts.master.to_text();
        let (embedded, log) = match opts.store.clone() {
            StoreChoice::Embedded => {
                let (store, log) = open_log(
                    &opts.data_dir,
                    opts.master,
                    SqliteOptions {
                        durable: true,
                        metrics: metrics.clone(),
                        max_bytes: None,
                    },
                )
                .await?;
                (Some(store), log)
            }
            StoreChoice::Kurrent(k) => {
                tracing::info!(store = %k.display, "opening the KurrentDB store");
                let log = open_log_kurrent(*k, opts.master).await?.1;
                crate::fold::snapshot::check_not_rewound(&layout.snapshots(), log.last_position())?;
                (None, log)
            }
        };
        let keys = Arc::new(ApiKeys::open(&opts.data_dir)?);
        let admin_path = layout.admin_key();
        if let Some(id) = keys.bootstrap_admin(&admin_path)? {
            tracing::warn!(key = %id, path = %admin_path.display(), "no API keys existed: created an admin key; read it from this file (mode 0600)");
        }
        // A child of this server, `rapport COMMAND --data-dir …`, given the master key and
        // the configuration on its standard input (see `FoldChild`). The KurrentDB backend
        // has no read-only opening for a child; it compacts instead.
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
        // Every durable consumer's floor is known before the read model follows the log.
        let outbox = crate::read_model::outbox::Outbox::open(&layout.outbox())?;
        if let Some(k) = &opts.kafka {
            outbox.set_floor(
                crate::kafka::OUTBOX_CONSUMER,
                crate::kafka::checkpoint_cursor(&k.checkpoint),
            );
        }
        crate::webhooks::register_floors(&layout.webhooks(), &outbox)?;
        outbox.trim()?;
        let read_model = ReadModel::spawn(
            log.clone(),
            ReadModelOptions {
                outbox: Some(outbox),
                lifecycle: opts.config.lifecycle,
                warnings: opts.config.early_warning.clone(),
                history_every_events: opts.config.time_travel.history_every_events,
                min_position_wait: opts.min_position_wait,
                catch_up_child,
                ..ReadModelOptions::service(Some(layout.snapshots()))
            },
        )
        .await;
        let valid_time = opts.config.time_travel.valid_time_rebuild_after_events;
        if let (Some(_), true) = (&embedded, valid_time > 0) {
            crate::read_model::builds::spawn_builds(
                read_model.clone(),
                log.clone(),
                child("valid-time", valid_time)?,
                layout.snapshots(),
                opts.config.lifecycle,
                opts.config.early_warning.clone(),
            );
        }
        let kafka = match &opts.kafka {
            Some(k) => {
                let ingest = crate::kafka::spawn_ingest(
                    k.clone(),
                    log.clone(),
                    metrics.kafka_dead_letters.clone(),
                )?;
                let outbox = crate::kafka::spawn_outbox(k.clone(), read_model.clone())?;
                tracing::info!(brokers = %k.brokers, topic = %k.in_topic, group = %k.group, "kafka: consuming and publishing");
                Some((ingest, outbox))
            }
            None => None,
        };
        let kafka_info = opts
            .kafka
            .as_ref()
            .map(|k| format!("{} (in: {}, group: {})", k.brokers, k.in_topic, k.group));
        let ids: crate::http::IdGen = Arc::new(uuid::Uuid::now_v7);
        let deadlines = opts.config.deadlines.ticks.then(|| {
            let ids = ids.clone();
            crate::deadlines::spawn(log.clone(), read_model.clone(), move || ids())
        });
        let kafka_lag = kafka.as_ref().map(|(ingest, _)| ingest.lag());
        let webhooks = crate::webhooks::Webhooks::open(
            DataDir::new(&opts.data_dir).webhooks(),
            opts.config.webhooks,
            read_model.clone(),
        )?;
        webhooks.start_all();
        let audit = crate::audit::Audit::open(DataDir::new(&opts.data_dir).audit_log())?;
        let state = AppState {
            audit,
            webhooks,
            kafka: kafka_info,
            kafka_lag,
            feeds: Default::default(),
            log,
            keys,
            metrics,
            ids,
            stopping: Arc::new(AtomicBool::new(false)),
            read_model,
        };
        Ok(App {
            state,
            embedded,
            kafka,
            data_dir: opts.data_dir,
            store_identity: opts.store.identity(),
            limits: opts.limits,
            tls,
            deadlines,
        })
    }

    pub fn log(&self) -> &Log {
        &self.state.log
    }

    pub fn keys(&self) -> &Arc<ApiKeys> {
        &self.state.keys
    }

    pub fn webhooks(&self) -> &Arc<crate::webhooks::Webhooks> {
        &self.state.webhooks
    }

    pub fn read_model(&self) -> &Arc<ReadModel> {
        &self.state.read_model
    }

    /// The embedded store (`None` on KurrentDB).
    pub fn embedded_store(&self) -> Option<&Arc<SqliteStore>> {
        self.embedded.as_ref()
    }

    /// Serves the HTTP API on `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish, stops Kafka (the consumer commits what it stored, the outbox keeps
    /// its checkpoint) and closes the store.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %self.data_dir.display(), store = %self.store_identity, last_position = self.state.log.last_position(), "serving");
        let stopping = self.state.stopping.clone();
        let webhooks = self.state.webhooks.clone();
        let secure = self.tls.is_some();
        let routes =
            http::router(self.state.clone()).merge(crate::console::router(self.state, secure));
        http::serve(
            listener,
            routes,
            async move {
                shutdown.await;
                stopping.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!("shutting down: finishing in-flight requests");
            },
            self.limits,
            self.tls,
        )
        .await?;
        if let Some(d) = self.deadlines {
            d.abort();
        }
        // Cursors are written after every delivery; a delivery cut short comes again.
        webhooks.stop_all();
        if let Some((ingest, outbox)) = self.kafka {
            if let Err(e) = ingest.stop().await {
                tracing::warn!(error = %e, "kafka ingest stopped with an error");
            }
            if let Err(e) = outbox.stop().await {
                tracing::warn!(error = %e, "kafka outbox stopped with an error");
            }
        }
        // Every acknowledged append already committed; this drains whatever is still
        // queued.
        if let Some(store) = self.embedded {
            store.close();
        }
        tracing::info!("store closed");
        Ok(())
    }
}

/// Runs the service on `listen` until `shutdown` resolves. Prints `rapport listening on
/// http://ADDR` on stdout once the socket is bound (tests and scripts read it).
pub async fn run(
    opts: AppOptions,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let app = App::build(opts).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    println!("rapport listening on {scheme}://{}", listener.local_addr()?);
    app.serve(listener, shutdown).await
}
