//! Kafka in and out against a real Kafka-protocol broker (Tansu, started here on a free
//! loopback port): ingest with a restart in the middle, dead-lettering, deduplication of
//! redelivered events, and the published alert and segment changes.
//!
//! The broker binary comes from `RAPPORT_TANSU` or `tansu` on the PATH (`.ci/run`
//! installs it). Without it the test says loudly that it was skipped, and fails under
//! `CI=true`.

use std::{
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use rapport::{
    crypto::{Keyring, MasterKey},
    kafka::{self, KafkaOptions},
    log::Log,
    read_model::{outbox::Outbox, ReadModel, ReadModelOptions},
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};
use serde_json::{json, Value};

pub(crate) struct Broker {
    child: Child,
    pub(crate) addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("RAPPORT_TANSU") {
        return Some(p.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    })
}

/// Starts Tansu on a free loopback port and waits until it accepts connections.
async fn broker() -> Option<Broker> {
    broker_advertising(None).await
}

/// Like [`broker`], telling clients to connect to `advertised` (`HOST:PORT`) instead of
/// where it listens (a proxy in front of it).
pub(crate) async fn broker_advertising(advertised: Option<&str>) -> Option<Broker> {
    let Some(bin) = tansu() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the Tansu broker is missing under CI=true; .ci/run installs it");
        }
        skipped!("SKIPPED: Kafka tests need the Tansu broker (set RAPPORT_TANSU or put `tansu` on PATH; .ci/run installs it)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["broker", "--storage-engine", "memory://tansu/"])
        .arg("--listener-url")
        .arg(format!("tcp://{addr}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://{}", advertised.unwrap_or(&addr)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts");
    let broker = Broker {
        child,
        addr: addr.clone(),
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Some(broker);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tansu did not start listening on {addr}");
}

async fn create_topics(addr: &str, topics: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap();
}

async fn produce(addr: &str, topic: &str, payloads: &[String]) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    for body in payloads {
        p.send(
            FutureRecord::<(), String>::to(topic).payload(body),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    }
}

/// Reads `n` messages from `topic` (from the start) as (key, payload, headers).
/// A consumer of `topic` from its start, in a group of its own.
fn reader(addr: &str, topic: &str) -> StreamConsumer {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("test-{topic}-{}", uuid::Uuid::now_v7()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    c
}

async fn consume(addr: &str, topic: &str, n: usize) -> Vec<(String, Value, Vec<(String, String)>)> {
    let c = reader(addr, topic);
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} messages on {topic}", out.len()))
            .unwrap();
        let key = m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let payload: Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or(Value::Null);
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push((key, payload, headers));
    }
    out
}

fn ev(id: u128, ty: &str, customer: &str, at: &str, data: Value) -> String {
    json!({"id": uuid::Uuid::from_u128(id), "type": ty, "customer": customer, "occurred_at": at, "data": data}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_ingest_survives_a_restart_dead_letters_bad_messages_and_publishes_changes() {
    let Some(b) = broker().await else { return };
    let topics = [
        "rapport.events.in",
        "rapport.events.dlq",
        "rapport.alerts",
        "rapport.segments",
        "rapport.customers",
    ];
    create_topics(&b.addr, &topics).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let opts = KafkaOptions::defaults(&b.addr, dir.path());

    // Three connected customers; two complaints; a bad event; a duplicate; a CloudEvent.
    let first = vec![
        ev(1, "community_joined", "c-1", "2026-03-01T08:00:00Z", json!({"community": "g"})),
        ev(2, "community_joined", "c-2", "2026-03-01T08:00:00Z", json!({"community": "g"})),
        ev(3, "community_joined", "c-3", "2026-03-01T08:00:00Z", json!({"community": "g"})),
        ev(4, "complaint", "c-1", "2026-03-02T09:00:00Z", json!({"complaint_id": "k-1", "about": {"batch": "L1"}, "text": "mould"})),
        ev(5, "purchase", "c-9", "2026-03-02T09:30:00Z", json!({"order_id": "o", "amount": "-3", "currency": "CNY"})),
        ev(1, "community_joined", "c-1", "2026-03-01T08:00:00Z", json!({"community": "g"})),
        json!({"specversion": "1.0", "id": "ce-1", "source": "shop", "type": "com.shop.complaint", "subject": "c-2",
               "time": "2026-03-02T10:00:00Z",
               "data": {"complaint_id": "k-2", "about": {"batch": "L1"}, "text": "mould too"}}).to_string(),
    ];
    produce(&b.addr, "rapport.events.in", &first).await;
    // One count across the restart, as `/metrics` shows it.
    let dead_letters = prometheus_client::metrics::counter::Counter::<u64>::default();
    let ingest = kafka::spawn_ingest(opts.clone(), log.clone(), dead_letters.clone()).unwrap();
    let model = ReadModel::spawn(log.clone(), ReadModelOptions::service(None)).await;
    let outbox = kafka::spawn_outbox(opts.clone(), model.clone()).unwrap();
    let mut applied = model.watch_applied();
    let _ = tokio::time::timeout(Duration::from_secs(60), applied.wait_for(|p| *p >= 5)).await;
    assert_eq!(
        store.last_position(),
        5,
        "5 valid, distinct events; the duplicate was deduplicated"
    );
    // Every message consumed: the measured lag comes down to zero.
    let mut lag = ingest.lag();
    let measured = tokio::time::timeout(Duration::from_secs(60), lag.wait_for(|l| *l == Some(0)))
        .await
        .is_ok();
    assert!(
        measured,
        "the consumer lag was measured: {:?}",
        *lag.borrow()
    );

    // A restart in the middle: stop, produce more, start again.
    ingest.stop().await.unwrap();
    let second = vec![
        ev(
            6,
            "complaint",
            "c-3",
            "2026-03-02T11:00:00Z",
            json!({"complaint_id": "k-3", "about": {"batch": "L1"}, "text": "mouldy"}),
        ),
        ev(
            4,
            "complaint",
            "c-1",
            "2026-03-02T09:00:00Z",
            json!({"complaint_id": "k-1", "about": {"batch": "L1"}, "text": "other text, same id"}),
        ),
    ];
    produce(&b.addr, "rapport.events.in", &second).await;
    let ingest = kafka::spawn_ingest(opts.clone(), log.clone(), dead_letters.clone()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(60), applied.wait_for(|p| *p >= 6)).await;
    assert_eq!(
        store.last_position(),
        6,
        "nothing lost or doubled across the restart"
    );

    let dead = consume(&b.addr, "rapport.events.dlq", 2).await;
    let errors: Vec<String> = dead
        .iter()
        .map(|(_, _, h)| {
            h.iter()
                .find(|(k, _)| k == "rapport-error")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert!(errors[0].contains("/data/amount"), "{errors:?}");
    assert!(
        errors[1].contains("already stored with different content") || errors[1].contains("id"),
        "{errors:?}"
    );

    let alerts = consume(&b.addr, "rapport.alerts", 2).await;
    assert_eq!(alerts[0].1["type"], "rapport.alert.raised");
    assert_eq!(alerts[1].1["type"], "rapport.alert.escalated");
    assert_eq!(
        alerts[0].0,
        alerts[0].1["subject"].as_str().unwrap(),
        "keyed by alert id"
    );
    assert_eq!(alerts[1].1["data"]["alert"]["level"], "warning");
    // A segment defined now: its members' entries are published, keyed by customer.
    let seg = rapport_events::parse_one(
        r#"{"type":"segment_defined","subject":"complainers","occurred_at":"2026-03-03T00:00:00Z","data":{"name":"Complainers","rule":{"field":"complaints_open","op":">=","value":1}}}"#,
        &mut uuid::Uuid::now_v7,
        true,
    )
    .unwrap();
    log.append(&[seg], rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    let segs = consume(&b.addr, "rapport.segments", 3).await;
    let mut keys: Vec<&str> = segs.iter().map(|(k, _, _)| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["c-1", "c-2", "c-3"]);
    assert!(segs
        .iter()
        .all(|(_, v, _)| v["type"] == "rapport.segment.entered"
            && v["data"]["segment"] == "complainers"
            // Which channels the audience's tool may use (nobody consented here).
            && v["data"]["marketing_channels"] == serde_json::json!([])));
    assert!(segs.iter().all(|(_, _, h)| h
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/cloudevents+json")));
    // Lifecycle changes: each customer's first appearance (none has bought: prospects).
    let lives = consume(&b.addr, "rapport.customers", 3).await;
    let mut keys: Vec<&str> = lives.iter().map(|(k, _, _)| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["c-1", "c-2", "c-3"]);
    for (key, v, _) in &lives {
        assert_eq!(v["type"], "rapport.customer.lifecycle_changed");
        assert_eq!(v["subject"], key.as_str());
        assert_eq!(
            (&v["data"]["from"], &v["data"]["to"]),
            (&Value::Null, &json!("prospect"))
        );
        assert!(v["id"]
            .as_str()
            .unwrap()
            .starts_with("rapport-lifecycle-change-"));
    }
    ingest.stop().await.unwrap();
    outbox.stop().await.unwrap();
    assert_eq!(dead_letters.get(), 2, "both dead letters counted");
    let checkpoint: Value =
        serde_json::from_slice(&std::fs::read(&opts.checkpoint).unwrap()).unwrap();
    assert_eq!(checkpoint["alerts"], 2);
    assert_eq!(checkpoint["segments"], 3);
    assert_eq!(checkpoint["customers"], 3);
}

/// An audience delivered whole through Kafka: the outbox publisher is down for a whole
/// bulk import and a segment defined over every imported customer; once it starts, every
/// member's `entered` change is on `rapport.segments`, though the feeds keep only the
/// latest 100,000 changes in memory. `RAPPORT_AUDIENCE_CUSTOMERS` sets the size (1,000,000
/// by default).
#[tokio::test(flavor = "multi_thread")]
async fn a_segment_over_every_imported_customer_is_published_whole_after_the_publisher_was_down() {
    let n: usize = std::env::var("RAPPORT_AUDIENCE_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let Some(b) = broker().await else { return };
    create_topics(
        &b.addr,
        &["rapport.alerts", "rapport.segments", "rapport.customers"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let opts = KafkaOptions::defaults(&b.addr, dir.path());
    // The publisher is a durable consumer from the start, as `serve` registers it.
    let outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
    outbox.set_floor(
        kafka::OUTBOX_CONSUMER,
        kafka::checkpoint_cursor(&opts.checkpoint),
    );
    let model = ReadModel::spawn(
        log.clone(),
        ReadModelOptions {
            outbox: Some(outbox),
            ..ReadModelOptions::service(None)
        },
    )
    .await;
    let parse =
        |text: String| rapport_events::parse_one(&text, &mut uuid::Uuid::now_v7, true).unwrap();
    for start in (0..n).step_by(10_000) {
        let events: Vec<_> = (start..(start + 10_000).min(n))
            .map(|i| parse(format!(
                r#"{{"type":"purchase","customer":"m-{i}","occurred_at":"2026-03-01T10:00:00Z","data":{{"order_id":"mo-{i}","amount":"9.90","currency":"CNY"}}}}"#
            )))
            .collect();
        log.append(&events, rapport::log::AppendRules::all_or_nothing())
            .await
            .unwrap();
    }
    let define = parse(r#"{"type":"segment_defined","subject":"everyone","occurred_at":"2026-03-01T12:00:00Z","data":{"name":"Everyone who bought","rule":{"field":"orders","op":">=","value":1}}}"#.into());
    let at = log
        .append(&[define], rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap()[0]
        .position;
    let mut applied = model.watch_applied();
    tokio::time::timeout(Duration::from_secs(1_800), applied.wait_for(|p| *p >= at))
        .await
        .expect("the read model applies the import")
        .unwrap();
    assert!(
        model
            .state
            .read()
            .await
            .segments
            .changes_after(0, 1)
            .is_err(),
        "the feed alone no longer holds the first changes"
    );

    // Now the publisher starts, and must publish every change.
    let started = std::time::Instant::now();
    let publisher = kafka::spawn_outbox(opts.clone(), model.clone()).unwrap();
    // Only what is checked is kept: a million parsed messages would not fit a small CI
    // machine beside the server.
    let c = reader(&b.addr, "rapport.segments");
    let mut ids = std::collections::HashSet::new();
    let mut customers = std::collections::HashSet::new();
    let mut messages = 0;
    while messages < n {
        let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
            .await
            .unwrap_or_else(|_| panic!("only {messages} of {n} messages on rapport.segments"))
            .unwrap();
        messages += 1;
        let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(v["type"], "rapport.segment.entered", "{v}");
        ids.insert(v["id"].as_str().unwrap().to_owned());
        customers.insert(String::from_utf8_lossy(m.key().unwrap()).into_owned());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(ids.len(), n, "every change, none twice");
    assert_eq!(customers.len(), n, "every member");
    eprintln!(
        "kafka audience: {n} segment changes published and consumed in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
    publisher.stop().await.unwrap();
}
