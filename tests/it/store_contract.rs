//! The `EventStore` contract. The tests above the line run against every backend: always
//! the embedded one, and KurrentDB when `RAPPORT_TEST_KURRENTDB_URL` names a server (each
//! run writes under its own stream prefix, so a shared server is fine). The tests below the
//! line check what only the embedded store has (its file, its lock, its bulk import).
//! Seeded and deterministic: a failure prints its seed.

use std::sync::Arc;

use futures::StreamExt;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rapport::{
    crypto::{Keyring, MasterKey},
    log::{Log, PersonalAccess},
    store::{
        self,
        kurrent::{KurrentOptions, KurrentStore},
        sqlite::{SqliteOptions, SqliteStore},
        EventStore, ExpectedVersion, StoreError,
    },
};
use rapport_events::{parse_one, Event};
use uuid::Uuid;

fn event(rng: &mut StdRng, customers: u32) -> Event {
    let c = rng.gen_range(0..customers);
    let id = Uuid::from_u128(rng.gen());
    let text = if rng.gen_bool(0.3) {
        format!(
            r#"{{"id":"{id}","type":"post","customer":"c-{c}","occurred_at":"2026-03-01T10:00:00Z","data":{{"post_id":"p-{id}","community":"g","text":"hello {c}"}}}}"#
        )
    } else {
        format!(
            r#"{{"id":"{id}","type":"purchase","customer":"c-{c}","occurred_at":"2026-03-01T10:00:00Z","data":{{"order_id":"o-{id}","amount":"{}.5","currency":"CNY"}}}}"#,
            rng.gen_range(0..500)
        )
    };
    parse_one(&text, &mut Uuid::nil, false).unwrap()
}

fn open(dir: &std::path::Path, master: &MasterKey) -> (Arc<SqliteStore>, Log) {
    let store = Arc::new(SqliteStore::open(dir, SqliteOptions::default()).unwrap());
    let keys = futures::executor::block_on(store.load_keys()).unwrap();
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(master.clone(), keys).unwrap()),
    );
    (store, log)
}

/// A backend under test, and a way to open it again (as after a restart).
enum Backend {
    Embedded(tempfile::TempDir),
    Kurrent(Box<KurrentOptions>),
}

/// One opened store: the trait object the contract speaks to, and its log.
struct Opened {
    store: Arc<dyn EventStore>,
    log: Log,
    embedded: Option<Arc<SqliteStore>>,
}

impl Opened {
    fn close(self) {
        if let Some(s) = &self.embedded {
            s.close();
        }
    }
}

/// Said once per test binary, not once per test.
static SAID_SKIPPED: std::sync::Once = std::sync::Once::new();

/// Every backend this run can reach; says loudly which it cannot.
fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Embedded(tempfile::tempdir().unwrap())];
    match std::env::var("RAPPORT_TEST_KURRENTDB_URL") {
        Ok(url) if !url.is_empty() => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let prefix = format!("contract{}", Uuid::new_v4().simple());
            let opts = KurrentOptions::parse(&format!("{url}{sep}prefix={prefix}"))
                .expect("RAPPORT_TEST_KURRENTDB_URL is a valid KurrentDB URL");
            out.push(Backend::Kurrent(Box::new(opts)));
        }
        _ => SAID_SKIPPED.call_once(|| skipped!("SKIPPED: the KurrentDB half of the store contract (set RAPPORT_TEST_KURRENTDB_URL=kurrentdb://admin:changeit@127.0.0.1:2113?tls=false to run it)"
        )),
    }
    out
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Kurrent(_) => "kurrentdb",
        }
    }

    async fn open(&self, master: &MasterKey) -> Opened {
        let (store, embedded): (Arc<dyn EventStore>, _) = match self {
            Backend::Embedded(dir) => {
                let s = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
                (s.clone(), Some(s))
            }
            Backend::Kurrent(opts) => (
                Arc::new(KurrentStore::open((**opts).clone()).await.unwrap()),
                None,
            ),
        };
        let keys = store.load_keys().await.unwrap();
        let log = Log::new(
            store.clone(),
            Arc::new(Keyring::load(master.clone(), keys).unwrap()),
        );
        Opened {
            store,
            log,
            embedded,
        }
    }
}

