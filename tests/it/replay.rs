//! Replay is deterministic: the live read model, a replay from the first event, a fold
//! resumed from a (history) snapshot, and `rapport replay --verify` all agree byte for
//! byte, on seeded random logs that exercise every projection (segments defined midway,
//! complaints spreading through communities, echoes, staff actions, identifiers, merges
//! and unmerges). Time travel gives the
//! fold of exactly the events asked for.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rapport::{
    commands::replay::replay,
    crypto::{Keyring, MasterKey},
    fold,
    log::Log,
    read_model::{ReadModel, ReadModelOptions},
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};
use rapport_events::{parse_one, Event};
use rapport_projections::{warnings::WarningConfig, LifecycleConfig, ReadState};
use serde_json::json;

const TEXTS: [&str; 3] = ["茶叶有霉味", "the tea smells of mould", "mouldy tea again"];

/// A seeded log of `n` events in random batches, with late-arriving events.
fn random_events(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let c = format!("c-{}", rng.gen_range(0..25));
        let other = format!("c-{}", rng.gen_range(0..25));
        let at = t0 + Duration::hours(i as i64 * 3) - Duration::hours(rng.gen_range(0..30));
        let at = rapport_events::envelope::format_time(&at);
        let ev = match rng.gen_range(0..14) {
            _ if i == n / 3 || i == n / 2 => {
                json!({"type": "segment_defined", "subject": format!("s-{i}"), "occurred_at": at, "data": {"name": "lapsed", "rule": {"all": [{"field": "days_since_last_purchase", "op": ">=", "value": rng.gen_range(2..20)}, {"field": "orders", "op": ">=", "value": 1}]}}})
            }
            0..=2 => {
                json!({"type": "purchase", "customer": c, "occurred_at": at, "data": {"order_id": format!("o-{i}"), "amount": format!("{}.{:02}", rng.gen_range(1..300), rng.gen_range(0..100)), "currency": "CNY"}})
            }
            3 => {
                json!({"type": "community_joined", "customer": c, "occurred_at": at, "data": {"community": format!("g-{}", rng.gen_range(0..3))}})
            }
            4 => {
                json!({"type": "referral", "customer": c, "occurred_at": at, "data": {"referee": other}})
            }
            5 | 6 => {
                json!({"type": "complaint", "customer": c, "occurred_at": at, "data": {"complaint_id": format!("k-{i}"), "about": {"batch": format!("B{}", rng.gen_range(0..3))}, "text": TEXTS[rng.gen_range(0..3)]}})
            }
            7 => {
                json!({"type": "post", "customer": c, "occurred_at": at, "data": {"post_id": format!("p-{i}"), "community": "g-0", "text": "me too", "echoes": format!("k-{}", rng.gen_range(0..i.max(1)))}})
            }
            8 => {
                json!({"type": "contacted", "customer": c, "occurred_at": at, "data": {"channel": "sms", "campaign": "spring"}})
            }
            // Identity: few phone numbers among 25 customers (merges, limits, ambiguity),
            // member numbers, and staff's merges and unmerges.
            11 => {
                json!({"type": "identifier_added", "customer": c, "occurred_at": at, "data": {"kind": "phone", "value": format!("+861390000000{}", rng.gen_range(0..6))}})
            }
            12 => {
                json!({"type": "identifier_added", "customer": c, "occurred_at": at, "data": {"kind": "member", "value": format!("M{}", rng.gen_range(0..12))}})
            }
            13 if c != other => {
                let ty = if rng.gen_bool(0.6) {
                    "customers_merged"
                } else {
                    "customers_unmerged"
                };
                let field = if ty == "customers_merged" {
                    "merged"
                } else {
                    "other"
                };
                json!({"type": ty, "customer": c, "occurred_at": at, "data": {field: other, "reason": "seeded"}})
            }
            _ => {
                json!({"type": "refund", "customer": c, "occurred_at": at, "data": {"order_id": "o-x", "amount": "1.00"}})
            }
        };
        out.push(parse_one(&ev.to_string(), &mut uuid::Uuid::now_v7, true).unwrap());
    }
    out
}

async fn fold_all(log: &Log, until: u64) -> ReadState {
    fold::fold(
        log,
        ReadState::new(LifecycleConfig::default(), WarningConfig::default()),
        until,
        |_| {},
    )
    .await
    .unwrap()
}

