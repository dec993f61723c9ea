//! One subscription's delivery task: the next change it wants from the feeds, signed and
//! POSTed; on success the cursor moves past it, on failure the same change is retried
//! after a backoff, until the subscription is parked.

use std::sync::Arc;

use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::Rng;
use rapport_projections::{feed::FeedItem, segments::ChangeKind, ReadState};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Cursor, Status, Subscription, Topic, Webhooks};

/// Changes read from one feed per look: a subscription to few topics walks past the
/// others this many at a time.
const SCAN_CHANGES_MAX: usize = 1_000;
/// The longest an idle task waits before looking again, in milliseconds, should a wake-up
/// be missed.
const IDLE_RECHECK_MS: u64 = 1_000;

use crate::read_model::{outbox::FeedName as Feed, Window};

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
    /// Nothing to deliver now; the cursor past what it does not want.
    Idle(Cursor),
}

fn wants(sub: &Subscription, topic: Topic) -> bool {
    sub.topics.contains(&topic)
}

/// The feeds `sub` reads, by [`Feed`] number.
fn subscribed(sub: &Subscription) -> [bool; 3] {
    Feed::ALL.map(|f| {
        sub.topics.iter().any(|t| match t {
            Topic::SegmentEntered | Topic::SegmentExited => f == Feed::Segments,
            Topic::LifecycleChanged => f == Feed::Lifecycles,
            _ => f == Feed::Alerts,
        })
    })
}

