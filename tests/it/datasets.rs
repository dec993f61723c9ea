//! The public datasets through Rapport's importers. The full UCI Online Retail data is
//! checked against an independent computation of the same definitions by another engine
//! (SQL in SQLite over the raw CSV rows). Needs `../shared/data` (or `RAPPORT_SHARED_DATA`);
//! says loudly when it is absent.

use std::{path::PathBuf, sync::Arc};

use rapport::{
    crypto::{Keyring, MasterKey},
    import::{self, ImportOptions, Input},
    log::{Log, PersonalAccess},
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};
use rapport_projections::cohorts;

fn shared(sub: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("RAPPORT_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")));
    let p = dir.join(sub);
    if p.exists() {
        Some(p)
    } else {
        skipped!(
            "\n*** SKIPPED: {} not found (set RAPPORT_SHARED_DATA to the shared/data folder) ***\n",
            p.display()
        );
        None
    }
}

fn data_dir() -> Option<PathBuf> {
    shared("online-retail/by-day")
}

async fn import_text(
    text: String,
) -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    Log,
    rapport::import::ImportReport,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let report = tokio::task::block_in_place(|| {
        import::import(
            &store,
            &log,
            &[Input::text("data", text)],
            ImportOptions {
                skip_invalid: false,
                progress: false,
            },
        )
    })
    .unwrap();
    assert_eq!(report.invalid, 0, "{:?}", report.errors);
    (dir, store, log, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn olist_low_scored_problem_reviews_become_complaints() {
    let Some(file) = shared("olist/olist_classified_public_dataset.csv") else {
        return;
    };
    let (text, conv) = rapport::importers::olist::convert(&[file]).unwrap();
    assert_eq!(conv.rows, 3584);
    assert_eq!(conv.skipped["reviews scored 3 to 5 (not complaints)"], 2501);
    let (_dir, store, log, report) = import_text(text).await;
    assert_eq!(report.events_written, conv.events);
    let events = log
        .open_all(
            store.read_all(0, 10_000).await.unwrap(),
            PersonalAccess::Plain,
        )
        .unwrap();
    let complaints: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == rapport_events::EventType::Complaint)
        .collect();
    assert_eq!(complaints.len(), 3584 - 2501 - 90);
    assert!(complaints.iter().all(|c| c.data["category"]
        .as_str()
        .unwrap()
        .starts_with("problemas")));
    assert!(complaints
        .iter()
        .all(|c| matches!(c.data["severity"].as_u64(), Some(4 | 5))));
}

#[tokio::test(flavor = "multi_thread")]
async fn cfpb_files_are_read_as_they_are_one_customer_per_complaint() {
    let Some(dir) = shared("cfpb") else { return };
    let files = [
        dir.join("complaints.csv"),
        dir.join("complaints_sample.csv"),
    ];
    let (text, conv) = rapport::importers::cfpb::convert(&files).unwrap();
    assert_eq!(conv.rows, 20_000 + 6_623);
    assert_eq!(conv.skipped["lines before the CSV header (tool output)"], 2);
    let (_dir, store, log, report) = import_text(text).await;
    assert_eq!(report.events_written, 26_623);
    let first_sample = log
        .open(
            store.read_all(20_000, 1).await.unwrap().remove(0),
            PersonalAccess::Plain,
        )
        .unwrap();
    assert_eq!(first_sample.data["complaint_id"], "cfpb-3571115");
    assert_eq!(
        first_sample.data["about"]["store"],
        "TRANSUNION INTERMEDIATE HOLDINGS, INC."
    );
    assert_eq!(
        first_sample.data["text"],
        "Incorrect information on your report: Information belongs to someone else"
    );
    assert_eq!(first_sample.customer, "cfpb-3571115");
}

