//! The command line: import (all or nothing, idempotent, refuses a store in use), export,
//! keys, master-key rotation.

use std::process::Output;

use super::{paths, rapport, Server};

fn run(args: &[&str], data: &std::path::Path, master: &std::path::Path) -> Output {
    rapport()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--master-key-file")
        .arg(master)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str = r#"{"type":"customer_registered","customer":"c-1","occurred_at":"2026-01-01T00:00:00Z","data":{"name":"Import Person","email":"ip@example.com"}}
{"type":"purchase","customer":"c-1","occurred_at":"2026-01-02T00:00:00Z","data":{"order_id":"o-1","amount":"10.50","currency":"GBP"}}
{"type":"purchase","customer":"c-2","occurred_at":"2026-01-03T00:00:00Z","data":{"order_id":"o-2","amount":"3","currency":"GBP"}}
"#;

#[test]
fn import_is_all_or_nothing_idempotent_and_exportable() {
    let (tmp, data, master) = paths();
    let file = tmp.path().join("events.ndjson");
    let bad = GOOD.replace(r#""amount":"3""#, r#""amount":"three""#);
    std::fs::write(&file, &bad).unwrap();
    let f = file.to_str().unwrap();
    let out = run(&["import", f], &data, &master);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{f}:3: /data/amount: must be a non-negative decimal"
        )),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nothing was written"));
    let out = rapport()
        .args(["keys", "create", "--role", "admin", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let exported = run(&["export"], &data, &master);
    assert_eq!(
        String::from_utf8_lossy(&exported.stdout).lines().count(),
        0,
        "nothing of the rejected import was written"
    );

    std::fs::write(&file, GOOD).unwrap();
    let out = run(&["import", f], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 written, 0 already stored"),
        "{}",
        stderr(&out)
    );
    let out = run(&["import", f], &data, &master);
    assert!(
        stderr(&out).contains("0 written, 3 already stored"),
        "re-import is a no-op: {}",
        stderr(&out)
    );

    let plain = run(&["export", "--personal", "plain"], &data, &master);
    let text = String::from_utf8(plain.stdout).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.contains("Import Person"));
    let withheld = run(&["export", "--after", "1"], &data, &master);
    let text = String::from_utf8(withheld.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["position"], 2);
    let all = run(&["export"], &data, &master);
    assert!(
        !String::from_utf8(all.stdout)
            .unwrap()
            .contains("Import Person"),
        "personal fields are withheld by default"
    );
}

#[test]
fn import_refuses_a_store_held_by_a_running_server_but_export_and_report_read_beside_it() {
    let (tmp, data, master) = paths();
    let server = Server::start(&data, &master);
    let file = tmp.path().join("e.ndjson");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(&["import", file.to_str().unwrap()], &data, &master);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another process"),
        "{}",
        stderr(&out)
    );
    let client = reqwest::blocking::Client::new();
    let resp = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/x-ndjson")
        .body(GOOD)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let out = run(&["export", "--personal", "plain"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let report = tmp.path().join("report");
    let out = run(
        &[
            "report",
            "--as-of",
            "2026-02-01",
            "--out",
            report.to_str().unwrap(),
        ],
        &data,
        &master,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_to_string(report.join("report.md"))
        .unwrap()
        .contains("customers with at least one purchase: **2**"));
}

#[test]
fn keys_can_be_created_listed_and_revoked() {
    let (_tmp, data, _) = paths();
    let keys = |args: &[&str]| {
        rapport()
            .arg("keys")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = keys(&["create", "--role", "analyst", "--label", "bi-team"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(token.starts_with("rpk_"));
    let id = token
        .trim()
        .strip_prefix("rpk_")
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .to_owned();
    let list = String::from_utf8(keys(&["list"]).stdout).unwrap();
    assert!(
        list.contains(&id)
            && list.contains("analyst")
            && list.contains("active")
            && list.contains("bi-team"),
        "{list}"
    );
    assert!(keys(&["revoke", &id]).status.success());
    assert!(String::from_utf8(keys(&["list"]).stdout)
        .unwrap()
        .lines()
        .any(|l| l.starts_with(&id) && !l.contains("active")));
    assert!(
        !keys(&["revoke", &id]).status.success(),
        "revoking twice fails"
    );
    assert!(!keys(&["create", "--role", "boss"]).status.success());
}

#[test]
fn rotating_the_master_key_keeps_personal_data_readable_with_the_new_key_only() {
    let (tmp, data, master) = paths();
    let file = tmp.path().join("e.ndjson");
    std::fs::write(&file, GOOD).unwrap();
    assert!(run(&["import", file.to_str().unwrap()], &data, &master)
        .status
        .success());
    let new = tmp.path().join("new.key");
    let out = rapport()
        .args(["keys", "rotate-master", "--data-dir"])
        .arg(&data)
        .arg("--master-key-file")
        .arg(&master)
        .arg("--new-master-key-file")
        .arg(&new)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let with_new = run(&["export", "--personal", "plain"], &data, &new);
    assert!(String::from_utf8(with_new.stdout)
        .unwrap()
        .contains("Import Person"));
    let with_old = run(&["export", "--personal", "plain"], &data, &master);
    assert!(!with_old.status.success());
    assert!(
        stderr(&with_old).contains("not the one this store's data keys are wrapped with"),
        "{}",
        stderr(&with_old)
    );
}

#[test]
fn sigterm_stops_the_server_gracefully_and_keeps_what_it_acknowledged() {
    let (_tmp, data, master) = paths();
    let mut server = Server::start(&data, &master);
    let client = reqwest::blocking::Client::new();
    let body = r#"[{"type":"purchase","customer":"c-1","occurred_at":"2026-01-02T00:00:00Z","data":{"order_id":"o-1","amount":"1","currency":"GBP"}}]"#;
    let resp = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    // SAFETY: `kill` only sends a signal to our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    drop(server);
    let out = run(&["export"], &data, &master);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

/// Erasure seen from outside the process: after it, neither the server's log output, nor
/// the store's files (snapshots included), nor any export mode reveals the erased values,
/// while the purchase survives.
#[test]
fn after_erasure_no_log_line_file_or_export_reveals_the_values() {
    const NAME: &str = "Wilhelmina Erasable-Zed";
    const PHONE: &str = "+44 7700 900123";
    let (tmp, data, master) = paths();
    let log_path = tmp.path().join("server.log");
    let mut child = rapport()
        .env("RAPPORT_LOG", "debug")
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--master-key-file")
        .arg(&master)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("rapport listening on ")
        .unwrap()
        .to_owned();
    let admin = std::fs::read_to_string(data.join("admin-key"))
        .unwrap()
        .trim()
        .to_owned();
    let http = reqwest::blocking::Client::new();
    let body = format!(
        r#"[{{"type":"customer_registered","customer":"w-1","occurred_at":"2026-01-01T00:00:00Z","data":{{"name":"{NAME}","phone":"{PHONE}"}}}},
            {{"type":"purchase","customer":"w-1","occurred_at":"2026-01-02T00:00:00Z","data":{{"order_id":"o-1","amount":"42.00","currency":"GBP"}}}},
            {{"type":"complaint","customer":"w-1","occurred_at":"2026-01-03T00:00:00Z","data":{{"complaint_id":"k","about":{{"sku":"s"}},"text":"{NAME} says the box was wet"}}}}]"#
    );
    let r = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let profile = http
        .get(format!("{base}/v1/customers/w-1?min_position=3"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        profile.contains(NAME),
        "before the erasure support sees the name: {profile}"
    );
    let r = http
        .delete(format!("{base}/v1/customers/w-1/personal-data"))
        .bearer_auth(&admin)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let profile = http
        .get(format!("{base}/v1/customers/w-1?min_position=4"))
        .bearer_auth(&admin)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        !profile.contains(NAME) && profile.contains("42.00"),
        "{profile}"
    );
    // SAFETY: `kill` only sends a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());

    // The server writes snapshots every 100,000 events; a replay writes one now.
    let replay = run(&["replay"], &data, &master);
    assert!(replay.status.success(), "{}", stderr(&replay));
    let mut outputs: Vec<(String, Vec<u8>)> =
        vec![("server log".into(), std::fs::read(&log_path).unwrap())];
    let mut snapshots = 0;
    for entry in walk(&data) {
        // Snapshots are compressed: searched as written and as decompressed.
        if entry.extension().is_some_and(|e| e == "snapshot") {
            let (_, state) = rapport::fold::snapshot::read_snapshot_file(&entry).unwrap();
            assert!(
                state.windows(3).any(|w| w == b"w-1"),
                "the decompressed state names the customer"
            );
            outputs.push((format!("{} (decompressed)", entry.display()), state));
            snapshots += 1;
        }
        outputs.push((entry.display().to_string(), std::fs::read(&entry).unwrap()));
    }
    assert_eq!(snapshots, 1, "the replay wrote a snapshot");
    for personal in ["plain", "pseudonymised", "withheld"] {
        let out = run(&["export", "--personal", personal], &data, &master);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("42.00"),
            "the purchase survives the erasure"
        );
        outputs.push((format!("export --personal {personal}"), out.stdout));
        for (what, format) in [
            ("events", "csv"),
            ("events", "parquet"),
            ("profiles", "csv"),
            ("profiles", "parquet"),
            ("alerts", "ndjson"),
            ("segments", "csv"),
        ] {
            let out = run(
                &[
                    "export",
                    "--personal",
                    personal,
                    "--what",
                    what,
                    "--format",
                    format,
                ],
                &data,
                &master,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Parquet is compressed: search its decoded text, not its bytes.
            let text = if format == "parquet" {
                parquet_text(&out.stdout).into_bytes()
            } else {
                out.stdout
            };
            if what != "alerts" && what != "segments" {
                assert!(
                    String::from_utf8_lossy(&text).contains("42.00"),
                    "{what} as {format}: the purchase survives the erasure"
                );
            }
            outputs.push((
                format!("export --personal {personal} --what {what} --format {format}"),
                text,
            ));
        }
    }
    for (what, bytes) in &outputs {
        for secret in [NAME, PHONE, "Erasable"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{what} reveals {secret:?}"
            );
        }
    }
}

/// Every value of a Parquet file, as text.
fn parquet_text(bytes: &[u8]) -> String {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .unwrap()
        .build()
        .unwrap();
    let mut out = String::new();
    for batch in reader {
        let batch = batch.unwrap();
        for col in batch.columns() {
            out.push_str(&arrow_cast_text(col));
        }
    }
    out
}

fn arrow_cast_text(col: &arrow_array::ArrayRef) -> String {
    use arrow_array::{cast::AsArray, Array};
    let mut out = String::new();
    if let Some(s) = col.as_string_opt::<i32>() {
        for i in 0..s.len() {
            if s.is_valid(i) {
                out.push_str(s.value(i));
                out.push('\n');
            }
        }
    } else if let Some(n) = col.as_primitive_opt::<arrow_array::types::UInt64Type>() {
        for i in 0..n.len() {
            out.push_str(&n.value(i).to_string());
            out.push('\n');
        }
    }
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Thresholds come from `--config`; a typo is refused by name, before anything starts.
#[test]
fn a_config_file_sets_thresholds_and_a_typo_is_named() {
    let (tmp, data, master) = paths();
    let import = tmp.path().join("events.ndjson");
    std::fs::write(
        &import,
        r#"{"type":"purchase","customer":"c-1","occurred_at":"2026-01-01T10:00:00Z","data":{"order_id":"o-1","amount":"10","currency":"CNY"}}
{"type":"purchase","customer":"c-2","occurred_at":"2026-03-01T10:00:00Z","data":{"order_id":"o-2","amount":"10","currency":"CNY"}}
"#,
    )
    .unwrap();
    assert!(run(&["import", import.to_str().unwrap()], &data, &master)
        .status
        .success());
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"lifecycle": {"activ_days": 30}}"#).unwrap();
    let out = run(
        &["replay", "--config", bad.to_str().unwrap()],
        &data,
        &master,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("lifecycle.activ_days: unknown field"),
        "{}",
        stderr(&out)
    );
    // With new_days 30 c-1 (59 days before the clock) is active; with 7 and active 30, at risk.
    let profiles = |config: Option<&std::path::Path>| {
        let mut args = vec!["export", "--what", "profiles", "--format", "csv"];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        let out = run(&args, &data, &master);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(profiles(None).lines().any(|l| l.starts_with("c-1,active,")));
    let strict = tmp.path().join("strict.json");
    std::fs::write(
        &strict,
        r#"{"lifecycle": {"new_days": 7, "active_days": 30}}"#,
    )
    .unwrap();
    assert!(profiles(Some(&strict))
        .lines()
        .any(|l| l.starts_with("c-1,at_risk,")));
}

/// `serve --store kurrentdb://…` with no server behind the address fails at once and says
/// which store it could not open; a data directory is never shared between two logs.
#[test]
fn serve_names_an_unreachable_kurrentdb_and_keeps_data_directories_to_one_store() {
    let (_tmp, data, master) = paths();
    // A loopback port that was free a moment ago and has nothing listening now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("kurrentdb://admin:changeit@127.0.0.1:{port}?tls=false");
    let out = run(
        &["serve", "--listen", "127.0.0.1:0", "--store", &url],
        &data,
        &master,
    );
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "failed to open the KurrentDB store kurrentdb://127.0.0.1:{port}?prefix=rapport"
        )),
        "{err}"
    );
    assert!(
        !err.contains("changeit"),
        "credentials are not logged: {err}"
    );
    // That directory now belongs to the KurrentDB log: the embedded store is refused in it.
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &data, &master);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("belongs to the store"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "kurrentdb://h:2113?prefix=$all",
        ],
        &data,
        &master,
    );
    assert!(
        stderr(&out).contains("--store: prefix `$all`"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "mysql://db:3306",
        ],
        &data,
        &master,
    );
    assert!(
        stderr(&out)
            .contains("--store: `mysql://db:3306` is neither `embedded` nor a KurrentDB URL"),
        "{}",
        stderr(&out)
    );
}

