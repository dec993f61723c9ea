//! The HTTP API (axum). `router(state)` builds the app without a socket, so tests can
//! drive it; [`serve`] binds it to a listener with graceful shutdown.

pub(crate) mod agents;
pub(crate) mod alerts;
pub(crate) mod communities;
pub(crate) mod customers;
pub mod error;
pub(crate) mod events;
pub(crate) mod exposure;
pub mod feed;
pub(crate) mod identity;
pub mod metrics;
mod openapi;
pub(crate) mod privacy;
pub(crate) mod problems;
pub(crate) mod query;
pub(crate) mod segments;
pub mod tls;
pub(crate) mod webhooks;
pub(crate) mod workflow;

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{FromRequestParts, MatchedPath, Request, State},
    http::{request::Parts, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use uuid::Uuid;

pub use error::ApiError;
pub use query::parse_as_of;

use crate::{
    auth::{ApiKeys, Role},
    log::{Log, PersonalAccess},
};

/// Largest request body, in bytes (413 beyond).
pub const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Generates ids for events that arrive without one.
pub type IdGen = Arc<dyn Fn() -> Uuid + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub log: Log,
    pub keys: Arc<ApiKeys>,
    pub metrics: Arc<metrics::Metrics>,
    pub ids: IdGen,
    /// Flips to `true` when shutdown starts; `/readyz` then answers 503.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    pub read_model: Arc<crate::read_model::ReadModel>,
    /// Where Kafka in and out run (`brokers, topic, group`), when configured.
    pub kafka: Option<String>,
    /// The Kafka ingest's consumer lag, when Kafka is configured (see `kafka::TaskHandle`).
    pub kafka_lag: Option<tokio::sync::watch::Receiver<Option<u64>>>,
    /// Live feeds open per API key.
    pub feeds: Arc<feed::FeedCounts>,
    /// Webhook subscriptions and their delivery.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Who read which customers' personal data.
    pub audit: Arc<crate::audit::Audit>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    pub role: Role,
}

impl Caller {
    /// Records in the audit log that this caller saw the personal data of the customers
    /// of `events` in plain (nothing when none was).
    pub async fn audit(
        &self,
        state: &AppState,
        what: &str,
        events: &[rapport_events::RecordedEvent],
    ) {
        let customers = crate::audit::Audit::plain_customers(events);
        state
            .audit
            .record(&self.key_id, self.role.as_str(), what, customers)
            .await;
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this needs the role {}; the key `{}` has `{}`",
                names.join(" or "),
                self.key_id,
                self.role.as_str()
            )))
        }
    }

    /// What the caller may see of personal data.
    pub fn access(&self) -> PersonalAccess {
        match self.role {
            Role::Admin | Role::Support => PersonalAccess::Plain,
            Role::Analyst => PersonalAccess::Pseudonymised,
            Role::Ingest => PersonalAccess::Withheld,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // The scheme is case-insensitive (RFC 9110 §11.1).
        let token = header
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(crate::auth::AuthError::Missing)?;
        let (key_id, role) = state.keys.authenticate(token)?;
        Ok(Caller { key_id, role })
    }
}

/// Events the read model may be behind the store while the service says it is ready.
pub const READY_LAG_EVENTS_MAX: u64 = 10_000;

