//! Kafka in and out (rdkafka).
//!
//! **In** ([`spawn_ingest`]): a consumer group on `rapport.events.in`. A message is one
//! event or a JSON array of events in Rapport's wire format, or a CloudEvent (content type
//! `application/cloudevents+json`, or a body with `specversion`). Valid events are appended
//! durably; only then is the message's offset stored for commit, so a crash or rebalance
//! redelivers rather than loses. Redelivered events are deduplicated by their id (events
//! without an id get a UUIDv5 of topic, partition, offset and index, so a redelivery has
//! the same ids). A message that fails validation, or reuses an id with other content, goes
//! to `rapport.events.dlq` with the error in the `rapport-error` header, and its offset is
//! stored: never dropped silently, never blocking the partition. A store failure is
//! retried (the partition waits; nothing is skipped).
//!
//! **Out** ([`spawn_outbox`]): alert changes go to `rapport.alerts` (key: alert id),
//! segment membership changes to `rapport.segments` and lifecycle changes to
//! `rapport.customers` (key: customer id), as CloudEvents JSON with stable ids
//! (`rapport-alert-change-<seq>`, `rapport-segment-change-<seq>`,
//! `rapport-lifecycle-change-<seq>`; the sequence numbers are a deterministic function of
//! the log and the configured thresholds). The outbox follows the
//! read model and keeps a checkpoint file of the last sequence numbers delivered (acks=all,
//! idempotent producer); after a crash it republishes from the checkpoint, so consumers
//! may see a message twice and deduplicate by id. It is a durable consumer of the read
//! model's outbox (`read_model::outbox`): however far behind it falls, what it has not
//! published is kept for it, on disk when the feeds no longer hold it.

use std::{path::PathBuf, sync::Arc, time::Duration};

use rapport_events::{cloudevents, Event, ValidationErrors};
use rdkafka::{
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    ClientConfig, Message,
};
use serde_json::{json, Value};
use tokio::sync::watch;
use uuid::Uuid;

mod security;

pub use security::{Given as SecurityGiven, KafkaSecurity, Mechanism, Protocol};

use crate::{
    log::Log,
    read_model::{outbox::Cursor, ReadModel},
    store::StoreError,
};

/// Namespace of the ids given to id-less events from Kafka.
const KAFKA_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b61_666b_6172_6170_706f_7274_0000_0001);
/// Wait before retrying an append the store refused for a reason other than the input.
const STORE_RETRY_MS: u64 = 500;
/// Longest a produce may wait for acknowledgement.
const PRODUCE_TIMEOUT_MS: u64 = 30_000;
/// Changes published per read of the projections.
const OUTBOX_BATCH_CHANGES: usize = 1000;
/// How often the ingest measures its lag (messages on the broker not yet consumed).
const LAG_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for a partition's watermarks when measuring the lag.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct KafkaOptions {
    pub brokers: String,
    /// TLS and SASL (plaintext without credentials by default).
    pub security: KafkaSecurity,
    pub in_topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub alerts_topic: String,
    pub segments_topic: String,
    pub customers_topic: String,
    /// The outbox's checkpoint file.
    pub checkpoint: PathBuf,
}

impl KafkaOptions {
    /// The documented topic and group names, with the checkpoint in `data_dir`.
    pub fn defaults(brokers: &str, data_dir: &std::path::Path) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.to_owned(),
            security: KafkaSecurity::default(),
            in_topic: "rapport.events.in".into(),
            dlq_topic: "rapport.events.dlq".into(),
            group: "rapport".into(),
            alerts_topic: "rapport.alerts".into(),
            segments_topic: "rapport.segments".into(),
            customers_topic: "rapport.customers".into(),
            checkpoint: crate::layout::DataDir::new(data_dir).kafka_outbox_checkpoint(),
        }
    }
}