/// Concurrent appends of random batches: the log is gapless, every stream's versions are
/// contiguous, and every event reads back as it was appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_random_batches_give_a_gapless_log_and_contiguous_streams() {
    for (seed, backend) in [1u64, 2, 3]
        .into_iter()
        .flat_map(|seed| backends().into_iter().map(move |b| (seed, b)))
    {
        let seed_name = format!("{seed} on {}", backend.name());
        let master = MasterKey::generate();
        let Opened { store, log, .. } = backend.open(&master).await;
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed * 100 + t);
                let mut sent = Vec::new();
                for _ in 0..20 {
                    let n = rng.gen_range(1..30);
                    let batch: Vec<Event> = (0..n).map(|_| event(&mut rng, 20)).collect();
                    log.append(&batch, rapport::log::AppendRules::per_stream())
                        .await
                        .unwrap();
                    sent.extend(batch);
                }
                sent
            }));
        }
        let mut sent = std::collections::HashMap::new();
        for t in tasks {
            for e in t.await.unwrap() {
                sent.insert(e.id, e);
            }
        }
        let all = log
            .open_all(
                store.read_all(0, 100_000).await.unwrap(),
                PersonalAccess::Plain,
            )
            .unwrap();
        assert_eq!(all.len(), sent.len(), "seed {seed_name}");
        let mut versions: std::collections::HashMap<String, u64> = Default::default();
        for (i, ev) in all.iter().enumerate() {
            assert_eq!(ev.position, i as u64 + 1, "seed {seed_name}: gap");
            let next = versions.entry(ev.stream.clone()).or_default();
            assert_eq!(
                ev.stream_version, *next,
                "seed {seed_name}: stream {} not contiguous",
                ev.stream
            );
            *next += 1;
            let orig = &sent[&ev.id];
            assert_eq!(
                ev.data,
                orig.data.to_json(),
                "seed {seed_name}: data changed"
            );
        }
        // Reopening rebuilds the in-memory indexes from the log.
        Opened {
            store,
            log,
            embedded: None,
        }
        .close();
        let reopened = backend.open(&master).await;
        let (store, log) = (reopened.store.clone(), reopened.log.clone());
        assert_eq!(store.last_position(), sent.len() as u64);
        for (stream, n) in &versions {
            assert_eq!(store.stream_version(stream), Some(n - 1));
        }
        let some: Vec<Event> = sent.values().take(5).cloned().collect();
        let again = log
            .append(&some, rapport::log::AppendRules::per_stream())
            .await
            .unwrap();
        assert!(
            again.iter().all(|a| a.duplicate),
            "seed {seed_name}: ids are still known after reopening"
        );
        assert_eq!(store.last_position(), sent.len() as u64);
        reopened.close();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_inside_one_batch_is_written_once() {
    for backend in backends() {
        let Opened { store, log, .. } = backend.open(&MasterKey::generate()).await;
        let mut rng = StdRng::seed_from_u64(7);
        let e = event(&mut rng, 1);
        let out = log
            .append(
                &[e.clone(), e.clone()],
                rapport::log::AppendRules::per_stream(),
            )
            .await
            .unwrap();
        assert_eq!((out[0].position, out[1].position), (1, 1));
        assert!(!out[0].duplicate && out[1].duplicate);
        assert_eq!(store.last_position(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_expected_version_writes_nothing_of_its_batch() {
    for backend in backends() {
        let Opened { store, log, .. } = backend.open(&MasterKey::generate()).await;
        let mut rng = StdRng::seed_from_u64(8);
        let batch: Vec<Event> = (0..3).map(|_| event(&mut rng, 1)).collect();
        let stream = batch[0].stream();
        log.append(
            &batch[..1],
            rapport::log::AppendRules::in_stream(stream.clone(), ExpectedVersion::NoStream),
        )
        .await
        .unwrap();
        let err = log
            .append(
                &batch[1..],
                rapport::log::AppendRules::in_stream(stream.clone(), ExpectedVersion::NoStream),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::WrongExpectedVersion { ref actual, .. } if actual == "0"),
            "{err}"
        );
        assert_eq!(store.last_position(), 1);
        log.append(
            &batch[1..],
            rapport::log::AppendRules::in_stream(stream, ExpectedVersion::Exact(0)),
        )
        .await
        .unwrap();
        assert_eq!(store.last_position(), 3);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_never_sees_a_later_position_before_an_earlier_one() {
    for backend in backends() {
        let Opened { store, log, .. } = backend.open(&MasterKey::generate()).await;
        let sub = store::subscribe(store.clone(), 0);
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(t);
                    for _ in 0..25 {
                        let batch: Vec<Event> = (0..rng.gen_range(1..5))
                            .map(|_| event(&mut rng, 5))
                            .collect();
                        log.append(&batch, rapport::log::AppendRules::per_stream())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let total = store.last_position();
        let got: Vec<u64> = sub
            .take(total as usize)
            .map(|r| r.unwrap().position)
            .collect()
            .await;
        assert_eq!(got, (1..=total).collect::<Vec<_>>(), "{}", backend.name());
    }
}

/// Streams read back from any version, in order, with the positions `read_all` gives.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_reads_back_from_any_version_with_its_log_positions() {
    for backend in backends() {
        let Opened { store, log, .. } = backend.open(&MasterKey::generate()).await;
        let mut rng = StdRng::seed_from_u64(21);
        let batch: Vec<Event> = (0..60).map(|_| event(&mut rng, 3)).collect();
        for chunk in batch.chunks(1) {
            log.append(chunk, rapport::log::AppendRules::per_stream())
                .await
                .unwrap();
        }
        let all = store.read_all(0, 1000).await.unwrap();
        assert_eq!(all.len(), 60, "{}", backend.name());
        let stream = &all[0].event.stream;
        let mine: Vec<_> = all.iter().filter(|e| &e.event.stream == stream).collect();
        let from = 2.min(mine.len() as u64 - 1);
        let read = store.read_stream(stream, from, 1000).await.unwrap();
        assert_eq!(
            read.len() as u64,
            mine.len() as u64 - from,
            "{}",
            backend.name()
        );
        for (r, m) in read.iter().zip(&mine[from as usize..]) {
            assert_eq!(r, *m, "{}", backend.name());
        }
        assert_eq!(store.stream_version(stream), Some(mine.len() as u64 - 1));
        assert!(store
            .read_stream("customer-nobody", 0, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.stream_version("customer-nobody"), None);
        // Pages of `read_all` join up without gap or overlap.
        let mut paged = Vec::new();
        while paged.len() < all.len() {
            let after = paged.last().map_or(0, |e: &store::StoredEvent| e.position);
            paged.extend(store.read_all(after, 7).await.unwrap());
        }
        assert_eq!(paged, all, "{}", backend.name());
        // Point reads, a few and many at a time, in the order asked; no event at 0 or
        // beyond the end.
        let few = [7, 3, 60];
        let got = store.read_at(&[0, 7, 3, 61, 60]).await.unwrap();
        let want: Vec<_> = few.iter().map(|&p| all[p as usize - 1].clone()).collect();
        assert_eq!(got, want, "{}", backend.name());
        let many: Vec<u64> = (1..=60).rev().step_by(3).collect();
        let got = store.read_at(&many).await.unwrap();
        let want: Vec<_> = many.iter().map(|&p| all[p as usize - 1].clone()).collect();
        assert_eq!(got, want, "{}", backend.name());
    }
}

/// Data keys survive a restart, and an erasure survives it too.
#[tokio::test(flavor = "multi_thread")]
async fn personal_data_reads_after_a_restart_and_stays_erased_after_one() {
    for backend in backends() {
        let master = MasterKey::generate();
        let opened = backend.open(&master).await;
        let reg = |c: &str, name: &str| {
            parse_one(
                &format!(r#"{{"type":"customer_registered","customer":"{c}","occurred_at":"2026-01-01T00:00:00Z","data":{{"name":"{name}","email":"{c}@example.org"}}}}"#),
                &mut Uuid::now_v7,
                false,
            )
            .unwrap()
        };
        opened
            .log
            .append(
                &[reg("keep", "Kept Name"), reg("gone", "Gone Name")],
                rapport::log::AppendRules::per_stream(),
            )
            .await
            .unwrap();
        opened
            .log
            .erase("gone", None, Uuid::now_v7(), chrono::Utc::now())
            .await
            .unwrap();
        opened.close();
        let again = backend.open(&master).await;
        let read = again
            .log
            .open_all(
                again.store.read_all(0, 10).await.unwrap(),
                PersonalAccess::Plain,
            )
            .unwrap();
        let text = serde_json::to_string(&read).unwrap();
        assert!(text.contains("Kept Name"), "{}: {text}", backend.name());
        assert!(!text.contains("Gone Name"), "{}: {text}", backend.name());
        let keys = again.store.load_keys().await.unwrap();
        assert!(
            keys.iter()
                .any(|k| k.customer == "gone" && k.wrapped.is_none()),
            "{}: the erased customer's key is recorded as destroyed",
            backend.name()
        );
        assert_eq!(
            again.store.master_key_id().await.unwrap().as_deref(),
            Some(master.id().as_str()),
            "{}",
            backend.name()
        );
        again.close();
    }
}

// ---- Embedded store only ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn tampered_ciphertext_is_detected_not_decrypted_to_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let (store, log) = open(dir.path(), &master);
    let ev = parse_one(
        r#"{"type":"customer_registered","customer":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"name":"Ann","email":"a@b.c"}}"#,
        &mut Uuid::now_v7,
        false,
    )
    .unwrap();
    log.append(&[ev], rapport::log::AppendRules::per_stream())
        .await
        .unwrap();
    store.close();
    drop((store, log));
    let conn = rusqlite::Connection::open(dir.path().join("rapport.sqlite")).unwrap();
    let mut sealed: Vec<u8> = conn
        .query_row("SELECT sealed FROM events WHERE position = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    conn.execute(
        "UPDATE events SET sealed = ?1 WHERE position = 1",
        [&sealed],
    )
    .unwrap();
    drop(conn);
    let (store, log) = open(dir.path(), &master);
    let stored = store.read_all(0, 10).await.unwrap();
    // The event reads without its personal data, marked damaged (not erased), and
    // `rapport check` names it.
    let ev = log.open(stored[0].clone(), PersonalAccess::Plain).unwrap();
    assert_eq!(ev.personal, Some(rapport_events::PersonalView::Damaged));
    assert!(ev.data.get("name").is_none() && ev.data.get("email").is_none());
    assert!(matches!(
        log.verify(&stored[0]),
        rapport::log::Verified::Damaged(_)
    ));
    // Without access to personal data the event still reads (nothing is decrypted).
    assert!(log
        .open(stored[0].clone(), PersonalAccess::Withheld)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_cannot_open_a_store_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap();
    let err = SqliteStore::open(dir.path(), SqliteOptions::default())
        .err()
        .expect("locked");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

/// The export's fast path (copying stored bytes) must say exactly what `Log::open` says.
#[tokio::test(flavor = "multi_thread")]
async fn the_fast_export_path_equals_opening_each_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open(dir.path(), &MasterKey::generate());
    let mut rng = StdRng::seed_from_u64(11);
    let mut batch: Vec<Event> = (0..200).map(|_| event(&mut rng, 10)).collect();
    batch.push(
        parse_one(
            r#"{"type":"community_joined","customer":"c-1","occurred_at":"2026-03-01T10:00:00.123456Z","data":{"community":"g \"quoted\" 社区"},"metadata":{"source":"bot"}}"#,
            &mut Uuid::now_v7,
            false,
        )
        .unwrap(),
    );
    log.append(&batch, rapport::log::AppendRules::per_stream())
        .await
        .unwrap();
    log.erase("c-3", None, Uuid::now_v7(), chrono::Utc::now())
        .await
        .unwrap();
    for access in [
        PersonalAccess::Plain,
        PersonalAccess::Pseudonymised,
        PersonalAccess::Withheld,
    ] {
        let mut out = Vec::new();
        let n = tokio::task::block_in_place(|| {
            rapport::export::export(&store, &log, 0, u64::MAX, access, &mut out)
        })
        .unwrap();
        let opened = log
            .open_all(store.read_all(0, 10_000).await.unwrap(), access)
            .unwrap();
        assert_eq!(n as usize, opened.len());
        for (line, ev) in String::from_utf8(out).unwrap().lines().zip(&opened) {
            let exported: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                exported,
                serde_json::to_value(ev).unwrap(),
                "{access:?}: {line}"
            );
        }
    }
}

/// Regression: a rolled-back import had marked the data keys it carried as durable, so a
/// later append in the same process sealed personal data with a key that was never stored.
#[tokio::test(flavor = "multi_thread")]
async fn keys_carried_by_a_rolled_back_import_are_stored_by_the_next_append() {
    use rapport::import::{self, ImportOptions, Input};
    let dir = tempfile::tempdir().unwrap();
    let master = MasterKey::generate();
    let (store, log) = open(dir.path(), &master);
    let good = r#"{"type":"customer_registered","customer":"k-1","occurred_at":"2026-01-01T00:00:00Z","data":{"name":"Kept Key"}}"#;
    let bad = r#"{"type":"purchase","customer":"k-2","occurred_at":"2026-01-01T00:00:00Z","data":{"order_id":"o","amount":"-1","currency":"GBP"}}"#;
    // The invalid line comes in a later chunk, after the first chunk was written into the bulk.
    let mut text = String::from(good);
    text.push('\n');
    for i in 0..import::IMPORT_CHUNK_EVENTS {
        text.push_str(&format!(r#"{{"type":"purchase","customer":"p","occurred_at":"2026-01-01T00:00:00Z","data":{{"order_id":"o-{i}","amount":"1","currency":"GBP"}}}}"#));
        text.push('\n');
    }
    text.push_str(bad);
    let report = tokio::task::block_in_place(|| {
        import::import(
            &store,
            &log,
            &[Input::text("x", text)],
            ImportOptions {
                skip_invalid: false,
                progress: false,
            },
        )
    })
    .unwrap();
    assert_eq!(report.invalid, 1);
    assert_eq!(
        store.last_position(),
        0,
        "nothing of the import was written"
    );
    let ev = parse_one(good, &mut Uuid::now_v7, false).unwrap();
    log.append(&[ev], rapport::log::AppendRules::per_stream())
        .await
        .unwrap();
    store.close();
    drop((store, log));
    let (store, log) = open(dir.path(), &master);
    let read = log
        .open_all(store.read_all(0, 10).await.unwrap(), PersonalAccess::Plain)
        .unwrap();
    assert_eq!(read[0].data["name"], "Kept Key");
}

/// A file is imported in chunks as it is read (never whole): lines across chunk boundaries,
/// CRLF endings and blank lines come out as from text in memory and as a JSON array, and
/// an invalid line is reported by its line number in the file.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_streams_in_and_lands_like_text_in_memory_or_a_json_array() {
    use rapport::import::{self, ImportOptions, Input};
    let n = import::IMPORT_CHUNK_EVENTS * 2 + 17;
    let line = |i: usize| {
        format!(
            r#"{{"type":"purchase","customer":"c-{}","occurred_at":"2026-01-01T00:00:00Z","data":{{"order_id":"o-{i}","amount":"1.25","currency":"GBP"}}}}"#,
            i % 13
        )
    };
    let mut ndjson = String::new();
    for i in 0..n {
        ndjson.push_str(&line(i));
        ndjson.push_str(if i % 2 == 0 { "\r\n" } else { "\n" });
        if i % 1000 == 0 {
            ndjson.push_str("  \n");
        }
    }
    let array = format!("  [{}]", (0..n).map(line).collect::<Vec<_>>().join(",\n"));
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("events.ndjson");
    std::fs::write(&file, &ndjson).unwrap();
    let run = |input: Input| {
        let dir = tempfile::tempdir().unwrap();
        let (store, log) = open(dir.path(), &MasterKey::generate());
        let report = tokio::task::block_in_place(|| {
            import::import(
                &store,
                &log,
                &[input],
                ImportOptions {
                    skip_invalid: false,
                    progress: false,
                },
            )
        })
        .unwrap();
        let mut events = Vec::new();
        loop {
            let page = futures::executor::block_on(store.read_all(events.len() as u64, n)).unwrap();
            if page.is_empty() {
                break;
            }
            events.extend(
                page.into_iter()
                    .map(|s| (s.event.id, s.event.customer, s.event.data)),
            );
        }
        store.close();
        (
            report.events_read,
            report.events_written,
            report.errors,
            events,
        )
    };
    let streamed = run(Input::read(file.to_str().unwrap()).unwrap());
    assert_eq!((streamed.0, streamed.1), (n as u64, n as u64));
    assert!(streamed.2.is_empty(), "{:?}", streamed.2);
    let in_memory = run(Input::text("events.ndjson", ndjson.clone()));
    assert_eq!(
        streamed, in_memory,
        "ids come from the line's text, not its ending"
    );
    let as_array = run(Input::text("events.json", array));
    assert_eq!(as_array.3.len(), n);
    assert_eq!(
        as_array.3.iter().map(|e| &e.2).collect::<Vec<_>>(),
        streamed.3.iter().map(|e| &e.2).collect::<Vec<_>>()
    );

    // An invalid line in the second chunk: named by its line in the file, nothing written.
    let mut lines: Vec<&str> = ndjson.split_inclusive('\n').collect();
    let bad = import::IMPORT_CHUNK_EVENTS + 100;
    lines[bad] = "{\"type\":\"purchase\"}\n";
    std::fs::write(&file, lines.concat()).unwrap();
    let (read, written, errors, events) = run(Input::read(file.to_str().unwrap()).unwrap());
    assert_eq!((read, written, events.len()), (n as u64, 0, 0));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{}:{}: ", file.display(), bad + 1)),
        "{errors:?}"
    );
}

/// Defect 13 of the hardening issue: a full disk answered 500 "internal" with two error
/// lines per request. The store refuses the append as `Full` (nothing written), says it is
/// full until a write succeeds, and the API answers 507 with a clear message.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_appends_cleanly_and_says_so() {
    use axum::response::IntoResponse as _;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            dir.path(),
            SqliteOptions {
                max_bytes: Some(512 * 1024),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let text = "x".repeat(8_000);
    let mut full = None;
    for i in 0..500 {
        let ev = parse_one(
            &format!(r#"{{"type":"post","customer":"c-{i}","occurred_at":"2026-03-01T10:00:00Z","data":{{"post_id":"p-{i}","community":"g","text":"{text}"}}}}"#),
            &mut Uuid::now_v7,
            false,
        )
        .unwrap();
        let before = store.last_position();
        match log
            .append(&[ev], rapport::log::AppendRules::per_stream())
            .await
        {
            Ok(_) => assert!(!store.is_full()),
            Err(e) => {
                assert_eq!(store.last_position(), before, "nothing of it was written");
                full = Some(e);
                break;
            }
        }
    }
    let e = full.expect("the store filled up");
    assert!(matches!(e, StoreError::Full(_)), "{e}");
    assert!(store.is_full());
    assert!(log.store_full());
    let resp = rapport::http::error::ApiError::from(e).into_response();
    assert_eq!(resp.status().as_u16(), 507);
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "disk_full", "{body}");
    // What was written is still read whole.
    let last = store.last_position();
    assert_eq!(log.read_all(0, 1_000).await.unwrap().len() as u64, last);
}
