//! The core's shape, checked: no import cycle between its top-level modules,
//! no source file a reader cannot hold in mind (tests and test tables
//! excepted), and every module opening with what it owns.
//!
//! Read from the source tree, so it runs natively only.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test source file, in lines.
const MAX_LINES: usize = 520;

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Test code: `tests.rs` files, `tests/` folders, and the test vectors.
fn is_test(rel: &str) -> bool {
    rel.ends_with("tests.rs") || rel.contains("tests/") || rel == "test_vectors.rs"
}

/// A file's code before its inline `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |i| &text[..i])
}

#[test]
fn no_import_cycle_between_the_cores_modules() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources() {
        let rel = relative(&path);
        if is_test(&rel) || rel.starts_with("wasm") {
            continue;
        }
        let module = rel.split(['/', '.']).next().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for line in code_of(&text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    // Depth-first search for a path back to where it started.
    fn cycle_from(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        let last = path.last().unwrap().clone();
        for next in graph.get(&last).into_iter().flatten() {
            if *next == path[0] {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if !path.contains(next) {
                path.push(next.clone());
                if let Some(c) = cycle_from(graph, path) {
                    return Some(c);
                }
                path.pop();
            }
        }
        None
    }
    for module in graph.keys() {
        let found = cycle_from(&graph, &mut vec![module.clone()]);
        assert!(
            found.is_none(),
            "import cycle: {}",
            found.unwrap().join(" -> ")
        );
    }
}

#[test]
fn every_source_file_fits_in_a_readers_head() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|p| !is_test(&relative(p)))
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let lines = code_of(&text).lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", relative(p)))
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}

#[test]
fn every_module_opens_with_what_it_owns() {
    let silent: Vec<String> = sources()
        .iter()
        .filter(|p| !is_test(&relative(p)))
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .map(|p| relative(p))
        .collect();
    assert!(silent.is_empty(), "no module doc: {silent:?}");
}
