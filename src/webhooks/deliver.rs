//! One subscription's delivery task: the next change it wants from the feeds, signed and
//! POSTed; on success the cursor moves past it, on failure the same change is retried
//! after a backoff, until the subscription is parked.

use std::sync::Arc;

use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use rapport_projections::{segments::ChangeKind, ReadState};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Cursor, Status, Subscription, Topic, Webhooks};

/// Changes read from one feed per look: a subscription to few topics walks past the
/// others this many at a time.
const SCAN_CHANGES_MAX: usize = 512;
/// The longest an idle task waits before looking again, in milliseconds, should a wake-up
/// be missed.
const IDLE_RECHECK_MS: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Feed {
    Alerts,
    Segments,
    Lifecycles,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Feed::Alerts => "alerts",
            Feed::Segments => "segments",
            Feed::Lifecycles => "lifecycles",
        }
    }
}

/// A change to deliver.
struct Next {
    feed: Feed,
    seq: u64,
    position: u64,
    topic: Topic,
    body: Value,
}

enum Pick {
    /// Deliver this; the cursor (moved past changes the subscription does not want).
    Next(Next, Cursor),
    /// Nothing to deliver now; the cursor, and whether it moved.
    Idle(Cursor, bool),
    /// A feed no longer holds changes the subscription still needs.
    Gap { feed: Feed, oldest: u64 },
}

fn wants(sub: &Subscription, topic: Topic) -> bool {
    sub.topics.contains(&topic)
}

/// The subscription's next change, in the order of the events that caused them across
/// feeds.
fn pick(st: &ReadState, sub: &Subscription) -> Pick {
    let mut cursor = sub.cursor;
    let mut candidates: Vec<Next> = Vec::new();
    let subscribed = |f: Feed| {
        sub.topics.iter().any(|t| match t {
            Topic::SegmentEntered | Topic::SegmentExited => f == Feed::Segments,
            Topic::LifecycleChanged => f == Feed::Lifecycles,
            _ => f == Feed::Alerts,
        })
    };
    if subscribed(Feed::Alerts) {
        match st.warnings.changes_after(cursor.alerts, SCAN_CHANGES_MAX) {
            Err(oldest) => {
                return Pick::Gap {
                    feed: Feed::Alerts,
                    oldest,
                }
            }
            Ok(changes) => {
                for c in changes {
                    let topic = match c.change.as_str() {
                        "raised" => Some(Topic::AlertRaised),
                        "escalated" => Some(Topic::AlertEscalated),
                        "overdue" => Some(Topic::AlertOverdue),
                        "resolved" => Some(Topic::AlertResolved),
                        _ => None,
                    };
                    match topic.filter(|t| wants(sub, *t)) {
                        Some(topic) => {
                            candidates.push(Next {
                                feed: Feed::Alerts,
                                seq: c.seq,
                                position: c.position,
                                topic,
                                body: json!({"change": c, "alert": st.warnings.get(&c.alert)}),
                            });
                            break;
                        }
                        None => cursor.alerts = c.seq,
                    }
                }
            }
        }
    }
    if subscribed(Feed::Segments) {
        match st.segments.changes_after(cursor.segments, SCAN_CHANGES_MAX) {
            Err(oldest) => {
                return Pick::Gap {
                    feed: Feed::Segments,
                    oldest,
                }
            }
            Ok(changes) => {
                for c in changes {
                    let topic = match c.change {
                        ChangeKind::Entered => Topic::SegmentEntered,
                        ChangeKind::Exited => Topic::SegmentExited,
                    };
                    let segment_ok = sub.segment.as_deref().is_none_or(|s| s == c.segment);
                    if wants(sub, topic) && segment_ok {
                        let mut body = json!(c);
                        body["marketing_channels"] = json!(st
                            .customers
                            .person(&c.customer)
                            .map(|p| p.marketing_channels(c.at))
                            .unwrap_or_default());
                        candidates.push(Next {
                            feed: Feed::Segments,
                            seq: c.seq,
                            position: c.position,
                            topic,
                            body,
                        });
                        break;
                    }
                    cursor.segments = c.seq;
                }
            }
        }
    }
    if subscribed(Feed::Lifecycles) {
        match st
            .lifecycles
            .changes_after(cursor.lifecycles, SCAN_CHANGES_MAX)
        {
            Err(oldest) => {
                return Pick::Gap {
                    feed: Feed::Lifecycles,
                    oldest,
                }
            }
            Ok(changes) => {
                if let Some(c) = changes.first() {
                    candidates.push(Next {
                        feed: Feed::Lifecycles,
                        seq: c.seq,
                        position: c.position,
                        topic: Topic::LifecycleChanged,
                        body: json!(c),
                    });
                }
            }
        }
    }
    let moved = cursor != sub.cursor;
    match candidates
        .into_iter()
        .min_by_key(|n| (n.position, n.feed, n.seq))
    {
        Some(next) => Pick::Next(next, cursor),
        None => Pick::Idle(cursor, moved),
    }
}

