//! Every event type and version has a golden example in `events/golden/<type>.v<N>.json`
//! that must keep decoding, forever, into the same canonical data. When a type gets a new
//! version, the old golden file stays and a new one is added.

use rapport_events::{parse_one, EventType};
use uuid::Uuid;

fn golden(name: &str) -> String {
    let path = format!("{}/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_type_and_version_has_a_golden_example_that_decodes_canonically() {
    for ty in EventType::ALL {
        for v in ty.known_versions() {
            let name = format!("{}.v{v}.json", ty.as_str());
            let text = golden(&name);
            let ev = parse_one(&text, &mut || Uuid::nil(), true)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ev.event_type(), *ty, "{name}");
            let input: serde_json::Value = serde_json::from_str(&text).unwrap();
            // Golden examples are written in canonical form: decoding and re-encoding
            // the payload gives it back unchanged.
            assert_eq!(
                ev.data.to_json(),
                input["data"],
                "{name}: canonical data changed"
            );
            assert_eq!(ev.id.to_string(), input["id"].as_str().unwrap(), "{name}");
        }
    }
}

#[test]
fn every_golden_file_names_a_known_type_and_version() {
    let dir = format!("{}/golden", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let (ty, rest) = name
            .split_once(".v")
            .unwrap_or_else(|| panic!("{name}: not <type>.v<N>.json"));
        let v: u16 = rest.trim_end_matches(".json").parse().unwrap();
        let ty = EventType::parse(ty).unwrap_or_else(|| panic!("{name}: unknown type"));
        assert!(ty.known_versions().contains(&v), "{name}: unknown version");
    }
}
