//! The service's read model: it resumes from its snapshot, and rebuilds (saying why)
//! when the snapshot was written by other projection code.

use std::sync::Arc;

use rapport::{
    crypto::{Keyring, MasterKey},
    log::Log,
    read_model::{ReadModel, ReadModelOptions},
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};
use rapport_events::parse_one;
use rapport_projections::{Projection, ReadState};

async fn wait(model: &ReadModel, position: u64) {
    assert!(
        model.wait_for(position).await,
        "the read model did not reach {position}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_model_resumes_from_its_snapshot_and_rebuilds_a_foreign_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let events: Vec<_> = (0..50)
        .map(|i| {
            let text = format!(
                r#"{{"type":"purchase","customer":"c-{}","occurred_at":"2026-03-{:02}T10:00:00Z","data":{{"order_id":"o-{i}","amount":"{i}.5","currency":"CNY"}}}}"#,
                i % 7,
                1 + i % 28
            );
            parse_one(&text, &mut uuid::Uuid::now_v7, false).unwrap()
        })
        .collect();
    log.append(&events, rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    let snapshots = dir.path().join("snapshots");
    let opts = ReadModelOptions {
        snapshots: Some(snapshots.clone()),
        snapshot_every_events: 10,
        compact_after_catch_up_events: 40,
        ..ReadModelOptions::service(None)
    };

    // A catch-up of 50 events (at least 40) is followed by one compaction, which keeps
    // the state as it was: the same bytes as a fold with no compaction.
    let first = ReadModel::spawn(log.clone(), opts.clone()).await;
    wait(&first, 50).await;
    // The compaction follows the publication of the catch-up's end.
    first
        .watch_compactions()
        .wait_for(|&n| n == 1)
        .await
        .unwrap();
    let built = first.state.read().await.snapshot_bytes();
    assert!(snapshots.join("read_state.snapshot").exists());
    let uncompacted = ReadModel::spawn(
        log.clone(),
        ReadModelOptions {
            compact_after_catch_up_events: u64::MAX,
            ..ReadModelOptions::service(None)
        },
    )
    .await;
    wait(&uncompacted, 50).await;
    assert_eq!(uncompacted.state.read().await.snapshot_bytes(), built);

    let resumed = ReadModel::spawn(log.clone(), opts.clone()).await;
    assert!(
        resumed.applied_position() > 0,
        "it started from the snapshot, not from zero"
    );
    wait(&resumed, 50).await;
    assert_eq!(resumed.state.read().await.snapshot_bytes(), built);

    // A snapshot from another projection version is not misread: it is rebuilt.
    let path = snapshots.join("read_state.snapshot");
    // The header is a JSON line; the state after it is partly binary.
    let bytes = std::fs::read(&path).unwrap();
    let split = bytes.iter().position(|b| *b == b'\n').unwrap();
    let header = std::str::from_utf8(&bytes[..split]).unwrap();
    let (current, older) = (
        format!("\"version\":{}", ReadState::VERSION),
        format!("\"version\":{}", ReadState::VERSION - 1),
    );
    assert!(header.contains(&current));
    let mut changed = header.replacen(&current, &older, 1).into_bytes();
    changed.extend(&bytes[split..]);
    std::fs::write(&path, changed).unwrap();
    let rebuilt = ReadModel::spawn(log.clone(), opts.clone()).await;
    assert_eq!(
        rebuilt.applied_position(),
        0,
        "rebuilt from the first event"
    );
    wait(&rebuilt, 50).await;
    assert_eq!(rebuilt.state.read().await.snapshot_bytes(), built);

    // Snapshots are compressed. One without `compression` in its header (the state right
    // after it, as written before compression) is not read, and neither is a compressed
    // one cut short: the state is rebuilt from the first event.
    let (header, state) = rapport::fold::snapshot::read_snapshot_file(&path).unwrap();
    assert_eq!(header.compression.as_deref(), Some("lz4"));
    let mut plain = format!(
        r#"{{"projection":"{}","version":{},"position":{}}}"#,
        ReadState::NAME,
        ReadState::VERSION,
        header.position
    )
    .into_bytes();
    plain.push(b'\n');
    plain.extend(&state);
    std::fs::write(&path, &plain).unwrap();
    let from_plain = ReadModel::spawn(log.clone(), opts.clone()).await;
    assert_eq!(
        from_plain.applied_position(),
        0,
        "rebuilt from the first event"
    );
    wait(&from_plain, 50).await;
    assert_eq!(from_plain.state.read().await.snapshot_bytes(), built);
    rapport::fold::snapshot::write_snapshot(
        &snapshots,
        header.position,
        header.anchors.clone(),
        &state,
    )
    .unwrap();
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() - 16]).unwrap();
    let from_cut = ReadModel::spawn(log.clone(), opts).await;
    assert_eq!(
        from_cut.applied_position(),
        0,
        "rebuilt from the first event"
    );
    wait(&from_cut, 50).await;
    assert_eq!(from_cut.state.read().await.snapshot_bytes(), built);

    // Past its catch-up (it applied a later event), the model under the threshold never
    // compacted.
    let later = parse_one(
        r#"{"type":"purchase","customer":"c-1","occurred_at":"2026-03-29T10:00:00Z","data":{"order_id":"o-late","amount":"1","currency":"CNY"}}"#,
        &mut uuid::Uuid::now_v7,
        false,
    )
    .unwrap();
    log.append(&[later], rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    wait(&uncompacted, 51).await;
    assert_eq!(*uncompacted.watch_compactions().borrow(), 0);
}

/// A log of `n` purchases whose amounts start at `base`, in its own store under `dir`.
async fn purchases_log(dir: &std::path::Path, n: usize, base: usize) -> Log {
    let store = Arc::new(SqliteStore::open(dir, SqliteOptions::default()).unwrap());
    let log = Log::new(
        store as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let events: Vec<_> = (0..n)
        .map(|i| {
            let text = format!(
                r#"{{"type":"purchase","customer":"c-{}","occurred_at":"2026-03-{:02}T10:00:00Z","data":{{"order_id":"o-{i}","amount":"{}.5","currency":"CNY"}}}}"#,
                i % 7,
                1 + i % 28,
                base + i
            );
            parse_one(&text, &mut uuid::Uuid::now_v7, false).unwrap()
        })
        .collect();
    log.append(&events, rapport::log::AppendRules::all_or_nothing())
        .await
        .unwrap();
    log
}

/// Defect 9 of the hardening issue: a snapshot folded from another history of the log (an
/// older store file restored and different events imported since, a lost WAL) was
/// trusted because it was not ahead of the log. It names the events it was folded from,
/// and one that does not match the log is rebuilt.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_from_a_different_history_is_rebuilt_not_trusted() {
    let first = tempfile::tempdir().unwrap();
    let log = purchases_log(first.path(), 60, 1).await;
    let snapshots = first.path().join("snapshots");
    let opts = ReadModelOptions {
        snapshots: Some(snapshots.clone()),
        snapshot_every_events: 10,
        ..ReadModelOptions::service(None)
    };
    let model = ReadModel::spawn(log.clone(), opts.clone()).await;
    wait(&model, 60).await;
    let path = rapport::fold::snapshot::snapshot_path(&snapshots);
    let (header, _) = rapport::fold::snapshot::read_snapshot_file(&path).unwrap();
    assert_eq!(header.position, 60);
    assert_eq!(
        header.anchors.iter().map(|a| a.0).collect::<Vec<_>>(),
        [15, 30, 45, 60]
    );
    // The same store resumes from it.
    let resumed = ReadModel::spawn(log.clone(), opts.clone()).await;
    assert_eq!(
        resumed.applied_position(),
        60,
        "resumed from its own snapshot"
    );

    // Another history of as many events (other amounts), with the first one's snapshots.
    let second = tempfile::tempdir().unwrap();
    let other = purchases_log(second.path(), 60, 1_000).await;
    let copied = second.path().join("snapshots");
    std::fs::create_dir_all(&copied).unwrap();
    std::fs::copy(&path, rapport::fold::snapshot::snapshot_path(&copied)).unwrap();
    let opts = ReadModelOptions {
        snapshots: Some(copied),
        ..opts
    };
    let rebuilt = ReadModel::spawn(other.clone(), opts).await;
    assert_eq!(
        rebuilt.applied_position(),
        0,
        "rebuilt from the first event"
    );
    wait(&rebuilt, 60).await;
    let mut fresh = ReadState::new(Default::default(), Default::default());
    for e in other.read_all(0, 100).await.unwrap() {
        fresh.apply(&other.open_fold(e).unwrap());
    }
    assert_eq!(
        rebuilt.state.read().await.snapshot_bytes(),
        fresh.snapshot_bytes(),
        "the other history's own state, not the copied snapshot's"
    );
}