/// Readers' roles: everything but `ingest`.
pub const READERS: &[Role] = &[Role::Support, Role::Analyst, Role::Admin];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/events", post(events::append).get(events::read_all))
        .route("/v1/events/subscribe", get(events::subscribe))
        .route("/v1/streams/{stream}", get(events::read_stream))
        .route(
            "/v1/keys",
            post(privacy::create_key).get(privacy::list_keys),
        )
        .route("/v1/keys/{id}", delete(privacy::revoke_key))
        .route("/v1/customers", get(customers::list_customers))
        .route("/v1/customers/{id}", get(customers::get_customer))
        .route("/v1/customers/{id}/timeline", get(customers::timeline))
        .route("/v1/audit", get(privacy::audit))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_one).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/resume", post(webhooks::resume))
        .route("/v1/webhooks/{id}/replay", post(webhooks::replay))
        .route("/v1/customers/{id}/merge", post(identity::merge))
        .route("/v1/customers/{id}/unmerge", post(identity::unmerge))
        .route(
            "/v1/identity/rules",
            get(identity::get_rules).put(identity::put_rules),
        )
        .route("/v1/lifecycle/changes", get(customers::lifecycle_changes))
        .route("/v1/lifecycle/by-month", get(customers::lifecycle_by_month))
        .route("/v1/rfm", get(customers::get_rfm))
        .route("/v1/rfm/grid", get(customers::get_rfm_grid))
        .route("/v1/cohorts", get(customers::get_cohorts))
        .route("/v1/reactivation", get(customers::get_reactivation))
        .route("/v1/campaigns", get(customers::get_campaigns))
        .route("/v1/segments", post(segments::create).get(segments::list))
        .route("/v1/segments/changes", get(segments::changes))
        .route(
            "/v1/segments/{id}",
            get(segments::get_one)
                .put(segments::redefine)
                .delete(segments::retire),
        )
        .route("/v1/segments/{id}/members", get(segments::members))
        .route("/v1/segments/{id}/diff", get(segments::diff))
        .route("/v1/agents/networks", get(agents::list_networks))
        .route("/v1/agents/networks/{root}", get(agents::get_network))
        .route("/v1/agents/{id}", get(agents::get_agent))
        .route("/v1/communities", get(communities::list))
        .route("/v1/communities/{id}", get(communities::get_one))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/subscribe", get(alerts::subscribe))
        .route("/v1/alerts/verdicts", get(alerts::verdicts))
        .route("/v1/alerts/{id}", get(alerts::get_one))
        .route("/v1/alerts/{id}/acknowledge", post(workflow::acknowledge))
        .route("/v1/alerts/{id}/resolve", post(workflow::resolve))
        .route("/v1/alerts/{id}/assign", post(workflow::assign))
        .route("/v1/alerts/{id}/review", post(workflow::review))
        .route("/v1/alerts/{id}/merge", post(workflow::merge))
        .route("/v1/alerts/{id}/exposure", get(exposure::get_exposure))
        .route(
            "/v1/alerts/{id}/exposure/segment",
            post(exposure::to_segment),
        )
        .route("/v1/problems", post(problems::create).get(problems::list))
        .route("/v1/problems/{id}", get(problems::get_one))
        .route("/v1/problems/{id}/links", post(problems::link))
        .route("/v1/problems/{id}/resolve", post(problems::resolve))
        .route("/v1/customers/{id}/personal-data", delete(privacy::erase))
        .route("/v1/customers/{id}/export", get(privacy::export_customer))
        .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // A handler that panics answers 500 (JSON, counted) instead of dropping the
        // connection; the server goes on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// The answer to a request whose handler panicked; [`observe`] counts it (it sees the
/// `x-rapport-panic` header, which it takes off).
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    let mut r = ApiError::Internal("a request handler panicked".into()).into_response();
    r.headers_mut()
        .insert("x-rapport-panic", axum::http::HeaderValue::from_static("1"));
    r
}

/// Records latency per route (the matched pattern, not the raw path: bounded label values).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut resp = next.run(req).await;
    if resp.headers_mut().remove("x-rapport-panic").is_some() {
        state.metrics.http_panics.inc();
    }
    // API answers may hold personal data: never kept by a cache on the way.
    resp.headers_mut()
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("no-store"));
    let labels = metrics::RouteLabels {
        method,
        route,
        status: resp.status().as_u16(),
    };
    state
        .metrics
        .http_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready while the read model is within [`READY_LAG_EVENTS_MAX`] events of the store: a
/// server still catching up (or whose read model stopped) answers 503 and says how far
/// behind it is.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.stopping.load(std::sync::atomic::Ordering::Relaxed) {
        return ApiError::Unavailable("shutting down".into()).into_response();
    }
    let last = state.log.last_position();
    let applied = state.read_model.applied_position();
    if state.log.store_full() {
        return ApiError::Unavailable(
            "the store's disk is full: appends are refused until there is room".into(),
        )
        .into_response();
    }
    if let Some(why) = state.read_model.stopped() {
        return ApiError::Unavailable(format!(
            "the read model stopped at position {applied} of {last}: {why}"
        ))
        .into_response();
    }
    let lag = last.saturating_sub(applied);
    if lag > READY_LAG_EVENTS_MAX {
        return ApiError::Unavailable(format!(
            "the read model is {lag} events behind the store (at {applied} of {last})"
        ))
        .into_response();
    }
    Json(serde_json::json!({"status": "ready", "last_position": last, "applied_position": applied}))
        .into_response()
}

