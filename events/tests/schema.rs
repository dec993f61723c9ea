//! The JSON Schemas in `events/schema/` are generated from the code. This test fails when a
//! committed schema is stale; run `RAPPORT_UPDATE_SCHEMAS=1 cargo test -p rapport-events`
//! to regenerate them, then review and commit the diff.

use std::path::PathBuf;

#[test]
fn committed_schemas_match_the_code() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema");
    let update = std::env::var_os("RAPPORT_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    let all = rapport_events::schema::all();
    for (name, schema) in &all {
        let want = serde_json::to_string_pretty(schema).unwrap() + "\n";
        let path = dir.join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(name.clone());
            }
        }
    }
    let names: Vec<_> = all.iter().map(|(n, _)| n.clone()).collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !names.contains(&name) {
            stale.push(format!("{name} (no longer generated; delete it)"));
        }
    }
    assert!(
        stale.is_empty(),
        "stale schemas: {stale:?}; run RAPPORT_UPDATE_SCHEMAS=1 cargo test -p rapport-events"
    );
}