#[tokio::test(flavor = "multi_thread")]
async fn online_retail_cohorts_and_customer_count_match_an_independent_sql_computation() {
    let Some(by_day) = data_dir() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&by_day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 305);

    // Rapport: convert, import, fold.
    let (text, conv) = rapport::importers::online_retail::convert(&files).unwrap();
    assert_eq!(conv.rows, 541_909);
    assert_eq!(conv.skipped["rows without a CustomerID"], 135_080);
    let (_dir, _store, log, _) = import_text(text).await;
    let customers = rapport::report::fold(&log).await.unwrap();
    let as_of = chrono::DateTime::parse_from_rfc3339("2011-12-10T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ours = cohorts::monthly(&customers, as_of, cohorts::MONTHS_DEFAULT).cohorts;
    let buyers: usize = ours.iter().map(|c| c.customers).sum();

    // Independent: the raw rows in SQLite, the same definitions in SQL.
    let db = rusqlite::Connection::open_in_memory().unwrap();
    db.execute_batch(
        "CREATE TABLE r (invoice TEXT, quantity INTEGER, price TEXT, date TEXT, customer TEXT)",
    )
    .unwrap();
    {
        let mut ins = db
            .prepare("INSERT INTO r VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for f in &files {
            let mut rdr = csv::Reader::from_path(f).unwrap();
            for rec in rdr.records() {
                let rec = rec.unwrap();
                ins.execute(rusqlite::params![
                    &rec[0],
                    rec[3].parse::<i64>().unwrap(),
                    &rec[5],
                    &rec[4],
                    rec[6].trim()
                ])
                .unwrap();
            }
        }
    }
    // Prices have at most 3 decimals: sums in thousandths are exact integers.
    let sql = "
        WITH inv AS (
            SELECT invoice, customer, min(date) AS date, sum(quantity * CAST(round(CAST(price AS REAL) * 1000) AS INTEGER)) AS milli
            FROM r WHERE customer <> '' AND invoice NOT LIKE 'C%' GROUP BY invoice, customer),
        p AS (SELECT customer, substr(date, 1, 7) AS month FROM inv WHERE milli > 0),
        firsts AS (SELECT customer, min(month) AS cohort FROM p GROUP BY customer)
        SELECT f.cohort, p.month, count(DISTINCT p.customer) FROM p JOIN firsts f USING (customer)
        GROUP BY f.cohort, p.month ORDER BY f.cohort, p.month";
    let mut stmt = db.prepare(sql).unwrap();
    let theirs: Vec<(String, String, usize)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as usize))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let their_buyers: usize = db
        .query_row("SELECT count(DISTINCT customer) FROM (SELECT invoice, customer, sum(quantity * CAST(price AS REAL)) AS v FROM r WHERE customer <> '' AND invoice NOT LIKE 'C%' GROUP BY invoice, customer) WHERE v > 0", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize;
    let all_ids: usize = db
        .query_row(
            "SELECT count(DISTINCT customer) FROM r WHERE customer <> ''",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;

    assert_eq!(all_ids, 4372, "distinct CustomerIDs, as SOURCES.md says");
    assert_eq!(
        customers.len(),
        all_ids,
        "every attributable customer has a profile"
    );
    assert_eq!(buyers, their_buyers);
    assert_eq!(
        buyers, 4338,
        "customers with at least one purchase, the figure published analyses report"
    );
    let mut ours_cells = Vec::new();
    for c in &ours {
        let (y, m) = (
            c.cohort[..4].parse::<i32>().unwrap(),
            c.cohort[5..].parse::<i32>().unwrap(),
        );
        for p in c.periods.iter().filter(|p| p.customers > 0) {
            let idx = y * 12 + (m - 1) + p.offset as i32;
            ours_cells.push((
                c.cohort.clone(),
                format!("{:04}-{:02}", idx / 12, idx % 12 + 1),
                p.customers,
            ));
        }
    }
    assert_eq!(
        ours_cells, theirs,
        "every cohort cell matches the SQL computation"
    );
    assert_eq!(
        (
            ours[0].cohort.as_str(),
            ours[0].customers,
            ours[0].periods[1].customers
        ),
        ("2010-12", 885, 324)
    );

    // The analyst's report is drawn from the same state.
    let out = tempfile::tempdir().unwrap();
    let md = rapport::report::write(&customers, as_of, &Default::default(), out.path()).unwrap();
    assert!(
        md.contains("customers with at least one purchase: **4338**"),
        "{md}"
    );
    assert!(md.contains("| 2010-12 | 885 | 885 (100%) | 324 (36.6%) |"));
    for chart in ["cohort-retention.svg", "lifecycle-by-month.svg"] {
        let svg = std::fs::read_to_string(out.path().join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("2010-12"),
            "{chart}"
        );
    }
}