/// The producer's options, set explicitly (never left to defaults).
pub fn producer(opts: &KafkaOptions) -> anyhow::Result<FutureProducer> {
    let mut c = ClientConfig::new();
    opts.security.apply(&mut c);
    Ok(c.set("bootstrap.servers", &opts.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("max.in.flight.requests.per.connection", "5")
        .set("message.timeout.ms", PRODUCE_TIMEOUT_MS.to_string())
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("compression.type", "none")
        .create()?)
}

/// The consumer's options: offsets are stored by Rapport after a durable append and
/// committed by librdkafka every second; nothing is committed before it is stored.
pub fn consumer(opts: &KafkaOptions) -> anyhow::Result<StreamConsumer> {
    let mut c = ClientConfig::new();
    opts.security.apply(&mut c);
    Ok(c.set("bootstrap.servers", &opts.brokers)
        .set("group.id", &opts.group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .create()?)
}

/// What to do with one message.
enum Outcome {
    Appended,
    DeadLetter(String),
}

fn parse_message(m: &BorrowedMessage<'_>) -> Result<Vec<Event>, ValidationErrors> {
    let text = std::str::from_utf8(m.payload().unwrap_or_default())
        .map_err(|_| ValidationErrors::one("", "the message is not UTF-8"))?;
    let content_type = m.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key.eq_ignore_ascii_case("content-type"))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    });
    let (topic, partition, offset) = (m.topic().to_owned(), m.partition(), m.offset());
    let mut index = 0u32;
    let mut ids = move || {
        index += 1;
        Uuid::new_v5(
            &KAFKA_ID_NAMESPACE,
            format!("{topic}\n{partition}\n{offset}\n{index}").as_bytes(),
        )
    };
    let cloud = content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/cloudevents"))
        || (text.trim_start().starts_with('{') && text.contains("\"specversion\""));
    let batch = text.trim_start().starts_with('[');
    let events = if cloud {
        if batch {
            cloudevents::parse_batch(text, &mut ids)
        } else {
            cloudevents::parse_one(text, &mut ids).map(|e| vec![e])
        }
    } else {
        rapport_events::parse_batch(text, false, &mut ids, false)
    }?;
    rapport_events::envelope::check_not_ahead(&events, chrono::Utc::now(), |i| {
        if batch {
            format!("/{i}")
        } else {
            String::new()
        }
    })?;
    Ok(events)
}

/// Handle to a running Kafka task; dropping it does not stop the task, `stop` does.
pub struct TaskHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The ingest's consumer lag: messages on the broker's partitions assigned to it that
    /// it has not consumed yet (`None` until measured; always `None` for the outbox).
    lag: watch::Receiver<Option<u64>>,
}

impl TaskHandle {
    /// Follows the consumer lag (see the field).
    pub fn lag(&self) -> watch::Receiver<Option<u64>> {
        self.lag.clone()
    }

    /// Stops the task after the message (or batch) in hand, and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await?
    }
}

/// Starts consuming `opts.in_topic` into `log`.
/// `dead_letters` counts the messages sent to the dead-letter topic.
pub fn spawn_ingest(
    opts: KafkaOptions,
    log: Log,
    dead_letters: prometheus_client::metrics::counter::Counter<u64, std::sync::atomic::AtomicU64>,
) -> anyhow::Result<TaskHandle> {
    let consumer = consumer(&opts)?;
    consumer.subscribe(&[&opts.in_topic])?;
    let producer = producer(&opts)?;
    let (stop, mut stopped) = watch::channel(false);
    let (lag_tx, lag) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut measure = tokio::time::interval(LAG_EVERY);
        loop {
            let m = tokio::select! {
                _ = stopped.changed() => break,
                _ = measure.tick() => {
                    // A blocking call to the broker: off the runtime's async workers.
                    let now = tokio::task::block_in_place(|| consumer_lag(&consumer));
                    if now.is_some() {
                        lag_tx.send_replace(now);
                    }
                    continue;
                }
                m = consumer.recv() => m,
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: receive failed; retrying");
                    continue;
                }
            };
            let outcome = loop {
                let events = match parse_message(&m) {
                    Ok(e) if e.is_empty() => {
                        break Outcome::DeadLetter("/: the message holds no events".into())
                    }
                    Ok(e) => e,
                    Err(e) => break Outcome::DeadLetter(e.to_string()),
                };
                match log
                    .append(&events, crate::log::AppendRules::per_stream())
                    .await
                {
                    Ok(_) => break Outcome::Appended,
                    Err(e @ (StoreError::IdConflict { .. } | StoreError::Invalid(_))) => {
                        break Outcome::DeadLetter(e.to_string())
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka: append failed; retrying the message");
                        tokio::select! {
                            _ = stopped.changed() => return Ok(()),
                            _ = tokio::time::sleep(Duration::from_millis(STORE_RETRY_MS)) => {}
                        }
                    }
                }
            };
            if let Outcome::DeadLetter(error) = outcome {
                let mut headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "rapport-error",
                        value: Some(error.as_str()),
                    })
                    .insert(Header {
                        key: "rapport-source-topic",
                        value: Some(m.topic()),
                    })
                    .insert(Header {
                        key: "rapport-source-partition",
                        value: Some(&m.partition().to_string()),
                    })
                    .insert(Header {
                        key: "rapport-source-offset",
                        value: Some(&m.offset().to_string()),
                    });
                if let Some(h) = m.headers() {
                    for h in h.iter() {
                        headers = headers.insert(Header {
                            key: h.key,
                            value: h.value,
                        });
                    }
                }
                // The offset is stored only once the dead letter is acknowledged; until then
                // the partition waits (the message is neither dropped nor skipped).
                loop {
                    let mut record = FutureRecord::<[u8], [u8]>::to(&opts.dlq_topic)
                        .payload(m.payload().unwrap_or_default())
                        .headers(headers.clone());
                    if let Some(k) = m.key() {
                        record = record.key(k);
                    }
                    match producer
                        .send(record, Duration::from_millis(PRODUCE_TIMEOUT_MS))
                        .await
                    {
                        Ok(_) => break,
                        Err((e, _)) => {
                            tracing::warn!(error = %e, "kafka: could not dead-letter a message; retrying");
                            tokio::select! {
                                _ = stopped.changed() => return Ok(()),
                                _ = tokio::time::sleep(Duration::from_millis(STORE_RETRY_MS)) => {}
                            }
                        }
                    }
                }
                dead_letters.inc();
                tracing::warn!(
                    topic = m.topic(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "kafka: message dead-lettered"
                );
            }
            consumer.store_offset_from_message(&m)?;
        }
        // Commit what was stored before leaving the group.
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
        Ok(())
    });
    Ok(TaskHandle { stop, task, lag })
}

