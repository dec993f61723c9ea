//! Webhooks against receivers on loopback: one that fails a few times, one that times
//! out, one that keeps failing until staff resume it, one that is down across a restart
//! of Rapport. Every change arrives, in order, none twice unless a delivery was retried,
//! and every signature verifies.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use rapport::auth::Role;
use serde_json::{json, Value};

use super::helpers::{purchase, TestServer};

/// What the receiver does with the next requests.
#[derive(Default)]
struct Behaviour {
    /// Answer 500 to this many requests first.
    fail: usize,
    /// Sleep this long before answering the first request (past the client's timeout).
    stall_first: Option<Duration>,
    /// Answer 500 to everything.
    broken: bool,
}

#[derive(Default)]
struct Received {
    behaviour: Behaviour,
    /// Every request: (delivery id, signature header, body), in arrival order.
    all: Vec<(String, String, String)>,
    /// Requests answered 2xx, by delivery id.
    ok: Vec<String>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Received>>,
    changed: Arc<tokio::sync::Notify>,
}

async fn handle(
    State(r): State<(Arc<Mutex<Received>>, Arc<tokio::sync::Notify>)>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, sig) = (h("rapport-delivery"), h("rapport-signature"));
    let stall = {
        let mut g = r.0.lock().unwrap();
        g.all.push((id.clone(), sig, body));
        g.behaviour.stall_first.take()
    };
    if let Some(d) = stall {
        tokio::time::sleep(d).await;
    }
    let status = {
        let mut g = r.0.lock().unwrap();
        if g.behaviour.broken {
            StatusCode::INTERNAL_SERVER_ERROR
        } else if g.behaviour.fail > 0 {
            g.behaviour.fail -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            g.ok.push(id);
            StatusCode::NO_CONTENT
        }
    };
    r.1.notify_waiters();
    status
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Receiver {
        let got = Arc::new(Mutex::new(Received {
            behaviour,
            ..Default::default()
        }));
        let changed = Arc::new(tokio::sync::Notify::new());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state((got.clone(), changed.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, got, changed }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Waits until `n` deliveries were answered 2xx (the timeout only ends a hung test).
    async fn wait_ok(&self, n: usize) -> Vec<String> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if self.got.lock().unwrap().ok.len() >= n {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .expect("the deliveries arrived");
        self.got.lock().unwrap().ok.clone()
    }
}

async fn subscribe(s: &TestServer, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = s
        .post_json("/v1/webhooks", &json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["webhook"]["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// A segment of buyers, then purchases by `customers`: one `segment.entered` each.
async fn buyers(s: &TestServer, customers: std::ops::Range<usize>) {
    let seg = json!({"id": "buyers", "name": "Buyers", "rule": {"all": [{"field": "orders", "op": ">=", "value": 1}]}});
    let _ = s.post_json("/v1/segments", &seg).await;
    for i in customers {
        let (status, body) = s
            .post_json(
                "/v1/events",
                &purchase(&format!("c-{i}"), &format!("o-{i}"), "9.00"),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

fn verify(secret: &str, sig: &str, body: &str) -> bool {
    let t: i64 = sig
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    rapport::webhooks::signature(secret, t, body) == sig
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_fails_twice_gets_every_change_in_order_and_signed() {
    let s = TestServer::start().await;
    let r = Receiver::start(Behaviour {
        fail: 2,
        ..Default::default()
    })
    .await;
    let (id, secret) = subscribe(&s, &r.url(), &["segment.entered"]).await;
    buyers(&s, 0..5).await;
    let ok = r.wait_ok(5).await;
    assert_eq!(ok.len(), 5);
    let all = r.got.lock().unwrap().all.clone();
    // The first change was tried three times, every other once: 7 requests.
    assert_eq!(all.len(), 7, "{all:?}");
    let mut ids: Vec<&String> = ok.iter().collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "none twice once answered");
    let positions: Vec<u64> = all
        .iter()
        .map(|(_, _, b)| {
            serde_json::from_str::<Value>(b).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] <= w[1]),
        "in order: {positions:?}"
    );
    for (_, sig, body) in &all {
        assert!(verify(&secret, sig, body), "signature of {body}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "segment.entered");
        assert_eq!(v["data"]["marketing_channels"], json!([]));
    }
    assert!(!verify("whsec_other", &all[0].1, &all[0].2));
    // The receiver answered before Rapport recorded it: wait for the record.
    let w = status_until(&s, &id, |w| w["delivered"] == 5).await;
    assert_eq!(w["status"], "active");
    assert!(w.get("secret").is_none(), "the secret is shown once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_times_out_is_tried_again() {
    let s = TestServer::start().await;
    let r = Receiver::start(Behaviour {
        stall_first: Some(Duration::from_secs(2)),
        ..Default::default()
    })
    .await;
    subscribe(&s, &r.url(), &["segment.entered"]).await;
    buyers(&s, 0..2).await;
    let ok = r.wait_ok(2).await;
    assert_eq!(ok, ["segments-1", "segments-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_that_keeps_failing_is_parked_with_its_error_until_resumed() {
    let s = TestServer::start().await;
    let r = Receiver::start(Behaviour {
        broken: true,
        ..Default::default()
    })
    .await;
    let (id, _) = subscribe(&s, &r.url(), &["segment.entered"]).await;
    buyers(&s, 0..3).await;
    let parked = parked(&s, &id).await;
    assert!(
        parked["last_error"].as_str().unwrap().contains("500"),
        "{parked}"
    );
    assert_eq!(parked["failures"], 4);
    r.got.lock().unwrap().behaviour.broken = false;
    let (status, _) = s
        .post(
            &format!("/v1/webhooks/{id}/resume"),
            &s.admin.clone(),
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(r.wait_ok(3).await.len(), 3);
    status_until(&s, &id, |w| w["delivered"] == 3).await;
    // Replayed from the start of the log: the three come again.
    let (status, body) = s
        .post(
            &format!("/v1/webhooks/{id}/replay"),
            &s.admin.clone(),
            "application/json",
            json!({"from_position": 0}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(r.wait_ok(6).await.len(), 6);
}

/// Waits until the subscription's state satisfies `done` (the timeout only ends a hung
/// test).
async fn status_until(s: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let wait = async {
        loop {
            let (_, w) = s.get(&format!("/v1/webhooks/{id}"), &s.admin).await;
            if done(&w) {
                return w;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the state was reached")
}

pub(super) async fn parked(s: &TestServer, id: &str) -> Value {
    status_until(s, id, |w| w["status"] == "parked").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_across_a_restart_gets_every_change_once() {
    let s = TestServer::start().await;
    let r = Receiver::start(Behaviour::default()).await;
    let (id, secret) = subscribe(&s, &r.url(), &["segment.entered"]).await;
    buyers(&s, 0..3).await;
    assert_eq!(r.wait_ok(3).await.len(), 3);
    status_until(&s, &id, |w| w["delivered"] == 3).await;
    // The receiver goes down; changes keep coming; the subscription parks.
    r.got.lock().unwrap().behaviour.broken = true;
    buyers(&s, 3..6).await;
    parked(&s, &id).await;
    // Rapport restarts while the receiver is down.
    let s = s.restart().await;
    let (_, w) = s.get(&format!("/v1/webhooks/{id}"), &s.admin).await;
    assert_eq!(w["status"], "parked", "{w}");
    assert_eq!(w["delivered"], 3, "the cursor survived the restart");
    // It comes back; staff resume; the rest arrives, and more after it.
    r.got.lock().unwrap().behaviour.broken = false;
    let (status, _) = s
        .post(
            &format!("/v1/webhooks/{id}/resume"),
            &s.admin.clone(),
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, 200);
    buyers(&s, 6..8).await;
    let ok = r.wait_ok(8).await;
    let mut unique = ok.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 8, "every change once: {ok:?}");
    assert_eq!(ok.len(), 8);
    let all = r.got.lock().unwrap().all.clone();
    assert!(all.iter().all(|(_, sig, body)| verify(&secret, sig, body)));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_for_admins_and_bad_ones_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let support = s.key(Role::Support);
    let (status, _) = s
        .post(
            "/v1/webhooks",
            &support,
            "application/json",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["segment.entered"]}).to_string(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = s
        .post_json(
            "/v1/webhooks",
            &json!({"url": "ftp://x/", "events": ["segment.entered"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/url"), "{body}");
    let (status, body) = s
        .post_json(
            "/v1/webhooks",
            &json!({"url": "http://127.0.0.1:9/", "events": ["order.shipped"]}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.to_string().contains("/events/0"), "{body}");
    // The file holding the secrets is the owner's only.
    let (id, _) = subscribe(&s, "http://127.0.0.1:9/hook", &["alert.raised"]).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["webhooks.json", "outbox.sqlite"] {
            let mode = std::fs::metadata(s.data_dir().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }
    let resp = s
        .http
        .delete(format!("{}/v1/webhooks/{id}", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_subscribe_resume_and_delete_from_the_system_page() {
    use super::console::Browser;
    let s = TestServer::start().await;
    let r = Receiver::start(Behaviour {
        broken: true,
        ..Default::default()
    })
    .await;
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin).await;
    let csrf = b.csrf("/system").await;
    let bad = b
        .post(
            "/system/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "ftp://example.com/"),
                ("events", "segment.entered"),
            ],
        )
        .await;
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("id=\"webhook-error\""));
    let url = r.url();
    // A batch out of range: the message is on the batch field.
    let bad = b
        .post(
            "/system/webhooks",
            &[
                ("csrf", csrf.as_str()),
                ("url", url.as_str()),
                ("events", "segment.entered"),
                ("batch", "0"),
            ],
        )
        .await;
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    let html = bad.text().await.unwrap();
    assert!(html.contains("id=\"webhook-batch-error\""), "{html}");
    assert!(!html.contains("id=\"webhook-error\""));
    // The page's title is text, not the webhook form.
    let title = &html[html.find("<title>").unwrap() + 7..html.find("</title>").unwrap()];
    assert!(!title.contains('<'), "{title}");
    let ok = b
        .post(
            "/system/webhooks",
            &[
                ("csrf", csrf.as_str()),
                ("url", url.as_str()),
                ("events", "segment.entered"),
                ("events", "alert.raised"),
                ("segment", "buyers"),
                ("batch", "25"),
            ],
        )
        .await;
    assert_eq!(ok.status(), reqwest::StatusCode::CREATED);
    let html = ok.text().await.unwrap();
    assert!(html.contains("whsec_"), "the secret, once");
    let (_, list) = s.get("/v1/webhooks", &s.admin).await;
    let id = list["webhooks"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        list["webhooks"][0]["topics"],
        json!(["segment.entered", "alert.raised"])
    );
    assert_eq!(list["webhooks"][0]["segment"], "buyers");
    assert_eq!(list["webhooks"][0]["batch"], 25);
    // A receiver that keeps failing: parked, shown with its error and a resume button.
    buyers(&s, 0..1).await;
    parked(&s, &id).await;
    let (_, html) = b.page("/system").await;
    assert!(
        html.contains(&format!("/system/webhooks/{id}/resume")),
        "{html}"
    );
    assert!(!html.contains("whsec_"), "the secret is not shown again");
    r.got.lock().unwrap().behaviour.broken = false;
    let resumed = b
        .post(&format!("/system/webhooks/{id}/resume"), &[("csrf", &csrf)])
        .await;
    assert_eq!(resumed.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(r.wait_ok(1).await.len(), 1);
    let deleted = b
        .post(&format!("/system/webhooks/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status(), reqwest::StatusCode::SEE_OTHER);
    let (_, list) = s.get("/v1/webhooks", &s.admin).await;
    assert_eq!(list["webhooks"], json!([]));
}
