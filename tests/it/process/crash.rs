//! `kill -9` during concurrent ingest loses nothing acknowledged and leaves no partial batch.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

use super::{paths, Server};

const BATCH_EVENTS: usize = 5;
const CLIENTS: u64 = 8;
/// Acknowledged batches to wait for before each kill (a count, not a sleep).
const ACKS_BEFORE_KILL: usize = 150;

fn batch(rng: &mut StdRng) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..BATCH_EVENTS)
        .map(|_| uuid::Uuid::from_u128(rng.gen()).to_string())
        .collect();
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "type": "customer_registered", "customer": format!("c-{}", rng.gen_range(0..50)),
                "occurred_at": "2026-03-01T10:00:00Z", "data": {"name": "Crash Test", "email": "crash@example.com"}})
        })
        .collect();
    (ids, json!(events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_concurrent_ingest_loses_nothing_acknowledged() {
    let (_tmp, data, master) = paths();
    let acked: Arc<Mutex<Vec<Vec<String>>>> = Default::default();
    let attempted: Arc<Mutex<Vec<Vec<String>>>> = Default::default();
    for round in 0..3u64 {
        let mut server = Server::start(&data, &master);
        let count = Arc::new(AtomicUsize::new(0));
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (http, base, token) = (http.clone(), server.base.clone(), server.admin.clone());
            let (acked, attempted, count) = (acked.clone(), attempted.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(round * 1000 + c);
                loop {
                    let (ids, body) = batch(&mut rng);
                    attempted.lock().unwrap().push(ids.clone());
                    let resp = http
                        .post(format!("{base}/v1/events"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            acked.lock().unwrap().push(ids);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        // The server died under us: this batch may or may not be stored.
                        _ => return,
                    }
                }
            }));
        }
        while count.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
            tokio::task::yield_now().await;
        }
        server.kill9();
        for t in tasks {
            t.await.unwrap();
        }
    }
    // Restart and read everything back.
    let server = Server::start(&data, &master);
    let http = reqwest::Client::new();
    let mut stored = HashSet::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{}/v1/events?after={after}&limit=10000",
                server.base
            ))
            .bearer_auth(&server.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e["position"].as_u64().unwrap(),
                after + 1 + i as u64,
                "the log has a gap"
            );
            assert_eq!(
                e["data"]["name"], "Crash Test",
                "personal data survived the crash readable"
            );
            stored.insert(e["id"].as_str().unwrap().to_owned());
        }
        after = page["next_after"].as_u64().unwrap();
    }
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 3 * ACKS_BEFORE_KILL);
    for ids in acked.iter() {
        for id in ids {
            assert!(stored.contains(id), "acknowledged event {id} was lost");
        }
    }
    for ids in attempted.lock().unwrap().iter() {
        let present = ids.iter().filter(|id| stored.contains(*id)).count();
        assert!(
            present == 0 || present == BATCH_EVENTS,
            "a batch was half written: {present} of {BATCH_EVENTS}"
        );
    }
}