/// Messages on the partitions assigned to `consumer` that it has not consumed: the high
/// watermark minus its position, summed; `None` while it has no position anywhere.
fn consumer_lag(consumer: &StreamConsumer) -> Option<u64> {
    let positions = consumer.position().ok()?;
    let mut lag = None;
    for p in positions.elements() {
        let rdkafka::Offset::Offset(at) = p.offset() else {
            continue;
        };
        let (_, high) = consumer
            .fetch_watermarks(p.topic(), p.partition(), WATERMARKS_TIMEOUT)
            .ok()?;
        *lag.get_or_insert(0) += u64::try_from(high.saturating_sub(at)).unwrap_or(0);
    }
    lag
}

/// How far each feed has been published (sequence numbers of the projections' feeds).
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Copy, PartialEq, Debug)]
struct Checkpoint {
    alerts: u64,
    segments: u64,
    /// Lifecycle changes; absent from checkpoints written before they were published.
    #[serde(default)]
    customers: u64,
}

#[derive(Debug, Clone, Copy)]
enum OutFeed {
    Alerts,
    Segments,
    Customers,
}

/// One message the outbox is about to publish.
struct Outgoing<'a> {
    topic: &'a str,
    key: String,
    payload: String,
    feed: OutFeed,
    seq: u64,
}

/// The outbox's name among the read model's durable consumers.
pub const OUTBOX_CONSUMER: &str = "kafka";

impl From<Checkpoint> for Cursor {
    fn from(c: Checkpoint) -> Cursor {
        Cursor {
            alerts: c.alerts,
            segments: c.segments,
            lifecycles: c.customers,
        }
    }
}

/// The checkpoint at `path` as the read model's cursor (where the outbox will go on).
pub fn checkpoint_cursor(path: &std::path::Path) -> Cursor {
    read_checkpoint(path).into()
}

fn read_checkpoint(path: &std::path::Path) -> Checkpoint {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_checkpoint(path: &std::path::Path, c: Checkpoint) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&c)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn cloud_event(id: String, ty: String, subject: &str, data: Value) -> String {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "rapport",
        "type": ty,
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    })
    .to_string()
}