async fn metrics_text(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(&[Role::Admin, Role::Analyst, Role::Support])?;
    let compactions = *state.read_model.watch_compactions().borrow();
    state.metrics.read_model_compactions.set(compactions);
    state
        .metrics
        .read_model_stopped
        .set(u64::from(state.read_model.stopped().is_some()));
    if let Some(lag) = state.kafka_lag.as_ref().and_then(|l| *l.borrow()) {
        state.metrics.kafka_consumer_lag.set(lag);
    }
    state.metrics.sse_clients.set(state.feeds.open() as u64);
    state
        .metrics
        .damaged_data_keys
        .set(state.log.keys.damaged().len() as u64);
    set_alert_counts(&state).await;
    state.metrics.read_model_lag_events.set(
        state
            .log
            .last_position()
            .saturating_sub(state.read_model.applied_position()),
    );
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response())
}

/// The alerts gauge: every level × status pair, zeros included, so a count that falls
/// to nothing reads 0 rather than its last value.
async fn set_alert_counts(state: &AppState) {
    use rapport_projections::warnings::{Level, Status};
    let name = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => s,
        _ => String::new(),
    };
    let levels = [Level::Watch, Level::Warning, Level::Critical];
    let statuses = [
        Status::Open,
        Status::Acknowledged,
        Status::Resolved,
        Status::Merged,
    ];
    let mut counts = [[0u64; 4]; 3];
    for a in state.read_model.state.read().await.warnings.alerts() {
        let l = levels.iter().position(|l| *l == a.level);
        let s = statuses.iter().position(|s| *s == a.status);
        if let (Some(l), Some(s)) = (l, s) {
            counts[l][s] += 1;
        }
    }
    for (l, level) in levels.into_iter().enumerate() {
        for (s, status) in statuses.into_iter().enumerate() {
            let labels = metrics::AlertLabels {
                level: name(serde_json::json!(level)),
                status: name(serde_json::json!(status)),
            };
            state
                .metrics
                .alerts
                .get_or_create(&labels)
                .set(counts[l][s]);
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; in-flight requests finish.
/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Open connections at most; past it, new ones wait in the listen backlog.
    pub connections_max: usize,
    /// Longest a client may take to send a request's headers (slowloris), including the
    /// wait for the next request on an idle keep-alive connection.
    pub header_read_timeout: std::time::Duration,
    /// Longest a client may take to send a request's body.
    pub body_read_timeout: std::time::Duration,
    /// Longest in-flight requests (and live feeds) may go on after shutdown begins.
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            connections_max: 4_096,
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(30),
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, under `limits`, over TLS when `tls` is
/// given: connections are counted, slow handshakes, headers and bodies time out, and
/// in-flight requests finish (within the grace) after shutdown begins.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    use hyper_util::{rt::TokioTimer, server::graceful::GracefulShutdown};
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read_timeout,
    ));
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: the listener itself is fine.
                    tracing::warn!(error = %e, "could not accept a connection");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (http, app, watcher) = (http.clone(), app.clone(), graceful.watcher());
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&http, stream, app, watcher).await,
                // The handshake is held to the same limit as a request's headers.
                Some(tls) => {
                    match tokio::time::timeout(limits.header_read_timeout, tls.accept(stream)).await
                    {
                        Ok(Ok(stream)) => serve_connection(&http, stream, app, watcher).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// Serves one connection (plain or TLS) until it closes or shutdown ends it.
async fn serve_connection<S>(
    http: &hyper::server::conn::http1::Builder,
    stream: S,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::{rt::TokioIo, service::TowerToHyperService};
    // HTTP/1.1 without upgrades: the API and the console use none (SSE is a response).
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let _ = watcher.watch(conn).await;
}
