//! Tidy checks on the source tree itself, as rust-analyzer keeps them: the service crate's
//! modules import one way (no cycle), no source file outside its tests grows past
//! `LINES_MAX`, and comments say why rather than keep a lab notebook ("session N").

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Lines of a source file before its test module: past this a file usually holds two
/// concerns.
const LINES_MAX: usize = 800;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A file's text before its `#[cfg(test)] mod tests` (tests may import anything).
fn without_tests(text: &str) -> &str {
    let cut = text
        .match_indices("#[cfg(test)]")
        .find(|(i, _)| {
            text[i + "#[cfg(test)]".len()..]
                .trim_start()
                .starts_with("mod tests")
        })
        .map_or(text.len(), |(i, _)| i);
    &text[..cut]
}

/// `src/http/customers.rs` → `http::customers`; `src/store/sqlite/mod.rs` → `store::sqlite`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The modules each module of `src/` names through `crate::` paths (a child naming its
/// parent is not counted: that is how a child reaches its parent's items).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let files: BTreeMap<String, PathBuf> = rust_files(&src)
        .into_iter()
        .map(|f| (module_of(&src, &f), f))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let mut uses = BTreeSet::new();
        for (i, _) in without_tests(&text).match_indices("crate::") {
            let path: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':'
                })
                .collect();
            let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            let target = (1..=parts.len())
                .rev()
                .map(|k| parts[..k].join("::"))
                .find(|cand| files.contains_key(cand));
            if let Some(t) = target {
                if t != *module && !module.starts_with(&format!("{t}::")) {
                    uses.insert(t);
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle through `graph`, if there is one (depth-first search with colours).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        v: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == v) {
            let mut cycle = path[i..].to_vec();
            cycle.push(v.to_owned());
            return Some(cycle);
        }
        if done.contains(v) {
            return None;
        }
        path.push(v.to_owned());
        for w in graph.get(v).into_iter().flatten() {
            if let Some(c) = visit(w, graph, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(v.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|v| visit(v, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_service_crates_modules_import_one_way() {
    let graph = import_graph();
    assert!(graph.len() > 20, "found only {} modules", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in src/: {}", cycle.join(" → "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph = import_graph();
    graph.get_mut("store").unwrap().insert("http".into());
    assert!(
        find_cycle(&graph).is_some(),
        "store → http → … → store went unseen"
    );
}

#[test]
fn no_source_file_outside_its_tests_is_over_the_line_limit() {
    let mut big = Vec::new();
    for dir in ["src", "events/src", "projections/src"] {
        for f in rust_files(&root().join(dir)) {
            let lines = without_tests(&std::fs::read_to_string(&f).unwrap())
                .lines()
                .count();
            if lines > LINES_MAX {
                big.push(format!("{} ({lines} lines)", f.display()));
            }
        }
    }
    assert!(big.is_empty(), "files over {LINES_MAX} lines: {big:?}");
}

#[test]
fn comments_keep_no_lab_notebook() {
    let mut found = Vec::new();
    for dir in ["src", "events", "projections"] {
        for f in rust_files(&root().join(dir)) {
            if f.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let l = line.to_lowercase();
                let noted = l
                    .match_indices("session ")
                    .any(|(i, m)| l[i + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
                if noted {
                    found.push(format!("{}:{}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "\"session N\" in code (history belongs in git): {found:?}"
    );
}