/// Starts publishing alert and segment changes from `model`.
pub fn spawn_outbox(opts: KafkaOptions, model: Arc<ReadModel>) -> anyhow::Result<TaskHandle> {
    let producer = producer(&opts)?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut ck = read_checkpoint(&opts.checkpoint);
        let mut applied = model.watch_applied();
        loop {
            applied.borrow_and_update();
            let mut out: Vec<Outgoing> = Vec::new();
            let window = match model
                .changes_after(ck.into(), [true; 3], OUTBOX_BATCH_CHANGES)
                .await
            {
                Ok(w) => w,
                Err((feed, oldest)) => {
                    // Only changes made before the outbox knew this consumer (Kafka set up
                    // on a store with history) or a lost outbox file: said, and gone past.
                    tracing::error!(feed = feed.as_str(), oldest, "kafka outbox: changes from before this outbox was set up are no longer held; publishing from the oldest held");
                    let mut c: Cursor = ck.into();
                    c.set(feed, oldest - 1);
                    ck = Checkpoint {
                        alerts: c.alerts,
                        segments: c.segments,
                        customers: c.lifecycles,
                    };
                    continue;
                }
            };
            {
                let st = model.state.read().await;
                {
                    let changes = &window.alerts;
                    out.extend(changes.iter().map(|c| Outgoing {
                        topic: &opts.alerts_topic,
                        key: c.alert.clone(),
                        payload: cloud_event(
                            format!("rapport-alert-change-{}", c.seq),
                            format!("rapport.alert.{}", c.change),
                            &c.alert,
                            json!({"change": c, "alert": st.warnings.get(&c.alert)}),
                        ),
                        feed: OutFeed::Alerts,
                        seq: c.seq,
                    }));
                }
                {
                    let changes = &window.segments;
                    out.extend(changes.iter().map(|c| Outgoing {
                        topic: &opts.segments_topic,
                        key: c.customer.clone(),
                        payload: cloud_event(
                            format!("rapport-segment-change-{}", c.seq),
                            format!(
                                "rapport.segment.{}",
                                json!(c.change).as_str().unwrap_or("changed")
                            ),
                            &c.customer,
                            {
                                // The channels the audience's tool may use for marketing,
                                // by the consent in force when the change happened.
                                let mut v = json!(c);
                                v["marketing_channels"] = json!(st
                                    .customers
                                    .person(&c.customer)
                                    .map(|p| p.marketing_channels(c.at))
                                    .unwrap_or_default());
                                v
                            },
                        ),
                        feed: OutFeed::Segments,
                        seq: c.seq,
                    }));
                }
                {
                    let changes = &window.lifecycles;
                    out.extend(changes.iter().map(|c| Outgoing {
                        topic: &opts.customers_topic,
                        key: c.customer.clone(),
                        payload: cloud_event(
                            format!("rapport-lifecycle-change-{}", c.seq),
                            "rapport.customer.lifecycle_changed".into(),
                            &c.customer,
                            json!(c),
                        ),
                        feed: OutFeed::Customers,
                        seq: c.seq,
                    }));
                }
            }
            if out.is_empty() {
                tokio::select! {
                    _ = stopped.changed() => return Ok(()),
                    r = applied.changed() => if r.is_err() { return Ok(()) },
                }
                continue;
            }
            let sends = out.iter().map(
                |Outgoing {
                     topic,
                     key,
                     payload,
                     ..
                 }| {
                    let headers = OwnedHeaders::new().insert(Header {
                        key: "content-type",
                        value: Some("application/cloudevents+json"),
                    });
                    producer.send(
                        FutureRecord::to(topic)
                            .key(key)
                            .payload(payload)
                            .headers(headers),
                        Duration::from_millis(PRODUCE_TIMEOUT_MS),
                    )
                },
            );
            let results = futures::future::join_all(sends).await;
            if let Some((e, _)) = results.iter().find_map(|r| r.as_ref().err()) {
                // Nothing after the last checkpoint counts as delivered: retry it all.
                tracing::warn!(error = %e, "kafka outbox: publish failed; retrying");
                tokio::select! {
                    _ = stopped.changed() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(STORE_RETRY_MS)) => {}
                }
                continue;
            }
            for o in &out {
                let at = match o.feed {
                    OutFeed::Alerts => &mut ck.alerts,
                    OutFeed::Segments => &mut ck.segments,
                    OutFeed::Customers => &mut ck.customers,
                };
                *at = (*at).max(o.seq);
            }
            match write_checkpoint(&opts.checkpoint, ck) {
                Ok(()) => {
                    if let Some(o) = model.outbox() {
                        o.set_floor(OUTBOX_CONSUMER, ck.into());
                    }
                }
                // Publishing goes on; a restart before the next good write republishes
                // (consumers deduplicate by id).
                Err(e) => {
                    tracing::error!(error = %e, path = %opts.checkpoint.display(), "kafka outbox: could not write its checkpoint")
                }
            }
        }
    });
    Ok(TaskHandle {
        stop,
        task,
        lag: watch::channel(None).1,
    })
}