fn past(mut cursor: Cursor, next: &Next) -> Cursor {
    match next.feed {
        Feed::Alerts => cursor.alerts = next.seq,
        Feed::Segments => cursor.segments = next.seq,
        Feed::Lifecycles => cursor.lifecycles = next.seq,
    }
    cursor
}

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "t.body">`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(hooks: &Webhooks, sub: &Subscription, next: &Next) -> Result<(), String> {
    super::target::check_url(&sub.url, &hooks.config)
        .await
        .map_err(|e| e.to_string())?;
    let delivery = format!("{}-{}", next.feed.name(), next.seq);
    let body = json!({
        "id": delivery,
        "type": next.topic.as_str(),
        "subscription": sub.id,
        "position": next.position,
        "data": next.body,
    })
    .to_string();
    let t = Utc::now().timestamp();
    let resp = hooks
        .client
        .post(&sub.url)
        .header("content-type", "application/json")
        .header("rapport-delivery", &delivery)
        .header("rapport-event", next.topic.as_str())
        .header("rapport-signature", signature(&sub.secret, t, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", resp.status()))
    }
}

/// The delay before retry number `failures`: doubling from the base, at most the
/// maximum, times a jitter between 0.5 and 1.5 so receivers are not hit in lockstep.
fn backoff(config: &crate::config::WebhooksConfig, failures: u32) -> std::time::Duration {
    let exp = config
        .backoff_base_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(30))
        .min(config.backoff_max_ms);
    let jitter: f64 = rand::thread_rng().gen_range(0.5..1.5);
    std::time::Duration::from_millis((exp as f64 * jitter) as u64)
}

/// Delivers subscription `id` until it is deleted or parked.
pub(super) async fn run(hooks: Arc<Webhooks>, id: String, generation: u64) {
    let mut applied = hooks.model.watch_applied();
    loop {
        let Some(sub) = hooks.get(&id) else { return };
        if sub.status == Status::Parked || sub.generation != generation {
            return;
        }
        applied.borrow_and_update();
        let pick = {
            let st = hooks.model.state.read().await;
            pick(&st, &sub)
        };
        let saved = match pick {
            Pick::Gap { feed, oldest } => {
                let why = format!(
                    "the {} feed no longer holds the changes after {} (its oldest is {oldest}); \
                     replay from a log position",
                    feed.name(),
                    match feed {
                        Feed::Alerts => sub.cursor.alerts,
                        Feed::Segments => sub.cursor.segments,
                        Feed::Lifecycles => sub.cursor.lifecycles,
                    }
                );
                tracing::error!(webhook = %id, %why, "webhook parked");
                let _ = hooks.update(&id, generation, |s| {
                    s.status = Status::Parked;
                    s.last_error = Some(why);
                });
                return;
            }
            Pick::Idle(cursor, moved) => {
                if moved {
                    hooks.update(&id, generation, |s| s.cursor = cursor)
                } else {
                    tokio::select! {
                        _ = applied.changed() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_millis(IDLE_RECHECK_MS)) => {}
                    }
                    Ok(None)
                }
            }
            Pick::Next(next, cursor) => match post(&hooks, &sub, &next).await {
                Ok(()) => hooks.update(&id, generation, |s| {
                    s.cursor = past(cursor, &next);
                    s.failures = 0;
                    s.last_error = None;
                    s.delivered += 1;
                    s.last_attempt_at = Some(Utc::now());
                }),
                Err(why) => {
                    let max = hooks.config.max_failures;
                    let r = hooks.update(&id, generation, |s| {
                        s.cursor = cursor;
                        s.failures += 1;
                        s.last_error = Some(why.clone());
                        s.last_attempt_at = Some(Utc::now());
                        if s.failures >= max {
                            s.status = Status::Parked;
                        }
                    });
                    match &r {
                        Ok(None) => return,
                        Ok(Some(s)) if s.status == Status::Parked => {
                            tracing::warn!(webhook = %id, error = %why, "webhook parked after {max} failures");
                            return;
                        }
                        Ok(Some(s)) => tokio::time::sleep(backoff(&hooks.config, s.failures)).await,
                        _ => {}
                    }
                    r
                }
            },
        };
        if let Err(e) = saved {
            // The cursor could not be written: try again later rather than deliver ahead
            // of what a restart would know.
            tracing::error!(webhook = %id, error = %e, "cannot write webhooks file");
            tokio::time::sleep(std::time::Duration::from_millis(IDLE_RECHECK_MS)).await;
        }
    }
}

/// The cursor that replays every change caused by events after log position `after`:
/// per feed, the last change caused at or before it. An error when a feed no longer holds
/// all the changes after it.
pub(super) fn cursor_after(st: &ReadState, after: u64) -> Result<Cursor, String> {
    fn last_at_or_before<'a, T: 'a>(
        get: impl Fn(u64) -> Result<Vec<&'a T>, u64>,
        seq: impl Fn(&T) -> u64,
        position: impl Fn(&T) -> u64,
        after: u64,
        feed: &str,
    ) -> Result<u64, String> {
        let changes = match get(0) {
            Ok(c) => c,
            Err(oldest) => get(oldest.saturating_sub(1)).unwrap_or_default(),
        };
        let first = changes.first().map(|c| (seq(c), position(c)));
        if let Some((s, p)) = first {
            if s > 1 && p > after {
                return Err(format!(
                    "the {feed} feed no longer holds the changes after position {after}"
                ));
            }
        }
        Ok(changes
            .iter()
            .take_while(|c| position(c) <= after)
            .last()
            .map_or(first.map_or(0, |(s, _)| s.saturating_sub(1)), |c| seq(c)))
    }
    Ok(Cursor {
        alerts: last_at_or_before(
            |a| st.warnings.changes_after(a, usize::MAX),
            |c| c.seq,
            |c| c.position,
            after,
            "alerts",
        )?,
        segments: last_at_or_before(
            |a| st.segments.changes_after(a, usize::MAX),
            |c| c.seq,
            |c| c.position,
            after,
            "segments",
        )?,
        lifecycles: last_at_or_before(
            |a| st.lifecycles.changes_after(a, usize::MAX),
            |c| c.seq,
            |c| c.position,
            after,
            "lifecycles",
        )?,
    })
}
