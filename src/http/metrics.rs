//! Prometheus metrics (`GET /metrics`), one registry per server, no globals.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::store::sqlite::WriterMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// An alert's level and status, as the API names them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub level: String,
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub events_appended: Counter<u64, AtomicU64>,
    pub group_commit_events: Histogram,
    pub group_commit_seconds: Histogram,
    pub http_seconds: Family<RouteLabels, Histogram>,
    /// Set from the read model when metrics are read.
    pub read_model_compactions: Gauge<u64, AtomicU64>,
    /// Requests whose handler panicked (answered 500; the server goes on).
    pub http_panics: Counter<u64, AtomicU64>,
    /// Set when metrics are read: events in the store the read model has not applied.
    pub read_model_lag_events: Gauge<u64, AtomicU64>,
    /// Set when metrics are read: 1 once the read model stopped on an event it could not read.
    pub read_model_stopped: Gauge<u64, AtomicU64>,
    /// Set when metrics are read (Kafka configured): messages not yet consumed.
    pub kafka_consumer_lag: Gauge<u64, AtomicU64>,
    /// Kafka messages sent to the dead-letter topic (counted by the ingest).
    pub kafka_dead_letters: Counter<u64, AtomicU64>,
    /// Set when metrics are read: alerts by level and status, every pair (zeros too).
    pub alerts: Family<AlertLabels, Gauge<u64, AtomicU64>>,
    /// Set when metrics are read: live feeds (Server-Sent Events) open now.
    pub sse_clients: Gauge<u64, AtomicU64>,
    /// Set when metrics are read: data keys found damaged when the store was opened and not erased since.
    pub damaged_data_keys: Gauge<u64, AtomicU64>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]
    .into_iter()
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("rapport");
        let events_appended = Counter::<u64, AtomicU64>::default();
        registry.register(
            "events_appended",
            "Events durably appended (duplicates excluded)",
            events_appended.clone(),
        );
        let group_commit_events = Histogram::new([
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0,
        ]);
        registry.register(
            "group_commit_events",
            "Events written per group commit (one transaction, one fsync)",
            group_commit_events.clone(),
        );
        let group_commit_seconds = Histogram::new(latency_buckets());
        registry.register(
            "group_commit_seconds",
            "Time to write and fsync one group commit",
            group_commit_seconds.clone(),
        );
        let http_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_seconds.clone(),
        );
        let read_model_compactions = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "read_model_compactions",
            "Times the read model's state was compacted (once, after a catch-up at start of at least a million events)",
            read_model_compactions.clone(),
        );
        let http_panics = Counter::<u64, AtomicU64>::default();
        registry.register(
            "http_panics",
            "Requests whose handler panicked (answered 500)",
            http_panics.clone(),
        );
        let read_model_lag_events = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "read_model_lag_events",
            "Events in the store the read model has not applied yet",
            read_model_lag_events.clone(),
        );
        let read_model_stopped = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "read_model_stopped",
            "1 once the read model stopped following the log on an event it could not read (the reason is in /readyz and the log)",
            read_model_stopped.clone(),
        );
        let kafka_consumer_lag = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "kafka_consumer_lag",
            "Messages on the Kafka in topic's assigned partitions not yet consumed (when Kafka is configured)",
            kafka_consumer_lag.clone(),
        );
        let kafka_dead_letters = Counter::<u64, AtomicU64>::default();
        registry.register(
            "kafka_dead_letters",
            "Kafka messages that could not be appended and went to the dead-letter topic",
            kafka_dead_letters.clone(),
        );
        let alerts = Family::<AlertLabels, Gauge<u64, AtomicU64>>::default();
        registry.register(
            "alerts",
            "Early-warning alerts by level and status",
            alerts.clone(),
        );
        let sse_clients = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "sse_clients",
            "Live feeds (Server-Sent Events) open",
            sse_clients.clone(),
        );
        let damaged_data_keys = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "damaged_data_keys",
            "Customers' data keys that did not unwrap when the store was opened: their personal data is shown as `damaged` (the keys are named in the log at start)",
            damaged_data_keys.clone(),
        );
        Metrics {
            damaged_data_keys,
            kafka_dead_letters,
            alerts,
            sse_clients,
            kafka_consumer_lag,
            read_model_stopped,
            read_model_compactions,
            http_panics,
            read_model_lag_events,
            registry,
            events_appended,
            group_commit_events,
            group_commit_seconds,
            http_seconds,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl WriterMetrics for Metrics {
    fn group_committed(&self, events: usize, _jobs: usize, seconds: f64) {
        self.events_appended.inc_by(events as u64);
        self.group_commit_events.observe(events as f64);
        self.group_commit_seconds.observe(seconds);
    }
}
