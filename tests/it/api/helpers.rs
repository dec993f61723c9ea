//! A Rapport server in this process, on a free loopback port, with its own temporary
//! data directory and master key. Every test gets its own; nothing is shared.

use std::{path::PathBuf, sync::Arc};

use rapport::{
    app::{App, AppOptions},
    auth::{ApiKeys, Role},
    config::{Config, DeadlinesConfig, ReadModelConfig, TimeTravelConfig, WebhooksConfig},
    crypto::MasterKey,
    layout::DataDir,
    store::sqlite::SqliteStore,
};
use serde_json::Value;

pub(super) struct TestServer {
    pub base: String,
    pub admin: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
    pub keys: Arc<ApiKeys>,
    master: MasterKey,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// A server whose `min_position` waits last as long as the service's default, so a
    /// busy test machine does not turn a slow fold into a 503.
    pub(super) async fn start() -> TestServer {
        Self::start_with_min_position_wait(
            rapport::read_model::ReadModelOptions::service(None).min_position_wait,
        )
        .await
    }

    /// A server whose `min_position` waits give up after `wait` (for tests of the 503).
    pub(crate) async fn start_with_min_position_wait(wait: std::time::Duration) -> TestServer {
        Self::start_with(wait, false, Default::default()).await
    }

    /// A server whose listener has these limits (for tests of the timeouts).
    pub(super) async fn start_limited(limits: rapport::http::ServeLimits) -> TestServer {
        Self::start_with(
            rapport::read_model::ReadModelOptions::service(None).min_position_wait,
            false,
            limits,
        )
        .await
    }

    /// A server that ticks the deadline clock as `serve` does. The others do not: their
    /// events are dated in the past, and ticks would land between them at times no test
    /// controls.
    pub(super) async fn start_ticking() -> TestServer {
        Self::start_with(
            rapport::read_model::ReadModelOptions::service(None).min_position_wait,
            true,
            Default::default(),
        )
        .await
    }

    async fn start_with(
        wait: std::time::Duration,
        ticks: bool,
        limits: rapport::http::ServeLimits,
    ) -> TestServer {
        Self::start_in(
            tempfile::tempdir().unwrap(),
            MasterKey::generate(),
            wait,
            ticks,
            limits,
        )
        .await
    }

    /// Stops the server and starts another on the same data directory and master key.
    pub(super) async fn restart(self) -> TestServer {
        let master = self.master.clone();
        let dir = self.stop().await;
        Self::start_in(
            dir,
            master,
            rapport::read_model::ReadModelOptions::service(None).min_position_wait,
            false,
            Default::default(),
        )
        .await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        master: MasterKey,
        wait: std::time::Duration,
        ticks: bool,
        limits: rapport::http::ServeLimits,
    ) -> TestServer {
        let app = App::build(AppOptions {
            // Nothing here runs long enough for a child process to be worth it, and the
            // test binary is not `rapport`.
            config: Config {
                read_model: ReadModelConfig {
                    catch_up_in_child_events: 0,
                },
                time_travel: TimeTravelConfig {
                    valid_time_rebuild_after_events: 0,
                    ..Default::default()
                },
                deadlines: DeadlinesConfig { ticks },
                // Receivers in the tests are on loopback, and retries must not take long.
                webhooks: WebhooksConfig {
                    allow_private_targets: true,
                    timeout_ms: 500,
                    max_failures: 4,
                    backoff_base_ms: 20,
                    backoff_max_ms: 200,
                },
                ..Default::default()
            },
            min_position_wait: wait,
            limits,
            ..AppOptions::embedded(dir.path(), master.clone())
        })
        .await
        .unwrap();
        let admin = std::fs::read_to_string(DataDir::new(dir.path()).admin_key())
            .unwrap()
            .trim()
            .to_owned();
        let store = app.embedded_store().unwrap().clone();
        let keys = app.keys().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            admin,
            http: reqwest::Client::new(),
            dir,
            store,
            keys,
            master,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(super) fn key(&self, role: Role) -> String {
        self.keys.create(role, Some("test")).unwrap().1
    }

    pub(super) async fn post(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub(super) async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(
            path,
            &self.admin.clone(),
            "application/json",
            body.to_string(),
        )
        .await
    }

    pub(super) async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Opens a Server-Sent Events feed at `path` as the admin (it must answer 200) and
    /// returns its body as a stream of chunks.
    pub(super) async fn feed(
        &self,
        path: &str,
    ) -> impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.bytes_stream()
    }

    pub(super) async fn get_text(&self, path: &str, token: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub(super) async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub(super) fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub(super) async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        self.store.close();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

pub(super) fn purchase(customer: &str, order: &str, amount: &str) -> Value {
    serde_json::json!({"type": "purchase", "customer": customer, "occurred_at": "2026-03-01T10:00:00Z",
        "data": {"order_id": order, "amount": amount, "currency": "CNY"}})
}

pub(super) fn registered(customer: &str, name: &str, email: &str, phone: &str) -> Value {
    serde_json::json!({"type": "customer_registered", "customer": customer, "occurred_at": "2026-01-01T09:00:00Z",
        "data": {"name": name, "email": email, "phone": phone, "region": "Shanghai"}})
}

pub(super) fn complaint(customer: &str, id: &str, text: &str) -> Value {
    serde_json::json!({"type": "complaint", "customer": customer, "occurred_at": "2026-03-02T10:00:00Z",
        "data": {"complaint_id": id, "about": {"batch": "L0421"}, "text": text, "severity": 3}})
}