/// A long backlog at start is folded by a `rapport catch-up` child, and the server loads
/// what it left: the same state as a replay, byte for byte, and answers from it.
#[test]
fn a_long_catch_up_at_start_runs_in_a_child_process_and_gives_the_replayed_state() {
    let (tmp, data, master) = paths();
    let import = tmp.path().join("events.ndjson");
    let mut lines = String::new();
    for c in 0..400 {
        lines.push_str(&format!(
            r#"{{"type":"customer_registered","customer":"c-{c}","occurred_at":"2026-01-01T10:00:00Z","data":{{"name":"Person {c}","email":"p{c}@example.com"}}}}"#
        ));
        lines.push('\n');
        for o in 0..2 {
            lines.push_str(&format!(
                r#"{{"type":"purchase","customer":"c-{c}","occurred_at":"2026-02-0{}T10:00:00Z","data":{{"order_id":"o-{c}-{o}","amount":"12.50","currency":"EUR"}}}}"#,
                o + 1
            ));
            lines.push('\n');
        }
    }
    lines.push_str(r#"{"type":"complaint","customer":"c-1","occurred_at":"2026-02-03T10:00:00Z","data":{"complaint_id":"k-1","about":{"batch":"L1"},"text":"mouldy tea","severity":4}}"#);
    lines.push('\n');
    std::fs::write(&import, lines).unwrap();
    let out = run(&["import", import.to_str().unwrap()], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = 1201;
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"read_model": {"catch_up_in_child_events": 1000}}"#,
    )
    .unwrap();
    let log = tmp.path().join("serve.log");
    let mut command = rapport();
    command
        .env("RAPPORT_LOG", "info")
        .env("RAPPORT_CONFIG", &config);
    let server = Server::start_with(
        &data,
        &master,
        command,
        std::fs::File::create(&log).unwrap().into(),
    );
    let profile = server.get_json(&format!("/v1/customers/c-7?min_position={last}"));
    assert_eq!(profile["orders"], 2, "{profile}");
    assert_eq!(profile["revenue"]["EUR"], "25.00", "{profile}");
    assert_eq!(
        profile["identity"]["name"], "Person 7",
        "the server reads identity itself"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("catching up in a child process"), "{text}");
    assert!(
        text.contains("loaded the catch-up process's snapshot"),
        "{text}"
    );
    assert!(
        !text.contains("catching up here"),
        "the child did not fail: {text}"
    );
    drop(server);
    // The snapshot the child left is the state a replay folds, projection by projection.
    let out = run(&["replay", "--verify"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "verified at position {last}: replay gives the live state byte for byte"
        )),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_server_builds_business_time_in_a_child_process_and_valid_at_answers_from_it() {
    let (tmp, data, master) = paths();
    let import = tmp.path().join("events.ndjson");
    let mut lines = String::new();
    for c in 0..300 {
        for o in 0..4 {
            lines.push_str(&format!(
                r#"{{"type":"purchase","customer":"c-{c}","occurred_at":"2026-02-{:02}T10:00:00Z","data":{{"order_id":"o-{c}-{o}","amount":"12.50","currency":"EUR"}}}}"#,
                (c + o * 7) % 28 + 1
            ));
            lines.push('\n');
        }
    }
    // Recorded last, it occurred before everything else.
    lines.push_str(r#"{"type":"purchase","customer":"c-7","occurred_at":"2026-01-15T10:00:00Z","data":{"order_id":"o-till","amount":"3.00","currency":"EUR"}}"#);
    lines.push('\n');
    std::fs::write(&import, lines).unwrap();
    let out = run(&["import", import.to_str().unwrap()], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let last = 1201;
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"read_model": {"catch_up_in_child_events": 0},
            "time_travel": {"valid_time_every_events": 100, "valid_time_rebuild_after_events": 1200}}"#,
    )
    .unwrap();
    let mut command = rapport();
    command
        .env("RAPPORT_LOG", "info")
        .env("NO_COLOR", "1")
        .env("RAPPORT_CONFIG", &config);
    let mut server = Server::start_with(&data, &master, command, std::process::Stdio::piped());
    // The server logs each build once its child is done. A thread reads the log as it
    // comes (so the server never blocks on it); the deadline only bounds a failure.
    let log = std::io::BufReader::new(server.child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log) {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let mut lines = String::new();
    let mut next_build = || loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(300))
            .unwrap_or_else(|e| panic!("no build ({e}): {lines}"));
        lines.push_str(&line);
        lines.push('\n');
        if line.contains("built business time (valid_at)") {
            return lines.clone();
        }
        assert!(!line.contains("failed"), "{lines}");
    };
    let seen = next_build();
    let manifest = data.join(format!("snapshots/valid/{last}/manifest.json"));
    assert!(manifest.exists(), "{seen}");
    let client = reqwest::blocking::Client::new();
    let orders = |valid_at: &str| {
        server.get_json(&format!("/v1/customers/c-7?valid_at={valid_at}"))["orders"].clone()
    };
    assert_eq!(orders("2026-01-31"), 1, "the till's sale, recorded last");
    assert_eq!(orders("2026-03-01"), 5);
    // A late import (1,000 sales of January: fewer than the 1,200 events after which the
    // log's growth starts a build) makes the build stale: the server builds again.
    let mut late = String::new();
    for i in 0..1000 {
        late.push_str(&format!(
            r#"{{"type":"purchase","customer":"c-{}","occurred_at":"2026-01-20T10:00:00Z","data":{{"order_id":"o-late-{i}","amount":"1.00","currency":"EUR"}}}}"#,
            i % 10
        ));
        late.push('\n');
    }
    let status = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/x-ndjson")
        .body(late)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let seen = next_build();
    let rebuilt = data.join(format!("snapshots/valid/{}/manifest.json", last + 1000));
    assert!(rebuilt.exists(), "{seen}");
    assert!(!manifest.exists(), "the older build is removed");
    assert_eq!(
        orders("2026-01-31"),
        101,
        "the till's sale and the late import's"
    );
    // A segment definition alone applies to all of business time: it too starts a build.
    let status = client
        .post(format!("{}/v1/segments", server.base))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({"id": "loyal", "name": "Loyal", "rule": {"field": "orders", "op": ">=", "value": 3}}))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let seen = next_build();
    let rebuilt = data.join(format!("snapshots/valid/{}/manifest.json", last + 1001));
    assert!(rebuilt.exists(), "{seen}");
}

