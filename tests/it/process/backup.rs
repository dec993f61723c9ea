//! `rapport backup` beside a running server, `rapport restore` into a new data directory:
//! the restored store serves the same answers. A backup opens nothing without the master
//! key, and a restore never overwrites a store.

use super::{paths, rapport, Server};

fn post_events(s: &Server, body: &str) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[test]
fn a_backup_taken_while_serving_restores_to_the_same_answers() {
    let (tmp, data, master) = paths();
    let s = Server::start(&data, &master);
    post_events(
        &s,
        r#"[{"type":"customer_registered","customer":"c-1","occurred_at":"2026-01-01T00:00:00Z","data":{"name":"Backup Person"}},
            {"type":"purchase","customer":"c-1","occurred_at":"2026-01-02T00:00:00Z","data":{"order_id":"o-1","amount":"10.50","currency":"GBP"}},
            {"type":"identifier_added","customer":"c-1","occurred_at":"2026-01-02T00:00:00Z","data":{"kind":"phone","value":"+447700900123"}}]"#,
    );
    let before = s.get_json("/v1/customers/c-1?min_position=3");
    assert_eq!(before["orders"], 1, "{before}");
    let file = tmp.path().join("rapport.backup");
    let out = rapport()
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("backed up 3 events"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over a file.
    let again = rapport()
        .args(["backup", "--data-dir"])
        .arg(&data)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    drop(s);

    // Without the master key, nothing opens.
    let other_key = tmp.path().join("other.key");
    let restored = tmp.path().join("restored");
    let wrong = rapport()
        .args(["restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .arg("--master-key-file")
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "a backup must not open under another key"
    );
    assert!(!restored.join("rapport.sqlite").exists());

    let ok = rapport()
        .args(["restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .arg("--master-key-file")
        .arg(&master)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Never over a store.
    let twice = rapport()
        .args(["restore", "--from"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&restored)
        .arg("--master-key-file")
        .arg(&master)
        .output()
        .unwrap();
    assert!(!twice.status.success());

    // The admin key of the original store works on the restored one.
    std::fs::copy(data.join("admin-key"), restored.join("admin-key")).unwrap();
    let s = Server::start(&restored, &master);
    let after = s.get_json("/v1/customers/c-1?min_position=3");
    for field in ["orders", "revenue", "identity", "person", "first_purchase"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let found = s.get_json("/v1/customers?identifier=phone:%2B447700900123");
    assert_eq!(found["total"], 1, "the blind index key came along: {found}");
}