/// The subscription's next change among those after its cursor (`w`), in the order of
/// the events that caused them across feeds.
fn pick(st: &ReadState, sub: &Subscription, from: Cursor, w: &Window) -> Pick {
    let mut cursor = from;
    let mut candidates: Vec<Next> = Vec::new();
    for c in w.alerts.iter().filter(|c| c.seq > from.alerts) {
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
    for c in w.segments.iter().filter(|c| c.seq > from.segments) {
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
    if let Some(c) = w.lifecycles.iter().find(|c| c.seq > from.lifecycles) {
        candidates.push(Next {
            feed: Feed::Lifecycles,
            seq: c.seq,
            position: c.position,
            topic: Topic::LifecycleChanged,
            body: json!(c),
        });
    }
    match candidates
        .into_iter()
        .min_by_key(|n| (n.position, n.feed, n.seq))
    {
        Some(next) => Pick::Next(next, cursor),
        None => Pick::Idle(cursor),
    }
}

fn past(mut cursor: Cursor, next: &Next) -> Cursor {
    cursor.set(next.feed, next.seq);
    cursor
}

/// The subscription's next changes, at most its `batch`, in order, and the cursor past
/// them (or past what it skipped, when there are none). A batch ends where a feed's
/// window ends while that feed may have more: what comes next there could come first.
fn pick_batch(st: &ReadState, sub: &Subscription, w: &Window) -> (Vec<Next>, Cursor) {
    let mut cursor = sub.cursor;
    let mut batch = Vec::new();
    while batch.len() < sub.batch.max(1) as usize {
        if !batch.is_empty() && w.used_up(&cursor, SCAN_CHANGES_MAX) {
            break;
        }
        match pick(st, sub, cursor, w) {
            Pick::Next(next, skipped) => {
                cursor = past(skipped, &next);
                batch.push(next);
            }
            Pick::Idle(skipped) => {
                cursor = skipped;
                break;
            }
        }
    }
    (batch, cursor)
}

/// The signature header: `t=<unix seconds>,v1=<hex HMAC-SHA-256 of "t.body">`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn delivery_id(next: &Next) -> String {
    format!("{}-{}", next.feed.as_str(), next.seq)
}

/// POSTs `batch` (not empty): one change as itself; several as `{"subscription",
/// "deliveries": [...]}`, each as it would have come alone.
async fn post(hooks: &Webhooks, sub: &Subscription, batch: &[Next]) -> Result<(), String> {
    super::target::check_url(&sub.url, &hooks.config)
        .await
        .map_err(|e| e.to_string())?;
    let one = |next: &Next| {
        json!({
            "id": delivery_id(next),
            "type": next.topic.as_str(),
            "subscription": sub.id,
            "position": next.position,
            "data": next.body,
        })
    };
    let (first, last) = match batch {
        [first, .., last] => (first, last),
        [only] => (only, only),
        [] => return Ok(()),
    };
    let (delivery, event, body) = if batch.len() == 1 {
        (
            delivery_id(first),
            first.topic.as_str(),
            one(first).to_string(),
        )
    } else {
        let all: Vec<Value> = batch.iter().map(one).collect();
        (
            format!("{}..{}", delivery_id(first), delivery_id(last)),
            "batch",
            json!({"subscription": sub.id, "deliveries": all}).to_string(),
        )
    };
    let t = Utc::now().timestamp();
    let resp = hooks
        .client
        .post(&sub.url)
        .header("content-type", "application/json")
        .header("rapport-delivery", &delivery)
        .header("rapport-event", event)
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
        let window = hooks
            .model
            .changes_after(sub.cursor, subscribed(&sub), SCAN_CHANGES_MAX)
            .await;
        let pick = match window {
            Ok(w) => {
                let st = hooks.model.state.read().await;
                Ok(pick_batch(&st, &sub, &w))
            }
            Err(gap) => Err(gap),
        };
        let saved = match pick {
            Err((feed, oldest)) => {
                let why = format!(
                    "the {} feed no longer holds the changes after {} (its oldest is {oldest}); \
                     replay from a log position",
                    feed.as_str(),
                    sub.cursor.get(feed)
                );
                tracing::error!(webhook = %id, %why, "webhook parked");
                let _ = hooks.update(&id, generation, |s| {
                    s.status = Status::Parked;
                    s.last_error = Some(why);
                });
                return;
            }
            Ok((batch, cursor)) if batch.is_empty() => {
                if cursor != sub.cursor {
                    hooks.update(&id, generation, |s| s.cursor = cursor)
                } else {
                    tokio::select! {
                        _ = applied.changed() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_millis(IDLE_RECHECK_MS)) => {}
                    }
                    Ok(None)
                }
            }
            Ok((batch, cursor)) => match post(&hooks, &sub, &batch).await {
                Ok(()) => hooks.update(&id, generation, |s| {
                    s.cursor = cursor;
                    s.failures = 0;
                    s.last_error = None;
                    s.delivered += batch.len() as u64;
                    s.last_attempt_at = Some(Utc::now());
                }),
                Err(why) => {
                    let max = hooks.config.max_failures;
                    let r = hooks.update(&id, generation, |s| {
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

/// Per feed, the last change caused at or before log position `after`: the cursor that
/// replays every change caused by events after it; `None` for a feed that no longer
/// holds all the changes after it.
pub(super) fn cursor_after(st: &ReadState, after: u64) -> [(Feed, Option<u64>); 3] {
    fn last_at_or_before<T: FeedItem>(
        feed: &rapport_projections::feed::Feed<T>,
        after: u64,
    ) -> Option<u64> {
        let changes = feed
            .after(0, usize::MAX)
            .or_else(|oldest| feed.after(oldest.saturating_sub(1), usize::MAX))
            .unwrap_or_default();
        let first = changes.first().map(|c| (c.seq(), c.position()));
        if let Some((s, p)) = first {
            if s > 1 && p > after {
                return None;
            }
        }
        Some(
            changes
                .iter()
                .take_while(|c| c.position() <= after)
                .last()
                .map_or(first.map_or(0, |(s, _)| s.saturating_sub(1)), |c| c.seq()),
        )
    }
    [
        (Feed::Alerts, last_at_or_before(st.warnings.feed(), after)),
        (Feed::Segments, last_at_or_before(st.segments.feed(), after)),
        (
            Feed::Lifecycles,
            last_at_or_before(st.lifecycles.feed(), after),
        ),
    ]
}