#[test]
fn the_children_of_serve_die_with_their_parent() {
    for command in ["catch-up", "valid-time"] {
        a_child_dies_with_its_parent(command);
    }
}

/// A stand-in for `serve`: a shell that starts `rapport COMMAND` and waits. The child
/// waits for the master key on its standard input, which this test keeps open, so only
/// its parent's death can end it.
fn a_child_dies_with_its_parent(command: &str) {
    let (_tmp, data, _master) = paths();
    let mut parent = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            // Through fd 3: a background job's own standard input is /dev/null.
            "exec 3<&0; '{}' {command} --data-dir '{}' <&3 3<&- & wait",
            env!("CARGO_BIN_EXE_rapport"),
            data.display()
        ))
        .env("RAPPORT_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _keep_open = parent.stdin.take();
    // The child's log, read as it comes; it ends when every writer (the shell and the
    // child) is gone. The deadline only bounds a failure.
    let log = std::io::BufReader::new(parent.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log) {
            let _ = tx.send(Some(line.unwrap_or_default()));
        }
        let _ = tx.send(None);
    });
    let next = || {
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("`{command}` outlived its parent ({e})"))
    };
    loop {
        let line = next().unwrap_or_else(|| panic!("`{command}` ended before its input"));
        if line.contains("reading the master key") {
            break;
        }
    }
    parent.kill().unwrap();
    parent.wait().unwrap();
    while let Some(line) = next() {
        assert!(!line.contains("built"), "{line}");
    }
}