/// What `valid_at = t` at position `p` means, folded the plain way: every event up to `p`
/// that occurred by `t`, in business order (lenses first, then by `occurred_at`, then by
/// position), and the position `p`.
async fn valid_at_by_definition(log: &Log, p: u64, t: DateTime<Utc>) -> ReadState {
    let mut events = Vec::new();
    for s in log.read_all(0, p as usize).await.unwrap() {
        let ev = log.open_fold(s).unwrap();
        let key = rapport::fold::valid_time::Key::of(ev.event_type, ev.occurred_at, ev.position);
        if key <= rapport::fold::valid_time::Key::last_by(t) {
            events.push((key, ev));
        }
    }
    events.sort_by_key(|(k, _)| *k);
    let mut expected = ReadState::new(LifecycleConfig::default(), WarningConfig::default());
    for (_, ev) in &events {
        rapport_projections::Projection::apply(&mut expected, ev);
    }
    expected.customers.position = p;
    expected
}

#[tokio::test(flavor = "multi_thread")]
async fn live_replayed_resumed_and_verified_states_are_byte_identical() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
        let master = MasterKey::generate();
        let master_text = master.to_text();
        let log = Log::new(
            store.clone() as Arc<dyn EventStore>,
            Arc::new(Keyring::load(master, vec![]).unwrap()),
        );
        // The live read model follows the appends, so it writes snapshots (and keeps
        // history) along the way.
        let snapshots = dir.path().join("snapshots");
        let opts = ReadModelOptions {
            snapshots: Some(snapshots.clone()),
            snapshot_every_events: 37,
            history_every_events: 100,
            ..ReadModelOptions::service(None)
        };
        let live = ReadModel::spawn(log.clone(), opts.clone()).await;
        let events = random_events(seed, 600);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut i = 0;
        while i < events.len() {
            let n = rng.gen_range(1..40).min(events.len() - i);
            log.append(
                &events[i..i + n],
                rapport::log::AppendRules::all_or_nothing(),
            )
            .await
            .unwrap();
            i += n;
        }
        let last = store.last_position();
        assert!(
            live.wait_for(last).await,
            "seed {seed}: the read model caught up"
        );
        let live_bytes = live.state.read().await.snapshot_bytes();
        let replayed = fold_all(&log, last).await;
        assert_eq!(
            replayed.snapshot_bytes(),
            live_bytes,
            "seed {seed}: replay from zero"
        );
        assert!(
            replayed.segments.last_seq() > 0,
            "seed {seed}: segments changed membership"
        );
        assert!(
            replayed.warnings.alerts().next().is_some(),
            "seed {seed}: alerts were raised"
        );

        // Resumed from the on-disk snapshot.
        let resumed = ReadModel::spawn(log.clone(), opts.clone()).await;
        assert!(
            resumed.applied_position() > 0,
            "seed {seed}: resumed from a snapshot"
        );
        assert!(resumed.wait_for(last).await);
        assert_eq!(
            resumed.state.read().await.snapshot_bytes(),
            live_bytes,
            "seed {seed}: resumed"
        );

        // Time travel: any position equals the fold of exactly the events up to it,
        // whether it starts from a history snapshot or not.
        for _ in 0..4 {
            let p = rng.gen_range(1..=last);
            let past = live.time_travel.state_at(p, None).await.unwrap();
            assert_eq!(
                past.snapshot_bytes(),
                fold_all(&log, p).await.snapshot_bytes(),
                "seed {seed}: as_of_position {p}"
            );
        }
        assert!(
            fold::history::history_snapshot_before(&snapshots, last).is_some(),
            "history snapshots were kept"
        );

        // valid_at: only events that occurred by then, late arrivals included, folded in
        // business order; without a build (from the first event), from a build, and from a
        // build with events recorded after it.
        let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
        let times = [10, 30, 50, 62, 80].map(|days| t0 + Duration::days(days));
        let check = |p: u64, t: DateTime<Utc>, what: &'static str| {
            let (live, log) = (live.clone(), log.clone());
            async move {
                let read_before = live.time_travel.events_read();
                let valid = live.time_travel.state_at(p, Some(t)).await.unwrap();
                let read = live.time_travel.events_read() - read_before;
                // Digests per projection, so a failure names the projection that differs.
                assert_eq!(
                    fold::digests(&valid),
                    fold::digests(&valid_at_by_definition(&log, p, t).await),
                    "seed {seed}: valid_at {t} at position {p}, {what}"
                );
                assert_eq!(valid.position(), p);
                read
            }
        };
        for t in times {
            check(last, t, "no build").await;
            // How a store with slow reads by position (KurrentDB) answers: in memory.
            let in_memory = rapport::fold::valid_time::fold_in_memory(
                &log,
                ReadState::new(LifecycleConfig::default(), WarningConfig::default()),
                last,
                t,
                |_| {},
            )
            .await
            .unwrap();
            let mut expected = valid_at_by_definition(&log, last, t).await;
            expected.customers.position = in_memory.position();
            assert_eq!(
                fold::digests(&in_memory),
                fold::digests(&expected),
                "seed {seed}: valid_at {t} folded in memory"
            );
        }
        const EVERY: u64 = 50;
        let build = rapport::fold::valid_time::build(
            &log,
            &snapshots,
            last,
            EVERY,
            LifecycleConfig::default(),
            WarningConfig::default(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(build.snapshots() as u64, last.div_ceil(EVERY));
        for t in times {
            let read = check(last, t, "from a build").await;
            assert!(
                read <= EVERY,
                "seed {seed}: valid_at {t} on a fresh build folded {read} events, at most {EVERY} expected"
            );
        }
        check(last * 2 / 3, times[1], "before the build").await;
        // A build folded with other thresholds is not used; a damaged snapshot of it is not
        // trusted.
        let other = LifecycleConfig {
            dormant_days: LifecycleConfig::default().dormant_days + 1,
            ..LifecycleConfig::default()
        };
        assert!(
            rapport::fold::valid_time::builds(&snapshots, &other, &WarningConfig::default())
                .is_empty()
        );
        let (build_dir, _) = rapport::fold::valid_time::builds(
            &snapshots,
            &LifecycleConfig::default(),
            &WarningConfig::default(),
        )
        .remove(0);
        let damaged = build_dir.join("4.snapshot");
        let intact = std::fs::read(&damaged).unwrap();
        std::fs::write(&damaged, &intact[..intact.len() / 2]).unwrap();
        check(last, times[1], "a damaged build").await;
        std::fs::write(&damaged, intact).unwrap();
        let slices: Vec<_> = (0..build.snapshots())
            .map(|i| build_dir.join(format!("{i}.keys")))
            .collect();
        for s in &slices {
            std::fs::rename(s, s.with_extension("away")).unwrap();
        }
        check(last, times[1], "a build missing its slices").await;
        for s in &slices {
            std::fs::rename(s.with_extension("away"), s).unwrap();
        }
        // Recorded after the build: on time (after every event so far), then a late one
        // (it occurred on day 60, two weeks before the log's end), then a segment
        // definition (a lens, before every other event).
        let on_time: Vec<Event> = (0..30)
            .map(|i| {
                parse_one(
                    &json!({"type": "purchase", "customer": format!("c-{}", i % 7), "occurred_at": format!("2026-03-20T{:02}:00:00Z", i % 24), "data": {"order_id": format!("o-tail-{i}"), "amount": "5.00", "currency": "CNY"}}).to_string(),
                    &mut uuid::Uuid::now_v7,
                    true,
                )
                .unwrap()
            })
            .collect();
        log.append(&on_time, rapport::log::AppendRules::all_or_nothing())
            .await
            .unwrap();
        let late = parse_one(
            r#"{"type":"purchase","customer":"c-3","occurred_at":"2026-03-02T00:00:00Z","data":{"order_id":"o-late","amount":"9.99","currency":"CNY"}}"#,
            &mut uuid::Uuid::now_v7,
            true,
        )
        .unwrap();
        log.append(&[late], rapport::log::AppendRules::all_or_nothing())
            .await
            .unwrap();
        let tail_end = store.last_position();
        for t in times {
            check(tail_end, t, "a build and events after it").await;
        }
        // The next build starts from the previous one: it folds the events from the late
        // one on (in business order), not the whole log. What a killed build left behind
        // goes.
        let left_behind = rapport::fold::valid_time::builds_dir(&snapshots).join("building-7");
        std::fs::create_dir_all(&left_behind).unwrap();
        let mut folded = 0;
        let build = rapport::fold::valid_time::build(
            &log,
            &snapshots,
            tail_end,
            EVERY,
            LifecycleConfig::default(),
            WarningConfig::default(),
            |n| folded += n,
        )
        .await
        .unwrap();
        assert_eq!(build.until, tail_end);
        assert!(!left_behind.exists());
        assert!(
            folded > 0 && folded < tail_end / 2,
            "seed {seed}: the second build folded {folded} of {tail_end} events"
        );
        for t in times {
            check(tail_end, t, "a build on a build").await;
        }
        let lens = parse_one(
            r#"{"type":"segment_defined","subject":"s-tail","occurred_at":"2027-01-01T00:00:00Z","data":{"name":"big","rule":{"field":"orders","op":">=","value":3}}}"#,
            &mut uuid::Uuid::now_v7,
            true,
        )
        .unwrap();
        log.append(&[lens], rapport::log::AppendRules::all_or_nothing())
            .await
            .unwrap();
        let tail_end = store.last_position();
        assert!(live.wait_for(tail_end).await);
        for t in times {
            check(tail_end, t, "a build, then a lens").await;
        }

        // `rapport replay --verify` against the live snapshot: same, then tampered.
        drop(live);
        drop(resumed);
        let key = || MasterKey::from_text(&master_text).unwrap();
        replay(dir.path(), key(), &Default::default(), &[], true, false)
            .await
            .unwrap();
        let path = snapshots.join("read_state.snapshot");
        // The warnings are the JSON part at the end of the (partly binary) state.
        let (header, bytes) = rapport::fold::snapshot::read_snapshot_file(&path).unwrap();
        let (from, to) = (&b"\"level\":\"watch\""[..], &b"\"level\":\"critical\""[..]);
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or_else(|| {
                panic!("seed {seed}: the snapshot holds a watch alert to tamper with")
            });
        let mut tampered = bytes[..at].to_vec();
        tampered.extend(to);
        tampered.extend(&bytes[at + from.len()..]);
        rapport::fold::snapshot::write_snapshot(
            &snapshots,
            header.position,
            header.anchors.clone(),
            &tampered,
        )
        .unwrap();
        let err = replay(dir.path(), key(), &Default::default(), &[], true, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("warnings"), "{err}");
        assert!(!err.to_string().contains("customers"), "{err}");
    }
}

