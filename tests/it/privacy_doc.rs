//! `docs/privacy.md` lists the personal fields; this keeps the list and the code in step.

use rapport_events::{personal, EventType};

#[test]
fn the_documented_personal_fields_are_the_declared_ones() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/privacy.md")).unwrap();
    let table = doc
        .split("<!-- personal-fields:start -->")
        .nth(1)
        .unwrap()
        .split("<!-- personal-fields:end -->")
        .next()
        .unwrap();
    let mut documented = std::collections::BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        documented.insert(cells[1].trim_matches('`').to_owned(), cells[2].to_owned());
    }
    for ty in EventType::ALL {
        let fields = personal::personal_fields(*ty);
        let traits = personal::has_personal_traits(*ty);
        match documented.get(ty.as_str()) {
            None => assert!(
                fields.is_empty() && !traits,
                "{ty} has personal fields but docs/privacy.md does not list it"
            ),
            Some(cell) => {
                for f in fields {
                    assert!(
                        cell.contains(&format!("`{f}`")),
                        "{ty}.{f} is personal but not documented"
                    );
                }
                if traits {
                    for t in personal::NON_PERSONAL_TRAITS {
                        assert!(
                            cell.contains(&format!("`{t}`")),
                            "non-personal trait {t} not documented"
                        );
                    }
                }
                let listed = cell.matches('`').count() / 2;
                let expected = fields.len()
                    + if traits {
                        1 + personal::NON_PERSONAL_TRAITS.len()
                    } else {
                        0
                    };
                assert_eq!(listed, expected, "{ty}: docs list {cell}");
            }
        }
    }
}

#[test]
fn docs_segments_lists_every_field_of_the_condition_language() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/segments.md")).unwrap();
    for (_, name, _, _, _) in rapport_events::segment::FIELDS {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/segments.md does not list `{name}`"
        );
    }
}