#[test]
fn eval_warnings_from_store_reports_precision_on_staffs_verdicts() {
    let (_tmp, data, master) = paths();
    let server = Server::start(&data, &master);
    let client = reqwest::blocking::Client::new();
    let mut events = String::new();
    for (i, c) in ["c-1", "c-2", "c-3"].iter().enumerate() {
        events.push_str(&format!(
            r#"{{"type":"community_joined","customer":"{c}","occurred_at":"2026-03-01T08:00:00Z","data":{{"community":"g-1"}}}}
{{"type":"complaint","customer":"{c}","occurred_at":"2026-03-02T0{h}:00:00Z","data":{{"complaint_id":"k-{i}","about":{{"batch":"L1"}},"text":"mouldy tea"}}}}
"#,
            h = i + 1
        ));
    }
    let resp = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/x-ndjson")
        .body(events)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let last = resp.json::<serde_json::Value>().unwrap()["last_position"]
        .as_u64()
        .unwrap();
    let alerts = server.get_json(&format!("/v1/alerts?level=warning&min_position={last}"));
    let id = alerts["alerts"][0]["id"].as_str().unwrap().to_owned();
    let resp = client
        .post(format!("{}/v1/alerts/{id}/review", server.base))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({"verdict": "confirmed", "reason": "one damp batch"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let at = resp.json::<serde_json::Value>().unwrap()["position"]
        .as_u64()
        .unwrap();
    let verdicts = server.get_json(&format!("/v1/alerts/verdicts?min_position={at}"));
    assert_eq!(
        verdicts["verdicts"]["levels"]["warning"]["precision"], 1.0,
        "{verdicts}"
    );
    let out = run(&["eval-warnings", "--from-store"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| warning | 1 | 1 | 1 | 0 | 1.000 |"),
        "{table}"
    );
    assert!(
        table.contains("| warning_or_above | 1 | 1 | 1 | 0 | 1.000 |"),
        "{table}"
    );
}

/// Defect 12 of the hardening issue: one unreadable event (here a complaint whose payload
/// is no longer JSON) stopped the read model for good, invisibly. Now readiness, metrics and
/// `min_position` answers name the reason.
#[test]
fn a_read_model_stopped_by_an_unreadable_event_says_so_everywhere() {
    let (_tmp, data, master) = paths();
    let mut server = Server::start(&data, &master);
    let client = reqwest::blocking::Client::new();
    let events = r#"{"type":"purchase","customer":"c-1","occurred_at":"2026-03-01T10:00:00Z","data":{"order_id":"o-1","amount":"5.00","currency":"CNY"}}
{"type":"complaint","customer":"c-2","occurred_at":"2026-03-02T10:00:00Z","data":{"complaint_id":"k-1","about":{"sku":"S"},"text":"broken"}}
{"type":"purchase","customer":"c-3","occurred_at":"2026-03-03T10:00:00Z","data":{"order_id":"o-3","amount":"7.00","currency":"CNY"}}
"#;
    let resp = client
        .post(format!("{}/v1/events", server.base))
        .bearer_auth(&server.admin)
        .header("content-type", "application/x-ndjson")
        .body(events)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    server.kill9();
    let conn = rusqlite::Connection::open(data.join("rapport.sqlite")).unwrap();
    conn.execute(
        "UPDATE events SET data = '{\"complaint_id' WHERE position = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let server = Server::start(&data, &master);
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().unwrap();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("the read model stopped at position")
            && message.contains("the event at position 2 could not be read"),
        "{body}"
    );
    let metrics = server.get_text("/metrics");
    assert!(
        metrics.contains("rapport_read_model_stopped 1"),
        "{metrics}"
    );
    let resp = client
        .get(format!("{}/v1/customers/c-1?min_position=3", server.base))
        .bearer_auth(&server.admin)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("will not reach"),
        "{body}"
    );
}

/// Defect 11 of the hardening issue: a damaged or deleted WAL lost acknowledged events
/// silently, and the server then gave their positions to new ones. A store that holds
/// fewer events than its snapshots were folded from is refused, saying why.
#[test]
fn a_store_missing_events_its_snapshots_were_folded_from_is_refused() {
    let (tmp, data, master) = paths();
    let file = tmp.path().join("e.ndjson");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(&["import", file.to_str().unwrap()], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["replay"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    // The last acknowledged event is lost, as with a deleted `-wal` file.
    let conn = rusqlite::Connection::open(data.join("rapport.sqlite")).unwrap();
    conn.execute("DELETE FROM events WHERE position = 3", [])
        .unwrap();
    drop(conn);
    let again = tmp.path().join("more.ndjson");
    std::fs::write(&again, GOOD.lines().next().unwrap().replace("c-1", "c-9")).unwrap();
    let out = run(&["import", again.to_str().unwrap()], &data, &master);
    assert!(!out.status.success(), "an import must not reuse position 3");
    assert!(
        stderr(&out).contains("acknowledged events are missing"),
        "{}",
        stderr(&out)
    );
    let serve = rapport()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--master-key-file")
        .arg(&master)
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("holds 2 events, but snapshots"),
        "{}",
        String::from_utf8_lossy(&serve.stderr)
    );
}

/// Defect 10 of the hardening issue: a row changed in the file (an amount, a customer)
/// was folded unchecked, and `replay --verify` said "byte for byte". `rapport check` and
/// `replay --verify` compare every event with the digest it was written with.
#[test]
fn a_changed_row_is_found_by_check_and_by_replay_verify() {
    let (tmp, data, master) = paths();
    let file = tmp.path().join("e.ndjson");
    std::fs::write(&file, GOOD).unwrap();
    let out = run(&["import", file.to_str().unwrap()], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["check"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 intact, 0 erased"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let conn = rusqlite::Connection::open(data.join("rapport.sqlite")).unwrap();
    conn.execute(
        "UPDATE events SET data = replace(data, '\"10.50\"', '\"100247.75\"') WHERE position = 2",
        [],
    )
    .unwrap();
    assert_eq!(conn.changes(), 1);
    drop(conn);
    // A snapshot folded from the changed row agrees with a replay of it: only the digests
    // tell.
    let out = run(&["replay"], &data, &master);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["check"], &data, &master);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 damaged")
            && text.contains("position 2: its content does not match its digest"),
        "{text}"
    );
    let out = run(&["replay", "--verify"], &data, &master);
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("do not match the digests"),
        "{}",
        stderr(&out)
    );
}