/// An empty embedded store in `dir` and its log, under a new master key.
fn new_log(dir: &std::path::Path) -> (Arc<SqliteStore>, Log) {
    let store = Arc::new(SqliteStore::open(dir, SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    (store, log)
}

/// A schema change that has not happened yet, as a test chain: `community_joined` v2
/// prefixes community ids with the shop, and `complaint` v2 calls its (personal) `text`
/// `body`.
fn a_future_schema() -> rapport_events::Upcasters {
    use rapport_events::{upcast::Upcaster, EventType};
    fn shop_prefix(d: &mut serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
        let c = d
            .get("community")
            .and_then(|c| c.as_str())
            .ok_or("no community")?;
        let prefixed = format!("shop-1/{c}");
        d.insert("community".into(), prefixed.into());
        Ok(())
    }
    fn text_to_body(d: &mut serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
        // Personal: absent when withheld or erased.
        if let Some(t) = d.remove("text") {
            d.insert("body".into(), t);
        }
        Ok(())
    }
    rapport_events::Upcasters::new(vec![
        Upcaster {
            event_type: EventType::CommunityJoined,
            from: 1,
            apply: shop_prefix,
        },
        Upcaster {
            event_type: EventType::Complaint,
            from: 1,
            apply: text_to_body,
        },
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn events_written_before_a_schema_change_are_upcast_on_read_and_replayed_in_the_new_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = new_log(dir.path());
    let events = [
        json!({"type": "community_joined", "customer": "c-1", "occurred_at": "2026-03-01T10:00:00Z", "data": {"community": "g-0"}}),
        json!({"type": "complaint", "customer": "c-1", "occurred_at": "2026-03-02T10:00:00Z", "data": {"complaint_id": "k-1", "about": {"batch": "B1"}, "text": "mouldy tea"}}),
    ]
    .map(|e| parse_one(&e.to_string(), &mut uuid::Uuid::now_v7, true).unwrap());
    log.append(&events, rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    let later = log.clone().with_upcasters(a_future_schema());

    let read = |access| {
        let later = later.clone();
        let store = store.clone();
        async move {
            let stored = store.read_all(0, 10).await.unwrap();
            later.open_all(stored, access).unwrap()
        }
    };
    // Decrypted first, then upcast: the personal text moved to `body`.
    let plain = read(rapport::log::PersonalAccess::Plain).await;
    assert_eq!(plain[0].version, 2);
    assert_eq!(plain[0].data["community"], "shop-1/g-0");
    assert_eq!(plain[1].version, 2);
    assert_eq!(plain[1].data["body"], "mouldy tea");
    assert!(plain[1].data.get("text").is_none());
    // Withheld: nothing personal to move, and no error for its absence.
    let withheld = read(rapport::log::PersonalAccess::Withheld).await;
    assert_eq!(withheld[1].version, 2);
    assert!(withheld[1].data.get("body").is_none() && withheld[1].data.get("text").is_none());
    // The code today reads the same events as they were written.
    let today = log
        .open_all(
            store.read_all(0, 10).await.unwrap(),
            rapport::log::PersonalAccess::Plain,
        )
        .unwrap();
    assert_eq!(
        (today[0].version, &today[1].data["text"]),
        (1, &json!("mouldy tea"))
    );

    // A replay reads through the chain: projections see the new shape.
    let replayed = fold_all(&later, store.last_position()).await;
    let p = replayed.customers.get("c-1").unwrap();
    assert_eq!(replayed.customers.names_of(&p.communities), ["shop-1/g-0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_newer_than_the_code_fails_the_read_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = new_log(dir.path());
    let ev = json!({"type": "community_joined", "customer": "c-1", "occurred_at": "2026-03-01T10:00:00Z", "data": {"community": "g-0"}});
    log.append(
        &[parse_one(&ev.to_string(), &mut uuid::Uuid::now_v7, true).unwrap()],
        rapport::log::AppendRules::all_or_nothing(),
    )
    .await
    .unwrap();
    let mut stored = store.read_all(0, 1).await.unwrap();
    stored[0].event.version = 2;
    let err = log
        .open(stored.remove(0), rapport::log::PersonalAccess::Plain)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("version 2 of `community_joined` is newer than this code reads"),
        "{err}"
    );
}

/// The early-warning detector reads complaint text from the store while it exists (the
/// one personal field a fold decrypts), and a fold after erasure treats it as absent.
#[tokio::test(flavor = "multi_thread")]
async fn folds_read_complaint_text_until_it_is_erased() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = new_log(dir.path());
    let mut events = Vec::new();
    for (i, (who, text)) in [
        ("a", "这批茶叶有一股霉味，喝了肚子不舒服"),
        ("b", "茶叶有霉味，喝了以后肚子不舒服"),
        ("c", "我买的茶叶也有霉味，肚子不舒服"),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(json!({"type": "community_joined", "customer": who, "occurred_at": "2026-03-01T10:00:00Z", "data": {"community": "g-1"}}));
        // Each about another store: only the text ties them together.
        events.push(json!({"type": "complaint", "customer": who, "occurred_at": format!("2026-03-02T1{i}:00:00Z"),
            "data": {"complaint_id": format!("k-{who}"), "about": {"store": format!("s-{i}")}, "text": text}}));
    }
    let events: Vec<Event> = events
        .iter()
        .map(|e| parse_one(&e.to_string(), &mut uuid::Uuid::now_v7, true).unwrap())
        .collect();
    log.append(&events, rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    let text_alerts = |state: &ReadState| {
        state
            .warnings
            .alerts()
            .filter(|a| a.keys.iter().any(|k| k.starts_with("text:")))
            .count()
    };

    let state = fold_all(&log, store.last_position()).await;
    assert_eq!(text_alerts(&state), 1, "similar texts form one alert");

    let now = DateTime::parse_from_rfc3339("2026-03-05T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    for who in ["b", "c"] {
        log.erase(who, None, uuid::Uuid::now_v7(), now)
            .await
            .unwrap();
    }
    let state = fold_all(&log, store.last_position()).await;
    assert_eq!(text_alerts(&state), 0, "erased texts tie no one");
}

/// What a `valid_at` state says about the business, leaving out log positions (which
/// depend on the order events were recorded in): per customer its orders, revenue, first
/// and last activity and referees; segment members; alerts.
fn business_view(s: &ReadState, t: DateTime<Utc>) -> String {
    let mut out = Vec::new();
    for p in s.customers.sorted() {
        let referees: Vec<&str> = p
            .referees
            .iter()
            .filter_map(|n| s.customers.by_number(*n).map(|r| r.id.as_str()))
            .collect();
        out.push(format!(
            "{} orders {} revenue {:?} seen {:?}..{:?} referees {referees:?}",
            p.id,
            p.orders_until(t),
            p.net_revenue(t),
            p.first_seen,
            p.last_seen
        ));
    }
    out.push(format!("lapsed {:?}", s.segments.members("lapsed")));
    for a in s.warnings.alerts() {
        out.push(format!(
            "alert {} {:?} {:?} {:?} {:?} {:?} raised at {}",
            a.id, a.kind, a.level, a.keys, a.complaints, a.customers, a.raised_at
        ));
    }
    out.join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_at_answers_do_not_depend_on_the_order_events_were_recorded_in() {
    let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    for seed in [7u64, 8, 9] {
        let mut rng = StdRng::seed_from_u64(seed);
        // Distinct business times (a tie would be broken by position, which differs).
        let mut minutes: Vec<i64> = (0..400).map(|i| i * 97).collect();
        rand::seq::SliceRandom::shuffle(minutes.as_mut_slice(), &mut rng);
        let mut events: Vec<Event> = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let c = format!("c-{}", rng.gen_range(0..20));
                let at = rapport_events::envelope::format_time(&(t0 + Duration::minutes(*m)));
                let ev = match rng.gen_range(0..6) {
                    0 | 1 => {
                        json!({"type": "purchase", "customer": c, "occurred_at": at, "data": {"order_id": format!("o-{i}"), "amount": format!("{}.50", rng.gen_range(1..90)), "currency": "CNY"}})
                    }
                    2 => {
                        json!({"type": "community_joined", "customer": c, "occurred_at": at, "data": {"community": format!("g-{}", rng.gen_range(0..2))}})
                    }
                    3 => {
                        json!({"type": "referral", "customer": c, "occurred_at": at, "data": {"referee": format!("c-{}", rng.gen_range(0..20))}})
                    }
                    _ => {
                        json!({"type": "complaint", "customer": c, "occurred_at": at, "data": {"complaint_id": format!("k-{i}"), "about": {"batch": "B1"}, "text": TEXTS[rng.gen_range(0..3)]}})
                    }
                };
                parse_one(&ev.to_string(), &mut uuid::Uuid::now_v7, true).unwrap()
            })
            .collect();
        events.push(parse_one(&json!({"type": "segment_defined", "subject": "lapsed", "occurred_at": "2027-01-01T00:00:00Z", "data": {"name": "lapsed", "rule": {"field": "days_since_last_purchase", "op": ">=", "value": 5}}}).to_string(), &mut uuid::Uuid::now_v7, true).unwrap());
        let mut shuffled = events.clone();
        rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut rng);
        let mut views = Vec::new();
        for order in [&events, &shuffled] {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
            let log = Log::new(
                store.clone() as Arc<dyn EventStore>,
                Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
            );
            for batch in order.chunks(17) {
                log.append(batch, rapport::log::AppendRules::all_or_nothing())
                    .await
                    .unwrap();
            }
            let tt = fold::time_travel::TimeTravel::new(
                log.clone(),
                None,
                LifecycleConfig::default(),
                WarningConfig::default(),
            );
            let mut view = Vec::new();
            for days in [5, 14, 30] {
                let t = t0 + Duration::days(days);
                let s = tt.state_at(store.last_position(), Some(t)).await.unwrap();
                view.push(business_view(&s, t));
            }
            views.push(view);
        }
        assert!(views[0][2].contains("alert"), "seed {seed}: alerts raised");
        for (a, b) in views[0].iter().zip(&views[1]) {
            assert_eq!(a, b, "seed {seed}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parquet_export_in_many_batches_keeps_every_event_in_log_order() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    for batch in random_events(11, 500).chunks(50) {
        log.append(batch, rapport::log::AppendRules::all_or_nothing())
            .await
            .unwrap();
    }
    let mut out = Vec::new();
    // 500 events in batches of 7: 72 record batches through the writer's queue.
    let n = tokio::task::block_in_place(|| {
        rapport::export::events_parquet_in_batches(
            &store,
            &log,
            0,
            u64::MAX,
            rapport::log::PersonalAccess::Withheld,
            &mut out,
            7,
        )
    })
    .unwrap();
    assert_eq!(n, 500);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(out))
        .unwrap()
        .build()
        .unwrap();
    let mut positions = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::UInt64Type>(
            batch.column(0),
        );
        positions.extend(col.values().iter().copied());
    }
    assert_eq!(positions, (1..=500).collect::<Vec<u64>>());
}
